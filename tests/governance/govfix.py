"""A governed network on the embedded chain: founders, outsiders, and helpers to pass proposals.

`make_env` deploys with `deploy()` (the dev accounts are the founding members, as on every dev
network) and mints tokens to the founders; `outsider` funds a fresh key that is nobody's member.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount

from channels.chain.client import Web3ChainClient
from channels.chain.connection import Connection
from channels.chain.deploy import Deployment, deploy
from channels.chain.governance import Call, GovernanceClient, ProposalStatus, pass_proposal
from channels.codec.keccak import keccak
from channels.core.types import Address

EURO = 1_000_000
SETTLE_TIMEOUT = 10


def address_of(account: LocalAccount) -> Address:
    return Address(bytes.fromhex(account.address[2:]))


@dataclass
class GovEnv:
    connection: Connection
    deployment: Deployment
    founders: list[LocalAccount]

    def chain(self, account: LocalAccount) -> Web3ChainClient:
        return Web3ChainClient(self.connection, self.deployment, account)

    def gov(self, account: LocalAccount | None = None) -> GovernanceClient:
        return GovernanceClient(self.connection, self.deployment, account)

    def outsider(self, label: str, tokens: int = 100 * EURO) -> LocalAccount:
        """A funded account (gas and tokens) that is nobody's member."""
        account = Account.from_key(keccak(f"governance test outsider {label}".encode()))
        funder = self.founders[0]
        abi = self.gov().abi
        self.connection.transact(funder, address_of(account), b"", abi, "gas", value=10**18)
        self.chain(funder).mint(address_of(account), tokens)
        return account

    def pass_(self, calls: list[Call], title: str, voters: int = 2) -> ProposalStatus:
        """Pass a proposal with the votes of founders 1..voters (founder 0 proposes and votes)."""
        return pass_proposal(
            self.connection, self.deployment, self.founders[: voters + 1], calls, title
        )

    def open(self, opener: LocalAccount, partner: LocalAccount, deposit: int) -> int:
        client = self.chain(opener)
        client.approve(deposit)
        channel_id, _ = client.open_channel(address_of(partner), deposit)
        return int(channel_id)


def make_env() -> GovEnv:
    connection = Connection.embedded()
    founders = [Account.from_key(k) for k in connection.dev_keys]
    deployment = deploy(connection, founders[0], settle_timeout=SETTLE_TIMEOUT)
    minter = Web3ChainClient(connection, deployment, founders[0])
    for founder in founders:
        minter.mint(address_of(founder), 1_000 * EURO)
    return GovEnv(connection, deployment, founders)


CISE = Path(sys.executable).with_name("cise")
RUN_S = 120  # one `cise` process: imports (web3, py-evm) and a few calls to a local node


def run_cise(*argv: str) -> subprocess.CompletedProcess[str]:
    """`cise argv...` as its own process (as a user runs it), bounded by RUN_S."""
    assert CISE.exists(), f"no cise command beside {sys.executable}"
    return subprocess.run(
        [str(CISE), *argv], capture_output=True, text=True, timeout=RUN_S, check=False
    )

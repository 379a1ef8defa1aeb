"""Support for the membership and governance contract tests: the governed set on the shared chain.

`deploy_governed` deploys, on the session chain of conftest.py (after its snapshot, so it takes its
own), a `GovernedChannelManager`, `NetworkParameters`, `Membership` (actors 0..3 founders) and a
`GovernedAssetRegistry`, with an ordinary account, `gov`, standing in for the timelock: the tests
call the governance-only functions directly (the whole path through the governor and the timelock
is tested in tests/governance). `Governed.assert_reverts` checks the exact custom error and that a
mined attempt changes no storage of any of these contracts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from cm_support import ALLOWANCE, Actor, Chain, error_data, load_artifact, revert_data
from eth_tester.exceptions import TransactionFailed
from eth_utils import keccak, to_canonical_address, to_checksum_address

from channels.chain.deploy import create_address

ALL_ROLES = 63
USER, ASSET_OPERATOR, SERVICER, HUB, WATCHTOWER, FINANCIER = 1, 2, 4, 8, 16, 32
NONE, APPLIED, ACTIVE, SUSPENDED, EXPELLED = range(5)
CODE_OF_CONDUCT = keccak(b"code of conduct v1")
ADMISSION_RULES = keccak(b"admission rules v1")
HUB_FEE_CAP = 10_000
SETTLEMENT_PERIOD = 86_400
SETTLE_TIMEOUT = 10
ZERO_ADDRESS = "0x" + "00" * 20


@dataclass
class Governed:
    """The governed set on a test chain; `gov` acts as the timelock."""

    chain: Chain
    gov: Actor
    cm: Any
    params: Any
    membership: Any
    registry: Any
    founders: list[Actor]
    outsiders: list[Actor]

    def tx(self, fn: Any, sender: Actor | str) -> Any:
        return self.chain.tx(fn, sender)

    def events(self, receipt: Any, name: str, contract: Any) -> list[dict[str, Any]]:
        return self.chain.events(receipt, name, contract)

    def state(self) -> dict[str, bytes]:
        return {
            name: self.chain.storage_root(c.address)
            for name, c in (
                ("cm", self.cm),
                ("params", self.params),
                ("membership", self.membership),
                ("registry", self.registry),
                ("token", self.chain.token),
            )
        }

    def assert_reverts(self, fn: Any, sender: Actor | str, error: str, *args: Any) -> None:
        """`fn` from `sender` reverts with exactly `error(args)`, and a mined attempt changes nothing."""
        address = sender.address if isinstance(sender, Actor) else sender
        abi = [e for c in (self.cm, self.params, self.membership, self.registry) for e in c.abi]
        abi = list({(e["type"], e.get("name")): e for e in abi}.values())
        before = self.state()
        with pytest.raises(TransactionFailed) as info:
            fn.call({"from": address}, block_identifier="pending")
        got, expected = revert_data(info.value), error_data(abi, error, *args)
        assert got == expected, f"reverted with {got.hex()}, expected {error}{args}"
        tx_hash = fn.transact({"from": address, "gas": 2_000_000})
        assert self.chain.w3.eth.wait_for_transaction_receipt(tx_hash).status == 0
        assert self.state() == before

    def status(self, actor: Actor | str) -> int:
        address = actor.address if isinstance(actor, Actor) else actor
        return int(self.membership.functions.memberOf(address).call()[0])

    def open(self, opener: Actor, partner: Actor, amount: int = 0) -> int:
        receipt = self.tx(self.cm.functions.openChannel(partner.address, amount), opener)
        return int(self.events(receipt, "ChannelOpened", self.cm)[0]["channelId"])


def contract_at(chain: Chain, name: str, address: str) -> Any:
    return chain.w3.eth.contract(address=address, abi=load_artifact(name)["abi"])


def deploy(chain: Chain, name: str, *args: Any, sender: Actor | None = None) -> Any:
    artifact = load_artifact(name)
    factory = chain.w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
    tx_hash = factory.constructor(*args).transact(
        {"from": (sender or chain.admin).address, "gas": 8_000_000}
    )
    receipt = chain.w3.eth.wait_for_transaction_receipt(tx_hash)
    assert receipt.status == 1, f"{name} constructor reverted"
    return chain.w3.eth.contract(address=receipt.contractAddress, abi=artifact["abi"])


def deploy_governed(chain: Chain) -> Governed:
    admin = chain.admin
    founders, outsiders = chain.actors[:4], chain.actors[4:7]
    nonce = chain.w3.eth.get_transaction_count(admin.address)
    cm_at, params_at, membership_at = (
        to_checksum_address(create_address(to_canonical_address(admin.address), nonce + i))
        for i in range(3)
    )
    cm = deploy(chain, "GovernedChannelManager", chain.token.address, SETTLE_TIMEOUT,
                membership_at, admin.address)  # fmt: skip
    params = deploy(chain, "NetworkParameters", admin.address, HUB_FEE_CAP, SETTLEMENT_PERIOD,
                    CODE_OF_CONDUCT, "urn:coc:1", ADMISSION_RULES, "urn:rules:1")  # fmt: skip
    membership = deploy(chain, "Membership", admin.address, cm.address, params.address,
                        [f.address for f in founders], [ALL_ROLES, USER, HUB, FINANCIER])  # fmt: skip
    assert (cm.address, params.address, membership.address) == (cm_at, params_at, membership_at)
    registry = deploy(
        chain, "GovernedAssetRegistry", membership.address, admin.address, ZERO_ADDRESS
    )
    for actor in chain.actors:
        chain.tx(chain.token.functions.approve(cm.address, ALLOWANCE), actor)
    return Governed(chain, admin, cm, params, membership, registry, founders, outsiders)


def next_address(chain: Chain, offset: int = 0) -> str:
    """The address of the admin's contract creation `offset` transactions from now."""
    nonce = chain.w3.eth.get_transaction_count(chain.admin.address)
    return to_checksum_address(
        create_address(to_canonical_address(chain.admin.address), nonce + offset)
    )


def constructor_revert(chain: Chain, name: str, *args: Any) -> bytes:
    """The revert data of creating `name(args)` from the admin now (nothing is mined)."""
    artifact = load_artifact(name)
    factory = chain.w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
    data = factory.constructor(*args).data_in_transaction
    with pytest.raises(TransactionFailed) as info:
        chain.w3.eth.call({"from": chain.admin.address, "data": data, "gas": 8_000_000}, "pending")
    return revert_data(info.value)

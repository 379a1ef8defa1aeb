"""Support for the contract tests: the deployed chain, signing helpers, revert assertions.

Digests come from channels.codec.eip712 and recovery from channels.codec.ecdsa (one place per
concept; test_eip712_digests.py also checks them against eth_account's `encode_typed_data`); keys sign
digests through eth_account. Locks trees come from channels.core.locktree.
"""

from __future__ import annotations

import ast
import json
import pathlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from eth_abi import encode
from eth_account import Account
from eth_tester import EthereumTester, PyEVMBackend
from eth_tester.backends.pyevm.main import get_default_account_keys
from eth_tester.exceptions import TransactionFailed
from eth_utils import keccak, to_canonical_address, to_checksum_address
from web3 import Web3
from web3.logs import DISCARD
from web3.providers.eth_tester import EthereumTesterProvider

from channels.codec import eip712
from channels.codec.ecdsa import recover_signer
from channels.codec.eip712 import Domain

REPO = pathlib.Path(__file__).resolve().parents[2]
PACKAGE_ARTIFACTS = REPO / "channels" / "contracts"
TEST_ARTIFACTS = REPO / "tests" / "contracts" / "artifacts"

SETTLE_TIMEOUT = 10
MINTED = 10**12  # per test account: EUR 1,000,000
ALLOWANCE = 10**11  # finite, as a real wallet would approve
UINT96_MAX = 2**96 - 1
UINT64_MAX = 2**64 - 1
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
ZERO = b"\0" * 32


def load_artifact(name: str) -> dict[str, Any]:
    for folder in (PACKAGE_ARTIFACTS, TEST_ARTIFACTS):
        path = folder / f"{name}.json"
        if path.exists():
            return json.loads(path.read_text())
    raise FileNotFoundError(name)


# --------------------------------------------------------------------------- EIP-712


def sign(key: bytes, digest_: bytes) -> bytes:
    """65-byte r‖s‖v (v = 27/28, low s) signature of an EIP-712 digest."""
    return bytes(Account.unsafe_sign_hash(digest_, private_key=key).signature)


def proof_hash(
    channel_id: int, nonce: int, transferred: int, locked: int = 0, locks_root: bytes = ZERO
) -> bytes:
    return eip712.balance_proof_struct_hash(channel_id, nonce, transferred, locked, locks_root)


def raw(address: str) -> bytes:
    return to_canonical_address(address)


def high_s(signature: bytes) -> bytes:
    """The malleable twin of a low-s signature: (r, n - s, v flipped). Recovers to the same signer."""
    r, s, v = signature[:32], int.from_bytes(signature[32:64], "big"), signature[64]
    return r + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - v])


def recover(digest_: bytes, signature: bytes) -> str:
    """The address `ecrecover` gives for a (well-formed) signature of `digest_`."""
    return to_checksum_address(recover_signer(digest_, signature))


def with_v(signature: bytes, v: int) -> bytes:
    return signature[:64] + bytes([v])


# --------------------------------------------------------------------------- errors


def error_data(abi: Sequence[dict[str, Any]], name: str, *args: Any) -> bytes:
    """ABI encoding of custom error `name(args)`: 4-byte selector + arguments."""
    entries = [e for e in abi if e["type"] == "error" and e["name"] == name]
    assert len(entries) == 1, f"no single error {name} in the ABI"
    types = [i["type"] for i in entries[0]["inputs"]]
    selector = keccak(f"{name}({','.join(types)})".encode())[:4]
    return selector + encode(types, list(args))


_REVERT_BYTES = re.compile(r"(b'.*'|b\".*\")\s*\)?$", re.DOTALL)


def revert_data(exc: TransactionFailed) -> bytes:
    match = _REVERT_BYTES.search(str(exc))
    assert match, f"no revert data in {exc!r}"
    return ast.literal_eval(match.group(1))


# --------------------------------------------------------------------------- the chain


@dataclass(frozen=True)
class Actor:
    address: str
    key: bytes


@dataclass
class Chain:
    """One deployed CISE chain: Token, ChannelManager and the harness on py-evm."""

    w3: Web3
    tester: EthereumTester
    token: Any
    cm: Any
    harness: Any
    actors: list[Actor]
    admin: Actor

    # ----------------------------------------------------------------- basics

    @property
    def domain(self) -> Domain:
        return Domain(self.w3.eth.chain_id, raw(self.cm.address))

    def other_domains(self) -> dict[str, Domain]:
        """Domains a signature must not cross: another chain, another contract."""
        return {
            "chain": Domain(self.w3.eth.chain_id + 1, raw(self.cm.address)),
            "contract": Domain(self.w3.eth.chain_id, raw(self.harness.address)),
        }

    @property
    def block(self) -> int:
        return self.w3.eth.block_number

    def mine(self, n: int) -> None:
        self.tester.mine_blocks(n)

    def tx(self, fn, sender: Actor | str, **extra: Any):
        """Send a transaction that must succeed; return its receipt."""
        address = sender.address if isinstance(sender, Actor) else sender
        # An explicit gas limit skips estimation (a third EVM run per transaction in eth-tester).
        tx_hash = fn.transact({"from": address, "gas": 3_000_000, **extra})
        receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash)
        assert receipt.status == 1
        return receipt

    def pair(self, i: int = 0, j: int = 1) -> tuple[Actor, Actor]:
        """Two actors ordered as participant1 < participant2."""
        a, b = self.actors[i], self.actors[j]
        return (a, b) if int(a.address, 16) < int(b.address, 16) else (b, a)

    def events(self, receipt, event_name: str, contract=None) -> list[dict[str, Any]]:
        contract = contract or self.cm
        found = contract.events[event_name]().process_receipt(receipt, errors=DISCARD)
        return [dict(e["args"]) for e in found]

    # ----------------------------------------------------------------- channel helpers

    def open(self, opener: Actor, partner: Actor, amount: int = 0) -> int:
        receipt = self.tx(self.cm.functions.openChannel(partner.address, amount), opener)
        return self.events(receipt, "ChannelOpened")[0]["channelId"]

    def channel(self, channel_id: int, a: Actor, b: Actor) -> dict[str, Any]:
        values = self.cm.functions.getChannel(channel_id, a.address, b.address).call()
        names = [
            "state",
            "settleBlock",
            "closer",
            "deposit1",
            "deposit2",
            "withdrawn1",
            "withdrawn2",
        ]
        return dict(zip(names, values, strict=True))

    def stored_proof(self, channel_id: int, sender: Actor, receiver: Actor) -> tuple:
        return tuple(
            self.cm.functions.getBalanceProof(channel_id, sender.address, receiver.address).call()
        )

    def internal(self, actor: Actor | str) -> int:
        address = actor.address if isinstance(actor, Actor) else actor
        return self.cm.functions.balanceOf(address).call()

    def tokens(self, actor: Actor | str) -> int:
        address = actor.address if isinstance(actor, Actor) else actor
        return self.token.functions.balanceOf(address).call()

    def sign_proof(
        self,
        signer: Actor,
        channel_id: int,
        nonce: int,
        transferred: int,
        locked: int = 0,
        locks_root: bytes = ZERO,
        domain: Domain | None = None,
    ) -> bytes:
        digest_ = eip712.balance_proof_digest(
            domain or self.domain, channel_id, nonce, transferred, locked, locks_root
        )
        return sign(signer.key, digest_)

    def sign_withdraw(
        self, signer: Actor, channel_id, participant: Actor, total, expiry, domain=None
    ):
        digest_ = eip712.withdraw_digest(
            domain or self.domain, channel_id, raw(participant.address), total, expiry
        )
        return sign(signer.key, digest_)

    def sign_coop(self, signer: Actor, channel_id, balance1, balance2, domain=None) -> bytes:
        return sign(
            signer.key,
            eip712.cooperative_close_digest(domain or self.domain, channel_id, balance1, balance2),
        )

    def sign_monitor(
        self, signer: Actor, channel_id, proof_hash_, reward, watchtower: str, domain=None
    ):
        digest_ = eip712.monitor_request_digest(
            domain or self.domain, channel_id, proof_hash_, reward, raw(watchtower)
        )
        return sign(signer.key, digest_)

    def close(
        self,
        closer: Actor,
        partner: Actor,
        channel_id: int,
        nonce=0,
        transferred=0,
        locked=0,
        locks_root=ZERO,
    ):
        sig = (
            self.sign_proof(partner, channel_id, nonce, transferred, locked, locks_root)
            if nonce
            else b""
        )
        return self.tx(
            self.cm.functions.closeChannel(
                channel_id, partner.address, nonce, transferred, locked, locks_root, sig
            ),
            closer,
        )

    def settle(self, channel_id: int, a: Actor, b: Actor, sender: Actor | None = None):
        p1, p2 = sorted([a, b], key=lambda x: int(x.address, 16))
        return self.tx(
            self.cm.functions.settleChannel(channel_id, p1.address, p2.address), sender or a
        )

    # ----------------------------------------------------------------- state and reverts

    def storage_root(self, address: str) -> bytes:
        chain = self.tester.backend.chain
        account_db = chain.get_vm(chain.get_canonical_head()).state._account_db
        return bytes(account_db._get_storage_root(to_canonical_address(address)))

    def state(self) -> dict[str, bytes]:
        """The storage roots of all three contracts: equal roots = every storage slot unchanged."""
        return {
            name: self.storage_root(contract.address)
            for name, contract in (
                ("cm", self.cm),
                ("token", self.token),
                ("harness", self.harness),
            )
        }

    def assert_reverts(
        self, fn, sender: Actor | str, error: str, *args: Any, contract=None
    ) -> None:
        """`fn` from `sender` reverts with exactly `error(args)`, and a mined attempt changes no state."""
        address = sender.address if isinstance(sender, Actor) else sender
        abi = (contract or self.cm).abi
        before = self.state()
        with pytest.raises(TransactionFailed) as info:
            fn.call({"from": address}, block_identifier="pending")
        got, expected = revert_data(info.value), error_data(abi, error, *args)
        assert got == expected, (
            f"reverted with {got.hex()}, expected {error}{args}: {expected.hex()}"
        )
        # Mine the failing transaction too (explicit gas skips estimation): status 0, state untouched.
        tx_hash = fn.transact({"from": address, "gas": 2_000_000})
        assert self.w3.eth.wait_for_transaction_receipt(tx_hash).status == 0
        assert self.state() == before


def deploy_chain() -> Chain:
    tester = EthereumTester(PyEVMBackend())
    w3 = Web3(EthereumTesterProvider(tester))
    keys = get_default_account_keys()
    actors = [Actor(k.public_key.to_checksum_address(), k.to_bytes()) for k in keys]
    admin, users = actors[0], actors[1:]

    def deploy(name: str, *args: Any):
        artifact = load_artifact(name)
        factory = w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
        receipt = w3.eth.wait_for_transaction_receipt(
            factory.constructor(*args).transact({"from": admin.address})
        )
        return w3.eth.contract(address=receipt.contractAddress, abi=artifact["abi"])

    token = deploy("Token", "CISE Euro", "CEUR", admin.address)
    cm = deploy("ChannelManager", token.address, SETTLE_TIMEOUT)
    harness = deploy("ChannelManagerHarness", token.address, SETTLE_TIMEOUT)
    for user in users:
        token.functions.mint(user.address, MINTED).transact({"from": admin.address})
        token.functions.approve(cm.address, ALLOWANCE).transact({"from": user.address})
        token.functions.approve(harness.address, ALLOWANCE).transact({"from": user.address})
    chain = Chain(
        w3=w3, tester=tester, token=token, cm=cm, harness=harness, actors=users, admin=admin
    )
    # Steady state: the manager already holds tokens and has opened a channel (between the last two
    # actors, which the tests leave alone), so gas figures are not inflated by first-ever writes.
    last, before_last = users[-1], users[-2]
    chain.tx(cm.functions.depositToBalance(1), last)
    chain.tx(cm.functions.openChannel(before_last.address, 0), last)
    return chain

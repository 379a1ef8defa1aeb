"""Support for the asset registry contract tests: the registry on the shared chain, splits, reverts.

The registry is deployed once per session on the chain of conftest.py (after its snapshot, so it takes
its own); `Registry.assert_reverts` checks the exact custom error and that a mined attempt changes no
storage of the registry (nor of the other contracts). Split hashes come from channels.chain.assets.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from cm_support import Actor, Chain, error_data, load_artifact, revert_data
from eth_tester.exceptions import TransactionFailed
from eth_utils import keccak, to_checksum_address

PPM_TOTAL = 1_000_000
ZERO_ADDRESS = "0x" + "00" * 20
METADATA_HASH = keccak(b"washing machine WM-7, serial 0042")
METADATA_URI = "ipfs://bafy-wm7-0042"


def asset_id(label: str) -> bytes:
    return keccak(f"asset {label}".encode())


def address_of(label: str) -> str:
    """A deterministic, realistic (no zero bytes to speak of) address that is nobody's key."""
    return to_checksum_address(keccak(f"beneficiary {label}".encode())[12:])


def ascending(addresses: Sequence[str]) -> list[str]:
    return sorted(addresses, key=lambda a: int(a, 16))


def equal_ppm(n: int) -> list[int]:
    """n positive parts summing to 1,000,000 (the remainder goes to the first)."""
    base = PPM_TOTAL // n
    return [PPM_TOTAL - base * (n - 1)] + [base] * (n - 1)


def make_split(n: int, label: str = "") -> tuple[list[str], list[int]]:
    """A valid split of n beneficiaries: canonical (ascending) order, equal parts."""
    return ascending([address_of(f"{label}{i}") for i in range(n)]), equal_ppm(n)


@dataclass
class Registry:
    """The AssetRegistry deployed on a test chain."""

    chain: Chain
    contract: Any

    @property
    def f(self) -> Any:
        return self.contract.functions

    @property
    def address(self) -> str:
        return str(self.contract.address)

    def tx(self, fn: Any, sender: Actor | str) -> Any:
        return self.chain.tx(fn, sender)

    def events(self, receipt: Any, name: str) -> list[dict[str, Any]]:
        return self.chain.events(receipt, name, self.contract)

    def register(
        self,
        operator: Actor,
        asset: bytes,
        agent: Actor | str | None = None,
        split: tuple[Sequence[str], Sequence[int]] | None = None,
    ) -> Any:
        agent = operator if agent is None else agent
        agent_address = agent.address if isinstance(agent, Actor) else agent
        beneficiaries, ppm = split or make_split(3)
        return self.tx(
            self.f.registerAsset(
                asset, agent_address, METADATA_HASH, METADATA_URI, list(beneficiaries), list(ppm)
            ),
            operator,
        )

    def asset(self, asset: bytes) -> dict[str, Any]:
        values = self.f.assetOf(asset).call()
        names = ["operator", "agent", "splitVersion", "anchoredSeq", "anchorCount"]
        return dict(zip(names, values, strict=True))

    def state(self) -> dict[str, bytes]:
        return {**self.chain.state(), "registry": self.chain.storage_root(self.address)}

    def assert_reverts(self, fn: Any, sender: Actor | str, error: str, *args: Any) -> None:
        """`fn` from `sender` reverts with exactly `error(args)`; a mined attempt changes no state."""
        address = sender.address if isinstance(sender, Actor) else sender
        before = self.state()
        with pytest.raises(TransactionFailed) as info:
            fn.call({"from": address}, block_identifier="pending")
        got, expected = revert_data(info.value), error_data(self.contract.abi, error, *args)
        assert got == expected, (
            f"reverted with {got.hex()}, expected {error}{args}: {expected.hex()}"
        )
        tx_hash = fn.transact({"from": address, "gas": 2_000_000})
        assert self.chain.w3.eth.wait_for_transaction_receipt(tx_hash).status == 0
        assert self.state() == before


def deploy_registry(chain: Chain) -> Registry:
    artifact = load_artifact("AssetRegistry")
    factory = chain.w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
    receipt = chain.w3.eth.wait_for_transaction_receipt(
        factory.constructor().transact({"from": chain.admin.address})
    )
    contract = chain.w3.eth.contract(address=receipt.contractAddress, abi=artifact["abi"])
    return Registry(chain, contract)

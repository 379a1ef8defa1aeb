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
from cm_support import Actor, Chain, error_data, load_artifact, revert_data, sign
from eth_tester.exceptions import TransactionFailed
from eth_utils import keccak, to_canonical_address, to_checksum_address

from channels.chain.assets import split_hash
from channels.codec.eip712 import Domain, split_consent_digest

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

    def current(self, asset: bytes) -> tuple[list[str], list[int]]:
        """The asset's split in force: the `SplitChanged` log whose split has the stored hash."""
        return current_split(self.contract, asset)

    def change(
        self,
        asset: bytes,
        beneficiaries: Sequence[str],
        ppm: Sequence[int],
        consents: Sequence[tuple[str, int, bytes]] = (),
        current: tuple[Sequence[str], Sequence[int]] | None = None,
    ) -> Any:
        """changeSplit from the split in force (or `current`) to (beneficiaries, ppm)."""
        old = current or self.current(asset)
        return self.f.changeSplit(
            asset,
            (list(old[0]), list(old[1])),
            (list(beneficiaries), list(ppm)),
            [tuple(c) for c in consents],
        )

    def consent(
        self,
        signer: Actor,
        asset: bytes,
        beneficiaries: Sequence[str],
        ppm: Sequence[int],
        version: int,
        expiry: int,
    ) -> tuple[str, int, bytes]:
        """`signer`'s SplitConsent to (beneficiaries, ppm) becoming split `version` of `asset`."""
        domain = Domain(self.chain.w3.eth.chain_id, to_canonical_address(self.address))
        hashed = split_hash([to_canonical_address(b) for b in beneficiaries], list(ppm))
        digest = split_consent_digest(domain, asset, hashed, version, expiry)
        return signer.address, expiry, sign(signer.key, digest)

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


def current_split(registry: Any, asset: bytes) -> tuple[list[str], list[int]]:
    """The split in force of `asset` on `registry`, from its logs, checked against the stored hash.

    By hash, not by the last log: eth-tester keeps the logs of blocks a snapshot revert undid.
    """
    version = registry.functions.assetOf(asset).call()[2]
    stored = registry.functions.splitHashOf(asset, version).call()
    logs = registry.events.SplitChanged.get_logs(from_block=0, argument_filters={"assetId": asset})
    for log in reversed(logs):
        split = list(log["args"]["beneficiaries"]), list(log["args"]["ppm"])
        if split_hash([to_canonical_address(b) for b in split[0]], split[1]) == stored:
            return split
    raise LookupError(f"no SplitChanged log of 0x{asset.hex()} has the stored split hash")


def deploy_registry(chain: Chain) -> Registry:
    artifact = load_artifact("AssetRegistry")
    factory = chain.w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
    receipt = chain.w3.eth.wait_for_transaction_receipt(
        factory.constructor().transact({"from": chain.admin.address})
    )
    contract = chain.w3.eth.contract(address=receipt.contractAddress, abi=artifact["abi"])
    return Registry(chain, contract)

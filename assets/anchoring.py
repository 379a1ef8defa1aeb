"""Anchoring an asset's revenue ledger on chain: the Merkle root of the entries since the last
anchor goes to the asset registry, so any one entry can later be proven with a path.

`anchor_pending` first adopts the anchors the chain already has (an anchor sent just before a crash
is recorded, not sent twice), then anchors what is left. The ledger's sqlite connection is used
only on the calling (trio) thread; chain reads run in a worker thread, under the chain lock
shared by everything that talks to the same in-process chain.

Given the asset agent's node (`sends`: `NodeService.sends`), the anchor transaction goes through
the node's transaction manager at routine priority (the node's nonces, replaced when stalled,
recorded in the node's outbox before it leaves and resent with its nonce after a restart) and is
waited for without any lock held; an anchor still in flight from before a restart is waited for
before anything new is planned, so the same entries are never anchored twice. Without it (one-off
tools, tests) the anchor is sent and waited for directly.

When the chain's anchors commit to other entries than the local ledger holds (the file was
replaced or rolled back, or another process signs with the agent's key), `AnchorMismatchError`
says which anchor and why, before anything is sent: the caller reports it and stops anchoring.

This module must never anchor entries that are not in the local ledger, anchor twice, or anchor
after the chain was found to disagree with the local ledger.
"""

from __future__ import annotations

import logging

import trio

from assets.ledger import Anchor, make_anchor
from assets.ledger_store import LedgerStore, LedgerStoreError
from channels.app_sends import ApplicationSends
from channels.chain.assets import Anchor as ChainAnchor
from channels.chain.assets import AssetRegistryClient, AssetRegistryPort
from channels.chain.errors import ChainError
from channels.chain.executor import PreparedCall
from channels.chain.txmanager import PRIORITY_ROUTINE
from channels.service import TRANSACTION_PREFIX

log = logging.getLogger(__name__)


class AnchorMismatchError(Exception):
    """The chain's anchors do not commit to the local ledger's entries (nothing was anchored)."""

    def __init__(self, index: int, problem: str) -> None:
        super().__init__(f"on-chain anchor {index} does not match the local ledger: {problem}")
        self.index = index


def adopt_chain_anchors(ledger: LedgerStore, chain_anchors: tuple[ChainAnchor, ...]) -> int:
    """Record the chain's anchors the local ledger lacks; how many were adopted. Raises
    `AnchorMismatchError` when the chain commits to other entries than the local ones."""
    known = {record.index: record.anchor for record in ledger.anchors()}
    adopted = 0
    for anchor in chain_anchors:
        mine = known.get(anchor.index)
        if mine is not None:
            if (mine.from_seq, mine.to_seq, mine.root) != (
                anchor.from_seq,
                anchor.to_seq,
                anchor.root,
            ):
                raise AnchorMismatchError(
                    anchor.index,
                    f"the chain commits seq {anchor.from_seq}..{anchor.to_seq} to root "
                    f"0x{anchor.root.hex()}, the ledger file recorded seq "
                    f"{mine.from_seq}..{mine.to_seq} with root 0x{mine.root.hex()}",
                )
            continue
        entries = list(ledger.entries(anchor.from_seq, anchor.to_seq))
        local = make_anchor(entries) if entries else None
        head = local.head_hash if local is not None else bytes(32)
        try:
            ledger.record_anchor(
                anchor.index, Anchor(anchor.from_seq, anchor.to_seq, anchor.root, head)
            )
        except LedgerStoreError as exc:
            raise AnchorMismatchError(anchor.index, str(exc)) from None
        adopted += 1
    return adopted


def anchor_key_prefix(asset_id: bytes) -> str:
    """The node outbox keys of `asset_id`'s anchor transactions (then `<from>-<to>`)."""
    return f"{TRANSACTION_PREFIX}anchor:{asset_id.hex()}:"


def anchor_call(registry: AssetRegistryClient, asset_id: bytes, anchor: Anchor) -> PreparedCall:
    """`anchorLedger(assetId, fromSeq, toSeq, root, headHash)`, not sent."""
    if len(asset_id) != 32:
        raise ValueError(f"asset_id must be 32 bytes, got {len(asset_id)}")
    args = (asset_id, anchor.from_seq, anchor.to_seq, anchor.root, anchor.head_hash)
    data = registry.abi.function("anchorLedger").encode_call(args)
    return PreparedCall(registry.registry, data, registry.abi, "AssetRegistry.anchorLedger")


async def anchor_pending(
    ledger: LedgerStore,
    registry: AssetRegistryPort,
    asset_id: bytes,
    chain_lock: trio.Lock,
    sends: ApplicationSends | None = None,
) -> Anchor | None:
    """Anchor every entry no anchor covers yet (one transaction); None when there is none.
    `AnchorMismatchError` (nothing sent) when the chain's anchors disagree with the ledger.
    With `sends` (and an `AssetRegistryClient`) through the node's transaction manager."""
    if sends is not None:
        if not isinstance(registry, AssetRegistryClient):
            raise TypeError("anchoring through a node needs an AssetRegistryClient")
        return await _anchor_through(ledger, registry, asset_id, chain_lock, sends)
    async with chain_lock:
        on_chain = await trio.to_thread.run_sync(registry.anchors, asset_id)
    adopt_chain_anchors(ledger, on_chain)
    pending = ledger.unanchored_range()
    if pending is None:
        return None
    anchor = make_anchor(list(ledger.entries(*pending)))
    async with chain_lock:
        chain_anchor, receipt = await trio.to_thread.run_sync(
            registry.anchor_ledger,
            asset_id,
            anchor.from_seq,
            anchor.to_seq,
            anchor.root,
            anchor.head_hash,
        )
    ledger.record_anchor(
        chain_anchor.index, anchor, tx_hash=receipt.transaction_hash, block=receipt.block_number
    )
    return anchor


async def _adopt(
    ledger: LedgerStore, registry: AssetRegistryPort, asset_id: bytes, chain_lock: trio.Lock
) -> tuple[ChainAnchor, ...]:
    async with chain_lock:
        on_chain = await trio.to_thread.run_sync(registry.anchors, asset_id)
    adopt_chain_anchors(ledger, on_chain)
    return on_chain


async def _anchor_through(
    ledger: LedgerStore,
    registry: AssetRegistryClient,
    asset_id: bytes,
    chain_lock: trio.Lock,
    sends: ApplicationSends,
) -> Anchor | None:
    prefix = anchor_key_prefix(asset_id)
    for key in sends.live(prefix):  # sent before a restart: it lands (or fails) first
        await sends.wait(key)
    await _adopt(ledger, registry, asset_id, chain_lock)
    pending = ledger.unanchored_range()
    if pending is None:
        return None
    anchor = make_anchor(list(ledger.entries(*pending)))
    result = await sends.transact(
        f"{prefix}{anchor.from_seq}-{anchor.to_seq}",
        "AnchorLedger",
        anchor_call(registry, asset_id, anchor),
        priority=PRIORITY_ROUTINE,
    )
    if isinstance(result, ChainError):
        raise result
    on_chain = await _adopt(ledger, registry, asset_id, chain_lock)  # records it, checked
    for chain_anchor in on_chain:
        if (chain_anchor.from_seq, chain_anchor.to_seq, chain_anchor.root) == (
            anchor.from_seq,
            anchor.to_seq,
            anchor.root,
        ):
            ledger.record_anchor(
                chain_anchor.index,
                anchor,
                tx_hash=result.transaction_hash,
                block=result.block_number,
            )
            return anchor
    log.warning("anchor of seq %d..%d mined but not among the chain's anchors yet",
                anchor.from_seq, anchor.to_seq)  # fmt: skip
    return None


async def run_anchoring(
    ledger: LedgerStore,
    registry: AssetRegistryPort,
    asset_id: bytes,
    chain_lock: trio.Lock,
    *,
    interval: float,
    sends: ApplicationSends | None = None,
) -> None:
    """Anchor what is pending every `interval` seconds; never returns. After a mismatch it logs
    the finding and anchors no more (the agent's other work goes on)."""
    while True:
        await trio.sleep(interval)
        try:
            await anchor_pending(ledger, registry, asset_id, chain_lock, sends)
        except AnchorMismatchError as exc:
            log.error("anchoring stopped: %s", exc)
            await trio.sleep_forever()


__all__ = [
    "AnchorMismatchError",
    "adopt_chain_anchors",
    "anchor_call",
    "anchor_key_prefix",
    "anchor_pending",
    "run_anchoring",
]

"""A hub network without a chain, for benchmarks and tests: fixed keys, channels opened by
injecting the `ContractReceive*` state changes a chain would produce.

Every node (hub, payers, payees) applies the same opening state changes, so their views agree.
The keys are public test keys derived from names: this module must never be pointed at real
funds, and it must never be used by a command that talks to a real chain.
"""

from __future__ import annotations

import signal
from collections.abc import Sequence
from pathlib import Path

import trio

from channels.codec.eip712 import Domain
from channels.codec.keccak import keccak
from channels.core import state_changes as sc
from channels.core.channel import get_balance
from channels.core.node import node_transition
from channels.core.state import NodeState
from channels.core.types import Address, BlockNumber, ChannelId, TokenAmount
from channels.records import core_record_codec, replay
from channels.service import NodeService
from channels.signer import LocalSigner
from channels.store import SqliteStore

CHAIN_ID = 1337
CHANNEL_MANAGER = keccak(b"cise synthetic channel manager")[-20:]
SETTLE_TIMEOUT = 500
START_BLOCK = 100
DEFAULT_DEPOSIT = 10**12  # the synthetic hub's default, per agent and for the hub per channel


def key_of(name: str) -> bytes:
    """The fixed test key of a named node ("hub", "payer-0", ...)."""
    return keccak(b"cise synthetic key " + name.encode())


def domain() -> Domain:
    return Domain(CHAIN_ID, CHANNEL_MANAGER)


def hub_channels(
    hub: Address, partners: Sequence[Address], deposit: int, hub_deposit: int
) -> list[sc.StateChange]:
    """Open channel i+1 between the hub and partners[i]: the partner deposits `deposit`, the
    hub `hub_deposit`."""
    changes: list[sc.StateChange] = []
    for index, partner in enumerate(partners):
        channel_id = ChannelId(index + 1)
        first, second = sorted((hub, partner))
        tx = keccak(b"synthetic open " + channel_id.to_bytes(8, "big"))
        changes.append(
            sc.ContractReceiveChannelOpened(
                tx,
                BlockNumber(1),
                channel_id,
                Address(first),
                Address(second),
                SETTLE_TIMEOUT,
                opener=partner,
                deposit=TokenAmount(deposit),
            )
        )
        if hub_deposit:
            changes.append(
                sc.ContractReceiveChannelDeposited(
                    keccak(tx), BlockNumber(1), channel_id, hub, TokenAmount(hub_deposit)
                )
            )
    changes.append(sc.Block(BlockNumber(START_BLOCK)))
    return changes


def open_service(
    name: str,
    db: str | Path,
    opening: Sequence[sc.StateChange],
    *,
    group_target: int = 64,
    snapshot_interval: int = 10_000,
) -> NodeService:
    """The service of node `name` with its store at `db` (restored if it exists)."""
    signer = LocalSigner(key_of(name))
    address = Address(signer.address)
    store = SqliteStore(db, core_record_codec(), snapshot_interval=snapshot_interval)
    initial = NodeState(our_address=address, domain=domain(), block_number=BlockNumber(0))
    node = store.restore(initial, replay).state
    if not node.channels:
        with store.commit_group() as group:
            for change in opening:
                result = node_transition(node, change)
                group.add(change, result.events)
                node = result.new_state
    return NodeService(signer, store, node, group_target=group_target)


async def cancel_on_sigterm(scope: trio.CancelScope) -> None:
    """Cancel `scope` on SIGTERM (a benchmark process's parent asks it to stop cleanly)."""
    with trio.open_signal_receiver(signal.SIGTERM) as signals:
        async for _ in signals:
            scope.cancel()
            return


def address_of(name: str) -> Address:
    return Address(LocalSigner(key_of(name)).address)


def hub_store_totals(db: str | Path, deposit: int) -> tuple[int, int, int]:
    """From the hub's durable store at `db` (read once the hub is stopped): (what the hub gained
    over its `deposit` in each channel, pending locks, state changes in the log)."""
    store = SqliteStore(db, core_record_codec())
    try:
        restored = store.restore(NodeState(address_of("hub"), domain(), BlockNumber(0)), replay)
    finally:
        store.close()
    gained = 0
    locks = 0
    for channel in restored.state.channels.values():
        gained += get_balance(channel.our, channel.partner) - deposit
        locks += len(channel.our.locks) + len(channel.partner.locks)
    return gained, locks, restored.last_state_change_id


__all__ = [
    "DEFAULT_DEPOSIT",
    "address_of",
    "cancel_on_sigterm",
    "hub_channels",
    "hub_store_totals",
    "key_of",
    "open_service",
    "replay",
]

"""The payee process of the direct-payment benchmark (`python -m channels.bench.direct_peer`).

Listens on 127.0.0.1 (a free port, printed as `PORT <n>` on stdout), accepts balance proofs,
runs each through the core (`ReceiveBalanceProof`: the signer is recovered there), and logs the
state changes and events of everything received since the last commit in ONE sqlite transaction
(synchronous=FULL) before acknowledging them: persist before progress. The commit runs in a
worker thread, so the next batch is decoded and recovered while the previous one is fsynced.

On start it rebuilds its state from the store (snapshot + replay), so a restarted payee goes on
where it stopped. It must never acknowledge a payment that is not durable, and it has no
shutdown protocol: it is terminated by its parent, which is safe because every acknowledged
payment is already committed.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field, replace
from typing import Any

import trio

from channels import wire
from channels.bench.direct import (
    CHANNEL_ID,
    PAYEE_KEY,
    PAYER_KEY,
    apply,
    initial_node,
    opening_state_changes,
    record_codec,
)
from channels.core import events as ev
from channels.core.channel import TransitionContext, channel_transition
from channels.core.node import context_of, node_transition
from channels.core.state import ChannelState, NodeState
from channels.core.types import Address
from channels.signer import LocalSigner
from channels.store import SqliteStore
from channels.transport import Connection, DispatchTable, serve_connections

MAX_BATCH = 4096  # state changes in one group commit at most


@dataclass
class Payee:
    """Receives proofs, commits them in groups, then acknowledges (cumulatively, by nonce)."""

    store: SqliteStore
    node: NodeState  # as of the start; the hot path keeps the one channel apart
    channel: ChannelState = field(init=False)
    context: TransitionContext = field(init=False)
    # (state change, its events, the connection to acknowledge, the message id to acknowledge or 0)
    pending: list[tuple[Any, list[Any], Connection, int]] = field(default_factory=list)
    wakeup: trio.lowlevel.ParkingLot = field(default_factory=trio.lowlevel.ParkingLot)
    invalid: int = 0

    def __post_init__(self) -> None:
        self.channel = self.node.channels[CHANNEL_ID]
        self.context = context_of(self.node)

    def node_state(self) -> NodeState:
        """The whole node as of now (for a snapshot)."""
        return replace(self.node, channels={**self.node.channels, CHANNEL_ID: self.channel})

    async def on_direct_transfer(
        self, connection: Connection, message: wire.DirectTransfer
    ) -> None:
        state_change = wire.to_state_change(message, Address(connection.peer))
        # the state change names its channel; anything but ours is refused by the core
        result = channel_transition(self.channel, state_change, self.context)
        self.channel = result.new_state
        events = result.events
        if events and type(events[0]) is ev.EventPaymentReceived:
            ack = message.message_id
        else:
            ack = 0
            self.invalid += 1
            print(f"invalid balance proof: {events}", file=sys.stderr, flush=True)
        self.pending.append((state_change, events, connection, ack))
        self.wakeup.unpark_all()

    def _commit(
        self, batch: list[tuple[Any, list[Any], Connection, int]], snapshot: NodeState | None
    ) -> None:
        with self.store.commit_group() as group:
            for state_change, events, _, _ in batch:
                group.add(state_change, events)
            if snapshot is not None:
                group.write_snapshot(snapshot)

    async def serve_commits(self) -> None:
        """Forever: take what arrived, make it durable in one transaction, then acknowledge."""
        while True:
            if not self.pending:
                await self.wakeup.park()
                continue
            batch, self.pending = self.pending[:MAX_BATCH], self.pending[MAX_BATCH:]
            # the node state matches the end of the batch only when nothing is left pending
            due = not self.pending and self.store.snapshot_due
            snapshot = self.node_state() if due else None
            await trio.to_thread.run_sync(self._commit, batch, snapshot)
            acks: dict[Connection, list[int]] = {}
            for _, _, connection, message_id in batch:
                if message_id:
                    acks.setdefault(connection, []).append(message_id)
            for connection, message_ids in acks.items():
                if connection.closed:
                    continue
                for start in range(0, len(message_ids), wire.MAX_BATCH):
                    chunk = message_ids[start : start + wire.MAX_BATCH]
                    connection.send_nowait(wire.Processed(message_ids=chunk))


async def serve_payee(db: str, deposit: int) -> None:
    payee_signer = LocalSigner(PAYEE_KEY)
    payer_address = Address(LocalSigner(PAYER_KEY).address)
    payee_address = Address(payee_signer.address)
    store = SqliteStore(db, record_codec())
    try:
        node = store.restore(initial_node(payee_address), apply).state
        if CHANNEL_ID not in node.channels:
            for change in opening_state_changes(payer_address, payee_address, deposit):
                result = node_transition(node, change)
                store.write(change, result.events)
                node = result.new_state
        payee = Payee(store, node)
        table = DispatchTable()
        table.register(wire.DirectTransfer, payee.on_direct_transfer)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(payee.serve_commits)
            port = await nursery.start(serve_connections, payee_signer, wire, table.lookup())
            print(f"PORT {port}", flush=True)
    finally:
        store.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", required=True, help="the payee's sqlite store")
    parser.add_argument("--deposit", type=int, required=True, help="the payer's deposit")
    args = parser.parse_args(argv)
    trio.run(serve_payee, args.db, args.deposit)


if __name__ == "__main__":
    main()

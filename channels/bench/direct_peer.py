"""The payee process of the direct-payment benchmark (`python -m channels.bench.direct_peer`).

Listens on 127.0.0.1 (a free port, printed as `PORT <n>` on stdout), accepts balance proofs,
runs each through the core (`ReceiveBalanceProof`: the signer is recovered there), and logs the
state changes and events of everything received since the last commit in ONE sqlite transaction
(synchronous=FULL) before acknowledging them: persist before progress. The commit runs in a
worker thread, so the next batch is decoded and recovered while the previous one is fsynced.
The payer sends its payments in `Batch` frames; a lone `DirectTransfer` is taken as well.

On start it rebuilds its state from the store (snapshot + replay), so a restarted payee goes on
where it stopped. It must never acknowledge a payment that is not durable, and it has no
shutdown protocol: it is terminated by its parent, which is safe because every acknowledged
payment is already committed.
"""

from __future__ import annotations

import argparse
import gc
import sys
from dataclasses import dataclass, field

import trio
from msgspec.structs import replace

from channels import wire
from channels.bench.direct import (
    CHANNEL_ID,
    PAYEE_KEY,
    PAYER_KEY,
    initial_node,
    opening_state_changes,
)
from channels.core import events as ev
from channels.core.channel import TransitionContext, channel_transition
from channels.core.node import context_of, node_transition
from channels.core.state import ChannelState, NodeState
from channels.core.types import Address
from channels.records import core_record_codec, replay
from channels.signer import LocalSigner
from channels.store import CommitGroup, SqliteStore
from channels.transport import (
    Connection,
    DispatchTable,
    MalformedMessageError,
    serve_connections,
)

DEFAULT_GROUP_TARGET = 64  # state changes a group commit waits for (the bench passes in_flight/4)
GROUP_WAIT = 0.006  # seconds a started group waits to fill before it commits anyway


@dataclass
class Payee:
    """Receives proofs, logs them into the open commit group, commits groups, then acknowledges.

    Pipelined: the trio thread runs the core and encodes each state change into the open group
    (`SqliteStore.begin_group`); the commit task waits until the group holds `group_target`
    state changes (or GROUP_WAIT passed), seals it, starts the next one, and commits the sealed
    one in a worker thread, which only executes one INSERT (the group is one log row) and fsyncs.
    """

    store: SqliteStore
    node: NodeState  # as of the start; the hot path keeps the one channel apart
    channel: ChannelState = field(init=False)
    context: TransitionContext = field(init=False)
    group: CommitGroup = field(init=False)
    # message ids of the valid payments in the open group, by connection
    acks: dict[Connection, list[int]] = field(default_factory=dict)
    wakeup: trio.lowlevel.ParkingLot = field(default_factory=trio.lowlevel.ParkingLot)
    commit_waiting: bool = False  # the commit task is parked in `wakeup`
    invalid: int = 0
    group_target: int = DEFAULT_GROUP_TARGET

    def __post_init__(self) -> None:
        self.channel = self.node.channels[CHANNEL_ID]
        self.context = context_of(self.node)
        self.group = self.store.begin_group()

    def node_state(self) -> NodeState:
        """The whole node as of now (for a snapshot)."""
        return replace(self.node, channels={**self.node.channels, CHANNEL_ID: self.channel})

    async def on_direct_transfer(
        self, connection: Connection, message: wire.DirectTransfer
    ) -> None:
        self.receive(Address(connection.peer), self.acks_for(connection), message)

    async def on_batch(self, connection: Connection, batch: wire.Batch) -> None:
        """The payer sends its payments in batches: one frame, one decode for many."""
        sender = Address(connection.peer)
        acks = self.acks_for(connection)  # no checkpoint before the end: the group stays open
        for message in batch.messages:
            if type(message) is not wire.DirectTransfer:
                raise MalformedMessageError(
                    f"the bench payee takes direct transfers only, not {type(message).__name__}"
                )
            self.receive(sender, acks, message)
        await trio.lowlevel.checkpoint()  # a finished commit gets to acknowledge

    def acks_for(self, connection: Connection) -> list[int]:
        """The message ids to acknowledge on `connection` once the open group is durable."""
        acks = self.acks.get(connection)
        if acks is None:
            acks = self.acks[connection] = []
        return acks

    def receive(self, sender: Address, acks: list[int], message: wire.DirectTransfer) -> None:
        """Run one direct transfer through the core and log it into the open group; a valid
        one's message id goes to `acks`."""
        state_change = wire.to_state_change(message, sender)
        # the state change names its channel; anything but ours is refused by the core
        result = channel_transition(self.channel, state_change, self.context)
        self.channel = result.new_state
        events = result.events
        group = self.group
        group.add(state_change, events)
        if events and type(events[0]) is ev.EventPaymentReceived:
            acks.append(message.message_id)
        else:
            self.invalid += 1
            print(f"invalid balance proof: {events}", file=sys.stderr, flush=True)
        if self.commit_waiting:  # for a group to start, or to fill
            pending = len(group.state_changes)
            if pending == 1 or pending >= self.group_target:
                self.wakeup.unpark_all()

    async def _park(self) -> None:
        self.commit_waiting = True
        try:
            await self.wakeup.park()
        finally:
            self.commit_waiting = False

    async def _wait_for_group(self) -> None:
        """Until the open group has `group_target` state changes, or GROUP_WAIT passed since
        it had its first (a slow or finished payer does not wait for a full group)."""
        while not self.group.state_changes:
            await self._park()
        with trio.move_on_after(GROUP_WAIT):
            while len(self.group.state_changes) < self.group_target:
                await self._park()

    async def serve_commits(self) -> None:
        """Forever: seal what arrived, make it durable in one transaction, then acknowledge."""
        while True:
            await self._wait_for_group()
            group = self.group
            if self.store.snapshot_due:
                group.write_snapshot(self.node_state())  # the state as of the group's end
            acks, self.acks = self.acks, {}
            self.group = self.store.begin_group()  # seals `group`
            await trio.to_thread.run_sync(self.store.commit, group)
            for connection, message_ids in acks.items():
                if connection.closed:
                    continue
                for start in range(0, len(message_ids), wire.MAX_BATCH):
                    chunk = message_ids[start : start + wire.MAX_BATCH]
                    connection.send_nowait(wire.Processed(message_ids=chunk))


async def serve_payee(db: str, deposit: int, group_target: int = DEFAULT_GROUP_TARGET) -> None:
    payee_signer = LocalSigner(PAYEE_KEY)
    payer_address = Address(LocalSigner(PAYER_KEY).address)
    payee_address = Address(payee_signer.address)
    store = SqliteStore(db, core_record_codec())
    try:
        node = store.restore(initial_node(payee_address), replay).state
        if CHANNEL_ID not in node.channels:
            for change in opening_state_changes(payer_address, payee_address, deposit):
                result = node_transition(node, change)
                store.write(change, result.events)
                node = result.new_state
        payee = Payee(store, node, group_target=group_target)
        table = DispatchTable()
        table.register(wire.DirectTransfer, payee.on_direct_transfer)
        table.register(wire.Batch, payee.on_batch)
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
    parser.add_argument(
        "--group-target",
        type=int,
        default=DEFAULT_GROUP_TARGET,
        help="state changes a group commit waits for (at most GROUP_WAIT seconds)",
    )
    args = parser.parse_args(argv)
    if args.group_target < 1:
        parser.error("--group-target must be positive")
    # A payment allocates a dozen short-lived records and no cycles: collect the young
    # generation rarely and never rescan the long-lived setup objects (~1 µs a payment).
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    trio.run(serve_payee, args.db, args.deposit, args.group_target)


if __name__ == "__main__":
    main()

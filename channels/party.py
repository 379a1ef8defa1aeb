"""One participant's imperative shell around the pure core, for synchronous callers.

A `Party` owns a node state, a durable store, a signer and a chain client. `handle` runs the core's
transition, writes the state change and its events in one sqlite transaction (persist before
progress), and only then acts on the events: it signs every `Send*` into a wire message queued in
`outbox` for the caller to deliver, and sends every `ContractSend*` as a transaction. Chain logs come
back in through `sync_chain`. It decides nothing itself: every decision is the core's.

Used by `cise demo` and the `cise channel` commands; the trio services wrap the same pieces.
`Party.open` owns the account's log (its store claims the file: a second writer is refused);
`read_party_state` only looks, for status commands that run beside the log's owner.
It must never sign anything the core did not ask for, and never act on an event it has not persisted.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from channels import wire
from channels.chain.client import Web3ChainClient
from channels.chain.errors import ChainError
from channels.chain.events import ChainFollower
from channels.chain.executor import execute
from channels.core import events as ev
from channels.core import state_changes as sc
from channels.core.node import node_transition
from channels.core.state import NodeState
from channels.core.types import Address
from channels.records import core_record_codec
from channels.service import initial_chain_node, read_chain_node, restore_chain_node
from channels.signer import LocalSigner
from channels.store import SqliteStore


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A signed, encoded message for `recipient`."""

    recipient: Address
    payload: bytes


@dataclass(slots=True)
class Party:
    """One participant: state + store + signer + chain client (see the module docstring)."""

    signer: LocalSigner
    client: Web3ChainClient
    store: SqliteStore
    state: NodeState
    follower: ChainFollower
    outbox: list[Outgoing] = field(default_factory=list)
    failed_transactions: list[tuple[ev.ContractSendEvent, ChainError]] = field(default_factory=list)

    @classmethod
    def open(cls, signer: LocalSigner, client: Web3ChainClient, store_path: Path) -> Party:
        """Open (or restore) the party whose log lives at `store_path`."""
        store = SqliteStore(store_path, core_record_codec())
        try:
            restored = restore_chain_node(signer, client, store)
        except BaseException:
            store.close()
            raise
        deployment = client.deployment
        follower = ChainFollower(client.connection, deployment, cursor=restored.block_number)
        return cls(signer, client, store, restored, follower)

    @property
    def address(self) -> Address:
        return Address(self.signer.address)

    def close(self) -> None:
        self.store.close()

    def handle(self, state_change: sc.StateChange) -> list[ev.Event]:
        """Apply, persist, then act. Returns all the events; `Event*` ones are for the caller."""
        result = node_transition(self.state, state_change)
        self.store.write(state_change, result.events)
        self.state = result.new_state
        # Message ids derive from the durable state change id, so they never repeat, restarts included.
        first_message_id = self.store.last_state_change_id << 8
        if self.store.snapshot_due:
            self.store.write_snapshot(self.state)
        failed_before = len(self.failed_transactions)
        events = list(result.events)
        for index, event in enumerate(result.events):
            self._act(event, first_message_id + index)
        # an unlock the chain refused stays pending in the core, with the reason, to be retried
        for failed, error in self.failed_transactions[failed_before:]:
            if isinstance(failed, ev.ContractSendUnlock):
                report = sc.ContractReceiveUnlockFailed(
                    failed.channel_id, failed.sender, failed.slot, str(error)
                )
                events.extend(self.handle(report))
        return events

    def handle_all(self, state_changes: Iterable[sc.StateChange]) -> list[ev.Event]:
        events: list[ev.Event] = []
        for change in state_changes:
            events.extend(self.handle(change))
        return events

    def receive(self, payload: bytes, sender: Address) -> list[ev.Event]:
        """A frame from `sender`; malformed input raises wire.WireError and changes nothing."""
        events: list[ev.Event] = []
        for message in wire.unpack(wire.decode(payload)):
            if not wire.is_peer_message(message):
                continue  # acknowledgements and routing messages change no channel
            events.extend(self.handle(wire.to_state_change(message, sender)))
        return events

    def sync_chain(self) -> list[ev.Event]:
        """Feed every new confirmed chain log (and the new head) into the core."""
        events: list[ev.Event] = []
        for batch in self.follower.poll_until_head():
            events.extend(self.handle_all(batch.state_changes))
        return events

    def _act(self, event: ev.Event, message_id: int) -> None:
        if isinstance(event, ev.SendEvent):
            digest = getattr(event, "digest", None)
            signature = self.signer.sign_digest(digest) if digest is not None else b""
            message = wire.from_event(event, message_id, signature)
            self.outbox.append(Outgoing(event.recipient, wire.encode(message)))
        elif isinstance(event, ev.ContractSendEvent):
            # A rejected transaction changes nothing on chain; the core learns the truth from
            # the logs (e.g. the partner settled first), so it is recorded, not retried here.
            try:
                execute(self.client, self.signer, event)
            except ChainError as exc:
                self.failed_transactions.append((event, exc))

    def take_outbox(self) -> list[Outgoing]:
        out, self.outbox = self.outbox, []
        return out


def read_party_state(client: Web3ChainClient, store_path: Path) -> tuple[NodeState, list[str]]:
    """The account's node as its log holds it, caught up with the chain IN MEMORY ONLY, and the
    kinds of the transactions that catching up asked for (e.g. `ContractSendUpdateTransfer`).

    Writes nothing and takes no claim: the log is opened read-only (`mode=ro`, or not at all when
    there is none yet), so this works while another process owns it. The chain's new logs are
    replayed through the core to show what the chain says now; the events they cause are
    dropped, never acted on (the log's owner acts on them when it sees the same logs).
    """
    if store_path.exists():
        store = SqliteStore(store_path, core_record_codec(), read_only=True)
        try:
            state = read_chain_node(client, store)
        finally:
            store.close()
    else:
        state = initial_chain_node(client)
    follower = ChainFollower(client.connection, client.deployment, cursor=state.block_number)
    due: dict[str, None] = {}  # kinds in order, once each
    for batch in follower.poll_until_head():
        for change in batch.state_changes:
            result = node_transition(state, change)
            state = result.new_state
            for event in result.events:
                if isinstance(event, ev.ContractSendEvent):
                    due[type(event).__name__] = None
    return state, list(due)


def deliver(parties: Iterable[Party], max_rounds: int = 100) -> int:
    """Carry every queued message to its recipient among `parties` until all queues are empty.

    An in-process transport for demos and tests; returns the number of messages delivered.
    """
    by_address = {party.address: party for party in parties}
    delivered = 0
    for _ in range(max_rounds):
        moved = False
        for party in list(by_address.values()):
            for item in party.take_outbox():
                recipient = by_address.get(item.recipient)
                if recipient is None:
                    raise LookupError(f"no party 0x{item.recipient.hex()} to deliver to")
                recipient.receive(item.payload, party.address)
                delivered += 1
                moved = True
        if not moved:
            return delivered
    raise RuntimeError(f"messages still flowing after {max_rounds} rounds")

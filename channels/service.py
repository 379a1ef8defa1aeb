"""The trio shell of one node: the pure core + durable group commits + authenticated peers.

`NodeService` is what the hub and every agent (user, asset, servicer) run. It keeps the node
state in memory (the channels in a mutable mapping, so one payment costs O(1) however many
channels the node has), runs each state change through the core, and logs it with its events
into the open commit group. Outgoing messages are signed and encoded at once and written to the
group's outbox rows, but nothing leaves the process before its group is durable (persist before
progress): the commit task seals the group when it holds `group_target` state changes or
`group_wait` seconds passed, commits it in a worker thread (one fsync) while the next group fills,
and only then sends the group's messages, acknowledges what it received, starts its transactions
and tells the listeners.

Delivery is at-least-once and in order: every outgoing peer message stays in the outbox (in
memory and in sqlite) until its receiver acknowledges it with `Processed`, which it does only
once the message's effects are durable on its side; on every (re)connection, and after a restart,
the unacknowledged messages are sent again first, oldest first. A receiver that already has a
message rejects the copy by its nonce and acknowledges it, so a copy changes nothing. A receiver
that refuses the partner's next balance proof does not acknowledge it: the sender keeps it and
sends it again after a growing delay, so a refusal that came from a passing view (a deposit or a
block the receiver had not seen yet) heals, and no refusal leaves the two views of a channel apart.

Applications decide through hooks: a `decider` sees each non-send event as it is produced and
may return more state changes, which go into the same commit group (a hub forwards a lock in the
same transaction that received it); a `listener` sees the events of each group once it is
durable; `on_routing` gets the messages that change no channel (invoices, terms, error replies).

This module must never decide anything about a channel (the core does), never send a message
or a transaction before the state change that caused it is durable, and never acknowledge a
message before its effects are durable.
"""

from __future__ import annotations

import enum
import logging
import math
import typing
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

import trio
from msgspec.structs import replace

from channels import wire
from channels.app_sends import ApplicationSends
from channels.chain.client import Web3ChainClient
from channels.chain.connection import Receipt
from channels.chain.errors import ChainError
from channels.chain.events import ChainFollower
from channels.chain.executor import prepare
from channels.chain.outage import ChainOutage
from channels.chain.txmanager import DEFAULT_STALL_BLOCKS, TransactionManager, urgency
from channels.core import events as ev
from channels.core import state_changes as sc
from channels.core.channel import TransitionContext, channel_transition
from channels.core.node import channel_id_of, context_of, node_transition
from channels.core.state import ChannelState, NodeState
from channels.core.types import Address, BlockNumber, ChannelId
from channels.records import OutboxBatch, OutboxMessage, OutboxTransaction, replay
from channels.signer import LocalSigner
from channels.store import CommitGroup, SqliteStore
from channels.transport import Connection, DispatchTable, MalformedMessageError

log = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_GROUP_TARGET = 64  # state changes a commit group waits for ...
DEFAULT_GROUP_WAIT = 0.0005  # ... or this many seconds after its first one
RECEIVE_SLICE = 16  # messages of one frame handled between two checkpoints
MESSAGE_ID_SHIFT = 20  # message id = state change id << 20 | index of the event
OUTBOX_PREFIX = "msg:"
TRANSACTION_PREFIX = "tx:"
# The commit thread needs the GIL for a moment between sqlite calls; with the default 5 ms
# switch interval a busy trio thread delays each commit by up to that much, on every hop of a
# payment. Processes that run services set this (`sys.setswitchinterval`) at start.
SWITCH_INTERVAL = 0.0001  # 0.1 ms
CONFIRMATION_FLUSH = 1.0  # seconds without state changes after which acknowledgements commit
# a peer refused one of our balance proofs (kept, not acknowledged): it goes again after this
# many seconds, doubling up to the maximum while the peer keeps refusing, back to the first
# delay once the peer acknowledges something
REFUSED_RESEND_FIRST = 1.0
REFUSED_RESEND_MAX = 60.0

# Event kinds by what the shell does with them (a set lookup, not isinstance over a union)
_SEND_KINDS = frozenset(typing.get_args(ev.SendEvent))
_CONTRACT_SEND_KINDS = frozenset(typing.get_args(ev.ContractSendEvent))
_INVALID_KINDS = frozenset(typing.get_args(ev.EventInvalid))
_PEER_KINDS = frozenset(wire.PEER_MESSAGE_KINDS)

# State changes the node level handles (they create channels or concern all of them).
_NODE_LEVEL = (sc.Block, sc.ContractReceiveChannelOpened, sc.ContractReceiveSecretRegistered)

Decider = Callable[[ev.Event], Iterable[sc.StateChange]]
Listener = Callable[[Sequence[ev.Event]], None]
RoutingHandler = Callable[[Connection, wire.RoutingMessage], None]


def outbox_key(message_id: int) -> str:
    """Fixed-width hex, so the outbox's key order is the send order."""
    return f"{OUTBOX_PREFIX}{message_id:016x}"


@dataclass(slots=True)
class _GroupWork:
    """What the open commit group will do once it is durable."""

    messages: list[OutboxMessage] = field(default_factory=list)
    replies: dict[Connection, list[wire.FrameItem]] = field(default_factory=dict)
    transactions: list[ev.ContractSendEvent] = field(default_factory=list)
    transaction_keys: list[str] = field(default_factory=list)  # their outbox rows
    notices: list[ev.Event] = field(default_factory=list)
    size: int = 0  # state changes: what makes a group worth committing at once
    confirmations: int = 0  # outbox rows to delete (acknowledged messages)
    signed: int = 0  # signed transactions recorded: commit at once (their sending waits for it)
    # what waits for this group to be durable and commits it at once: messages that change no
    # channel but depend on records of the group (an invoice after its record), and waiters
    after: list[Callable[[], None]] = field(default_factory=list)
    # writes to the process's other durable files (settlement, ledger), run in the commit
    # thread just before this group's own transaction (`write_durably`)
    side_writes: list[_SideWrite] = field(default_factory=list)


@dataclass(slots=True)
class _SideWrite:
    """One write to another durable file of the process, and what came of it."""

    write: Callable[[], Any]
    then: Callable[[Any, BaseException | None], None]
    result: Any = None
    error: BaseException | None = None

    def run(self) -> None:
        """In the commit thread: run the write, keeping its result or its error."""
        try:
            self.result = self.write()
        except Exception as exc:  # the caller gets it; the node's group is not the write's
            self.error = exc


class _Refusal(enum.Enum):
    """What a refused peer message is to its channel, which decides whether it is acknowledged.

    COPY: a balance proof we already have (an honest peer resends after a reconnect).
    NO_STATE: a message that carries no balance proof, or names no channel of ours.
    NEW_STATE: the partner's next balance proof; not acknowledged, so its sender sends it again.
    AFTER_GAP: a later proof behind one we have not taken; not acknowledged either. Like a new
    state it counts against the peer (a flood of them is abuse); an honest sender dropped for it
    reconnects and sends its kept messages again in order, which is how the channel heals.
    """

    COPY = "copy"
    NO_STATE = "no state"
    NEW_STATE = "new state"
    AFTER_GAP = "after a gap"


class AbusivePeerError(MalformedMessageError):
    """A peer kept sending messages we reject: the transport drops its connection."""


@dataclass(slots=True)
class ServiceStatistics:
    """Counters since start."""

    state_changes: int = 0
    commits: int = 0
    messages_sent: int = 0
    messages_resent: int = 0
    messages_received: int = 0
    invalid_received: int = 0
    transactions_sent: int = 0  # accepted by the chain
    transactions_failed: int = 0


class NodeService:
    """One node's shell (see the module docstring). Use from one trio thread only."""

    def __init__(
        self,
        signer: LocalSigner,
        store: SqliteStore,
        node: NodeState,
        *,
        group_target: int = DEFAULT_GROUP_TARGET,
        group_wait: float = DEFAULT_GROUP_WAIT,
        chain_lock: trio.Lock | None = None,
    ) -> None:
        if node.our_address != signer.address:
            raise ValueError("the node state and the signer belong to different accounts")
        if group_target < 1 or not group_wait > 0:
            raise ValueError("group_target must be positive and group_wait above zero")
        self.signer = signer
        self.store = store
        self._node = node
        self._channels: dict[ChannelId, ChannelState] = dict(node.channels)
        self._ctx: TransitionContext = context_of(node)
        self._by_partner: dict[Address, list[ChannelId]] = {}
        self._index_partners()
        self.group_target = group_target
        self.group_wait = group_wait
        self.deciders: list[Decider] = []
        self.listeners: list[Listener] = []
        self.on_routing: RoutingHandler | None = None
        # who may talk to us at all (the hub: partners with an open channel); None: everyone
        self.admit: Callable[[Address], bool] | None = None
        # a connection sending more invalid messages than this in a row is dropped (abuse: each
        # one is logged); copies of proofs we already have do not count; None: no limit
        self.max_invalid_in_a_row: int | None = None
        self._invalid_in_a_row: dict[Connection, int] = {}
        self.connections: dict[Address, Connection] = {}
        # committed, not yet acknowledged messages per recipient, in send order
        self.unacked: dict[Address, dict[int, OutboxMessage]] = {}
        # each group's messages are one outbox row: which row a message is in, and how many
        # messages of each row are still unacknowledged
        self._row_of: dict[int, str] = {}
        self._row_left: dict[str, int] = {}
        # transactions the core asked for, each an outbox row until it is mined with
        # confirmations: the event until it is signed, then the signed transaction (nonce, hash,
        # raw bytes). After a crash an unsigned one is sent now (one already mined fails
        # harmlessly at its estimate) and a signed one goes out again with the same nonce.
        self._tx_send, self._tx_receive = trio.open_memory_channel[
            tuple[str, ev.ContractSendEvent]
        ](math.inf)
        self._signed_transactions: list[tuple[str, OutboxTransaction]] = []
        self._tx_events: dict[str, ev.ContractSendEvent] = {}  # live transactions by row
        self.transactions: TransactionManager | None = None  # while `run_transactions` runs
        # what applications (settlement batches, ledger anchors) send through the same manager
        self.sends = ApplicationSends()
        for item in store.unconfirmed():
            batch = item.item
            if isinstance(batch, OutboxBatch):
                self._track_row(item.key, batch.messages)
            elif item.key.startswith(TRANSACTION_PREFIX) and type(batch) in _CONTRACT_SEND_KINDS:
                self._tx_send.send_nowait((item.key, batch))
            elif item.key.startswith(TRANSACTION_PREFIX) and isinstance(batch, OutboxTransaction):
                self._signed_transactions.append((item.key, batch))
                self.sends.restored(item.key)
        self.stats = ServiceStatistics()
        self._group: CommitGroup = store.begin_group()
        self._work = _GroupWork()
        self._wakeup = trio.lowlevel.ParkingLot()
        self._committed = trio.lowlevel.ParkingLot()
        self._commit_waiting = False
        self._group_started = False  # the commit task knows the open group has begun
        self._commits_running = False
        self._last_commit_at = -math.inf  # trio time the last commit began
        self._groups_sealed = 0  # groups handed to the commit thread ...
        self._groups_durable = 0  # ... and those of them committed
        self._records_in_group = 0  # the group the newest signed transaction record is in
        # one chain call at a time (py-evm is not thread-safe): services sharing a chain
        # connection in one process share the lock
        self._chain_lock = chain_lock or trio.Lock()
        self.chain_failures: list[tuple[ev.ContractSendEvent, ChainError]] = []
        # a node that follows a chain processes no peer frame before it has fed the chain's head
        # of this run to the core: a restarted node would judge the locks its partner resends
        # against the block it stopped at (and reveal secrets of locks expired meanwhile)
        self._head_known = trio.Event()
        self._awaits_head = False
        # refused balance proofs of ours, kept: per peer, when to send them again and from
        # which message id on; and the delay the next refusal waits (`_resend_refused_later`)
        self._refused_due: dict[Address, tuple[float, int]] = {}
        self._refused_backoff: dict[Address, float] = {}
        self._refused_wakeup = trio.lowlevel.ParkingLot()

    # -- state ----------------------------------------------------------------------------------

    @property
    def address(self) -> Address:
        return self._node.our_address

    @property
    def node(self) -> NodeState:
        """The node as of now. Its `channels` is a live view: read it, never keep it."""
        return replace(self._node, channels=self._channels)

    @property
    def channels(self) -> dict[ChannelId, ChannelState]:
        """Our channels by id, as of now (a live mapping: never modify it)."""
        return self._channels

    @property
    def block_number(self) -> BlockNumber:
        return self._node.block_number

    @property
    def reveal_timeout(self) -> int:
        return self._node.reveal_timeout

    def channel_with(self, partner: Address) -> ChannelState | None:
        """Our newest open channel with `partner` (None when there is none)."""
        for channel_id in reversed(self._by_partner.get(partner, ())):
            channel = self._channels[channel_id]
            if channel.is_open:
                return channel
        return None

    def _index_partners(self) -> None:
        """Channel ids by partner, oldest first (channels appear only at the node level)."""
        by_partner: dict[Address, list[ChannelId]] = {}
        for channel_id in sorted(self._channels):
            by_partner.setdefault(self._channels[channel_id].partner.address, []).append(channel_id)
        self._by_partner = by_partner

    # -- handling -------------------------------------------------------------------------------

    def _transition(self, change: sc.StateChange) -> list[ev.Event]:
        if not isinstance(change, _NODE_LEVEL):
            channel_id = channel_id_of(change)
            channel = self._channels.get(channel_id) if channel_id is not None else None
            if channel is not None and channel_id is not None:
                result = channel_transition(channel, change, self._ctx)
                if result.new_state is not channel:
                    self._channels[channel_id] = result.new_state
                return result.events
        node_result = node_transition(self.node, change)
        self._node = node_result.new_state
        self._channels = dict(self._node.channels)
        self._ctx = context_of(self._node)
        if len(self._channels) != sum(map(len, self._by_partner.values())):
            self._index_partners()
        return node_result.events

    def handle(self, change: sc.StateChange) -> list[ev.Event]:
        """Apply `change` (and whatever the deciders add) and log it into the open group.

        Returns every event. Nothing it causes leaves the process before the group commits.
        """
        pending = [change]
        produced: list[ev.Event] = []
        work = self._work
        group = self._group
        while pending:
            current = pending.pop(0)
            events = self._transition(current)
            state_change_id = group.add(current, events)
            work.size += 1
            base = state_change_id << MESSAGE_ID_SHIFT
            for index, event in enumerate(events):
                kind = type(event)
                if kind in _SEND_KINDS:
                    self._queue_message(event, base | index)  # type: ignore[arg-type]
                elif kind in _CONTRACT_SEND_KINDS:
                    work.transactions.append(event)  # type: ignore[arg-type]
                else:
                    work.notices.append(event)
                    for decide in self.deciders:
                        pending.extend(decide(event))
            produced.extend(events)
        self.stats.state_changes += 1
        self._poke()
        return produced

    def _queue_message(self, event: ev.SendEvent, message_id: int) -> None:
        digest: bytes | None = getattr(event, "digest", None)
        signature = self.signer.sign_digest(digest) if digest is not None else b""
        message = wire.from_event(event, message_id, signature)
        self._work.messages.append(OutboxMessage(event.recipient, message_id, wire.encode(message)))

    def _track_row(self, key: str, messages: list[OutboxMessage]) -> None:
        """Remember `messages` (one outbox row `key`) as unacknowledged."""
        for message in messages:
            self.unacked.setdefault(Address(message.recipient), {})[message.message_id] = message
            self._row_of[message.message_id] = key
        self._row_left[key] = len(messages)

    def put_fact(self, key: str, record: object) -> None:
        """Store an application record with the open group (durable when its events are)."""
        self._group.put_fact(key, record)
        if self._commit_waiting and not self._group_started:  # a fact alone is worth a commit
            self._group_started = True
            self._wakeup.unpark_all()

    def send_routing_durable(self, recipient: Address, message: wire.RoutingMessage) -> None:
        """Send a message that changes no channel once everything handled or recorded so far is
        durable (an invoice only after its record: a payee killed in between would refuse the
        lock that pays it). Not logged, not resent; dropped if `recipient` is offline by then."""

        def send() -> None:
            self.send_routing(recipient, message)

        self.call_when_durable(send)

    def call_when_durable(self, action: Callable[[], None]) -> None:
        """Run `action` once everything handled or recorded so far is durable (after the open
        group commits, in order with its messages; at once when nothing is waiting to commit)."""
        if not self._pending() and self._groups_durable == self._groups_sealed:
            action()  # every group before is durable already: no commit needed
            return
        self._work.after.append(action)
        if self._commit_waiting and not self._group_started:  # worth a commit of its own
            self._group_started = True
            self._wakeup.unpark_all()

    def write_durably_soon(
        self,
        write: Callable[[], T],
        then: Callable[[T | None, BaseException | None], None],
    ) -> None:
        """Run `write` (a transaction on another durable file of this process: the settlement
        file, the asset ledger) in the commit thread, with the next group, just before the
        group's own transaction; then call `then(result, error)` on this thread. Writes run in
        the order they were asked, one at a time, never on this thread (each may fsync)."""
        self._work.side_writes.append(_SideWrite(write, then))
        if self._commit_waiting and not self._group_started:  # worth a commit of its own
            self._group_started = True
            self._wakeup.unpark_all()

    async def write_durably(self, write: Callable[[], T]) -> T:
        """`write_durably_soon`, awaited: returns `write`'s result once it is durable, or raises
        its error. Everything this node handled before the call is durable too by then."""
        done = trio.Event()
        outcome: list[Any] = []

        def then(result: T | None, error: BaseException | None) -> None:
            outcome.append((result, error))
            done.set()

        self.write_durably_soon(write, then)
        if not self._commits_running:  # no commit loop: commit here
            await self.commit_now()
        await done.wait()
        result, error = outcome[0]
        if error is not None:
            raise error
        return result  # type: ignore[no-any-return]  # `then` got write's own result

    async def wait_durable(self) -> None:
        """Return once everything handled or recorded so far is durable (`wait_committed` may
        return after a commit that began before the last record was made)."""
        done = trio.Event()
        self.call_when_durable(done.set)
        if not done.is_set() and not self._commits_running:  # no commit loop: commit here
            await self.commit_now()
        await done.wait()

    def _pending(self) -> bool:
        """Whether the open group holds anything to commit."""
        work = self._work
        return bool(
            work.size
            or work.confirmations
            or work.signed
            or work.messages
            or work.after
            or work.side_writes
            or self._group.facts
        )

    # -- receiving ------------------------------------------------------------------------------

    def dispatch_table(self) -> DispatchTable:
        """A transport dispatch table sending every message kind to this service."""
        table = DispatchTable()
        for kind in (wire.Batch, wire.Processed, *wire.PEER_MESSAGE_KINDS, *wire.ROUTING_KINDS):
            table.register(kind, self._on_frame)
        return table

    def await_chain_head(self) -> None:
        """From now on, hold every peer frame until the chain follower has fed the current head
        (`follow_chain`'s first catch-up); `run_on_chain` calls it before anything else."""
        if not self._head_known.is_set():
            self._awaits_head = True

    async def _on_frame(self, connection: Connection, message: Any) -> None:
        if self._awaits_head and not self._head_known.is_set():
            await self._head_known.wait()
        admit = self.admit
        if admit is not None and not admit(Address(connection.peer)):
            log.info("ignoring %s from 0x%s", type(message).__name__, connection.peer.hex())
            return
        items = wire.unpack(message)
        for index, item in enumerate(items, 1):
            self.receive(connection, item)
            if index % RECEIVE_SLICE == 0:
                # a Batch may hold a whole group of the peer's: let the commit task seal and send
                # between slices, so the next process starts on it (stages overlap, not take turns)
                await trio.lowlevel.checkpoint()
        await trio.lowlevel.checkpoint()  # let a finished commit acknowledge between frames

    def receive(self, connection: Connection, item: wire.FrameItem) -> None:
        """One message from `connection`'s peer."""
        sender = Address(connection.peer)
        kind = type(item)
        if kind in _PEER_KINDS:
            message: wire.PeerMessage = item  # type: ignore[assignment]
            self.stats.messages_received += 1
            events = self.handle(wire.to_state_change(message, sender))
            replies = self._work.replies.get(connection)
            if replies is None:
                replies = self._work.replies[connection] = []
            for event in events:
                if type(event) in _INVALID_KINDS:
                    self.stats.invalid_received += 1
                    reason: str = event.reason  # type: ignore[union-attr]
                    standing = self._refusal_standing(message)
                    if standing is _Refusal.COPY or standing is _Refusal.NO_STATE:
                        # a copy, or a message that carries no state: acknowledging it loses
                        # nothing. A new state is NOT acknowledged: its sender keeps it and
                        # sends it again, so a refusal from a passing view (a deposit or a
                        # block we had not seen yet) heals instead of splitting the channel
                        replies.append(wire.Processed(message_ids=[message.message_id]))
                    replies.append(wire.ErrorReply(message_id=message.message_id, reason=reason))
                    if standing is not _Refusal.COPY:
                        self._count_invalid(connection)
                    break
            else:
                replies.append(wire.Processed(message_ids=[message.message_id]))
                self._invalid_in_a_row.pop(connection, None)
        elif kind is wire.Processed:
            assert isinstance(item, wire.Processed)
            pending = self.unacked.get(sender)
            if pending is None:
                return
            if sender in self._refused_backoff:
                del self._refused_backoff[sender]  # it takes our messages again
            # confirmations ride with the next group of state changes (or a slow flush): a
            # lost one only means a harmless resend after a restart
            for message_id in item.message_ids:
                if pending.pop(message_id, None) is not None:
                    key = self._row_of.pop(message_id)
                    left = self._row_left[key] - 1
                    if left:
                        self._row_left[key] = left
                    else:  # the whole row is acknowledged
                        del self._row_left[key]
                        self._group.confirm(key)
                        self._work.confirmations += 1
        elif isinstance(item, wire.ROUTING_KINDS):
            if kind is wire.ErrorReply:
                self._on_refusal(sender, item)  # type: ignore[arg-type]  # narrowed by kind
            if self.on_routing is not None:
                self.on_routing(connection, item)  # type: ignore[arg-type]  # by the tuple
            elif kind is wire.ErrorReply:
                log.warning(
                    "0x%s refused message %d: %s",
                    sender.hex(),
                    item.message_id,  # type: ignore[union-attr]
                    item.reason,  # type: ignore[union-attr]
                )

    def _refusal_standing(self, message: wire.PeerMessage) -> _Refusal:
        """What a refused `message` is to the channel (see `_Refusal`)."""
        nonce: int | None = getattr(message, "nonce", None)
        if nonce is None:
            return _Refusal.NO_STATE
        channel = self._channels.get(ChannelId(getattr(message, "channel_id", 0)))
        if channel is None:
            return _Refusal.NO_STATE  # no channel to split: nothing waits for it
        current = channel.partner.balance_proof.nonce
        if nonce <= current:
            return _Refusal.COPY
        if nonce > current + 1:
            return _Refusal.AFTER_GAP
        return _Refusal.NEW_STATE

    def _on_refusal(self, peer: Address, reply: wire.ErrorReply) -> None:
        """`peer` refused one of our messages: one it has not acknowledged goes again later."""
        pending = self.unacked.get(peer)
        if pending is not None and reply.message_id in pending:
            delay = self._resend_refused_later(peer, reply.message_id)
            log.info(
                "message %d to 0x%s is kept and goes again in %.0f s",
                reply.message_id,
                peer.hex(),
                delay,
            )

    def _resend_refused_later(self, peer: Address, message_id: int) -> float:
        """Schedule our unacknowledged messages to `peer`, from `message_id` on, to go again;
        returns the delay. One schedule per peer: a later refusal only moves its start back."""
        due = self._refused_due.get(peer)
        if due is not None:
            self._refused_due[peer] = (due[0], min(due[1], message_id))
            return max(0.0, due[0] - trio.current_time())
        delay = self._refused_backoff.get(peer, REFUSED_RESEND_FIRST)
        self._refused_backoff[peer] = min(2 * delay, REFUSED_RESEND_MAX)
        self._refused_due[peer] = (trio.current_time() + delay, message_id)
        self._refused_wakeup.unpark_all()
        return delay

    async def _run_refused_resends(self) -> None:
        """Forever: send again what peers refused, when its delay is over (see `receive`)."""
        while True:
            if not self._refused_due:
                await self._refused_wakeup.park()
                continue
            first = min(due for due, _ in self._refused_due.values())
            with trio.move_on_at(first):
                await self._refused_wakeup.park()
            now = trio.current_time()
            for peer, (due, from_id) in list(self._refused_due.items()):
                if due > now:
                    continue
                del self._refused_due[peer]
                pending = self.unacked.get(peer)
                connection = self.connections.get(peer)
                if not pending or connection is None or connection.closed:
                    continue  # acknowledged meanwhile, or resent by the next connection anyway
                payloads = [m.payload for i, m in pending.items() if i >= from_id]
                if payloads:
                    _send_payloads(connection, payloads)
                    self.stats.messages_resent += len(payloads)

    def _count_invalid(self, connection: Connection) -> None:
        limit = self.max_invalid_in_a_row
        if limit is None:
            return
        count = self._invalid_in_a_row.get(connection, 0) + 1
        self._invalid_in_a_row[connection] = count
        if count > limit:
            del self._invalid_in_a_row[connection]
            raise AbusivePeerError(
                f"0x{connection.peer.hex()} sent {count} invalid messages in a row: disconnected"
            )

    # -- committing -----------------------------------------------------------------------------

    def _poke(self) -> None:
        """Wake the commit task when a group starts (its wait begins) or has filled up."""
        if self._commit_waiting:
            size = self._work.size
            if size >= self.group_target or not self._group_started:
                self._group_started = size > 0
                self._wakeup.unpark_all()

    async def _park(self) -> None:
        self._commit_waiting = True
        try:
            await self._wakeup.park()
        finally:
            self._commit_waiting = False

    async def _wait_for_group(self) -> None:
        self._group_started = False
        with trio.move_on_after(CONFIRMATION_FLUSH) as idle:
            while not (
                self._work.size
                or self._group.facts
                or self._work.signed
                or self._work.after
                or self._work.side_writes
            ):
                await self._park()
        if idle.cancelled_caught:  # quiet for a while: commit what was acknowledged, if anything
            return
        self._group_started = True
        # At most one commit per `group_wait`: a state change arriving after a quiet spell
        # commits at once (its latency is one fsync); under load the group fills for up to
        # `group_wait` since the previous commit began (fewer, larger commits and sends).
        await trio.lowlevel.checkpoint()  # let the burst that started the group finish
        with trio.move_on_at(self._last_commit_at + self.group_wait):
            while self._work.size < self.group_target:
                await self._park()

    async def run_commits(
        self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Forever: seal the open group, make it durable, then act on it (one such task only)."""
        if self._commits_running:
            raise RuntimeError("this service's commit loop is already running")
        self._commits_running = True
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._run_refused_resends)
                task_status.started()
                while True:
                    await self._wait_for_group()
                    await self.commit_now()
        finally:
            self._commits_running = False

    async def commit_now(self) -> None:
        """Seal and commit the open group now, then act on it (also used at shutdown)."""
        group, work = self._group, self._work
        if not (
            work.size
            or work.confirmations
            or work.signed
            or group.facts
            or work.messages
            or work.side_writes
        ):
            if work.after and self._groups_durable < self._groups_sealed:
                pass  # a group before is still being written: run them after this one
            else:
                self._work.after = []
                for action in work.after:
                    action()
                self._committed.unpark_all()  # nothing to write: all of it is durable already
                return
        if work.messages:
            group.add_unconfirmed(
                outbox_key(work.messages[0].message_id), OutboxBatch(work.messages)
            )
        for index, transaction in enumerate(work.transactions):
            key = f"{TRANSACTION_PREFIX}{group.first_id:016x}:{index:04x}"
            group.add_unconfirmed(key, transaction)
            work.transaction_keys.append(key)
        if self.store.snapshot_due:
            group.write_snapshot(self.node)
        self._group = self.store.begin_group()  # seals `group`
        self._work = _GroupWork()
        self._last_commit_at = trio.current_time()
        self._groups_sealed += 1
        sealed = self._groups_sealed
        if work.side_writes:
            await trio.to_thread.run_sync(_commit_with_side_writes, self.store, group, work)
            for side in work.side_writes:
                side.then(side.result, side.error)
        else:
            await trio.to_thread.run_sync(self.store.commit, group)
        self._groups_durable = max(self._groups_durable, sealed)
        self.stats.commits += 1
        self._act(work)
        self._committed.unpark_all()

    def _act(self, work: _GroupWork) -> None:
        outgoing: dict[Address, list[bytes]] = {}
        connections = self.connections
        if work.messages:
            self._track_row(outbox_key(work.messages[0].message_id), work.messages)
        for message in work.messages:
            recipient = Address(message.recipient)
            if recipient in connections:
                outgoing.setdefault(recipient, []).append(message.payload)
        for recipient, payloads in outgoing.items():
            connection = connections[recipient]
            if not connection.closed:
                _send_payloads(connection, payloads)
                self.stats.messages_sent += len(payloads)
        for connection, replies in work.replies.items():
            if not connection.closed:
                self._send(connection, _merge_acks(replies))
        for key, transaction in zip(work.transaction_keys, work.transactions, strict=True):
            self._tx_send.send_nowait((key, transaction))
        if work.notices:
            for listener in self.listeners:
                listener(work.notices)
        for action in work.after:
            action()

    def _send(self, connection: Connection, items: list[wire.FrameItem]) -> None:
        if connection.closed:
            return
        for start in range(0, len(items), wire.MAX_BATCH):
            chunk = items[start : start + wire.MAX_BATCH]
            connection.send_nowait(chunk[0] if len(chunk) == 1 else wire.Batch(messages=chunk))

    async def wait_committed(self) -> None:
        """Return after the next commit (whatever is in the open group then is durable)."""
        await self._committed.park()

    # -- connections ----------------------------------------------------------------------------

    async def attach(self, connection: Connection) -> None:
        """Use `connection` for its peer until it closes; first resend what the peer lacks."""
        peer = Address(connection.peer)
        self.connections[peer] = connection
        try:
            pending = self.unacked.get(peer)
            if pending:
                _send_payloads(connection, [m.payload for m in pending.values()])
                self.stats.messages_resent += len(pending)
            await connection.wait_closed()
        finally:
            self._invalid_in_a_row.pop(connection, None)
            if self.connections.get(peer) is connection:
                del self.connections[peer]

    def send_routing(self, recipient: Address, message: wire.RoutingMessage) -> bool:
        """Send a message that changes no channel (not logged, not resent); False if offline."""
        connection = self.connections.get(recipient)
        if connection is None or connection.closed:
            return False
        connection.send_nowait(message)
        return True

    # -- chain ----------------------------------------------------------------------------------

    async def follow_chain(self, follower: ChainFollower, interval: float) -> None:
        """Forever: feed new confirmed chain logs and the new head into the core. After the first
        catch-up (the head's `Block` handled) peer frames held by `await_chain_head` go through.

        A node that does not answer (down, restarting, refusing) delays this, never ends it: the
        poll is tried again with backoff, and a node blind for long says so at error level."""
        outage = ChainOutage(interval)
        while True:
            try:
                async with self._chain_lock:
                    batches = await trio.to_thread.run_sync(follower.poll_until_head)
            except Exception as exc:  # the node failed: nothing was read, the cursor is unmoved
                level, retry = outage.failed(trio.current_time())
                if level == "error":
                    log.error(
                        "the chain has not answered for %.0f s (%s: %s): closes, secrets and "
                        "deadlines after block %d go unseen until it does; retrying every %.1f s",
                        trio.current_time() - (outage.since or 0.0),
                        type(exc).__name__,
                        exc,
                        follower.cursor,
                        retry,
                    )
                elif level == "warning":
                    log.warning(
                        "chain poll failed (%s: %s); retrying in %.1f s",
                        type(exc).__name__,
                        exc,
                        retry,
                    )
                await trio.sleep(retry)
                continue
            ended = outage.recovered(trio.current_time())
            if ended is not None:
                log.warning(
                    "the chain answers again after %.1f s; following from block %d",
                    ended,
                    follower.cursor,
                )
            for batch in batches:
                for change in batch.state_changes:
                    self.handle(change)
            self._head_known.set()
            await trio.sleep(interval)

    async def chain_call(self, function: Callable[..., T], *args: Any) -> T:
        """Run a blocking chain call in a thread, serialised with the follower and the core's
        transactions (one chain request at a time per service)."""
        async with self._chain_lock:
            return await trio.to_thread.run_sync(function, *args)

    async def run_transactions(
        self,
        client: Web3ChainClient,
        *,
        confirmations: int = 0,
        stall_blocks: int = DEFAULT_STALL_BLOCKS,
        poll_interval: float = 0.5,
    ) -> None:
        """Forever: hand the transactions the core asked for, once durable, to a
        `TransactionManager` (many in flight, by deadline, replaced when stalled, sent again
        after a reorganisation, confirmed `confirmations` blocks deep). Each chain request holds
        the chain lock for itself only: the follower never waits behind a transaction.

        A rejected transaction changes nothing on chain; the core learns the truth from the
        logs (e.g. the partner settled first), so it is recorded, not retried.
        """
        manager = TransactionManager(
            client.connection,
            client.account,
            self,
            client.manager_abi,
            lock=self._chain_lock,
            confirmations=confirmations,
            stall_blocks=stall_blocks,
            poll_interval=poll_interval,
            outcome=self._transaction_outcome,
        )
        self.transactions = manager
        for key, record in self._signed_transactions:
            manager.restore(key, record)
        self._signed_transactions = []
        self.sends.attach(manager)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(manager.run)
                async for key, transaction in self._tx_receive:
                    self._submit(manager, client, key, transaction)
        finally:
            self.transactions = None
            self.sends.detach()

    def _submit(
        self,
        manager: TransactionManager,
        client: Web3ChainClient,
        key: str,
        transaction: ev.ContractSendEvent,
    ) -> None:
        kind = type(transaction).__name__
        try:
            call = prepare(client, self.signer, transaction)
        except (ValueError, TypeError) as exc:  # a digest not of this deployment: never sent
            self.stats.transactions_failed += 1
            log.error("transaction %s not sent: %s", kind, exc)
            self.done(key)
            return
        self._tx_events[key] = transaction
        priority, deadline = urgency(transaction, self._channels)
        manager.submit(key, kind, call, priority, deadline)

    def _transaction_outcome(self, key: str, kind: str, result: Receipt | ChainError) -> None:
        """A transaction was mined (or refused): count it; a refusal is recorded, not retried
        (a refused unlock is reported to the core, which keeps the lock pending and tries again
        after its backoff). An application's transaction goes back to it."""
        transaction = self._tx_events.pop(key, None)
        if isinstance(result, ChainError):
            self.stats.transactions_failed += 1
            if transaction is not None:
                self.chain_failures.append((transaction, result))
            log.warning("transaction %s failed: %s", kind, result)
            if isinstance(transaction, ev.ContractSendUnlock):
                self.handle(
                    sc.ContractReceiveUnlockFailed(
                        transaction.channel_id, transaction.sender, transaction.slot, str(result)
                    )
                )
        else:
            self.stats.transactions_sent += 1
        self.sends.outcome(key, result)

    # -- the transaction manager's durability (`channels.chain.txmanager.Durable`) ---------

    def record(self, key: str, record: OutboxTransaction) -> None:
        """Replace outbox row `key` (the event) with its signed transaction, in the open group
        (an application's transaction: in the application's store)."""
        if self.sends.record(key, record):
            return
        self._group.add_unconfirmed(key, record)
        self._work.signed += 1
        self._records_in_group = self._groups_sealed + 1  # the open group, once sealed
        if self._commit_waiting and not self._group_started:
            self._group_started = True
            self._wakeup.unpark_all()

    async def flush(self) -> None:
        """Return once everything recorded so far is durable (the open group committed)."""
        await self.sends.flush()
        target = self._records_in_group  # the group holding the newest record (maybe sealed)
        if self._groups_durable >= target:
            return
        if target > self._groups_sealed and not self._commits_running:  # a one-off run
            await self.commit_now()
        self._poke_signed()
        while self._groups_durable < target:
            await self._committed.park()

    def _poke_signed(self) -> None:
        if self._commit_waiting:
            self._group_started = True
            self._wakeup.unpark_all()

    def done(self, key: str) -> None:
        """Transaction row `key` mined with confirmations (or refused for good): let it go."""
        if self.sends.done(key):
            return
        # its event stays until the outcome (a refusal is let go before it is reported)
        self._group.confirm(key)
        self._work.confirmations += 1


def _commit_with_side_writes(store: SqliteStore, group: CommitGroup, work: _GroupWork) -> None:
    """In the commit thread: the group's writes to other files first (intent before effect: a
    record of the settlement file or the ledger is durable before the node's state changes that
    act on it), then the group itself."""
    for side in work.side_writes:
        side.run()
    store.commit(group)


def _send_payloads(connection: Connection, payloads: list[bytes]) -> None:
    """Messages as encoded (and signed, and logged), in Batch frames: no re-encoding."""
    frames = []
    for start in range(0, len(payloads), wire.MAX_BATCH):
        chunk = payloads[start : start + wire.MAX_BATCH]
        frames.append(chunk[0] if len(chunk) == 1 else wire.encode_batch(chunk))
    connection.send_encoded(frames)


def _merge_acks(replies: list[wire.FrameItem]) -> list[wire.FrameItem]:
    """One Processed for all the acknowledged ids (in order), then the error replies."""
    ids: list[int] = []
    rest: list[wire.FrameItem] = []
    for reply in replies:
        if isinstance(reply, wire.Processed):
            ids.extend(reply.message_ids)
        else:
            rest.append(reply)
    acks: list[wire.FrameItem] = [
        wire.Processed(message_ids=ids[start : start + wire.MAX_BATCH])
        for start in range(0, len(ids), wire.MAX_BATCH)
    ]
    return acks + rest


def restore_chain_node(
    signer: LocalSigner, client: Web3ChainClient, store: SqliteStore
) -> NodeState:
    """The node whose log is `store`, for `signer` on `client`'s network (a new log records
    whose it is in a first snapshot); ValueError when the log belongs to another account or
    network."""
    if client.address != signer.address:
        raise ValueError("the chain client and the signer act for different accounts")
    initial = initial_chain_node(client)
    if store.latest_snapshot() is None and store.last_state_change_id == 0:
        store.write_snapshot(initial)
    return _restore_checked(store, initial)


def initial_chain_node(client: Web3ChainClient) -> NodeState:
    """The node of `client`'s account before anything happened on its network."""
    return NodeState(
        our_address=Address(client.address),
        domain=client.domain(),
        block_number=BlockNumber(client.deployment.block_number - 1),
    )


def read_chain_node(client: Web3ChainClient, store: SqliteStore) -> NodeState:
    """The node of `client`'s account as its log `store` holds it, writing nothing (the store
    may be open read-only while its owner runs); ValueError when the log is another's."""
    return _restore_checked(store, initial_chain_node(client))


def _restore_checked(store: SqliteStore, initial: NodeState) -> NodeState:
    restored = store.restore(initial, replay).state
    if restored.domain != initial.domain or restored.our_address != initial.our_address:
        raise ValueError(f"{store.path} belongs to another account or network")
    return restored


async def run_on_chain(
    service: NodeService,
    client: Web3ChainClient,
    *,
    poll_interval: float = 0.5,
    confirmations: int = 0,
    tx_confirmations: int | None = None,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Follow the chain into `service` and send its transactions; never returns. Peer frames wait
    until the current head is known: start it with `await nursery.start(run_on_chain, ...)` before
    serving or connecting, so that no frame can come in before the hold is in place. A
    transaction's outbox row is let go `tx_confirmations` blocks after it is mined (default:
    `confirmations`)."""
    service.await_chain_head()
    task_status.started()
    follower = ChainFollower(
        client.connection,
        client.deployment,
        cursor=service.block_number,
        confirmations=confirmations,
    )
    async with trio.open_nursery() as nursery:
        nursery.start_soon(service.follow_chain, follower, poll_interval)
        nursery.start_soon(
            partial(
                service.run_transactions,
                client,
                confirmations=confirmations if tx_confirmations is None else tx_confirmations,
                poll_interval=poll_interval,
            )
        )

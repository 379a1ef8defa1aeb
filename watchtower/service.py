"""The watchtower's trio shell: the local API, the chain follower and the update sender.

`Watchtower.serve` runs three tasks around the pure decisions of `watchtower.core` and the sqlite
file of `watchtower.store`:

- the API, on 127.0.0.1 only, over `channels.transport` (length-framed, challenge-authenticated):
  each `MonitorRequests` frame is checked request by request; accepted ones join the open commit
  group, and a task commits each group (one fsync, synchronous=FULL) before any answer of it (the
  tower's signed receipts, and refusals) leaves. While one group commits the next one fills.
- the follower: polls the channel manager's logs up to `head - confirmations`
  (`channels.chain.events.ChainFollower`), applies them to its channel records and commits them
  with the new cursor in one transaction before acting on them; settled channels and everything
  held for them are deleted.
- the sender: at each new head, the duties whose turn came (`core.next_step`) are marked as sent
  (durably), then handed to the tower account's transaction manager
  (`channels.chain.txmanager.TransactionManager`, the only sender of that account; its records
  live in the tower's file, `watchtower.outbox`), each with its channel's settle block as its
  deadline. On its batched path the manager checks a chunk of updates with eth_calls in one
  JSON-RPC request (an update that would revert, because another tower or the guarded party
  already submitted, or the period is over, is not sent: no gas), signs those that passed with
  locally assigned nonces, records them durably and sends them in a second request without
  waiting for any to be mined; it reads their receipts in one request a round. So a block full of
  closes is answered by blocks full of updates, not by one update a block. An update not mined
  within `stall_blocks` is replaced (same nonce, higher fee), one a reorganisation dropped goes
  out again (same bytes), the most urgent go first, and a node that does not answer delays them.

A restarted tower loads its file and continues from its cursor: a close it had seen is acted on as
soon as its turn is (or was) due, within the challenge period; an update it had signed goes out
again with its nonce; an update marked as sent that the manager let go of but that is not seen on
chain is handed over again after `resend_after` blocks (checked again first).

It must never listen beyond 127.0.0.1, never acknowledge a request before it is durable, never
send an update the core did not decide, and never sign anything but its receipts and its own
update transactions (the tower's key is its chain account's: checked at start).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import partial

import trio

from channels.chain.batch_rpc import ChainBatch
from channels.chain.client import Web3ChainClient
from channels.chain.connection import Receipt
from channels.chain.errors import ChainError
from channels.chain.events import ChainFollower
from channels.chain.outage import (
    MAX_BACKOFF_S,
    OUTAGE_ALARM_S,
    OUTAGE_REPEAT_S,
    backoff_delay,
)
from channels.chain.txmanager import DEFAULT_STALL_BLOCKS, PRIORITY_DEADLINE, TransactionManager
from channels.core.types import Address, BlockNumber, ChannelId, to_checksum
from channels.signer import LocalSigner
from channels.tls import TlsConfig
from channels.transport import Connection, DispatchTable, MalformedMessageError, serve_connections
from watchtower import messages as msg
from watchtower.core import (
    CHANNEL_EVENTS,
    RESEND_AFTER,
    RESPONSE_SPACING,
    ChannelEvent,
    Duty,
    GuardedProof,
    Refusal,
    RequestAccepted,
    Step,
    TowerTerms,
    WatchedChannel,
    apply_events,
    check_request,
    duty_of,
    guard_state,
    next_step,
)
from watchtower.outbox import TowerOutbox
from watchtower.sender import KIND, UPDATE_GAS, transaction_key, update_call
from watchtower.store import GuardKey, TowerStore

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
SEND_BATCH = 128  # updates checked in one request and sent in the next (the manager's chunk)
DEFAULT_POLL_INTERVAL = 0.5
DEFAULT_CONFIRMATIONS = 1
RECEIVE_SLICE = 64  # requests checked between two checkpoints
# a connection whose requests keep being refused (bad signatures, wrong channels) is dropped;
# stale nonces and unconfirmed channels do not count: honest clients send those
MAX_REFUSED_IN_A_ROW = 1_000
_HONEST_REFUSALS = frozenset({Refusal.STALE_NONCE.value, Refusal.UNKNOWN_CHANNEL.value})


class AbusiveClientError(MalformedMessageError):
    """A client kept sending requests the tower refuses: the transport drops its connection."""


@dataclass(slots=True)
class TowerStatistics:
    """Counters since start."""

    requests: int = 0
    accepted: int = 0
    refused: dict[str, int] = field(default_factory=dict)
    commits: int = 0
    closes_seen: int = 0
    updates_sent: int = 0  # taken by the node (each update once, however often replaced)
    updates_mined: int = 0
    updates_failed: int = 0  # reverted on chain (another update landed first)
    stood_down: int = 0  # not sent: the pre-check said someone else had already submitted
    missed: int = 0  # the challenge period ended before our update: should never happen
    send_errors: int = 0  # outbox writes that failed (the manager's round is tried again)
    send_seconds: float = 0.0  # spent checking, signing and sending updates (updates_sent / it)
    replacements: int = 0  # updates signed again with their nonce and a higher fee
    resent_after_reorg: int = 0  # mined updates a reorganisation dropped, sent again


class Watchtower:
    """One tower: one chain account, one sqlite file, one loopback port (see the module docstring)."""

    def __init__(
        self,
        signer: LocalSigner,
        client: Web3ChainClient,
        store: TowerStore,
        *,
        confirmations: int = DEFAULT_CONFIRMATIONS,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        min_reward: int = 0,
        spacing: int = RESPONSE_SPACING,
        resend_after: int = RESEND_AFTER,
        update_gas: int = UPDATE_GAS,
        chain_lock: trio.Lock | None = None,
        stall_blocks: int = DEFAULT_STALL_BLOCKS,
    ) -> None:
        if client.address != signer.address:
            raise ValueError("the chain client and the signer act for different accounts")
        if confirmations < 0 or not poll_interval > 0 or spacing < 1 or resend_after < 1:
            raise ValueError(
                "confirmations >= 0, poll_interval > 0, spacing >= 1, resend_after >= 1"
            )
        settle_timeout = client.deployment.settle_timeout
        if confirmations >= settle_timeout // 2:
            log.warning(
                "%d confirmations leave little of the %d-block challenge period to answer in",
                confirmations,
                settle_timeout,
            )
        self.signer = signer
        self.client = client
        self.store = store
        self.confirmations = confirmations
        self.poll_interval = poll_interval
        self.spacing = spacing
        # a sent update is seen on chain `confirmations` blocks after it is mined: wait for that
        self.resend_after = max(resend_after, confirmations + 2)
        self.update_gas = update_gas
        self.terms = TowerTerms(Address(signer.address), client.domain(), min_reward)
        snapshot = store.load()
        self.channels: dict[ChannelId, WatchedChannel] = snapshot.channels
        self.guards: dict[GuardKey, GuardedProof] = snapshot.guards
        self.submitted: dict[GuardKey, BlockNumber] = snapshot.submitted
        self.cursor = snapshot.cursor
        self.head = snapshot.cursor  # the latest block seen; the follower moves it
        self.duties: dict[GuardKey, Duty] = {}
        for channel_id in {key[0] for key in self.guards}:
            self._refresh_duties(channel_id)
        self.stats = TowerStatistics()
        self._chain_lock = chain_lock or trio.Lock()
        self._db_lock = trio.Lock()
        self.outbox = TowerOutbox(store, self._db_lock)
        # the only sender of the tower's account: confirmed as deep as the follower reads
        self.transactions = TransactionManager(
            client.connection,
            client.account,
            self.outbox,
            client.manager_abi,
            lock=self._chain_lock,
            confirmations=confirmations,
            stall_blocks=stall_blocks,
            poll_interval=poll_interval,
            outcome=self._update_outcome,
            on_sent=self._update_sent,
            batch=ChainBatch.for_connection(client.connection),
            chunk=SEND_BATCH,
        )
        for key, record in self.outbox.restorable():  # signed before a restart: same nonce
            self.transactions.restore(key, record, check=True)
        # the open commit group: accepted proofs and the answers that wait for them
        self._pending: dict[GuardKey, GuardedProof] = {}
        self._group: list[GuardedProof] = []
        self._answers: list[tuple[Connection, msg.MonitorAnswers]] = []
        self._work = trio.Event()
        self._submit_wakeup = trio.Event()
        self._refused_in_a_row: dict[Connection, int] = {}
        self._missed: set[GuardKey] = set()
        self._polled = trio.Event()  # set after each completed follower poll
        self._committed = trio.Event()  # set after each commit
        self._chain_follower: ChainFollower | None = None
        self.ready = trio.Event()  # the first poll is applied and the API is listening
        self.outage_since: float | None = None  # when polls began to fail (None: they work)
        self._outage_alarmed: float | None = None  # when the last UNGUARDED error was logged

    @property
    def address(self) -> Address:
        return self.terms.address

    # -- serving ------------------------------------------------------------------------------

    async def serve(
        self,
        *,
        host: str = HOST,
        port: int = 0,
        tls: TlsConfig | None = None,
        task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Catch up with the chain (however long the node takes to answer), then serve the API on
        `host`:`port` (0: any free port; TLS with `tls`, required off the loopback), follow the
        chain and answer closes; never returns. `task_status.started(port)`."""
        await self.poll_until_done()
        table = DispatchTable()
        table.register(msg.MonitorRequests, self._on_requests)
        table.register(msg.StatusRequest, self._on_status)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._run_commits)
            nursery.start_soon(self._follow)
            nursery.start_soon(self.transactions.run)
            nursery.start_soon(self._run_sender)
            bound: int = await nursery.start(
                partial(
                    serve_connections,
                    self.signer,
                    msg,
                    table.lookup(),
                    host=host,
                    port=port,
                    on_connection=self._on_connection,
                    tls=tls,
                )
            )
            log.info("watchtower %s listening on %s:%d", to_checksum(self.address), host, bound)
            self.ready.set()
            task_status.started(bound)

    async def _on_connection(self, connection: Connection) -> None:
        try:
            await connection.wait_closed()
        finally:
            self._refused_in_a_row.pop(connection, None)

    # -- requests -----------------------------------------------------------------------------

    async def _on_requests(self, connection: Connection, frame: msg.MonitorRequests) -> None:
        receipts: list[msg.MonitorReceipt] = []
        refused: list[msg.MonitorRefused] = []
        for index, request in enumerate(frame.requests, 1):
            if index % RECEIVE_SLICE == 0:
                await trio.lowlevel.checkpoint()
            self.stats.requests += 1
            key = (ChannelId(request.channel_id), Address(request.guarded))
            held = self._pending.get(key) or self.guards.get(key)
            result = check_request(request, self.terms, self.channels.get(key[0]), held, self.head)
            if isinstance(result, RequestAccepted):
                proof = result.proof
                if not result.duplicate:
                    self._pending[key] = proof
                    self._group.append(proof)
                self.stats.accepted += 1
                receipts.append(self._receipt(request.request_id, proof))
                self._refused_in_a_row.pop(connection, None)
            else:
                code = result.code.value
                self.stats.refused[code] = self.stats.refused.get(code, 0) + 1
                refused.append(
                    msg.MonitorRefused(
                        request_id=request.request_id,
                        channel_id=request.channel_id,
                        code=code,
                        reason=result.reason[:500],
                        held_nonce=result.held_nonce,
                    )
                )
                if code not in _HONEST_REFUSALS:
                    self._count_refused(connection)
        self._answers.append((connection, msg.MonitorAnswers(receipts=receipts, refused=refused)))
        self._work.set()

    def _count_refused(self, connection: Connection) -> None:
        count = self._refused_in_a_row.get(connection, 0) + 1
        self._refused_in_a_row[connection] = count
        if count > MAX_REFUSED_IN_A_ROW:
            del self._refused_in_a_row[connection]
            raise AbusiveClientError(
                f"0x{connection.peer.hex()} sent {count} refused requests in a row: disconnected"
            )

    def _receipt(self, request_id: int, proof: GuardedProof) -> msg.MonitorReceipt:
        digest = msg.receipt_digest(
            self.terms.domain, proof.channel_id, proof.guarded, proof.nonce, proof.request_digest
        )
        return msg.MonitorReceipt(
            request_id=request_id,
            channel_id=proof.channel_id,
            guarded=proof.guarded,
            nonce=proof.nonce,
            request_digest=proof.request_digest,
            signature=self.signer.sign_digest(digest),
        )

    async def _run_commits(self) -> None:
        """Forever: make the open group durable, then send its answers (one group at a time; the
        next one fills meanwhile)."""
        while True:
            await self._work.wait()
            self._work = trio.Event()
            await self.commit_now()

    async def commit_now(self) -> None:
        """Commit the open group, then send its answers."""
        group, answers = self._group, self._answers
        self._group, self._answers = [], []
        if group:
            async with self._db_lock:
                # a channel settled while its request waited: nothing left to guard
                for proof in group:
                    if self._pending.get(proof.key) is proof:
                        del self._pending[proof.key]
                group = [p for p in group if p.channel_id in self.channels]
                await trio.to_thread.run_sync(self.store.commit_requests, group)
                self.stats.commits += 1
                for proof in group:
                    self.guards[proof.key] = proof
                    self.submitted.pop(proof.key, None)
                for channel_id in {p.channel_id for p in group}:
                    self._refresh_duties(channel_id)
            self._submit_wakeup.set()
        for connection, answer in answers:
            if not connection.closed:
                connection.send_nowait(answer)
        committed, self._committed = self._committed, trio.Event()
        committed.set()

    async def _on_status(self, connection: Connection, request: msg.StatusRequest) -> None:
        peer = Address(connection.peer)
        entries = []
        for key, proof in sorted(self.guards.items(), reverse=True):
            if proof.guarded != peer:
                continue
            channel = self.channels.get(proof.channel_id)
            entries.append(
                msg.StatusEntry(
                    channel_id=proof.channel_id,
                    guarded=proof.guarded,
                    partner=proof.partner,
                    nonce=proof.nonce,
                    reward=msg.amount_to_wire(proof.reward),
                    state=guard_state(channel, proof, self.head, self.submitted.get(key)),
                    settle_block=channel.settle_block if channel is not None else 0,
                )
            )
            if len(entries) == msg.MAX_STATUS_ENTRIES:
                break
        connection.send_nowait(
            msg.StatusReply(tower=self.address, block_number=self.cursor, entries=entries)
        )

    # -- the chain ----------------------------------------------------------------------------

    def _follower(self) -> ChainFollower:
        follower = self._chain_follower
        if follower is None:
            follower = self._chain_follower = ChainFollower(
                self.client.connection,
                self.client.deployment,
                cursor=self.cursor,
                confirmations=self.confirmations,
            )
        follower.cursor = self.cursor  # what is durable (a failed commit is polled again)
        return follower

    async def _follow(self) -> None:
        while True:
            await trio.sleep(self.poll_interval)
            await self.poll_until_done()

    async def poll_until_done(self) -> None:
        """One poll, tried again (with backoff, never giving up) until it goes through: a node that
        is down or restarting, or a full disk, never ends the tower. While it fails the tower is
        blind (closes go unseen and unanswered): it says so, at warning level at once, and at error
        level with what is unguarded once that lasts `OUTAGE_ALARM_S` (again every
        `OUTAGE_REPEAT_S`), and says when it sees the chain again."""
        failures = 0
        while True:
            try:
                await self.poll_once()
            except Exception as exc:  # the node or the disk failed: try again, later and later
                failures += 1
                self._poll_failed(exc, failures)
                await trio.sleep(backoff_delay(self.poll_interval, failures))
                continue
            if self.outage_since is not None:
                log.warning(
                    "the chain answers again after %.1f s without it (%d failed polls): "
                    "following from block %d, %d channels guarded again",
                    trio.current_time() - self.outage_since,
                    failures,
                    self.cursor,
                    len(self.channels),
                )
                self.outage_since = None
                self._outage_alarmed = None
            return

    def _poll_failed(self, exc: Exception, failures: int) -> None:
        now = trio.current_time()
        if self.outage_since is None:
            self.outage_since = now
        blind = now - self.outage_since
        retry = backoff_delay(self.poll_interval, failures)
        reason = f"{type(exc).__name__}: {exc}"
        last_alarm = self._outage_alarmed
        if blind >= OUTAGE_ALARM_S and (last_alarm is None or now - last_alarm >= OUTAGE_REPEAT_S):
            self._outage_alarmed = now
            log.error(
                "UNGUARDED: the watchtower has not seen the chain for %.0f s (%s); closes of the "
                "%d channels it follows (%d guarded proofs) after block %d go unseen and "
                "unanswered until it does; retrying every %.1f s",
                blind,
                reason,
                len(self.channels),
                len(self.guards),
                self.cursor,
                retry,
            )
        elif failures == 1 or retry < MAX_BACKOFF_S:
            log.warning("chain poll failed (%s); retrying in %.1f s", reason, retry)

    async def poll_once(self) -> None:
        """Apply the confirmed events since the cursor (durably, with the new cursor) and read the
        chain head; wake the sender."""
        follower = self._follower()
        connection = self.client.connection
        async with self._chain_lock:
            batches = await trio.to_thread.run_sync(follower.poll_until_head)
            head = await trio.to_thread.run_sync(connection.block_number)
        events: list[ChannelEvent] = [
            change
            for batch in batches
            for change in batch.state_changes
            if isinstance(change, CHANNEL_EVENTS)
        ]
        delta = apply_events(self.channels, events)
        changed, gone = delta.changed, delta.gone
        self.stats.closes_seen += delta.closes
        cursor = follower.cursor
        if changed or gone or cursor != self.cursor:
            async with self._db_lock:
                await trio.to_thread.run_sync(
                    self.store.commit_chain, list(changed.values()), sorted(gone), cursor
                )
                for channel_id in gone:
                    self._forget(channel_id)
                self.channels.update(changed)
                for channel_id in changed:
                    self._refresh_duties(channel_id)
                self.cursor = cursor
        self.head = max(self.head, head)
        self._submit_wakeup.set()
        polled, self._polled = self._polled, trio.Event()
        polled.set()

    def _forget(self, channel_id: ChannelId) -> None:
        """Drop a settled or cooperatively closed channel and everything held for it."""
        record = self.channels.pop(channel_id, None)
        if record is None:
            return  # never followed (`apply_events` names only followed channels gone)
        for guarded in (record.participant1, record.participant2):
            key = (channel_id, guarded)
            self.guards.pop(key, None)
            self.submitted.pop(key, None)
            self.duties.pop(key, None)
            self._missed.discard(key)

    async def wait_polled(self) -> None:
        """Until the follower's next poll has been applied."""
        await self._polled.wait()

    def _refresh_duties(self, channel_id: ChannelId) -> None:
        channel = self.channels.get(channel_id)
        if channel is None:
            return
        for guarded in (channel.participant1, channel.participant2):
            key = (channel_id, guarded)
            proof = self.guards.get(key)
            duty = None if proof is None else duty_of(channel, proof, self.address, self.spacing)
            if duty is None:
                self.duties.pop(key, None)
            else:
                self.duties[key] = duty

    # -- answering closes ---------------------------------------------------------------------

    async def _run_sender(self) -> None:
        """Forever: at each wake-up (a poll, a commit, an outcome) mark the updates whose turn
        came as sent (durably) and hand them to the transaction manager, which sends them
        without waiting for any to be mined; let go of the records of updates it is done with."""
        while True:
            with trio.move_on_after(self.poll_interval):
                await self._submit_wakeup.wait()
            self._submit_wakeup = trio.Event()
            await self._write_outbox()
            due = self._due()
            if not due:
                continue
            keys = [duty.key for duty in due]
            head = self.head
            async with self._db_lock:
                await trio.to_thread.run_sync(self.store.mark_submitted, keys, head)
                for key in keys:
                    self.submitted[key] = head
            for duty in due:
                proof = self.guards.get(duty.key)
                if proof is None:  # the channel settled meanwhile: nothing to answer
                    continue
                self.transactions.submit(
                    transaction_key(proof),
                    KIND,
                    update_call(self.client, proof),
                    PRIORITY_DEADLINE,
                    int(duty.deadline),
                    gas=self.update_gas,
                )

    async def _write_outbox(self) -> None:
        """Let go of the records of updates the manager is done with (one transaction)."""
        if not self.outbox.unwritten:
            return
        try:
            await self.outbox.flush()
        except Exception as exc:  # a full disk: the rows stay, written at the next wake-up
            self.stats.send_errors += 1
            log.warning("writing the transaction records failed: %s: %s", type(exc).__name__, exc)

    def _due(self) -> list[Duty]:
        due = []
        for key, duty in self.duties.items():
            proof = self.guards.get(key)
            if proof is None or self.transactions.holds(transaction_key(proof)):
                continue  # nothing held, or its update is with the manager: never sent twice
            step = next_step(duty, self.head, self.submitted.get(key), self.resend_after)
            if step is Step.SUBMIT:
                due.append(duty)
            elif step is Step.TOO_LATE and key not in self._missed:
                self._missed.add(key)
                self.stats.missed += 1
                log.error(
                    "missed channel %d: its challenge period ended at block %d before our update",
                    duty.channel_id,
                    duty.deadline,
                )
        return due

    def _update_sent(self, key: str, kind: str) -> None:
        """The node took an update (first version)."""
        self.stats.updates_sent += 1
        self.stats.send_seconds = self.transactions.send_seconds

    def _update_outcome(self, key: str, kind: str, result: Receipt | ChainError) -> None:
        """An update mined, reverted on chain, or refused before it was sent."""
        self.stats.replacements = self.transactions.replacements
        self.stats.resent_after_reorg = self.transactions.resent_after_reorg
        if isinstance(result, Receipt):
            self.stats.updates_mined += 1
        elif result.transaction_hash is None:
            # the check (or the node) said it would revert: someone already submitted this nonce
            # or a higher one, or the period is over; the follower will see it
            self.stats.stood_down += 1
            log.info("not sending the update %s: %s", key, result)
        else:
            self.stats.updates_failed += 1
            log.info("update %s reverted: %s", key, result)
        self._submit_wakeup.set()

    # -- reading ------------------------------------------------------------------------------

    def statistics(self) -> TowerStatistics:
        self.stats.replacements = self.transactions.replacements
        self.stats.resent_after_reorg = self.transactions.resent_after_reorg
        self.stats.send_seconds = self.transactions.send_seconds
        return self.stats

    async def wait_committed(self) -> None:
        """Until every request received so far is committed and answered."""
        while self._group or self._answers:
            await self._committed.wait()


__all__ = [
    "HOST",
    "UPDATE_GAS",
    "AbusiveClientError",
    "TowerStatistics",
    "Watchtower",
]

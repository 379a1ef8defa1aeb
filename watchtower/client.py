"""The guarded party's side: hand the latest balance proof of each channel's partner to towers.

- `monitor_request`: the `MonitorRequest` guarding one of the partner's signed balance proofs,
  signed by the guarded party (pure but for the signature).
- `open_tower_session`: one authenticated connection to one tower (its address is checked in the
  handshake): `submit` a frame of requests and get the answers (several frames may be in flight),
  `status` of what the tower holds for us. Receipts are checked: each must be the tower's
  signature over the request we sent.
- `TowerGuard`: attached to a `NodeService` (an agent's, a hub's), it learns from the service's
  durable events which channels received a new proof and hands the latest one per channel to each
  chosen tower, batched: when `batch_count` channels are waiting, or `batch_interval` seconds after
  the first one started waiting. Only the latest proof per channel is sent (a tower keeps one).

The risk window: a proof is guarded once the tower's receipt for it is back, at most about
`batch_interval` + one round trip + the tower's commit after the proof became durable here. If the
partner closes while we are offline with a proof from inside that window, the tower submits the
previous one, and what we received during the window is lost. Shorter intervals or a `batch_count`
of 1 shrink the window at the cost of more frames and commits; `flush()` before a planned shutdown
closes it. A refusal because the tower has not confirmed the channel yet is retried every
`retry_interval`.

It must never send a request for a proof that is not durable on our side (it reads proofs only
from events the service has committed), never sign anything but MonitorRequests for our own
channels, and never count a proof as guarded without the tower's valid receipt for it.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections import deque
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import trio

from channels.codec.ecdsa import InvalidSignature, recover_signer
from channels.codec.eip712 import Domain, balance_proof_struct_hash, monitor_request_digest
from channels.core import events as ev
from channels.core.state import BalanceProof, ChannelState, ChannelStatus
from channels.core.types import Address, ChannelId, to_checksum
from channels.service import NodeService
from channels.signer import LocalSigner
from channels.tls import TlsConfig, require_tls_off_loopback
from channels.transport import Connection, ConnectionClosedError, DispatchTable, TcpTransport
from watchtower import messages as msg
from watchtower.core import Refusal

log = logging.getLogger(__name__)

DEFAULT_BATCH_COUNT = 64
DEFAULT_BATCH_INTERVAL = 1.0  # seconds: the risk window (see the module docstring)
DEFAULT_RETRY_INTERVAL = 2.0  # seconds before a request the tower could not take yet goes again
MAX_RETRIES = 30  # then a channel the tower does not know is given up on (until a newer proof)
ANSWER_TIMEOUT = 30.0


class TowerError(Exception):
    """The tower did not answer, answered out of turn, or its receipt is not its signature."""


@dataclass(frozen=True, slots=True)
class TowerEndpoint:
    """Where a tower listens, and the address it must authenticate as."""

    address: Address
    port: int
    host: str = "127.0.0.1"


def monitor_request(
    signer: LocalSigner,
    domain: Domain,
    proof: BalanceProof,
    partner: Address,
    reward: int,
    watchtower: Address,
    request_id: int,
) -> msg.MonitorRequest:
    """The request that lets `watchtower` (zero: any tower) submit `proof`, the partner's signed
    balance proof, for the signer, paid `reward` at settle out of the signer's balance."""
    digest = monitor_request_digest(
        domain, proof.channel_id, proof.struct_hash(), reward, watchtower
    )
    return msg.MonitorRequest(
        request_id=request_id,
        channel_id=proof.channel_id,
        guarded=signer.address,
        partner=partner,
        nonce=proof.nonce,
        transferred=msg.amount_to_wire(proof.transferred),
        locked=msg.amount_to_wire(proof.locked),
        locks_root=proof.locks_root,
        partner_signature=proof.signature,
        reward=msg.amount_to_wire(reward),
        watchtower=watchtower,
        monitor_signature=signer.sign_digest(digest),
    )


def receipt_is_valid(
    receipt: msg.MonitorReceipt, request: msg.MonitorRequest, tower: Address, domain: Domain
) -> bool:
    """Whether `receipt` is `tower`'s signature holding exactly `request`."""
    proof_hash = balance_proof_struct_hash(
        request.channel_id,
        request.nonce,
        msg.amount_from_wire(request.transferred),
        msg.amount_from_wire(request.locked),
        request.locks_root,
    )
    request_digest = monitor_request_digest(
        domain,
        request.channel_id,
        proof_hash,
        msg.amount_from_wire(request.reward),
        request.watchtower,
    )
    if (
        receipt.request_digest != request_digest
        or receipt.channel_id != request.channel_id
        or receipt.guarded != request.guarded
        or receipt.nonce != request.nonce
    ):
        return False
    digest = msg.receipt_digest(
        domain, receipt.channel_id, receipt.guarded, receipt.nonce, receipt.request_digest
    )
    try:
        return recover_signer(digest, receipt.signature) == tower
    except InvalidSignature:
        return False


class _Waiter:
    __slots__ = ("answer", "done", "error")

    def __init__(self) -> None:
        self.done = trio.Event()
        self.answer: msg.MonitorAnswers | msg.StatusReply | None = None
        self.error: str | None = None


class TowerSession:
    """One open, authenticated connection to a tower (made by `open_tower_session`)."""

    def __init__(self) -> None:
        self.connection: Connection | None = None
        self._answers: deque[_Waiter] = deque()
        self._status: deque[_Waiter] = deque()

    async def _on_answers(self, connection: Connection, answers: msg.MonitorAnswers) -> None:
        self._resolve(self._answers, answers)

    async def _on_status(self, connection: Connection, reply: msg.StatusReply) -> None:
        self._resolve(self._status, reply)

    @staticmethod
    def _resolve(waiters: deque[_Waiter], answer: msg.MonitorAnswers | msg.StatusReply) -> None:
        if not waiters:
            raise TowerError("the tower answered a frame that was not sent")
        waiter = waiters.popleft()
        waiter.answer = answer
        waiter.done.set()

    def _fail_all(self, reason: str) -> None:
        for waiters in (self._answers, self._status):
            while waiters:
                waiter = waiters.popleft()
                waiter.error = reason
                waiter.done.set()

    async def _wait(self, waiter: _Waiter) -> msg.MonitorAnswers | msg.StatusReply:
        with trio.move_on_after(ANSWER_TIMEOUT):
            await waiter.done.wait()
        if waiter.error is not None:
            raise TowerError(waiter.error)
        if waiter.answer is None:
            raise TowerError(f"no answer within {ANSWER_TIMEOUT:g} s")
        return waiter.answer

    async def submit(self, requests: Sequence[msg.MonitorRequest]) -> msg.MonitorAnswers:
        """Send up to `MAX_REQUESTS` requests in one frame and return the tower's answers (after
        it made the accepted ones durable)."""
        connection = self._open()
        waiter = _Waiter()
        self._answers.append(waiter)
        connection.send_nowait(msg.MonitorRequests(requests=list(requests)))
        answer = await self._wait(waiter)
        assert isinstance(answer, msg.MonitorAnswers)
        return answer

    async def status(self) -> msg.StatusReply:
        """What the tower holds for us (the authenticated address) and its confirmed block."""
        connection = self._open()
        waiter = _Waiter()
        self._status.append(waiter)
        connection.send_nowait(msg.StatusRequest())
        answer = await self._wait(waiter)
        assert isinstance(answer, msg.StatusReply)
        return answer

    def _open(self) -> Connection:
        if self.connection is None or self.connection.closed:
            raise ConnectionClosedError("the connection to the tower is closed")
        return self.connection


@asynccontextmanager
async def open_tower_session(
    signer: LocalSigner, tower: TowerEndpoint, *, tls: TlsConfig | None = None
) -> AsyncIterator[TowerSession]:
    """Connect to `tower` (which must authenticate as `tower.address`) for the block; over TLS
    with `tls` (required for a tower that is not on the loopback)."""
    session = TowerSession()
    table = DispatchTable()
    table.register(msg.MonitorAnswers, session._on_answers)
    table.register(msg.StatusReply, session._on_status)
    transport = TcpTransport(signer, msg, table.lookup(), tls=tls)
    try:
        async with transport.open_connection(
            tower.host, tower.port, expected_peer=tower.address
        ) as connection:
            session.connection = connection
            async with trio.open_nursery() as nursery:

                async def fail_on_close() -> None:
                    await connection.wait_closed()
                    session._fail_all("the tower closed the connection")

                nursery.start_soon(fail_on_close)
                yield session
                nursery.cancel_scope.cancel()
    finally:
        session._fail_all("the session ended")


# --------------------------------------------------------------------------- the guard


@dataclass(slots=True)
class _TowerState:
    endpoint: TowerEndpoint
    waiting: set[ChannelId] = field(default_factory=set)  # a newer proof to hand over
    retry: dict[ChannelId, float] = field(default_factory=dict)  # refused for now: when again
    guarded: dict[ChannelId, int] = field(default_factory=dict)  # nonce held, per its receipt
    refused: dict[ChannelId, str] = field(default_factory=dict)  # the last refusal's reason
    refused_nonce: dict[ChannelId, int] = field(default_factory=dict)  # refused for good up to
    retries: dict[ChannelId, int] = field(default_factory=dict)  # refusals since the last receipt
    first_waiting_at: float | None = None  # None: not yet seen by the tower task
    in_flight: int = 0
    wakeup: trio.Event = field(default_factory=trio.Event)


@dataclass(frozen=True, slots=True)
class GuardStatus:
    """One channel at one tower: the partner's latest proof we hold and the one the tower holds."""

    tower: Address
    channel_id: ChannelId
    latest_nonce: int
    guarded_nonce: int  # 0: not guarded by this tower
    refused: str = ""


@dataclass(slots=True)
class GuardStatistics:
    requests_sent: int = 0
    receipts: int = 0
    refused: int = 0
    frames: int = 0
    failures: int = 0


class TowerGuard:
    """Keeps a service's channels guarded by towers (see the module docstring)."""

    def __init__(
        self,
        service: NodeService,
        towers: Sequence[TowerEndpoint],
        *,
        reward: int = 0,
        batch_count: int = DEFAULT_BATCH_COUNT,
        batch_interval: float = DEFAULT_BATCH_INTERVAL,
        retry_interval: float = DEFAULT_RETRY_INTERVAL,
        any_tower: bool = False,
        tls: TlsConfig | None = None,
    ) -> None:
        if not towers:
            raise ValueError("name at least one tower")
        if not 1 <= batch_count <= msg.MAX_REQUESTS or not batch_interval >= 0 or reward < 0:
            raise ValueError(
                f"batch_count is 1..{msg.MAX_REQUESTS}, batch_interval >= 0, reward >= 0"
            )
        for tower in towers:  # refuse plain TCP off the loopback now, not in the reconnect loop
            require_tls_off_loopback(tower.host, tls, "connect to")
        self.service = service
        self.tls = tls
        self.reward = reward
        self.batch_count = batch_count
        self.batch_interval = batch_interval
        self.retry_interval = retry_interval
        self.any_tower = any_tower  # sign for watchtower 0x0: any tower may submit it
        self.towers = {tower.address: _TowerState(tower) for tower in towers}
        self.stats = GuardStatistics()
        self._ids = itertools.count(1)
        self._progress = trio.Event()
        for channel_id in self._with_proofs():  # after a restart: hand everything over again
            for state in self.towers.values():
                self._mark(state, channel_id)
        service.listeners.append(self._on_durable)

    def _with_proofs(self) -> list[ChannelId]:
        """Channels with a proof from the partner that a tower can still use (not settling)."""
        return [
            channel_id
            for channel_id, channel in self.service.channels.items()
            if _guardable(channel)
        ]

    def _mark(self, state: _TowerState, channel_id: ChannelId) -> None:
        if not state.waiting:
            state.first_waiting_at = None  # the batch interval starts when the tower task looks
        state.waiting.add(channel_id)
        if len(state.waiting) == 1 or len(state.waiting) >= self.batch_count:
            state.wakeup.set()

    def _on_durable(self, events: Sequence[ev.Event]) -> None:
        """After each commit of the service: channels whose events may carry a new proof."""
        touched: set[ChannelId] = set()
        for event in events:
            channel_id = getattr(event, "channel_id", None)
            if channel_id is not None:
                touched.add(channel_id)
        channels = self.service.channels
        for channel_id in touched:
            channel = channels.get(channel_id)
            if channel is None or not _guardable(channel):
                continue
            nonce = channel.partner.balance_proof.nonce
            for state in self.towers.values():
                if nonce > state.guarded.get(channel_id, 0):
                    self._mark(state, channel_id)

    # -- running --------------------------------------------------------------------------------

    def start(self, nursery: trio.Nursery) -> None:
        """Run one task per tower in `nursery` (each keeps a connection, reconnecting)."""
        for state in self.towers.values():
            nursery.start_soon(self._run_tower, state)

    async def _run_tower(self, state: _TowerState) -> None:
        delay = 0.1
        while True:
            try:
                async with open_tower_session(
                    self.service.signer, state.endpoint, tls=self.tls
                ) as session:
                    delay = 0.1
                    await self._feed(state, session)
            except (OSError, trio.BrokenResourceError) as exc:
                log.info("tower %s unreachable: %s", to_checksum(state.endpoint.address), exc)
            except Exception as exc:  # a transport or tower error: reconnect
                self.stats.failures += 1
                log.info("tower %s: %s", to_checksum(state.endpoint.address), exc)
            await trio.sleep(delay)
            delay = min(delay * 2, 5.0)

    async def _feed(self, state: _TowerState, session: TowerSession) -> None:
        while True:
            await self._wait_batch(state)
            channels = sorted(state.waiting)[: msg.MAX_REQUESTS]
            state.waiting.difference_update(channels)
            state.first_waiting_at = None
            requests = self._requests(state, channels)
            if not requests:
                continue
            state.in_flight += len(requests)
            try:
                answers = await session.submit(list(requests.values()))
            except BaseException:
                for request in requests.values():
                    self._mark(state, ChannelId(request.channel_id))
                raise
            finally:
                state.in_flight -= len(requests)
            self.stats.frames += 1
            self._take(state, requests, answers)
            progress, self._progress = self._progress, trio.Event()
            progress.set()

    async def _wait_batch(self, state: _TowerState) -> None:
        """Until `batch_count` channels wait, or `batch_interval` passed since the first did;
        a request the tower could not take yet waits again after `retry_interval`."""
        while True:
            now = trio.current_time()
            for channel_id, at in list(state.retry.items()):
                if at <= now:
                    del state.retry[channel_id]
                    self._mark(state, channel_id)
            if len(state.waiting) >= self.batch_count:
                return
            deadlines = []
            if state.waiting:
                if state.first_waiting_at is None:
                    state.first_waiting_at = now
                if state.first_waiting_at + self.batch_interval <= now:
                    return
                deadlines.append(state.first_waiting_at + self.batch_interval)
            if state.retry:
                deadlines.append(min(state.retry.values()))
            state.wakeup = trio.Event()
            with trio.move_on_at(min(deadlines, default=math.inf)):
                await state.wakeup.wait()

    def _requests(
        self, state: _TowerState, channels: Sequence[ChannelId]
    ) -> dict[int, msg.MonitorRequest]:
        service = self.service
        domain = service.node.domain
        watchtower = Address(b"\x00" * 20) if self.any_tower else state.endpoint.address
        requests: dict[int, msg.MonitorRequest] = {}
        for channel_id in channels:
            channel = service.channels.get(channel_id)
            if channel is None or not _guardable(channel):
                continue
            proof = channel.partner.balance_proof
            if proof.nonce == 0 or proof.nonce <= state.guarded.get(channel_id, 0):
                continue
            request_id = next(self._ids)
            requests[request_id] = monitor_request(
                service.signer,
                domain,
                proof,
                channel.partner.address,
                self.reward,
                watchtower,
                request_id,
            )
        self.stats.requests_sent += len(requests)
        return requests

    def _take(
        self,
        state: _TowerState,
        requests: dict[int, msg.MonitorRequest],
        answers: msg.MonitorAnswers,
    ) -> None:
        domain = self.service.node.domain
        tower = state.endpoint.address
        for receipt in answers.receipts:
            request = requests.get(receipt.request_id)
            if request is None or not receipt_is_valid(receipt, request, tower, domain):
                raise TowerError(f"tower {to_checksum(tower)} sent a receipt that does not hold")
            channel_id = ChannelId(request.channel_id)
            state.guarded[channel_id] = max(state.guarded.get(channel_id, 0), request.nonce)
            state.refused.pop(channel_id, None)
            state.retries.pop(channel_id, None)
            self.stats.receipts += 1
        for refusal in answers.refused:
            request = requests.get(refusal.request_id)
            if request is None:
                continue
            channel_id = ChannelId(request.channel_id)
            self.stats.refused += 1
            if refusal.code == Refusal.STALE_NONCE.value and refusal.held_nonce >= request.nonce:
                # the tower holds this proof or a newer one (a receipt lost in a reconnect)
                state.guarded[channel_id] = max(
                    state.guarded.get(channel_id, 0), refusal.held_nonce
                )
                continue
            state.refused[channel_id] = f"{refusal.code}: {refusal.reason}"
            retries = state.retries[channel_id] = state.retries.get(channel_id, 0) + 1
            if refusal.code == Refusal.UNKNOWN_CHANNEL.value and retries <= MAX_RETRIES:
                state.retry[channel_id] = trio.current_time() + self.retry_interval
            else:
                state.refused_nonce[channel_id] = request.nonce
                log.warning(
                    "tower %s refused channel %d: %s",
                    to_checksum(tower),
                    channel_id,
                    refusal.reason,
                )

    # -- reading --------------------------------------------------------------------------------

    def status(self) -> list[GuardStatus]:
        """Every channel a tower can still guard (a proof from the partner, not settling), at
        every tower."""
        out = []
        channels = self.service.channels
        for address, state in self.towers.items():
            for channel_id in sorted(self._with_proofs()):
                latest = channels[channel_id].partner.balance_proof.nonce
                out.append(
                    GuardStatus(
                        address,
                        channel_id,
                        latest,
                        state.guarded.get(channel_id, 0),
                        state.refused.get(channel_id, ""),
                    )
                )
        return out

    def fully_guarded(self) -> bool:
        """Whether every tower holds the latest proof of every channel."""
        return all(s.guarded_nonce >= s.latest_nonce for s in self.status())

    def _owed(self) -> list[tuple[_TowerState, ChannelId]]:
        """(tower, channel) pairs whose latest proof the tower neither holds nor refused for good
        (a refusal for now, an unconfirmed channel, is still owed)."""
        owed = []
        for channel_id in self._with_proofs():
            latest = self.service.channels[channel_id].partner.balance_proof.nonce
            for state in self.towers.values():
                if latest > state.guarded.get(channel_id, 0) and (
                    channel_id in state.retry or latest > state.refused_nonce.get(channel_id, 0)
                ):
                    owed.append((state, channel_id))
        return owed

    async def flush(self) -> None:
        """Hand everything waiting over now, and return once every tower holds the latest proof
        of every channel or refused it for good (see `status`). Bound it with a timeout: a tower
        may be down."""
        while owed := self._owed():
            for state, channel_id in owed:
                if channel_id not in state.retry:  # those go again after `retry_interval`
                    state.waiting.add(channel_id)
            for state in self.towers.values():
                if state.waiting:
                    state.first_waiting_at = -math.inf  # due now
                    state.wakeup.set()
            with trio.move_on_after(self.retry_interval):
                await self._progress.wait()


def _guardable(channel: ChannelState) -> bool:
    """A partner proof a tower can still submit: the channel is not settling or settled."""
    return channel.partner.balance_proof.nonce > 0 and channel.status in _GUARDABLE


_GUARDABLE = (ChannelStatus.OPENED, ChannelStatus.CLOSING, ChannelStatus.CLOSED)


__all__ = [
    "DEFAULT_BATCH_COUNT",
    "DEFAULT_BATCH_INTERVAL",
    "GuardStatus",
    "TowerEndpoint",
    "TowerError",
    "TowerGuard",
    "TowerSession",
    "monitor_request",
    "open_tower_session",
    "receipt_is_valid",
]

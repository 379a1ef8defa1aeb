"""Many transactions of one account in flight, by deadline: the node's transaction manager.

Two parts. `Scheduler` is pure (no I/O, no clock): the queue, ordered by deadline block then
priority (an update answering a close or a secret registration before its lock expires goes
before a routine deposit); which transactions to sign, to hand to the node, to look up, to
replace (not mined `stall_blocks` after it went out: the SAME nonce with a higher fee, or the same
bytes again on a chain without fees), to trust (mined `confirmations` blocks deep) and to send
again (a reorganisation dropped it); and which are at risk of missing their deadline.
`TransactionManager` is the thin trio shell around it: each chain request runs in a worker thread
holding the chain lock for that one request only, so a chain follower sharing the lock never
waits behind a transaction being mined; a node that does not answer delays the work (the retry
schedule of `channels.chain.outage`) and ends nothing.

Durable first: every signed version is recorded (`Durable.record`, then `flush`) before its raw
bytes leave, so a restart sends the same nonce again rather than a second transaction; an item
is let go (`Durable.done`) only once mined with confirmations, or refused by the chain for good.

The batched path (`batch=`, a `channels.chain.batch_rpc.ChainBatch`; the watchtower uses it to
answer a block full of closes in the next block): each chunk is checked in one JSON-RPC request
(an eth_call of each transaction submitted with its gas, on the head's state: one that reverts is
refused for good, takes no nonce and costs nothing), signed locally with `channels.chain.raw_tx`
(coincurve, byte-identical to eth_account), recorded, and handed to the node in one request; the
look-ups and confirmations read all their receipts in one request each. The decisions are the
same `Scheduler`'s.

It must never decide whether a transaction is wanted (the core does), never hold a chain
request's lock while waiting for a block, and never sign two different calls with one nonce.
"""

from __future__ import annotations

import enum
import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import trio
from eth_account.signers.local import LocalAccount
from web3.exceptions import ProviderConnectionError, RequestTimedOut, TimeExhausted

from channels.chain import raw_tx
from channels.chain.abi import ContractAbi
from channels.chain.batch_rpc import BatchTransportError, ChainBatch, MinedReceipt
from channels.chain.connection import (
    Connection,
    Fees,
    NonceTakenError,
    Receipt,
    UnderpricedError,
    send_failure,
)
from channels.chain.errors import ChainError, chain_error_from, is_revert
from channels.chain.executor import PreparedCall
from channels.chain.outage import ChainOutage
from channels.codec.eip712 import secrethash_of
from channels.core import events as ev
from channels.core.state import ChannelState
from channels.core.types import ChannelId, SecretHash
from channels.records import OutboxTransaction
from channels.signer import LocalSigner

log = logging.getLogger(__name__)
T = TypeVar("T")

# Priorities (lower first, after the deadline): what loses money if late, then what frees it.
PRIORITY_DEADLINE = 0  # answers to a close, secret registrations
PRIORITY_CLOSE = 1  # closes and withdraws
PRIORITY_SETTLE = 2  # settles, unlocks, cooperative closes
PRIORITY_ROUTINE = 3  # deposits
NO_DEADLINE = math.inf

DEFAULT_STALL_BLOCKS = 3  # not mined this many blocks after it went out: replace it
DEFAULT_RISK_BLOCKS = 3  # this close to its deadline and not mined: an error in the log
DEFAULT_MAX_IN_FLIGHT = 1024  # signed, not yet mined
BUMP_NUM, BUMP_DEN = 5, 4  # a replacement pays 25 % more (nodes ask for at least 10 %)
GAP_FILLER_GAS = 21_000
CHUNK = 32  # requests of one kind per worker-thread hop (the lock is released between hops)


class Stage(enum.Enum):
    QUEUED = "queued"  # wanted, not signed
    SIGNED = "signed"  # signed and recorded; the node does not have its newest version yet
    SENT = "sent"  # the node has it; not mined
    MINED = "mined"  # in a block; confirmations being counted
    DONE = "done"  # mined with confirmations, or refused for good


@dataclass(slots=True)
class Job:
    """One wanted transaction and what became of it."""

    key: str
    kind: str
    function: str
    to: bytes
    data: bytes
    priority: int = PRIORITY_ROUTINE
    deadline: int | None = None
    seq: int = 0
    value: int = 0
    gas: int | None = None
    nonce: int | None = None
    fees: Fees | None = None
    raws: list[bytes] = field(default_factory=list)
    hashes: list[bytes] = field(default_factory=list)
    stage: Stage = Stage.QUEUED
    sent_at: int | None = None  # head when the node took the newest version
    mined_at: int | None = None
    mined_hash: bytes | None = None
    succeeded: bool = True
    warned_at: int | None = None  # head of the last "at risk" line
    filler: bool = False  # a no-op filling a nonce gap left by a refused transaction
    reported: bool = False  # its outcome was given (a reorganisation may mine it again)
    check: bool = False  # gas given at submit: an eth_call checks it instead of an estimate
    went_out: bool = False  # the node took a version of it once (`on_sent` was called)
    send_error: str | None = None  # the node's last refusal of it, not yet understood

    def order(self) -> tuple[float, int, int]:
        return (NO_DEADLINE if self.deadline is None else self.deadline, self.priority, self.seq)

    def record(self) -> OutboxTransaction:
        assert self.nonce is not None and self.fees is not None and self.gas is not None
        return OutboxTransaction(
            kind=self.kind,
            function=self.function,
            to=self.to,
            data=self.data,
            value=self.value,
            gas=self.gas,
            nonce=self.nonce,
            fee_price=self.fees.price,
            fee_priority=self.fees.priority_fee,
            raws=list(self.raws),
            hashes=list(self.hashes),
            priority=self.priority,
            deadline=self.deadline,
        )


def bumped(old: Fees, current: Fees, num: int = BUMP_NUM, den: int = BUMP_DEN) -> Fees | None:
    """The fees of a replacement for a transaction that paid `old`: `num/den` times as much
    (25 % more by default; at least the current fees); None on a chain without fees (a
    replacement would change nothing)."""
    if old.price == 0 and current.price == 0:
        return None
    price = max(old.price * num // den + 1, current.price)
    if old.priority_fee is None or current.priority_fee is None:
        return Fees(price, None)
    tip = max(old.priority_fee * num // den + 1, current.priority_fee)
    return Fees(max(price, tip), tip)


class Scheduler:
    """The pure part: jobs by key and the decisions about them (see the module docstring)."""

    def __init__(
        self,
        *,
        confirmations: int = 0,
        stall_blocks: int = DEFAULT_STALL_BLOCKS,
        risk_blocks: int = DEFAULT_RISK_BLOCKS,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
    ) -> None:
        if confirmations < 0 or stall_blocks < 1 or risk_blocks < 0 or max_in_flight < 1:
            raise ValueError("confirmations/risk_blocks >= 0, stall_blocks/max_in_flight >= 1")
        self.confirmations = confirmations
        self.stall_blocks = stall_blocks
        self.risk_blocks = risk_blocks
        self.max_in_flight = max_in_flight
        self.jobs: dict[str, Job] = {}
        self._seq = 0

    def __len__(self) -> int:
        return len(self.jobs)

    def add(self, job: Job) -> Job:
        """Queue `job` (a job with the same key stays as it is: it is the same transaction)."""
        existing = self.jobs.get(job.key)
        if existing is not None:
            return existing
        self._seq += 1
        job.seq = self._seq
        self.jobs[job.key] = job
        return job

    def restore(self, key: str, record: OutboxTransaction) -> Job:
        """A job signed before a restart: its newest version goes out again (same nonce)."""
        job = Job(
            key=key,
            kind=record.kind,
            function=record.function,
            to=record.to,
            data=record.data,
            priority=record.priority,
            deadline=record.deadline,
            value=record.value,
            gas=record.gas,
            nonce=record.nonce,
            fees=Fees(record.fee_price, record.fee_priority),
            raws=list(record.raws),
            hashes=list(record.hashes),
            stage=Stage.SIGNED,
            filler=record.kind == "gap",
        )
        return self.add(job)

    def _in(self, *stages: Stage) -> list[Job]:
        return [job for job in self.jobs.values() if job.stage in stages]

    @property
    def in_flight(self) -> int:
        return len(self._in(Stage.SIGNED, Stage.SENT))

    def nonce_floor(self) -> int:
        """Every new nonce is above those of the live jobs (restored ones included)."""
        nonces = [job.nonce for job in self.jobs.values() if job.nonce is not None]
        return max(nonces) + 1 if nonces else 0

    def to_sign(self) -> list[Job]:
        """Queued jobs to sign now, most urgent first, as many as the in-flight limit allows."""
        room = self.max_in_flight - self.in_flight
        if room <= 0:
            return []
        return sorted(self._in(Stage.QUEUED), key=Job.order)[:room]

    def signed(self, job: Job, nonce: int, fees: Fees, raw: bytes, tx_hash: bytes) -> None:
        """`job` signed (a first version, or a replacement with the same nonce)."""
        if job.nonce is not None and job.nonce != nonce and job.stage is not Stage.QUEUED:
            raise ValueError(f"{job.key}: a replacement must keep nonce {job.nonce}, not {nonce}")
        job.nonce, job.fees = nonce, fees
        job.raws.append(raw)
        job.hashes.append(tx_hash)
        job.stage = Stage.SIGNED

    def to_broadcast(self) -> list[Job]:
        """Signed versions the node does not have yet, by nonce (a gap holds up the ones after)."""
        return sorted(self._in(Stage.SIGNED), key=lambda job: job.nonce or 0)

    def accepted(self, job: Job, head: int) -> None:
        """The node took the newest version at `head`."""
        if job.stage in (Stage.SIGNED, Stage.SENT):
            job.stage, job.sent_at = Stage.SENT, head

    def to_look_up(self, mined_count: int) -> list[Job]:
        """Jobs whose nonce the chain has used (`mined_count` = the account's mined nonce count):
        one of their versions is mined, or something else took the nonce."""
        return sorted(
            (
                job
                for job in self._in(Stage.SIGNED, Stage.SENT)
                if job.nonce is not None and job.nonce < mined_count
            ),
            key=lambda job: job.nonce or 0,
        )

    def mined(self, job: Job, block: int, tx_hash: bytes, succeeded: bool) -> None:
        """One of `job`'s versions is in block `block` (it may still be reorganised away)."""
        job.stage, job.mined_at, job.mined_hash, job.succeeded = (
            Stage.MINED,
            block,
            tx_hash,
            succeeded,
        )

    def nonce_lost(self, job: Job) -> None:
        """None of `job`'s versions is mined but its nonce is used: it can never be mined as
        signed, so it is queued again for a new nonce (no copy of it can land twice)."""
        job.nonce, job.fees, job.raws, job.hashes = None, None, [], []
        job.stage, job.sent_at = Stage.QUEUED, None

    def to_confirm(self, head: int) -> list[Job]:
        """Mined jobs now `confirmations` blocks deep: check they are still there, then trust."""
        return [
            job
            for job in self._in(Stage.MINED)
            if job.mined_at is not None and head >= job.mined_at + self.confirmations
        ]

    def dropped(self, job: Job) -> None:
        """A reorganisation took `job`'s block away: its newest version goes out again."""
        job.stage, job.mined_at, job.mined_hash, job.sent_at = Stage.SIGNED, None, None, None

    def finish(self, job: Job) -> None:
        """Mined with confirmations, or refused for good: forget it."""
        job.stage = Stage.DONE
        self.jobs.pop(job.key, None)

    def refused(self, job: Job, nonce_released: bool, our_address: bytes) -> Job | None:
        """The node refused `job` for good before mining it. Its nonce is free: the connection
        took it back (`nonce_released`), or later nonces are out and a no-op self-transfer with
        the same nonce fills the gap (returned, already queued as signed-to-be)."""
        nonce = job.nonce
        self.finish(job)
        if nonce is None or nonce_released:
            return None
        filler = Job(
            key=f"{job.key}:gap",
            kind="gap",
            function="(nonce gap filler)",
            to=our_address,
            data=b"",
            priority=PRIORITY_DEADLINE,
            deadline=job.deadline,
            gas=GAP_FILLER_GAS,
            nonce=nonce,
            filler=True,
        )
        return self.add(filler)

    def stalled(self, head: int) -> list[Job]:
        """Jobs the node has held for `stall_blocks` blocks without mining: replace them."""
        return sorted(
            (
                job
                for job in self._in(Stage.SENT)
                if job.sent_at is not None and head - job.sent_at >= self.stall_blocks
            ),
            key=lambda job: job.nonce or 0,
        )

    def count_at_risk(self, head: int, blocks: int) -> int:
        """How many unmined jobs are within `blocks` of their deadline at `head` (read only)."""
        return sum(
            1
            for job in self.jobs.values()
            if job.deadline is not None
            and job.stage not in (Stage.MINED, Stage.DONE)
            and head >= job.deadline - blocks
        )

    def at_risk(self, head: int) -> list[Job]:
        """Unmined jobs within `risk_blocks` of their deadline (each once per head)."""
        risky = []
        for job in self.jobs.values():
            if job.deadline is None or job.stage in (Stage.MINED, Stage.DONE):
                continue
            if head >= job.deadline - self.risk_blocks and job.warned_at != head:
                job.warned_at = head
                risky.append(job)
        return sorted(risky, key=Job.order)


def urgency(
    event: ev.ContractSendEvent, channels: Mapping[ChannelId, ChannelState]
) -> tuple[int, int | None]:
    """(priority, deadline block or None) of the transaction `event` asks for, from the
    channels as they are: an update must be mined by the channel's settle block, a secret
    registration before its lock expires, a withdraw before its expiry."""
    if isinstance(event, ev.ContractSendUpdateBalanceProof):
        channel = channels.get(event.channel_id)
        return PRIORITY_DEADLINE, None if channel is None else channel.settle_block
    if isinstance(event, ev.ContractSendSecretRegister):
        secrethash = SecretHash(secrethash_of(event.secret))
        expiries = [
            channel.partner.locks[slot].expiration
            for channel in channels.values()
            if (slot := channel.partner.slot_of.get(secrethash)) is not None
            and slot in channel.partner.locks
        ]
        return PRIORITY_DEADLINE, min(expiries) if expiries else None  # registered <= expiration
    if isinstance(event, ev.ContractSendChannelWithdraw):
        return PRIORITY_CLOSE, int(event.expiry)
    if isinstance(event, ev.ContractSendChannelClose):
        return PRIORITY_CLOSE, None
    if isinstance(event, ev.ContractSendChannelDeposit):
        return PRIORITY_ROUTINE, None
    return PRIORITY_SETTLE, None


# ------------------------------------------------------------------------------ the trio shell


class Durable(Protocol):
    """Where the manager records what it signed (the node's outbox, in its commit groups)."""

    def record(self, key: str, record: OutboxTransaction) -> None: ...
    async def flush(self) -> None: ...
    def done(self, key: str) -> None: ...


Outcome = Callable[[str, str, "Receipt | ChainError"], None]
Sent = Callable[[str, str], None]

# a node that did not answer (refused, reset, timed out): the request may be tried again
NODE_UNREACHABLE = (
    OSError,
    ProviderConnectionError,
    RequestTimedOut,
    TimeExhausted,
    BatchTransportError,
)


def _raw_fees(fees: Fees) -> raw_tx.Fees:
    if fees.priority_fee is None:
        return raw_tx.Fees(gas_price=fees.price)
    return raw_tx.Fees(max_fee=fees.price, max_priority_fee=fees.priority_fee)


def _fees_of(fees: raw_tx.Fees) -> Fees:
    if fees.gas_price is not None:
        return Fees(fees.gas_price, None)
    assert fees.max_fee is not None and fees.max_priority_fee is not None
    return Fees(fees.max_fee, fees.max_priority_fee)


@dataclass(frozen=True, slots=True)
class _Checked:
    """What one batched check of a chunk found (worker thread -> trio)."""

    fees: Fees
    passed: list[tuple[Job, int]]  # with the nonce reserved for each
    doomed: list[tuple[Job, ChainError]]
    unknown: list[tuple[Job, Exception]]  # the node could not say: checked again next round


class TransactionManager:
    """Sends one account's transactions through `connection` (see the module docstring).

    `submit` queues one; `run` does the work forever. `outcome(key, kind, receipt | error)` is
    called once per transaction: when mined (successful or reverted) or refused for good;
    `on_sent(key, kind)` once, when the node first takes it. With `batch` each chunk (`chunk`
    transactions) is checked, signed and sent in bulk.
    """

    def __init__(
        self,
        connection: Connection,
        account: LocalAccount,
        durable: Durable,
        abi: ContractAbi,
        *,
        lock: trio.Lock | None = None,
        confirmations: int = 0,
        stall_blocks: int = DEFAULT_STALL_BLOCKS,
        risk_blocks: int = DEFAULT_RISK_BLOCKS,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        poll_interval: float = 0.5,
        outcome: Outcome | None = None,
        batch: ChainBatch | None = None,
        chunk: int = CHUNK,
        on_sent: Sent | None = None,
    ) -> None:
        if chunk < 1:
            raise ValueError("chunk >= 1")
        self.connection = connection
        self.account = account
        self.address = bytes.fromhex(account.address[2:])
        self.durable = durable
        self.abi = abi
        self.lock = lock or trio.Lock()
        self.poll_interval = poll_interval
        self.scheduler = Scheduler(
            confirmations=confirmations,
            stall_blocks=stall_blocks,
            risk_blocks=risk_blocks,
            max_in_flight=max_in_flight,
        )
        self.outcome = outcome
        self.on_sent = on_sent
        self.batch = batch
        self.chunk = chunk
        # the batched path signs with coincurve (`raw_tx`); the key stays the account's
        self._signer = LocalSigner(bytes(account.key)) if batch is not None else None
        self.head = -1
        self.replacements = 0
        self.resent_after_reorg = 0
        self.send_seconds = 0.0  # spent checking, signing, recording and sending new ones
        self._wake = trio.Event()
        self._unflushed = False  # signed versions recorded but not yet durable
        self._deferred: set[str] = set()  # checks the node could not answer, this round

    # -- queueing

    def submit(
        self,
        key: str,
        kind: str,
        call: PreparedCall,
        priority: int,
        deadline: int | None,
        gas: int | None = None,
    ) -> None:
        """Queue the transaction `call` under the durable key `key` (the same key twice: once).
        `gas`: its gas limit, with no estimate; an eth_call on the head's state checks it
        before it is signed instead (one that reverts is refused for good, unsent)."""
        if gas is not None and gas <= 0:
            raise ValueError(f"{key}: gas must be above 0, got {gas}")
        self.scheduler.add(
            Job(
                key=key,
                kind=kind,
                function=call.function,
                to=call.to,
                data=call.data,
                priority=priority,
                deadline=deadline,
                gas=gas,
                check=gas is not None,
            )
        )
        self._wake.set()

    def restore(self, key: str, record: OutboxTransaction, check: bool = False) -> None:
        """A transaction signed before a restart (its outbox record): same nonce, sent again.
        `check`: it was submitted with its gas (should its nonce be lost and it be signed
        anew, an eth_call checks it first, as at submit)."""
        self.scheduler.restore(key, record).check = check
        self._wake.set()

    @property
    def pending(self) -> int:
        """Transactions not yet mined with confirmations (nor refused)."""
        return len(self.scheduler)

    def holds(self, key: str) -> bool:
        """Whether transaction `key` is queued or in flight (not yet let go)."""
        return key in self.scheduler.jobs

    # -- running

    async def _rpc(self, function: Callable[..., T], *args: Any) -> T:
        """One chain request in a worker thread, holding the chain lock for it only."""
        async with self.lock:
            return await trio.to_thread.run_sync(function, *args)

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Forever: rounds of sign, record, send, look up, confirm, replace, warn."""
        outage = ChainOutage(self.poll_interval)
        task_status.started()
        while True:
            if not len(self.scheduler):
                await self._wake.wait()
            self._wake = trio.Event()
            try:
                await self.round()
            except Exception as exc:  # a node down (or answering nonsense): later, never dead
                level, retry = outage.failed(trio.current_time())
                unreachable = isinstance(exc, NODE_UNREACHABLE)
                if level or not unreachable:
                    lvl = level or "warning"
                    getattr(log, "error" if lvl == "error" else "warning")(
                        "transactions: the chain request failed (%s: %s); %d transactions wait, "
                        "trying again in %.1f s",
                        type(exc).__name__,
                        exc,
                        len(self.scheduler),
                        retry,
                        exc_info=not unreachable,
                    )
                await trio.sleep(retry)
                continue
            ended = outage.recovered(trio.current_time())
            if ended is not None:
                log.warning("transactions: the chain answers again after %.1f s", ended)
            with trio.move_on_after(self.poll_interval):
                await self._wake.wait()

    async def round(self) -> None:
        """One pass over every job (raises when the node does not answer: nothing is lost)."""
        sched = self.scheduler
        self._deferred = set()
        self.head = head = int(await self._rpc(self.connection.block_number))
        await self._broadcast(head)  # what an earlier round signed (or a restart restored)
        # most urgent first, a chunk at a time: the first updates leave while later ones are
        # still being estimated (a block full of closes is answered from its first block on)
        started = time.monotonic()
        while await self.sign_queued(self.chunk):
            await self._broadcast(head)
            now = time.monotonic()
            self.send_seconds += now - started
            started = now
        mined_count = await self._rpc(self.connection.account_nonce, self.account.address)
        await self._look_up_all(sched.to_look_up(mined_count))
        await self._confirm_all(sched.to_confirm(head), head)
        await self._replace_stalled(head)
        for job in sched.at_risk(head):
            log.error(
                "transaction at risk: %s (%s) must be mined by block %d, head is %d, %s%s",
                job.kind,
                job.key,
                job.deadline,
                head,
                job.stage.value,
                "" if job.nonce is None else f" with nonce {job.nonce}",
            )

    async def sign_queued(self, limit: int | None = None) -> int:
        """Sign and record the most urgent queued transactions (at most `limit`); they leave
        once their records are durable (`_broadcast`). Returns how many were taken up."""
        sched = self.scheduler
        jobs = [job for job in sched.to_sign() if job.key not in self._deferred][:limit]
        if not jobs:
            return 0
        if self.batch is not None:
            return await self._sign_batched(jobs)
        fees = await self._rpc(self.connection.current_fees)
        floor = sched.nonce_floor()
        for job in jobs:
            try:  # one worker-thread hop (and one hold of the lock) for both requests
                gas, nonce = await self._rpc(self._gas_and_nonce, job, floor)
            except ChainError as exc:  # doomed now: costs nothing, nothing to send
                self._doomed(job, exc)
                continue
            job.gas = gas
            self._sign(job, nonce, fees)
            floor = nonce + 1
        return len(jobs)

    def _doomed(self, job: Job, error: ChainError) -> None:
        """`job` would revert now: refused for good before it took a nonce."""
        self.scheduler.finish(job)
        self.durable.done(job.key)
        self._report(job, error)

    def _gas_and_nonce(self, job: Job, floor: int) -> tuple[int, int]:
        """(gas to send `job` with, a reserved nonce): the estimate (or, for a job whose gas is
        given, an eth_call) first, so a doomed call takes no nonce (worker thread)."""
        gas = self._gas_of(job)
        return gas, self.connection.reserve_nonce(self.account.address, floor)

    def _gas_of(self, job: Job) -> int:
        """Its given gas once an eth_call passed, or the estimate (worker thread);
        `ChainError` when it would revert now."""
        if job.check:
            self.connection.call(job.to, job.data, self.abi, job.function, sender=self.address)
        if job.gas is not None:
            return job.gas
        args = (self.account.address, job.to, job.data, self.abi, job.function, job.value)
        try:  # on the head's state: a node estimating on "pending" runs its whole pool
            return self.connection.estimate_with_margin(*args, "latest")
        except ChainError:  # maybe valid only from the next block on, or after ours
            return self.connection.estimate_with_margin(*args)

    async def _sign_batched(self, jobs: list[Job]) -> int:
        """The batched path: check the chunk in one request (estimate those without a gas),
        reserve nonces, sign them all off the trio thread, record them."""
        found = await self._rpc(self._check_chunk, jobs, self.scheduler.nonce_floor())
        for job, error in found.doomed:
            self._doomed(job, error)
        for job, exc in found.unknown:
            self._deferred.add(job.key)
            text = f"{type(exc).__name__}: {exc}"
            if text != job.send_error:  # once, not every round
                job.send_error = text
                log.warning(
                    "%s (%s): the node could not check it (%s); trying again next round",
                    job.kind,
                    job.key,
                    text,
                )
        if found.passed:
            signed = await trio.to_thread.run_sync(self._sign_raw_all, found.passed, found.fees)
            for (job, nonce), (raw, tx_hash) in zip(found.passed, signed, strict=True):
                self._signed(job, nonce, found.fees, raw, tx_hash)
        return len(found.passed) + len(found.doomed)

    def _check_chunk(self, jobs: list[Job], floor: int) -> _Checked:
        """Worker thread: one batched eth_call per target of the jobs whose gas is given (an
        estimate each for the others), then a nonce for each that passed, in order."""
        assert self.batch is not None
        passing: list[Job] = []
        doomed: list[tuple[Job, ChainError]] = []
        unknown: list[tuple[Job, Exception]] = []
        fees: Fees | None = None
        by_target: dict[bytes, list[Job]] = {}
        for job in jobs:
            if job.check and job.value == 0:  # eth_call in bulk (batch_rpc calls carry no value)
                by_target.setdefault(job.to, []).append(job)
        for target, group in by_target.items():
            prepared, results = self.batch.prepare(
                self.address, target, [job.data for job in group]
            )
            fees = _fees_of(prepared.fees)
            for job, result in zip(group, results, strict=True):
                if not isinstance(result, Exception):
                    passing.append(job)
                elif is_revert(result):
                    doomed.append((job, chain_error_from(result, self.abi, job.function)))
                else:
                    unknown.append((job, result))
        for job in jobs:
            if job.check and job.value == 0:
                continue
            try:
                job.gas = self._gas_of(job)
            except ChainError as exc:
                doomed.append((job, exc))
                continue
            passing.append(job)
        if fees is None:
            fees = self.connection.current_fees()
        passing.sort(key=Job.order)
        passed = []
        for job in passing:
            nonce = self.connection.reserve_nonce(self.account.address, floor)
            passed.append((job, nonce))
            floor = nonce + 1
        return _Checked(fees, passed, doomed, unknown)

    def _sign_raw_all(self, items: list[tuple[Job, int]], fees: Fees) -> list[tuple[bytes, bytes]]:
        """Worker thread: sign each job with its nonce (no chain request)."""
        return [self._sign_raw(job, nonce, fees) for job, nonce in items]

    def _sign_raw(self, job: Job, nonce: int, fees: Fees) -> tuple[bytes, bytes]:
        assert job.gas is not None
        if self._signer is None:
            return self.connection.sign_call(
                self.account, job.to, job.data, job.value, job.gas, nonce, fees
            )
        signed = raw_tx.sign_transaction(
            self._signer,
            chain_id=self.connection.chain_id,
            nonce=nonce,
            gas=job.gas,
            fees=_raw_fees(fees),
            to=job.to,
            data=job.data,
            value=job.value,
        )
        return signed.raw, signed.transaction_hash

    def _sign(self, job: Job, nonce: int, fees: Fees) -> None:
        raw, tx_hash = self._sign_raw(job, nonce, fees)
        self._signed(job, nonce, fees, raw, tx_hash)

    def _signed(self, job: Job, nonce: int, fees: Fees, raw: bytes, tx_hash: bytes) -> None:
        self.scheduler.signed(job, nonce, fees, raw, tx_hash)
        self.durable.record(job.key, job.record())
        self._unflushed = True

    async def _broadcast(self, head: int) -> None:
        if self._unflushed:  # durable first: no raw transaction leaves before its record
            await self.durable.flush()
            self._unflushed = False
        jobs = self.scheduler.to_broadcast()
        if not jobs:
            return
        if self.batch is not None:  # every one in one request, by nonce
            answers = await self._rpc(self.batch.send_raw, [job.raws[-1] for job in jobs])
            for job, answer in zip(jobs, answers, strict=True):
                failure = (
                    send_failure(answer, self.abi, job.function)
                    if isinstance(answer, Exception)
                    else None
                )
                await self._answered(job, head, failure)
            return
        for job in jobs:
            try:
                await self._rpc(self.connection.broadcast, job.raws[-1], self.abi, job.function)
            except (NonceTakenError, UnderpricedError, ChainError) as exc:
                await self._answered(job, head, exc)
                continue
            await self._answered(job, head, None)

    async def _answered(self, job: Job, head: int, failure: Exception | None) -> None:
        """What the node's answer to a send of `job` means for it."""
        if failure is None or isinstance(failure, NonceTakenError):
            # taken (or mined already, ours or another's: the look-up tells)
            self.scheduler.accepted(job, head)
            job.send_error = None
            if not job.went_out and failure is None:
                job.went_out = True
                if self.on_sent is not None and not job.filler:
                    self.on_sent(job.key, job.kind)
            return
        if isinstance(failure, UnderpricedError):  # the base fee jumped: double, same nonce
            current = await self._rpc(self.connection.current_fees)
            fees = bumped(job.fees or current, current, 2, 1)
            if fees is None:  # free gas: no bump can help; the same bytes again (said once)
                text = f"{type(failure).__name__}: {failure}"
                if text != job.send_error:
                    job.send_error = text
                    log.warning(
                        "%s (%s): the node refused nonce %s at zero fees on a free-gas chain (%s):"
                        " another transaction of the account holds it (the look-up will tell),"
                        " or the node's minimum gas price is above 0; sending it again",
                        job.kind,
                        job.key,
                        job.nonce,
                        text,
                    )
                return
            if job.nonce is not None:
                log.warning(
                    "%s (%s): the node refused its fees (%s); signing nonce %d again at %d wei/gas",
                    job.kind,
                    job.key,
                    failure,
                    job.nonce,
                    fees.price,
                )
                self._sign(job, job.nonce, fees)  # goes out next round, once recorded
                self.replacements += 1
            return
        if isinstance(failure, ChainError):  # the node ran it and refused it: its nonce is free
            released = await self._rpc(
                self.connection.release_nonce, self.account.address, job.nonce or 0
            )
            filler = self.scheduler.refused(job, released, self.address)
            if filler is not None:  # goes out next round, once recorded
                self._sign(filler, filler.nonce or 0, job.fees or Fees(0))
            self.durable.done(job.key)
            self._report(job, failure)
            return
        # not taken for another reason (no gas money, a full pool): the same version again
        # next round; its nonce stays its own
        text = f"{type(failure).__name__}: {failure}"
        if text != job.send_error:
            job.send_error = text
            log.warning(
                "%s (%s): the node did not take nonce %s (%s); sending it again",
                job.kind,
                job.key,
                job.nonce,
                text,
            )

    async def _look_up_all(self, jobs: list[Job]) -> None:
        if not jobs:
            return
        if self.batch is None:
            for job in jobs:
                await self._look_up(job)
            return
        hashes = [tx_hash for job in jobs for tx_hash in job.hashes]
        receipts = await self._rpc(self.batch.receipts, hashes)
        by_hash = dict(zip(hashes, receipts, strict=True))
        for job in jobs:
            found = next(
                ((h, r) for h in reversed(job.hashes) if (r := by_hash.get(h)) is not None),
                None,
            )
            if found is None:
                await self._nonce_lost(job)
                continue
            tx_hash, receipt = found
            await self._found_mined(job, tx_hash, receipt.as_web3())

    async def _look_up(self, job: Job) -> None:
        for tx_hash in reversed(job.hashes):
            receipt = await self._rpc(self.connection.receipt, tx_hash)
            if receipt is not None:
                await self._found_mined(job, tx_hash, receipt)
                return
        await self._nonce_lost(job)

    async def _found_mined(self, job: Job, tx_hash: bytes, receipt: Any) -> None:
        succeeded = int(receipt["status"]) == 1
        self.scheduler.mined(job, int(receipt["blockNumber"]), tx_hash, succeeded)
        await self._report_mined(job, receipt)
        if self.scheduler.confirmations == 0:  # trusted once mined
            self.scheduler.finish(job)
            self.durable.done(job.key)

    async def _nonce_lost(self, job: Job) -> None:
        log.warning(
            "%s (%s): nonce %s was used by another transaction; signing it again",
            job.kind,
            job.key,
            job.nonce,
        )
        await self._rpc(self.connection.forget_nonces, self.account.address)
        self.scheduler.nonce_lost(job)

    async def _confirm_all(self, jobs: list[Job], head: int) -> None:
        if not jobs:
            return
        if self.batch is None:
            for job in jobs:
                assert job.mined_hash is not None
                receipt = await self._rpc(self.connection.receipt, job.mined_hash)
                self._confirmed(job, head, receipt)
            return
        hashes = [job.mined_hash or b"" for job in jobs]
        receipts: list[MinedReceipt | None] = await self._rpc(self.batch.receipts, hashes)
        for job, found in zip(jobs, receipts, strict=True):
            self._confirmed(job, head, None if found is None else found.as_web3())

    def _confirmed(self, job: Job, head: int, receipt: Any | None) -> None:
        """`job`, mined, `confirmations` deep by its old block: its receipt now (None: gone)."""
        if receipt is None:
            # a reorganisation dropped it: the same signed bytes go out again (same nonce)
            log.warning(
                "%s (%s) was mined in block %s, which the chain dropped: sending it again",
                job.kind,
                job.key,
                job.mined_at,
            )
            self.resent_after_reorg += 1
            self.scheduler.dropped(job)
            return
        block = int(receipt["blockNumber"])
        if block != job.mined_at:  # re-mined in another block: count again from there
            assert job.mined_hash is not None
            self.scheduler.mined(job, block, job.mined_hash, int(receipt["status"]) == 1)
            if head < block + self.scheduler.confirmations:
                return
        self.scheduler.finish(job)
        self.durable.done(job.key)

    async def _replace_stalled(self, head: int) -> None:
        stalled = self.scheduler.stalled(head)
        if not stalled:
            return
        current = await self._rpc(self.connection.current_fees)
        for job in stalled:
            assert job.fees is not None and job.nonce is not None
            fees = bumped(job.fees, current)
            if fees is None:  # no fees on this chain: the same bytes again
                job.stage = Stage.SIGNED
                continue
            log.warning(
                "%s (%s) not mined %d blocks after it went out: replacing nonce %d at %d wei/gas",
                job.kind,
                job.key,
                head - (job.sent_at or head),
                job.nonce,
                fees.price,
            )
            self._sign(job, job.nonce, fees)
            self.replacements += 1
        await self._broadcast(head)

    async def _report_mined(self, job: Job, receipt: Any) -> None:
        if job.filler:
            return
        if job.succeeded:
            self._report(job, self.connection.receipt_of(receipt, self.abi))
            return
        error = await self._rpc(
            self.connection.failure_of,
            self.account.address,
            job.to,
            job.data,
            job.value,
            receipt,
            self.abi,
            job.function,
        )
        self._report(job, error)

    def _report(self, job: Job, result: Receipt | ChainError) -> None:
        if job.reported or job.filler:
            return
        job.reported = True
        if self.outcome is not None:
            self.outcome(job.key, job.kind, result)


def restorable(items: Iterable[tuple[str, object]]) -> list[tuple[str, OutboxTransaction]]:
    """The signed transactions among outbox items (key, item)."""
    return [(key, item) for key, item in items if isinstance(item, OutboxTransaction)]

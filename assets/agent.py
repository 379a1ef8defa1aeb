"""The pay-per-use asset agent: meter event → price → charge the user → ledger entry → shares.

An `AssetAgent` is what a washing machine (milk robot, car) runs beside its channel `Agent`. For
each meter event it:

1. checks it (`MeterGuard`: duplicates are answered as before, bad or out-of-order readings and
   unknown users are rejected and change nothing) and prices it by the tariff;
2. records it durably as accepted, then charges the user through the hub (an invoice the user's
   agent pays). A prepaid event is answered only once paid: no payment, no cycle (the invoice is
   withdrawn first, so a late payment is refused). A postpaid one is answered once accepted;
3. appends the use to the asset's revenue ledger (hash-chained, signed by the asset key; the user
   appears under a per-asset pseudonym) in the same commit that marks the use ledgered, and sends
   the user the entry as its receipt;
4. pays every beneficiary its exact share (largest remainder, `channels.core.splits`) as a real
   routed payment; a share is retried until it is paid. The routing fees of the shares are the
   asset's own cost, never taken from a share: before paying shares the agent keeps a float of its
   own money in its channel with the hub (`assets.fee_float`; the deposit is made by the
   `FloatFunder` it is given). A failed attempt is recorded in the use book (what is owed, to
   whom, why), and the next attempt uses the next payment id.

Payment ids are `assets.payment_ids`: deterministic, so charges and shares are idempotent.

Restarts: every use that is not final resumes from the use book; charges and shares are idempotent
by payment id, so a restart never charges twice and never skips a share. A share resumes with the
first attempt id not known to have failed, at once (an id that failed is never tried again).

This module must never reveal or move money except through `Agent`, never append a ledger entry
for a use that was not paid in full, and never pay a share that is not in the ledger.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal, TypeVar

import trio

from assets.fee_float import float_top_up
from assets.ledger import (
    AdmissionBody,
    ServiceBody,
    Share,
    SignedEntry,
    UseBody,
    make_entry,
    make_use_entry,
    pseudonym,
    pseudonym_seed,
)
from assets.ledger_store import LedgerStore
from assets.meter import MeterEvent, MeterGuard
from assets.meter_sources import Outcome
from assets.payment_ids import ATTEMPT_SHIFT, MAX_ATTEMPTS, charge_payment_id, share_payment_id
from assets.service_events import ServiceEventError, ServiceRules, service_event_from_json
from assets.tariff import Tariff, price_use
from assets.use_book import FloatState, ServiceRulesState, ShareFailure, UseBook, UseRow
from channels import wire
from channels.agent import PAYMENT_FACT, Agent, ChargeNotPaidError, PaymentError
from channels.codec.eip712 import Domain
from channels.core.channel import get_capacity
from channels.core.splits import Split, split_fee
from channels.core.types import Address
from channels.records import PaymentRecord

log = logging.getLogger(__name__)
T = TypeVar("T")

OutcomeStatus = Literal["charged", "accepted", "duplicate", "rejected", "refused"]
_OUTCOME_OF_STATUS: dict[str, OutcomeStatus] = {
    "accepted": "accepted",
    "ledgered": "charged",
    "paid": "charged",
    "refused": "refused",
}

RECEIPT_WAIT = 10.0  # seconds a resumed use waits for the hub before resending its receipt
SHARE_RETRY = 1.0  # seconds before a failed share is tried again (doubling, at most 30 s)
DEFAULT_IN_FLIGHT = 256
DEFAULT_CHARGE_TIMEOUT = 30.0
FUTURE_SLACK_S = 300  # seconds a service event may be dated ahead of our clock

# raise our total deposit in the channel with the hub to this (channel id, total); True once it
# landed, False when it could not be made (logged by the funder)
FloatFunder = Callable[[int, int], Awaitable[bool]]


@dataclass
class AssetStats:
    """Counters since start."""

    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    refused: int = 0
    ledgered: int = 0
    shares_paid: int = 0
    share_retries: int = 0
    routing_fees: int = 0  # paid by the asset for its shares
    float_top_ups: int = 0  # deposits made to keep the fee float
    latencies: list[float] = field(default_factory=list)  # seconds, accepted to ledgered
    paid_latencies: list[float] = field(default_factory=list)  # seconds, accepted to all paid


@dataclass(frozen=True)
class AssetConfig:
    """What one asset agent needs besides its channel agent and its ledger."""

    asset_id: bytes
    domain: Domain  # the asset registry's EIP-712 domain
    tariff: Tariff
    split: Split
    known_user: Callable[[bytes], bool]
    charge_timeout: float = DEFAULT_CHARGE_TIMEOUT
    in_flight: int = DEFAULT_IN_FLIGHT
    clock: Callable[[], float] = time.time
    # beneficiaries paid on chain at settlement, not over a channel (contracts: financing pools);
    # their shares are kept by the agent and recorded with payment id 0
    kept: frozenset[bytes] = frozenset()
    # own money kept in the channel with the hub for the routing fees of the shares (token
    # units; 0: none); topped up by `funder` (`assets.fee_float`)
    fee_float: int = 0
    funder: FloatFunder | None = None


class AssetAgent:
    """Meters, charges, ledgers and pays shares for one asset (see the module docstring)."""

    def __init__(self, agent: Agent, ledger: LedgerStore, config: AssetConfig) -> None:
        if len(config.asset_id) != 32:
            raise ValueError("an asset id is 32 bytes")
        self.agent = agent
        self.ledger = ledger
        self.book = UseBook(ledger.db)
        self.config = config
        self.split = config.split
        self.address = agent.service.address
        self.stats = AssetStats()
        self._seed = pseudonym_seed(agent.service.signer.sign_digest, config.asset_id)
        self.guard = MeterGuard(
            max_units=config.tariff.max_units, seen=self._seen, state=self.book.guard_state()
        )
        self._payees: dict[bytes, tuple[int, int]] = self.book.payees()
        self._slots = trio.Semaphore(config.in_flight)
        self._owed = 0  # share amounts being paid and not paid yet (not spare for fees)
        self._float_lock = trio.Lock()
        # one ledger append at a time: it reads the head, then waits for its write to be durable
        self._append_lock = trio.Lock()
        self._nursery: trio.Nursery | None = None
        self.on_paid: Callable[[UseRow], None] | None = None  # called as each use is paid
        saved = self.book.service_rules()
        self._service_rules = (
            ServiceRules()
            if saved is None
            else ServiceRules(saved.admitted, saved.last_service_time, saved.ended_at_seq)
        )

    def _seen(self, event_id: str) -> MeterEvent | None:
        row = self.book.use(event_id)
        return None if row is None else row.event

    # -- running ---------------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Resume every unfinished use, then serve `handle` until cancelled."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            for use in self.book.open_uses():
                await self._slots.acquire()
                nursery.start_soon(self._resume, use)
            task_status.started()
            await trio.sleep_forever()

    async def wait_settled(self) -> None:
        """Until no use is under way (every accepted use charged or refused, its shares paid)."""
        for _ in range(self.config.in_flight):
            await self._slots.acquire()
        for _ in range(self.config.in_flight):
            self._slots.release()

    # -- service events ---------------------------------------------------------------------------

    async def _write(self, write: Callable[[], T]) -> T:
        """A write to the ledger file (ledger and use book), made durable in the node's commit
        thread with its next group (`NodeService.write_durably`), never on this thread."""
        return await self.agent.service.write_durably(write)

    async def record_service(self, body: ServiceBody) -> int:
        """Append a servicer's signed event (counter-signed by our entry); its ledger seq.

        `ServiceEventError` (nothing changed) when the servicer did not sign it, may not record
        events for this asset, dates it before the previous one or in the future, or its id is
        taken. The same event again returns its seq (idempotent)."""
        async with self._append_lock:  # checked against the ledger as it will be appended to
            return await self._record_service_now(body)

    async def _record_service_now(self, body: ServiceBody) -> int:
        earlier = self.book.service_event_seq(body.event_id)
        if earlier is not None:
            entry = self.ledger.entry(earlier)
            if entry is not None and entry.decode_body() == body:
                return earlier
            raise ServiceEventError(f"event id {body.event_id!r} is already used at seq {earlier}")
        if self.book.use(body.event_id) is not None:
            raise ServiceEventError(f"event id {body.event_id!r} is already used by a use")
        if body.time > self.config.clock() + FUTURE_SLACK_S:
            raise ServiceEventError(f"dated {body.time}, in the future")
        splits = {self.split.version: self.split}
        self._service_rules.check(body, self.config.asset_id, self.config.domain, splits)
        return await self._append_event(body, body.time)

    async def service_json(self, document: object) -> tuple[int, dict[str, object]]:
        """The HTTP `POST /service` route: a servicer's signed event as JSON → (status, answer)."""
        try:
            seq = await self.record_service(service_event_from_json(document))
        except ServiceEventError as exc:
            return 400, {"error": str(exc)}
        return 200, {"recorded": True, "seq": seq}

    async def admit_servicer(
        self, servicer: bytes, *, admitted: bool = True, note: str = ""
    ) -> int:
        """Admit (or remove) a servicer that is not in the split; the admission's ledger seq."""
        async with self._append_lock:
            event_id = f"admission-{servicer.hex()}-{self.ledger.count() + 1}"
            body = AdmissionBody(event_id, servicer, admitted, note)
            return await self._append_event(body, int(self.config.clock()))

    async def _append_event(self, body: ServiceBody | AdmissionBody, time: int) -> int:
        """Append a service or admission entry (the caller holds `_append_lock`)."""
        head = self.ledger.head()
        seq, prev = (1, bytes(32)) if head is None else (head[0] + 1, head[1])
        entry = make_entry(
            self.agent.service.signer.sign_digest,
            self.config.domain,
            asset_id=self.config.asset_id,
            seq=seq,
            prev_hash=prev,
            time=time,
            body=body,
        )
        rules = self._service_rules
        probe = ServiceRules(rules.admitted, rules.last_service_time, rules.ended_at_seq)
        probe.see(entry)
        state = ServiceRulesState(
            tuple(sorted(probe.admitted)), probe.last_service_time, probe.ended_at_seq
        )

        def write() -> None:
            with self.ledger.transaction():
                self.ledger.append(entry)
                self.book.record_service_event(body.event_id, seq, state)

        await self._write(write)
        rules.see(entry)  # only once it is durable: a failed write changes nothing
        return seq

    def set_split(self, split: Split, kept: Iterable[bytes] = ()) -> None:
        """A new split version (from the chain) applies to uses ledgered from now on; `kept`: its
        beneficiaries that are contracts (financing pools), whose shares the agent keeps from now
        on (a contract stays one: the kept set only grows)."""
        if split.version <= self.split.version:
            raise ValueError(f"split version {split.version} is not after {self.split.version}")
        added = frozenset(bytes(b) for b in kept)
        if not added <= frozenset(bytes(b) for b in split.beneficiaries):
            raise ValueError("a kept beneficiary is not in the new split")
        self.config = dataclasses.replace(self.config, kept=self.config.kept | added)
        self.split = split

    async def handle(self, event: MeterEvent) -> Outcome:
        """The meter sink: check, accept and process one event (see the module docstring)."""
        nursery = self._nursery
        if nursery is None:
            raise RuntimeError("the asset agent is not running (start `run` first)")
        await self._slots.acquire()  # before the check: nothing may slip in between
        verdict = self.guard.check(
            event, known_user=self.config.known_user, now=int(self.config.clock())
        )
        ended = self._service_rules.ended_at_seq
        if ended is not None and verdict.status == "accepted":
            self._slots.release()
            self.stats.rejected += 1
            reason = f"the asset reached its end of life (ledger seq {ended})"
            return Outcome(event_id=event.event_id, status="rejected", reason=reason)
        if verdict.status != "accepted":
            self._slots.release()
            if verdict.status == "duplicate":
                self.stats.duplicates += 1
                return self._outcome_of(event.event_id)
            self.stats.rejected += 1
            return Outcome(event_id=event.event_id, status="rejected", reason=verdict.reason)
        fee = price_use(self.config.tariff, event.units, event.at)
        charge_id = charge_payment_id(self.config.asset_id, event.event_id)
        self.guard.accept(event)
        guard_state = self.guard.snapshot()

        def accept() -> None:
            with self.ledger.transaction():
                self.book.accept(event, fee, charge_id, guard_state)

        try:
            await self._write(accept)
        except BaseException:
            self._slots.release()
            raise
        self.stats.accepted += 1
        use = UseRow(event, "accepted", fee, charge_id, None, "")
        if not event.prepaid:
            nursery.start_soon(self._run_use, use, trio.current_time(), None)
            return Outcome(event_id=event.event_id, status="accepted", fee=fee)
        answer: list[Outcome] = []
        answered = trio.Event()

        def reply(outcome: Outcome) -> None:
            answer.append(outcome)
            answered.set()

        nursery.start_soon(self._run_use, use, trio.current_time(), reply)
        await answered.wait()
        return answer[0]

    def _outcome_of(self, event_id: str) -> Outcome:
        row = self.book.use(event_id)
        assert row is not None
        status: OutcomeStatus = _OUTCOME_OF_STATUS[row.status]
        return Outcome(
            event_id=event_id, status=status, reason=row.reason, fee=row.fee, seq=row.seq or 0
        )

    # -- one use ----------------------------------------------------------------------------------

    async def _resume(self, use: UseRow) -> None:
        if use.status == "ledgered":
            entry = self.ledger.entry(use.seq or 0)
            if entry is None:
                raise RuntimeError(
                    f"use {use.event.event_id!r} is ledgered but seq {use.seq} is not"
                )
            try:
                # a stop right after the ledger commit may have kept the receipt from leaving:
                # send it again (the user keeps one per charge, so a copy changes nothing)
                with trio.move_on_after(RECEIPT_WAIT):
                    await self.agent.wait_ready()
                self._send_receipt(use, entry)
                await self._pay_shares(entry, use)
            finally:
                self._slots.release()
        else:
            await self._run_use(use, trio.current_time(), None)

    async def _run_use(
        self, use: UseRow, started: float, reply: Callable[[Outcome], None] | None
    ) -> None:
        """Charge, ledger (answering `reply` then: a prepaid machine starts), pay the shares;
        releases the use's slot at the end."""
        try:
            entry = None
            if use.fee == 0 or await self._charged(use):
                entry = await self._append(use)
                self.stats.latencies.append(trio.current_time() - started)
                self._send_receipt(use, entry)
            if reply is not None:
                reply(self._outcome_of(use.event.event_id))
            if entry is not None and await self._pay_shares(entry, use):
                self.stats.paid_latencies.append(trio.current_time() - started)
                if self.on_paid is not None:
                    self.on_paid(use)
        finally:
            self._slots.release()

    async def _charged(self, use: UseRow) -> bool:
        """Charge the user; False (and the use refused) when it did not pay in time."""
        user = Address(use.event.user_address)
        agent = self.agent
        while True:
            try:
                await agent.charge(
                    user, use.fee, use.charge_id, give_up_after=self.config.charge_timeout
                )
                return True
            except PaymentError as exc:
                if not use.event.prepaid and isinstance(exc, ChargeNotPaidError):
                    continue  # postpaid: the user owes it; keep asking
                if agent.cancel_invoice(user, use.charge_id):
                    # the withdrawal durable first (`wait_committed` may wake at the end of an
                    # earlier group's commit): a crash before it would leave an invoice the
                    # restarted agent accepts payment for, beside a use book saying refused
                    await agent.service.wait_durable()
                    await self._write(
                        functools.partial(
                            self._set_status, use.event.event_id, "refused", reason=str(exc)
                        )
                    )
                    self.stats.refused += 1
                    return False
                # the secret is out: the payment completes, wait for it

    def _set_status(
        self, event_id: str, status: str, *, seq: int | None = None, reason: str = ""
    ) -> None:
        """In the commit thread: a use's new status, in its own transaction."""
        with self.ledger.transaction():
            self.book.set_status(event_id, status, seq=seq, reason=reason)

    async def _append(self, use: UseRow) -> SignedEntry:
        """Append the use's ledger entry and mark it ledgered, in one commit."""
        async with self._append_lock:
            return await self._append_now(use)

    async def _append_now(self, use: UseRow) -> SignedEntry:
        split = self.split
        amounts = split_fee(use.fee, split)
        shares = []
        payees: dict[bytes, tuple[int, int]] = dict(self._payees)
        for beneficiary, amount in zip(split.beneficiaries, amounts, strict=True):
            payment_id = 0
            if amount > 0 and beneficiary != self.address and beneficiary not in self.config.kept:
                slot, count = payees.get(beneficiary, (len(payees) + 1, 0))
                payees[beneficiary] = (slot, count + 1)
                payment_id = share_payment_id(slot, count + 1)
            shares.append(Share(beneficiary=beneficiary, amount=amount, payment_id=payment_id))
        head = self.ledger.head()
        seq, prev = (1, bytes(32)) if head is None else (head[0] + 1, head[1])
        body = UseBody(
            event_id=use.event.event_id,
            user=pseudonym(self._seed, self.config.asset_id, use.event.user_address),
            units=use.event.units,
            fee=use.fee,
            split_version=split.version,
            shares=tuple(shares),
            charge_payment_id=use.charge_id,
        )
        entry = make_use_entry(
            self.agent.service.signer.sign_digest,
            self.config.domain,
            asset_id=self.config.asset_id,
            seq=seq,
            prev_hash=prev,
            time=use.event.at,
            body=body,
        )
        before = self._payees

        def write() -> None:
            with self.ledger.transaction():
                self.ledger.append(entry)
                self.book.set_status(use.event.event_id, "ledgered", seq=seq)
                for payee, (slot, count) in payees.items():
                    if before.get(payee) != (slot, count):
                        self.book.save_payee(payee, slot, count)

        await self._write(write)
        self._payees = payees
        self.stats.ledgered += 1
        return entry

    def _send_receipt(self, use: UseRow, entry: SignedEntry) -> None:
        """Send the user its use's ledger entry (through the hub; not resent but by `_resume`)."""
        sent = self.agent.service.send_routing(
            self.agent.hub,
            wire.UseReceipt(
                asset=self.address,
                user=use.event.user_address,
                payment_id=use.charge_id,
                entry=entry.encode(),
            ),
        )
        if not sent:
            log.info("receipt of use %r not sent: the hub is not connected", use.event.event_id)

    async def _pay_shares(self, entry: SignedEntry, use: UseRow) -> bool:
        """Pay every share of `entry` that is not paid yet, then mark the use paid (True)."""
        body = entry.decode_use_body()
        paid: list[bool] = []
        shares = [share for share in body.shares if share.payment_id]
        self._owed += sum(share.amount for share in shares)
        async with trio.open_nursery() as nursery:
            for share in shares:
                nursery.start_soon(self._pay_share, entry.seq, share, paid)
        if not all(paid):
            return False  # a share was given up on: the use stays open (resumed on restart)
        await self._write(lambda: self._set_status(use.event.event_id, "paid", seq=entry.seq))
        return True

    async def _pay_share(self, seq: int, share: Share, paid: list[bool]) -> None:
        """Pay one share until it is paid: a failed attempt (refused or expired, so no money
        moved) is recorded and followed by the next attempt id; one still under way is waited
        for. Attempt ids known to have failed (before a restart too) are skipped at once."""
        try:
            paid.append(await self._pay_share_attempts(seq, share))
        finally:
            self._owed -= share.amount

    async def _pay_share_attempts(self, seq: int, share: Share) -> bool:
        beneficiary = Address(share.beneficiary)
        delay = SHARE_RETRY
        attempt = failed_before = self.book.failed_attempts(share.payment_id)
        while attempt <= MAX_ATTEMPTS and self._known_failed(
            share.payment_id | attempt << ATTEMPT_SHIFT
        ):
            attempt += 1  # failed before we recorded it (a crash in between): skip it
        while attempt <= MAX_ATTEMPTS:
            payment_id = share.payment_id | attempt << ATTEMPT_SHIFT
            await self._keep_float()
            try:
                outcome = await self.agent.pay(beneficiary, share.amount, payment_id)
            except PaymentError as exc:
                if self._known_failed(payment_id):
                    attempt += 1
                    self.stats.share_retries += 1
                    await self._record_failure(seq, share, attempt, str(exc))
                log.warning("share %d to 0x%s not paid yet: %s", payment_id, beneficiary.hex(), exc)
                if attempt <= MAX_ATTEMPTS:
                    await trio.sleep(delay)
                    delay = min(delay * 2, 30.0)
                continue
            self.stats.shares_paid += 1
            self.stats.routing_fees += outcome.fee
            if attempt or failed_before:

                def clear() -> None:
                    with self.ledger.transaction():
                        self.book.clear_share_failure(share.payment_id)

                await self._write(clear)
            return True
        log.error(
            "share %d of seq %d to 0x%s: giving up after %d attempts (see `cise asset status`)",
            share.payment_id,
            seq,
            beneficiary.hex(),
            MAX_ATTEMPTS + 1,
        )
        return False

    def _known_failed(self, payment_id: int) -> bool:
        """Whether our agent recorded this payment id as failed (in memory or durably)."""
        record = self.agent.payments.get(payment_id)
        if record is None:
            record = self.agent.service.store.fact(f"{PAYMENT_FACT}{payment_id}")
        return isinstance(record, PaymentRecord) and record.status == "failed"

    async def _record_failure(self, seq: int, share: Share, attempts: int, reason: str) -> None:
        failure = ShareFailure(
            seq, share.payment_id, bytes(share.beneficiary), share.amount, attempts, reason
        )

        def write() -> None:
            with self.ledger.transaction():
                self.book.record_share_failure(failure)

        await self._write(write)

    async def _keep_float(self) -> None:
        """Top the fee float up (`assets.fee_float`) before a share is paid, when it is short."""
        funder = self.config.funder
        if funder is None or self.config.fee_float <= 0:
            return
        async with self._float_lock:  # one top-up at a time; the others wait for it
            channel = self.agent.service.channel_with(self.agent.hub)
            if channel is None:
                return
            capacity = get_capacity(channel.our, channel.partner)
            top_up = float_top_up(capacity, self._owed, self.config.fee_float)
            if top_up is None:
                return
            total = channel.our.deposit + top_up.increase
            log.info(
                "fee float: %d spare beside %d owed in channel %d; raising the deposit to %d",
                top_up.spare,
                self._owed,
                channel.channel_id,
                total,
            )
            if await funder(channel.channel_id, total):
                self.stats.float_top_ups += 1
            await self.record_float()

    async def record_float(self) -> FloatState | None:
        """Save the fee float as it is now in the use book (for `cise asset status`)."""
        channel = self.agent.service.channel_with(self.agent.hub)
        if channel is None:
            return None
        capacity = get_capacity(channel.our, channel.partner)
        state = FloatState(
            self.config.fee_float,
            capacity - self._owed,
            self._owed,
            channel.our.deposit,
            int(self.config.clock()),
        )

        def write() -> None:
            with self.ledger.transaction():
                self.book.save_float(state)

        await self._write(write)
        return state


__all__ = [
    "AssetAgent",
    "AssetConfig",
    "AssetStats",
]

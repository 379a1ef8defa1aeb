"""The client agent: what a user, an asset or a servicer runs to pay and be paid through a hub.

An `Agent` wraps a `NodeService` that holds one channel with the hub and gives it an async API:

- `pay(payee, amount, payment_id)`: asks the payee (through the hub) for an invoice, locks
  `amount` plus the hub's announced fee under the invoice's secrethash, and returns once the lock
  is unlocked (paid) or refused/expired (not paid). Payment ids make it idempotent: paying an id
  again returns the first payment's outcome, across restarts.
- `charge(payer, amount, payment_id)`: the payee side of a machine charging its user: sends the
  payer an invoice and returns once the payment arrived (the payer's `accept_charge` policy
  decides whether it pays unsolicited invoices).
- `received`: every payment received, as it becomes durable; `balances()`.

A payer obeys the network's governed limits itself (DESIGN: rights are enforced where money
moves): the shell keeps `governed_fee_cap` and `hub_problem` current from the chain
(`apply_governed_limits`), and each payment's fee, fixed when its lock is made, is checked against
the cap known at that moment before the lock leaves (`channels.core.fee_cap`).

The payee makes each secret (payee-generated secrets, DESIGN §3): it is derived from a signature
of the agent's own key over a fixed digest (deterministic, RFC 6979), the payer and the payment id,
so nothing secret is stored and a restarted payee still knows every secret it handed out. The
payee reveals a secret only for a lock that pays its invoice in full, and only once.

This module must never reveal a secret for a lock that does not pay an invoice in full, never
pay an invoice it did not ask for unless the policy accepts it, never lock a fee above the
governed hub fee cap it knows nor route through a hub it knows may not route, never report a
payment as paid, received or failed before the state change saying so is durable, and never send
an invoice (or a book, or a refusal) before the record it depends on is durable. Every record
(payments, invoices, receipts) is a fact in the node's store, written in the commit group of the
state change it belongs to: one commit pipeline per process
(docs/decisions/2026-12-07-one-commit-pipeline.md).
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import trio
from msgspec.structs import replace

from channels import wire
from channels.codec.eip712 import secrethash_of
from channels.codec.keccak import keccak
from channels.core import events as ev
from channels.core import state_changes as sc
from channels.core.channel import get_balance, get_capacity, get_earnings
from channels.core.fee_cap import route_fee_problem
from channels.core.fees import FeeSchedule
from channels.core.hub_terms import payee_lock_time_problem
from channels.core.state import BatchedBy, ChannelState
from channels.core.types import (
    UINT96_MAX,
    Address,
    BlockNumber,
    ChannelId,
    PaymentId,
    Secret,
    SecretHash,
    TokenAmount,
)
from channels.records import InvoiceRecord, PaymentRecord, ReceiptRecord
from channels.service import NodeService
from channels.tls import TlsConfig, require_tls_off_loopback
from channels.transport import Connection, TcpTransport

log = logging.getLogger(__name__)

INVOICE_RETRY = 1.0  # seconds between invoice requests while the payee does not answer
# after a payee (or the hub for it: the payee was offline) refused a book, single invoices for
# this long, then books again (a payee back from an outage serves books as before)
BOOK_RETRY = 2.0
# The hub's InvoiceRefused reason when the payee is offline: a fact about now, not the payee's
# decision, so the payer asks again (until it gives up) instead of failing the payment
PAYEE_OFFLINE = "the payee is not connected to this hub"
RECONNECT_MIN = 0.1  # seconds before the first reconnection attempt ...
RECONNECT_MAX = 2.0  # ... doubling up to this (a restarted hub is back within seconds)
SEED_DIGEST = keccak(b"CISE invoice secret seed v1")
PAYMENT_FACT = "payment:"
INVOICE_FACT = "invoice:"
RECEIPT_FACT = "receipt:"
FINAL = ("completed", "failed")
INVOICE_BOOK = 128  # open invoices asked for at once (payments to one payee in id order)
MAX_BOOKED = 4 * INVOICE_BOOK  # open invoices held per payee (ids skipped are forgotten)
MAX_BOOK_PAYEES = 1024  # payees we hold open invoices for (the least recently paid forgotten)
MAX_OPEN_PER_PAYER = 8 * INVOICE_BOOK  # open invoices a payee keeps unpaid for one payer
FINAL_OR_RECEIVED = ("completed", "failed", "received", "refused")

ChargePolicy = Callable[[Address, int, int], bool]  # (payee, amount, payment_id) -> pay it?
# (channel, total withdraw asked) -> sign it for the hub's settlement batch?
SettlementPolicy = Callable[[ChannelState, int], bool]


def settle_earnings(channel: ChannelState, total_withdraw: int) -> bool:
    """The default settlement policy: withdraw what we earned in the channel, never our own
    deposit (a payer's prepaid balance stays for its next payments)."""
    increase = total_withdraw - channel.our.withdrawn
    return 0 < increase <= get_earnings(channel.our, channel.partner)


class PaymentError(Exception):
    """A payment did not happen; the message says why. No money left the payer."""


class ChargeNotPaidError(PaymentError):
    """A charge was not paid within the time given; the invoice stays open (ask again, or
    withdraw it with `cancel_invoice`)."""


@dataclass(frozen=True, slots=True)
class PaymentOutcome:
    """A finished payment of ours."""

    payment_id: int
    payee: Address
    amount: int
    fee: int


@dataclass(frozen=True, slots=True)
class ReceivedPayment:
    """A payment we received in full."""

    payment_id: int
    payer: Address
    amount: int  # what the invoice asked for
    received: int  # what the lock carried (at least `amount`)


@dataclass(frozen=True, slots=True)
class ChannelBalance:
    """One channel as the agent sees it."""

    channel_id: int
    partner: Address
    status: str
    balance: int  # ours, unlocked
    capacity: int  # what we can still send
    partner_capacity: int  # what the partner can still send us
    pending_locks: int


def _refuse_never(payee: Address, amount: int, payment_id: int) -> bool:
    return False


_ENDS_A_PAYMENT = (ev.EventUnlockSent, ev.EventLockRefused, ev.EventLockExpired)

K = TypeVar("K")
R = TypeVar("R", bound=PaymentRecord | InvoiceRecord)
RECENT_RECORDS = 100_000  # finished records kept in memory; older ones are read from the store


class _Records(dict[K, R]):
    """Records by key, keeping at most RECENT_RECORDS finished ones in memory (the oldest go
    first; every record is durable in the store's facts, where lookups fall back to)."""

    def __setitem__(self, key: K, value: R) -> None:
        super().__setitem__(key, value)
        if len(self) > RECENT_RECORDS:
            for old in list(itertools.islice(self, 64)):
                if (
                    old != key  # the record just set: its waiter reads it next
                    and self[old].status in FINAL_OR_RECEIVED
                    and len(self) > RECENT_RECORDS
                ):
                    del self[old]


def _check_payment(party: bytes, amount: int, payment_id: int, give_up_after: float) -> None:
    """PaymentError unless the arguments can make a payment (or a charge) at all."""
    if not isinstance(party, bytes) or len(party) != 20:
        raise PaymentError("the other party must be a 20-byte address")
    if not all(isinstance(n, int) and not isinstance(n, bool) for n in (amount, payment_id)):
        raise PaymentError("the amount and the payment id must be integers")
    if not (isinstance(give_up_after, int | float) and 0 <= give_up_after <= math.inf):
        raise PaymentError("give_up_after must be a number of seconds, 0 or more")
    if not 0 < amount <= UINT96_MAX:
        raise PaymentError(f"the amount must be 1 .. {UINT96_MAX} (uint96)")
    if not 0 < payment_id < 2**64:
        raise PaymentError("a payment id is 1 .. 2**64 - 1")


class Agent:
    """Pays and gets paid through one hub (see the module docstring)."""

    def __init__(
        self,
        service: NodeService,
        hub: Address,
        *,
        accept_charge: ChargePolicy = _refuse_never,
        accept_settlement: SettlementPolicy = settle_earnings,
        blocks_from_hub: bool = False,
    ) -> None:
        self.service = service
        self.hub = hub
        self.accept_charge = accept_charge
        self.accept_settlement = accept_settlement
        # without a chain follower of our own, take the chain head from the hub's terms
        self.blocks_from_hub = blocks_from_hub
        self._signals: dict[int, trio.Event] = {}  # payment id -> set when its status changes
        # payee -> payment id -> secrethash of an open invoice held for it (payees in use order)
        self._book: dict[Address, dict[int, bytes]] = {}
        self._book_asked: dict[Address, int] = {}  # payee -> highest payment id asked for
        self._open_issued: dict[bytes, int] = {}  # payer -> open invoices issued and unpaid
        self._last_paid_id: dict[Address, int] = {}  # payee -> the payment id paid last
        self._no_books: dict[Address, float] = {}  # payee -> no books asked until (trio time)
        # why we are not connected to the hub (None while connected): for a clear report
        self.connection_problem: str | None = None
        self._hub_refusal: str | None = None  # the hub's reason for refusing this connection
        self._resent_ids: set[int] = set()  # messages resent at the last (re)connection
        self._waiting_for: dict[int, str] = {}  # payment id -> why it has no invoice yet
        # records written into the open commit group, reported once it is durable (secrethash ->)
        self._finishing: dict[bytes, PaymentRecord] = {}
        self._receiving: dict[bytes, InvoiceRecord] = {}
        self.terms: wire.HubTerms | None = None
        # why the hub's announced lock terms make every payment to us fail (None: they do not)
        self.lock_time_problem: str | None = None
        self.fees = FeeSchedule()
        self._terms_known = trio.Event()
        # the governed limits as the shell last read them from the chain (None: none known)
        self.governed_fee_cap: int | None = None
        self.hub_problem: str | None = None  # why our hub may not route (not a hub member)
        self._seed = keccak(service.signer.sign_digest(SEED_DIGEST))
        self.payments: _Records[int, PaymentRecord] = _Records(
            {
                record.payment_id: record
                for _, record in service.store.facts(PAYMENT_FACT)
                if isinstance(record, PaymentRecord)
            }
        )
        self._payment_by_hash: dict[bytes, int] = {
            r.secrethash: r.payment_id
            for r in self.payments.values()
            if r.secrethash and r.status not in FINAL
        }
        self.invoices: _Records[bytes, InvoiceRecord] = _Records(
            {
                record.secrethash: record
                for _, record in service.store.facts(INVOICE_FACT)
                if isinstance(record, InvoiceRecord)
            }
        )
        self._invoice_done: dict[bytes, trio.Event] = {}
        self._received_send, self.received = trio.open_memory_channel[ReceivedPayment](math.inf)
        service.deciders.append(self._decide)
        service.listeners.append(self._on_durable)
        service.on_routing = self._on_routing

    # -- connection -----------------------------------------------------------------------------

    async def run_connection(self, transport_open: Callable[[], object]) -> None:
        """Keep a connection to the hub, reconnecting with backoff (RECONNECT_MIN doubling up
        to RECONNECT_MAX); never returns. Each (re)connection first resends what the hub has not
        acknowledged (the service's durable outbox); `connection_problem` says why we are not
        connected meanwhile."""
        delay = RECONNECT_MIN
        while True:
            self._hub_refusal = None
            try:
                async with transport_open() as connection:  # type: ignore[attr-defined]
                    self._resent_ids = set(self.service.unacked.get(self.hub, ()))
                    await self.service.attach(connection)
                problem = "the hub closed the connection"
            except (OSError, trio.BrokenResourceError) as exc:
                problem = f"cannot reach the hub: {exc}"
            except Exception as exc:  # a transport error: reconnect
                problem = f"the hub connection failed: {exc}"
            if self._hub_refusal is not None:
                problem = f"the hub refused us: {self._hub_refusal}"
            self.connection_problem = problem
            log.info("%s (reconnecting in %.1f s)", problem, delay)
            if self._terms_known.is_set():  # a good connection ended: start the backoff anew
                self._terms_known = trio.Event()
                delay = RECONNECT_MIN
            await trio.sleep(delay)
            delay = min(delay * 2, RECONNECT_MAX)

    def start(
        self,
        nursery: trio.Nursery,
        hub_port: int,
        *,
        host: str = "127.0.0.1",
        tls: TlsConfig | None = None,
    ) -> None:
        """Run this agent in `nursery`: its commit loop, and a connection to the hub at
        host:hub_port (authenticated as `self.hub`, reconnecting when it drops); over TLS with
        `tls` (required for a host that is not a loopback address: PlainTransportRefusedError
        here, before anything starts)."""
        require_tls_off_loopback(host, tls, "connect to")
        service = self.service
        transport = TcpTransport(service.signer, wire, service.dispatch_table().lookup(), tls=tls)
        nursery.start_soon(service.run_commits)
        nursery.start_soon(
            self.run_connection,
            lambda: transport.open_connection(host, hub_port, expected_peer=self.hub),
        )

    async def wait_ready(self) -> wire.HubTerms:
        """Until the hub has announced its terms on the current connection (however many
        attempts that takes; bound it with a timeout and read `connection_problem` on expiry)."""
        while True:
            known = self._terms_known
            await known.wait()
            if known is self._terms_known and self.terms is not None:
                return self.terms
            # that connection ended before we looked: wait for the next one

    async def wait_delivered(self) -> None:
        """Until the hub has acknowledged every message we sent it and we have recorded that
        durably (a process about to exit calls it, bounded: its next start then resends
        nothing, so the hub refuses no copies)."""
        while self.service.unacked.get(self.hub):
            await self.service.wait_committed()
        # an acknowledgement received while a commit was writing goes into the next group
        await self.service.wait_committed()

    def apply_governed_limits(self, fee_cap: int | None, hub_problem: str | None) -> None:
        """The network's hub fee cap and our hub's standing, as the chain says now: every lock
        made from here on is checked against them (one in flight keeps the fee it was made with).
        """
        if fee_cap != self.governed_fee_cap:
            log.info("the network's hub fee cap is %s token units", fee_cap)
            self._warn_terms_above_cap(fee_cap)
        if hub_problem != self.hub_problem and hub_problem is not None:
            log.warning("%s", hub_problem)
        self.governed_fee_cap, self.hub_problem = fee_cap, hub_problem

    def _warn_terms_above_cap(self, fee_cap: int | None) -> None:
        if fee_cap is not None and self.terms is not None and self.fees.cap > fee_cap:
            log.warning(
                "the hub announces a fee cap of %d token units, above the network's %d: payments "
                "whose fee exceeds %d are refused",
                self.fees.cap,
                fee_cap,
                fee_cap,
            )

    # -- secrets --------------------------------------------------------------------------------

    def _secret_for(self, payer: bytes, payment_id: int) -> Secret:
        return Secret(keccak(self._seed + payer + payment_id.to_bytes(8, "big")))

    # -- paying ---------------------------------------------------------------------------------

    async def pay(
        self, payee: Address, amount: int, payment_id: int, *, give_up_after: float = 30.0
    ) -> PaymentOutcome:
        """Pay `amount` to `payee` through the hub; idempotent by `payment_id`.

        Raises PaymentError (and nothing else) when the payment did not happen: bad
        arguments, refused, expired, no invoice, or no outcome within `give_up_after` seconds (the
        payee or the hub away meanwhile: a lock already made may still complete or expire; paying
        the id again reports it).
        """
        _check_payment(payee, amount, payment_id, give_up_after)
        if payee == self.service.address:
            raise PaymentError("the payee is this agent itself")
        record = self._payment(payment_id)
        if record is not None and (record.payee != payee or record.amount != amount):
            raise PaymentError(
                f"payment id {payment_id} was already used for another payment "
                f"({record.amount} to 0x{record.payee.hex()})"
            )
        if record is None:
            record = PaymentRecord(payment_id, payee, amount)
            self.payments[payment_id] = record
        if record.status == "requested":
            self._pay_from_book(record)  # no round trip when an open invoice is at hand
        asked = self._book_asked.get(payee, 0) >= payment_id  # a book on its way covers it
        # ids paid in order to one payee use books; any other payment asks for its own invoice
        in_order = not self._books_refused(payee) and (
            asked or self._last_paid_id.get(payee) == payment_id - 1
        )
        self._last_paid_id[payee] = payment_id
        with trio.move_on_after(give_up_after) as scope:
            while (status := (record := self._payment(payment_id) or record).status) not in FINAL:
                if status == "requested":  # (again, if the payee did not answer in time)
                    if not in_order or self._books_refused(payee):
                        self._request_invoice(record)
                    elif not asked:
                        self._request_book(payee, payment_id)
                    asked = False
                    with trio.move_on_after(INVOICE_RETRY):
                        await self._wait_signal(payment_id)
                else:
                    await self._wait_signal(payment_id)
        record = self._payment(payment_id) or record
        waited_for = self._waiting_for.pop(payment_id, None)
        if scope.cancelled_caught and record.status not in ("completed", "failed"):
            why = f": {waited_for}" if record.status == "requested" and waited_for else ""
            raise PaymentError(
                f"payment {payment_id}: no outcome within {give_up_after} s ({record.status}{why})"
            )
        if record.status == "failed":
            await self.service.wait_durable()  # reported only once its record is durable
            raise PaymentError(f"payment {payment_id} failed: {record.reason}")
        return PaymentOutcome(payment_id, Address(record.payee), record.amount, record.fee)

    def _payment(self, payment_id: int) -> PaymentRecord | None:
        """Our record of a payment: in memory, or durable (an old one may have left memory)."""
        record = self.payments.get(payment_id)
        if record is None:
            stored = self.service.store.fact(f"{PAYMENT_FACT}{payment_id}")
            if isinstance(stored, PaymentRecord):
                record = self.payments[payment_id] = stored
        return record

    async def _wait_signal(self, payment_id: int) -> None:
        signal = self._signals.get(payment_id)
        if signal is None:
            signal = self._signals[payment_id] = trio.Event()
        await signal.wait()

    def _signal(self, payment_id: int) -> None:
        signal = self._signals.pop(payment_id, None)
        if signal is not None:
            signal.set()

    # -- open invoices ahead of time --------------------------------------------------------------

    def _request_invoice(self, record: PaymentRecord) -> None:
        """Ask the payee for the invoice of this one payment (its own amount)."""
        self.service.send_routing(
            self.hub,
            wire.InvoiceRequest(
                payment_id=record.payment_id,
                payer=self.service.address,
                payee=record.payee,
                amount=wire.amount_to_wire(record.amount),
            ),
        )

    def _request_book(self, payee: Address, first: int) -> None:
        """Ask `payee` for open invoices for our payment ids `first` on (when we are connected:
        otherwise the pay loop asks again)."""
        if first + INVOICE_BOOK > 2**64:
            return  # near the end of the payment ids: single invoices
        sent = self.service.send_routing(
            self.hub,
            wire.InvoiceRequest(
                payment_id=first,
                payer=self.service.address,
                payee=payee,
                amount=wire.amount_to_wire(0),
                count=INVOICE_BOOK,
            ),
        )
        if sent:
            asked = max(self._book_asked.get(payee, 0), first + INVOICE_BOOK - 1)
            self._book_asked[payee] = asked

    def _books_refused(self, payee: Address) -> bool:
        """Whether `payee` refused a book less than BOOK_RETRY seconds ago (single invoices
        meanwhile)."""
        until = self._no_books.get(payee)
        if until is None:
            return False
        if trio.current_time() < until:
            return True
        del self._no_books[payee]
        return False

    def _book_refused(self, payee: Address) -> None:
        """A book was refused (by the payee, or by the hub while the payee was offline): single
        invoices for a while, and the payments waiting for that book ask for theirs now."""
        self._no_books[payee] = trio.current_time() + BOOK_RETRY
        self._book_asked.pop(payee, None)
        for payment_id in list(self._signals):
            record = self.payments.get(payment_id)
            if record is not None and record.payee == payee and record.status == "requested":
                self._signal(payment_id)

    def _pay_from_book(self, record: PaymentRecord) -> None:
        """Lock at once with an open invoice we hold for this payment id, and ask for more
        before the book runs out (ids used in order need no round trip at all)."""
        payee = Address(record.payee)
        if payee in self._book:  # keep the payees in the order they were last paid
            self._book[payee] = self._book.pop(payee)
        held = self._book.get(payee)
        secrethash = held.pop(record.payment_id, None) if held is not None else None
        if secrethash is None:
            return
        asked = self._book_asked.get(payee, 0)  # none after a refused book
        if asked < record.payment_id + INVOICE_BOOK and not self._books_refused(payee):
            # keep a whole book ahead of the payments
            self._request_book(payee, max(asked, max(held or (), default=0), record.payment_id) + 1)
        self._lock(record, secrethash)

    def _take_book(self, book: wire.InvoiceBook) -> None:
        payee = Address(book.payee)
        for index, secrethash in enumerate(book.secrethashes):
            payment_id = book.first_payment_id + index
            record = self.payments.get(payment_id)
            if record is not None and record.status == "requested" and record.payee == payee:
                self._lock(record, secrethash)  # a payment was waiting for this one
            elif record is None:
                self._book.setdefault(payee, {})[payment_id] = secrethash
        held = self._book.get(payee, {})
        while len(held) > MAX_BOOKED:  # ids we skipped: forget the lowest
            del held[min(held)]
        if len(self._book) > MAX_BOOK_PAYEES:  # forget the payee paid least recently
            stale = next(iter(self._book))
            del self._book[stale]
            self._book_asked.pop(stale, None)

    def _lock_for_invoice(self, invoice: wire.Invoice) -> None:
        record = self.payments.get(invoice.payment_id)
        amount = wire.amount_from_wire(invoice.amount)
        if record is None:
            if amount == 0:
                self._refuse_invoice(invoice, "an unsolicited invoice must name its amount")
                return
            if not self.accept_charge(Address(invoice.payee), amount, invoice.payment_id):
                self._refuse_invoice(invoice, "the payer's policy does not accept this charge")
                return
            record = PaymentRecord(invoice.payment_id, invoice.payee, amount)
        elif record.status != "requested":
            return  # a repeated invoice: the payment is already under way or over
        elif record.payee != invoice.payee or amount not in (0, record.amount):
            return  # not what we asked for: ignore, the request will be retried
        # amount 0: the open invoice a book once held for this id (the payee takes any amount)
        self._lock(record, invoice.secrethash)
        failed = self.payments[record.payment_id]
        if failed.status == "failed":  # e.g. no capacity left: tell the payee at once
            self._refuse_invoice(invoice, f"the payer cannot pay: {failed.reason}")

    def _lock(self, record: PaymentRecord, secrethash: bytes) -> None:
        """Lock the payment's amount plus the hub's fee under `secrethash`, towards the payee."""
        amount = record.amount
        terms = self.terms
        channel = self.service.channel_with(self.hub)
        if terms is None or channel is None:
            self._fail(record, "not connected to the hub, or no open channel with it")
            return
        fee = self.fees.fee(amount)
        problem = self.hub_problem or route_fee_problem(fee, self.governed_fee_cap)
        if problem is not None:  # refused before any lock leaves
            self._fail(record, problem)
            return
        locked = replace(record, fee=fee, secrethash=secrethash, status="locked")
        self.payments[record.payment_id] = locked
        self._payment_by_hash[secrethash] = record.payment_id
        self.service.put_fact(f"{PAYMENT_FACT}{record.payment_id}", locked)
        events = self.service.handle(
            sc.ActionLockedTransfer(
                channel.channel_id,
                TokenAmount(amount + fee),
                # the hub checks expiry against its own head: never lock from behind it
                BlockNumber(
                    max(self.service.block_number, terms.block_number) + terms.lock_timeout
                ),
                SecretHash(secrethash),
                PaymentId(record.payment_id),
                Address(record.payee),
            )
        )
        for event in events:
            if isinstance(event, ev.EventPaymentSendFailed):
                self._fail(locked, event.reason)
        self._signal(record.payment_id)

    def _fail(self, record: PaymentRecord, reason: str) -> None:
        failed = replace(record, status="failed", reason=reason)
        self.payments[record.payment_id] = failed
        self.service.put_fact(f"{PAYMENT_FACT}{record.payment_id}", failed)
        self._signal(record.payment_id)

    def _refuse_invoice(self, invoice: wire.Invoice, reason: str) -> None:
        # after the record of the payment it refuses (failed) is durable, as every answer is
        self.service.send_routing_durable(
            self.hub,
            wire.InvoiceRefused(
                payment_id=invoice.payment_id,
                payer=invoice.payer,
                payee=invoice.payee,
                reason=reason,
            ),
        )

    # -- being paid -----------------------------------------------------------------------------

    def issue_invoice(self, payer: Address, amount: int, payment_id: int) -> wire.Invoice:
        """Make (or repeat) the invoice for `payer`'s payment `payment_id` of `amount`. Its
        record goes into the open commit group: send it with `service.send_routing_durable`,
        never before (a payee killed in between refuses the lock that pays it)."""
        secret = self._secret_for(payer, payment_id)
        secrethash = secrethash_of(secret)
        record = self.invoices.get(secrethash)
        if record is None:
            record = InvoiceRecord(payment_id, payer, amount, secrethash)
            self.invoices[secrethash] = record
            self.service.put_fact(f"{INVOICE_FACT}{secrethash.hex()}", record)
        return wire.Invoice(
            payment_id=payment_id,
            payer=payer,
            payee=self.service.address,
            amount=wire.amount_to_wire(record.amount),
            secrethash=secrethash,
        )

    def _answer_book_request(self, request: wire.InvoiceRequest) -> None:
        """Open-amount invoices for the payer's next payment ids (refused when it holds too many
        unpaid ones already: a payer cannot make us keep unbounded records)."""
        payer = Address(request.payer)
        reason = None
        if wire.amount_from_wire(request.amount) != 0:
            reason = "a book of invoices is for open amounts (amount 0)"
        elif request.payment_id == 0 or request.payment_id + request.count > 2**64:
            reason = "payment ids are 1 .. 2**64 - 1"
        elif self._open_issued.get(payer, 0) + request.count > MAX_OPEN_PER_PAYER:
            reason = f"{MAX_OPEN_PER_PAYER} open invoices are already unpaid: pay or use them"
        if reason is not None:
            self.service.send_routing(
                self.hub,
                wire.InvoiceRefused(
                    payment_id=request.payment_id,
                    payer=payer,
                    payee=self.service.address,
                    reason=reason,
                ),
            )
            return
        hashes = []
        for payment_id in range(request.payment_id, request.payment_id + request.count):
            before = len(self.invoices)
            hashes.append(self.issue_invoice(payer, 0, payment_id).secrethash)
            if len(self.invoices) > before:
                self._open_issued[payer] = self._open_issued.get(payer, 0) + 1
        self.service.send_routing_durable(  # once the records of its invoices are durable
            self.hub,
            wire.InvoiceBook(
                payer=payer,
                payee=self.service.address,
                first_payment_id=request.payment_id,
                secrethashes=hashes,
            ),
        )

    def _invoice_status(self, secrethash: bytes) -> str:
        record = self.invoices.get(secrethash)
        if record is None:
            record = self.service.store.fact(f"{INVOICE_FACT}{secrethash.hex()}")
        return record.status if isinstance(record, InvoiceRecord) else "unknown"

    async def charge(
        self, payer: Address, amount: int, payment_id: int, *, give_up_after: float = 30.0
    ) -> ReceivedPayment:
        """Ask `payer` to pay `amount` (an unsolicited invoice) and wait until it is received.

        Raises PaymentError (and nothing else) when it was not paid: bad arguments, refused by
        the payer, or `ChargeNotPaidError` after `give_up_after` seconds (the payer or the hub
        away meanwhile: the invoice stays open).
        """
        _check_payment(payer, amount, payment_id, give_up_after)
        if payer == self.service.address:
            raise PaymentError("the payer is this agent itself")
        invoice = self.issue_invoice(payer, amount, payment_id)
        if wire.amount_from_wire(invoice.amount) != amount:
            raise PaymentError(
                f"payment id {payment_id} of 0x{payer.hex()} already has an invoice for "
                f"{wire.amount_from_wire(invoice.amount) or 'an open amount'}"
            )
        secrethash = invoice.secrethash
        with trio.move_on_after(give_up_after):
            while self._invoice_status(secrethash) not in ("received", "refused"):
                done = self._invoice_done.setdefault(secrethash, trio.Event())  # before sending
                self.service.send_routing_durable(self.hub, invoice)  # after its record
                with trio.move_on_after(INVOICE_RETRY):
                    await done.wait()
        stored = self.invoices.get(secrethash) or self.service.store.fact(
            f"{INVOICE_FACT}{secrethash.hex()}"
        )
        if not isinstance(stored, InvoiceRecord):  # left memory before its commit ended
            raise ChargeNotPaidError(f"charge {payment_id}: its record is not readable yet")
        record = stored
        if record.status == "refused":
            raise PaymentError(f"charge {payment_id} to 0x{payer.hex()}: refused by the payer")
        if record.status != "received":
            raise ChargeNotPaidError(
                f"charge {payment_id} to 0x{payer.hex()}: not paid within {give_up_after} s "
                f"({record.status})"
            )
        return ReceivedPayment(payment_id, payer, record.amount, record.received)

    def cancel_invoice(self, payer: Address, payment_id: int) -> bool:
        """Withdraw an unpaid invoice: a lock for it that arrives later is refused. False when
        it can no longer be withdrawn (its secret is revealed: the payment completes). The
        withdrawal is durable once `service.wait_durable()` returns: act on it only then."""
        secrethash = secrethash_of(self._secret_for(payer, payment_id))
        record = self.invoices.get(secrethash) or self.service.store.fact(
            f"{INVOICE_FACT}{secrethash.hex()}"
        )
        if not isinstance(record, InvoiceRecord) or record.status in ("refused", "expired"):
            return True  # nothing can pay it any more (an expired invoice refuses every lock)
        if record.status != "issued":
            return False
        refused = replace(record, status="refused")
        self.invoices[secrethash] = refused
        self.service.put_fact(f"{INVOICE_FACT}{secrethash.hex()}", refused)
        return True

    # -- hooks ----------------------------------------------------------------------------------

    def _on_routing(self, connection: Connection, message: wire.RoutingMessage) -> None:
        if connection.peer != self.hub:
            return
        try:
            self._handle_routing(message)
        except Exception:  # input we did not foresee (or a policy that raised): never end the
            # agent's connection, and with it every payment in flight, for one message
            log.exception("dropped a %s from the hub", type(message).__name__)

    def _handle_routing(self, message: wire.RoutingMessage) -> None:
        if isinstance(message, wire.HubTerms):
            try:
                self.fees = FeeSchedule(
                    wire.amount_from_wire(message.flat_fee),
                    message.fee_ppm,
                    wire.amount_from_wire(message.fee_cap),
                )
            except ValueError as exc:
                log.error("the hub announced unusable terms (%s): not paying through it", exc)
                return
            changed = self.terms is None or self.terms.fee_cap != message.fee_cap
            self.terms = message
            self.lock_time_problem = payee_lock_time_problem(
                message.lock_timeout, message.reveal_timeout, self.service.reveal_timeout
            )
            if self.lock_time_problem is not None:
                log.error("%s", self.lock_time_problem)
            if changed:
                self._warn_terms_above_cap(self.governed_fee_cap)
            self.connection_problem = None
            if self.blocks_from_hub and message.block_number > self.service.block_number:
                self.service.handle(sc.Block(BlockNumber(message.block_number)))
            self._terms_known.set()
        elif isinstance(message, wire.InvoiceRequest):
            if message.payee != self.service.address:
                return
            amount = wire.amount_from_wire(message.amount)
            if message.count > 1 or amount == 0:
                self._answer_book_request(message)
            else:  # the invoice leaves once its record is durable
                self.service.send_routing_durable(
                    self.hub,
                    self.issue_invoice(Address(message.payer), amount, message.payment_id),
                )
        elif isinstance(message, wire.Invoice):
            if message.payer == self.service.address:
                self._lock_for_invoice(message)
        elif isinstance(message, wire.InvoiceBook):
            if message.payer == self.service.address:
                self._take_book(message)
        elif isinstance(message, wire.InvoiceRefused):
            if message.payee == self.service.address:
                self._charge_refused(message)
                return
            payee = Address(message.payee)
            if self._book_asked.get(payee, 0) >= message.payment_id:
                self._book_refused(payee)  # the pay loop asks for single invoices
                return
            record = self.payments.get(message.payment_id)
            if record is None or record.status != "requested" or record.payee != payee:
                return
            if message.reason == PAYEE_OFFLINE:
                self._waiting_for[message.payment_id] = message.reason  # the pay loop asks again
            else:
                self._fail(record, f"the payee refused: {message.reason}")
        elif isinstance(message, wire.UseReceipt):
            self._keep_receipt(message)
        elif isinstance(message, wire.SettlementInvite):
            self._answer_settlement(message)
        elif isinstance(message, wire.ErrorReply):
            if not self._terms_known.is_set() and message.message_id == 0:
                self._hub_refusal = message.reason  # it closes the connection next
                log.warning("the hub refused the connection: %s", message.reason)
            elif message.message_id in self._resent_ids:  # a copy the hub already had
                log.info("the hub already had message %d: %s", message.message_id, message.reason)
            else:
                log.warning("the hub refused message %d: %s", message.message_id, message.reason)

    def _answer_settlement(self, invite: wire.SettlementInvite) -> None:
        """Sign our withdraw for the hub's settlement batch when the policy accepts it (the core
        checks the rest: an open channel, no withdraw pending, the expiry, our capacity)."""
        channel = self.service.channels.get(ChannelId(invite.channel_id))
        total = wire.amount_from_wire(invite.total_withdraw)
        if channel is None or channel.partner.address != self.hub:
            log.info("settlement invite for channel %d ignored: not ours", invite.channel_id)
            return
        if not self.accept_settlement(channel, total):
            log.info("settlement invite for channel %d declined by policy", invite.channel_id)
            return
        self.service.handle(
            sc.ActionWithdraw(
                channel.channel_id,
                total,
                BlockNumber(invite.expiry),
                batched_by=BatchedBy.PARTNER,
            )
        )

    def _charge_refused(self, refusal: wire.InvoiceRefused) -> None:
        """The payer will not pay our invoice: withdraw it, and end the charge waiting for it."""
        payer = Address(refusal.payer)
        if self.cancel_invoice(payer, refusal.payment_id):
            secrethash = secrethash_of(self._secret_for(payer, refusal.payment_id))
            done = self._invoice_done.pop(secrethash, None)
            if done is not None:
                done.set()

    def _keep_receipt(self, receipt: wire.UseReceipt) -> None:
        """Keep an asset's receipt for a charge we paid it (any other is dropped: nobody can make
        us store what we did not pay for)."""
        if receipt.user != self.service.address:
            return
        record = self.payments.get(receipt.payment_id) or self.service.store.fact(
            f"{PAYMENT_FACT}{receipt.payment_id}"
        )
        if not isinstance(record, PaymentRecord) or record.payee != receipt.asset:
            log.info("dropped a receipt from 0x%s for no payment of ours", receipt.asset.hex())
            return
        key = f"{RECEIPT_FACT}{receipt.asset.hex()}:{receipt.payment_id}"
        self.service.put_fact(key, ReceiptRecord(receipt.asset, receipt.payment_id, receipt.entry))

    def receipts(self, asset: Address | None = None) -> list[ReceiptRecord]:
        """The receipts kept (of one asset, or of all), by asset and payment id."""
        prefix = RECEIPT_FACT + (asset.hex() + ":" if asset is not None else "")
        return [r for _, r in self.service.store.facts(prefix) if isinstance(r, ReceiptRecord)]

    def _decide(self, event: ev.Event) -> Iterable[sc.StateChange]:
        """Inside the commit group: reveal the secret of a lock that pays our invoice in full,
        and write how a payment or an invoice ended into the group of the event that ended it
        (a crash after that commit cannot leave a record behind the channel)."""
        kind = type(event)
        if kind is ev.EventLockedTransferReceived:
            return self._decide_lock(event)  # type: ignore[arg-type]
        if kind is ev.EventUnlockSent:
            self._record_finish(event.secrethash, "completed", "")  # type: ignore[union-attr]
        elif kind is ev.EventUnlockReceived:
            self._record_received(event.secrethash)  # type: ignore[union-attr]
        elif kind is ev.EventLockRefused:
            reason: str = event.reason  # type: ignore[union-attr]
            self._record_finish(event.secrethash, "failed", reason)  # type: ignore[union-attr]
        elif kind is ev.EventLockExpired:
            if event.sender == self.service.address:  # type: ignore[union-attr]
                self._record_finish(
                    event.secrethash,  # type: ignore[union-attr]
                    "failed",
                    "the lock expired unpaid",
                )
            else:  # a lock towards us expired: its invoice went unpaid
                self._invoice_expired(event.secrethash)  # type: ignore[union-attr]
        return ()

    def _decide_lock(self, event: ev.EventLockedTransferReceived) -> Iterable[sc.StateChange]:
        lock = event.lock
        record = self.invoices.get(lock.secrethash)
        reason = None
        if event.target != self.service.address:
            reason = "an agent does not forward payments"
        elif record is None:
            reason = "no invoice of ours has this secrethash"
        elif record.status != "issued":
            reason = f"this invoice is already {record.status}"
        elif lock.amount < record.amount:
            reason = f"the lock carries {lock.amount}, the invoice asks for {record.amount}"
        elif lock.expiration < self.service.block_number + self.service.reveal_timeout:
            reason = "the lock expires too soon to claim it safely"
        if reason is not None or record is None:
            return [sc.ActionRefuseLock(event.channel_id, lock.secrethash, reason or "")]
        if record.amount == 0:  # an open invoice used: the payer may ask for another
            payer = Address(record.payer)
            self._open_issued[payer] = max(0, self._open_issued.get(payer, 0) - 1)
        revealed = replace(record, status="revealed", received=lock.amount)
        self.invoices[lock.secrethash] = revealed
        self.service.put_fact(f"{INVOICE_FACT}{lock.secrethash.hex()}", revealed)
        secret = self._secret_for(record.payer, record.payment_id)
        return [sc.ActionRevealSecret(event.channel_id, secret)]

    def _on_durable(self, events: Sequence[ev.Event]) -> None:
        """After a commit: report the payments that completed or failed and the payments that
        arrived (their records were written into that commit by `_decide`)."""
        for event in events:
            kind = type(event)
            if kind is ev.EventUnlockReceived:
                self._received(event.secrethash)  # type: ignore[union-attr]
            elif kind in _ENDS_A_PAYMENT:
                self._finished(event.secrethash)  # type: ignore[union-attr]

    def _invoice_expired(self, secrethash: bytes) -> None:
        """An invoice whose secret we revealed but whose lock expired unpaid is `expired`, not
        `revealed` forever (an `issued` one stays open: the payer may send another lock)."""
        record = self.invoices.get(secrethash)
        if record is None or record.status != "revealed":
            return
        expired = replace(record, status="expired")
        self.invoices[secrethash] = expired
        self.service.put_fact(f"{INVOICE_FACT}{secrethash.hex()}", expired)

    def _record_finish(self, secrethash: bytes, status: str, reason: str) -> None:
        """Write a payment's end into the open group; `_finished` reports it once durable."""
        payment_id = self._payment_by_hash.get(secrethash)
        if payment_id is None or secrethash in self._finishing:
            return  # not ours, or already ending (the first outcome stands)
        record = self.payments.get(payment_id)
        if record is None or record.status in FINAL:
            return
        finished = replace(record, status=status, reason=reason)
        self._finishing[secrethash] = finished
        self.service.put_fact(f"{PAYMENT_FACT}{payment_id}", finished)

    def _finished(self, secrethash: bytes) -> None:
        finished = self._finishing.pop(secrethash, None)
        if finished is None:
            return
        self._payment_by_hash.pop(secrethash, None)
        self.payments[finished.payment_id] = finished
        self._signal(finished.payment_id)

    def _record_received(self, secrethash: bytes) -> None:
        """Write an invoice's payment into the open group; `_received` reports it once durable."""
        record = self.invoices.get(secrethash)
        if record is None or record.status != "revealed" or secrethash in self._receiving:
            return
        received = replace(record, status="received")
        self._receiving[secrethash] = received
        self.service.put_fact(f"{INVOICE_FACT}{secrethash.hex()}", received)

    def _received(self, secrethash: bytes) -> None:
        record = self._receiving.pop(secrethash, None)
        if record is None:
            return
        self.invoices[secrethash] = record
        amount = record.amount or record.received  # an open invoice: what the lock carried
        self._received_send.send_nowait(
            ReceivedPayment(record.payment_id, Address(record.payer), amount, record.received)
        )
        done = self._invoice_done.pop(secrethash, None)
        if done is not None:
            done.set()

    # -- reading --------------------------------------------------------------------------------

    def balances(self) -> list[ChannelBalance]:
        """Every channel of ours, as of now."""
        out = []
        for channel in self.service.channels.values():
            out.append(
                ChannelBalance(
                    channel.channel_id,
                    channel.partner.address,
                    channel.status.value,
                    get_balance(channel.our, channel.partner),
                    get_capacity(channel.our, channel.partner),
                    get_capacity(channel.partner, channel.our),
                    len(channel.our.locks) + len(channel.partner.locks),
                )
            )
        return out


__all__ = [
    "Agent",
    "ChannelBalance",
    "ChargeNotPaidError",
    "PaymentError",
    "PaymentOutcome",
    "ReceivedPayment",
]

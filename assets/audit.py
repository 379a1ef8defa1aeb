"""Audits of a revenue ledger: against the chain, a beneficiary's payments, a user's receipts.

What it is for: anyone holding a copy of an asset's ledger (its operator, a beneficiary, a lender,
a user) checks it against what the chain says, without trusting the operator:

- `audit_ledger`: the whole ledger against the asset's on-chain history (`AssetHistory`): every
  entry signed by an agent of the asset, linked, split by the split version it names as the chain
  recorded it, and holding exactly what every on-chain anchor commits to (so a changed, reordered,
  removed or truncated entry is caught). Returns a `LedgerAudit` (totals, how much is anchored) that
  says what is wrong, by seq, when something is.
- `check_beneficiary`: the shares the ledger owes one beneficiary against the payments its agent
  received from the asset (by payment id; a retried share's id maps back by `share_base_id`).
- `check_pool_payments`: the shares the agent kept for each contract beneficiary (a financing
  pool: payment id 0) up to a seq against what the chain shows paid to it on chain.
- `check_user_receipts`: a user's receipts (the signed entries the asset sent it) against the
  ledger: each is signed by the asset's agent and is the very entry the ledger holds at its seq.
- `check_statement`: a `RevenueStatement` against the chain's history (signer, splits, anchors).
- `check_unpaid_shares`: the shares the agent's use book records as not paid after a failed
  attempt, against the ledger entries that owe them (each one a finding: entry, beneficiary,
  amount, reason).

Agents over time: the chain records the agent at registration and each `AgentChanged`, by block,
but entries carry unix time, not blocks. The rule here is the simplest sound one: an entry signed by
any agent the history names is accepted (a key once in charge could sign; an entry appended with
an old key after the change still has to match every later anchor, which the agent in charge
signs on chain). A statement is checked against the one agent that signed it.

What it must never do: I/O, read a clock, hold or use a key, or let a float touch money. It takes
data (entries, chain history, store records) and returns reports; printing is `cise`'s.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple

from assets.ledger import (
    KIND_USE,
    Anchor,
    LedgerError,
    RevenueStatement,
    RevenueTotals,
    SignedEntry,
    StatementCheck,
    decode_entry,
    revenue_totals,
    statement_digest,
    verify_anchors,
    verify_chain,
    verify_statement,
)
from assets.payment_ids import share_base_id
from assets.pool_payments import PaidKey, PoolShare, pool_shares
from assets.service_events import verify_service_events
from assets.use_book import ShareFailure
from channels.chain.assets import AssetHistory, AssetRegistered, LedgerAnchored
from channels.codec.ecdsa import InvalidSignature, recover_signer
from channels.codec.eip712 import Domain
from channels.codec.merkle import merkle_root
from channels.core.splits import Split, SplitError
from channels.records import InvoiceRecord, ReceiptRecord

# ---------------------------------------------------------------------------------------------
# What the chain says


def splits_from_history(history: AssetHistory) -> dict[int, Split]:
    """Every split version the chain recorded for the asset, as core `Split`s.

    `LedgerError` if the chain holds a split the core refuses (the contract enforces the same
    rules, so this means the history is not the registry's).
    """
    splits: dict[int, Split] = {}
    for version, event in history.splits().items():
        try:
            splits[version] = Split(version, event.beneficiaries, event.ppm)
        except SplitError as exc:
            raise LedgerError(
                f"split version {version} on chain is not a valid split: {exc}"
            ) from None
    return splits


def anchors_from_history(history: AssetHistory) -> tuple[Anchor, ...]:
    """The asset's on-chain anchors (with their head hashes) in index order, as ledger `Anchor`s."""
    events = sorted(
        (e for e in history.events if isinstance(e, LedgerAnchored)), key=lambda e: e.index
    )
    return tuple(Anchor(e.from_seq, e.to_seq, e.root, e.head_hash) for e in events)


def _check_history(history: AssetHistory, asset_id: bytes) -> tuple[bytes, ...]:
    """The agents the history names; `LedgerError` unless it is `asset_id`'s, registered."""
    if history.asset_id != asset_id:
        raise LedgerError(
            f"the chain history is asset 0x{history.asset_id.hex()}'s, not 0x{asset_id.hex()}'s"
        )
    if not any(isinstance(e, AssetRegistered) for e in history.events):
        raise LedgerError(f"asset 0x{asset_id.hex()} is not registered on chain")
    return tuple(bytes(agent) for agent in history.agents())


def _signer(entry: SignedEntry, domain: Domain) -> bytes | None:
    try:
        return recover_signer(entry.digest(domain), entry.signature)
    except (InvalidSignature, LedgerError):
        return None


# ---------------------------------------------------------------------------------------------
# The whole ledger against the chain


@dataclass(frozen=True, slots=True)
class LedgerAudit:
    """What `audit_ledger` found. `problem` is None when the ledger checked out."""

    asset_id: bytes
    problem: str | None  # the first problem found, naming its seq when there is one
    problem_seq: int | None
    entries: int
    first_seq: int | None
    last_seq: int | None
    agents: tuple[bytes, ...]  # every agent the chain names, in order
    split_versions: tuple[int, ...]
    chain_anchors: tuple[Anchor, ...]
    anchored_seq: int  # the last seq an on-chain anchor commits to (0: none yet)
    anchored: int  # entries an on-chain anchor commits to
    unanchored: int  # entries after the last anchor (not yet anchored)
    totals: RevenueTotals | None  # None when the entries could not even be summed
    notes: tuple[str, ...] = ()  # observations that are not failures

    @property
    def ok(self) -> bool:
        return self.problem is None


def _verify_segments(
    entries: Sequence[SignedEntry],
    asset_id: bytes,
    agents: Sequence[bytes],
    domain: Domain,
    splits: Mapping[int, Split],
    expected_head: tuple[int, bytes] | None,
) -> None:
    """`verify_chain` over runs of entries signed by the same agent, and the links between runs.

    An entry whose signature recovers to no agent stays in the run it interrupts (or the first
    agent's, at the start), so `verify_chain` reports it with its usual message.
    """
    runs: list[tuple[bytes, list[SignedEntry]]] = []
    for entry in entries:
        recovered = _signer(entry, domain)
        signer = recovered if recovered in agents and recovered is not None else None
        if signer is None:
            signer = runs[-1][0] if runs else agents[0]
        if runs and runs[-1][0] == signer:
            runs[-1][1].append(entry)
        else:
            runs.append((signer, [entry]))
    if not runs:
        verify_chain([], asset_id, agents[0], domain, splits=splits, expected_head=expected_head)
        return
    head_run = len(runs) - 1
    if expected_head is not None:
        for index, (_, run) in enumerate(runs):
            if run[0].seq <= expected_head[0] <= run[-1].seq:
                head_run = index
                break
    seen: dict[str, int] = {}
    previous: SignedEntry | None = None
    for index, (agent, run) in enumerate(runs):
        first = run[0]
        if previous is not None:
            if first.seq != previous.seq + 1:
                raise LedgerError(
                    f"expected seq {previous.seq + 1} after seq {previous.seq}: an entry is "
                    "missing or out of order",
                    first.seq,
                )
            if first.prev_hash != previous.entry_hash:
                raise LedgerError(
                    f"prevHash does not link to the entry hash of seq {previous.seq}", first.seq
                )
        head = expected_head if index == head_run else None
        verify_chain(run, asset_id, agent, domain, splits=splits, expected_head=head)
        for entry in run:  # verify_chain checked them within the run; here across runs
            event_id = entry.decode_body().event_id
            if event_id in seen:
                raise LedgerError(
                    f"event_id {event_id!r} already used at seq {seen[event_id]}", entry.seq
                )
            seen[event_id] = entry.seq
        previous = run[-1]


def _compare_local_anchors(local: Sequence[Anchor], on_chain: Sequence[Anchor]) -> tuple[str, ...]:
    """Raise on a local anchor the chain does not hold; notes for chain anchors not kept locally."""
    for index, anchor in enumerate(local):
        if index >= len(on_chain):
            raise LedgerError(
                f"the ledger file records anchor {index} ({anchor.describe()}), which is not on "
                f"chain (the chain has {len(on_chain)} anchors)"
            )
        if anchor != on_chain[index]:
            raise LedgerError(
                f"the ledger file's anchor {index} ({anchor.describe()}) differs from the "
                f"chain's anchor {index} ({on_chain[index].describe()})"
            )
    if len(local) < len(on_chain):
        return (
            f"the ledger file records {len(local)} of the chain's {len(on_chain)} anchors "
            "(the rest are checked against the entries all the same)",
        )
    return ()


def audit_ledger(
    entries: Sequence[SignedEntry],
    *,
    asset_id: bytes,
    domain: Domain,
    history: AssetHistory,
    chain_anchors: Sequence[Anchor] | None = None,
    local_anchors: Sequence[Anchor] | None = None,
) -> LedgerAudit:
    """Check a whole ledger (from seq 1, in the order given) against the asset's chain history.

    Checks, stopping at the first problem: the asset is registered; the ledger starts at seq 1;
    every entry is signed by an agent the history names, linked, canonical, and split by its
    split version as the chain recorded it (`verify_chain`); the ledger reaches the last on-chain
    anchor's head, with its hash (a truncated tail); every on-chain anchor commits to exactly
    these entries (`verify_anchors`); and the anchors the ledger file recorded itself
    (`local_anchors`, when given) are the chain's. `chain_anchors` defaults to the history's.
    Never raises `LedgerError`: a failure is the report's `problem`.
    """
    anchors = tuple(anchors_from_history(history) if chain_anchors is None else chain_anchors)
    anchored_seq = max((a.to_seq for a in anchors), default=0)
    count = len(entries)
    first_seq = entries[0].seq if entries else None
    last_seq = entries[-1].seq if entries else None
    anchored = sum(1 for entry in entries if entry.seq <= anchored_seq)
    agents: tuple[bytes, ...] = ()
    versions: tuple[int, ...] = ()
    problem: LedgerError | None = None
    notes: tuple[str, ...] = ()
    try:
        agents = _check_history(history, asset_id)
        splits = splits_from_history(history)
        versions = tuple(sorted(splits))
        if not agents:
            raise LedgerError(f"the chain names no agent of asset 0x{asset_id.hex()}")
        if first_seq is not None and first_seq != 1:
            raise LedgerError(
                f"the ledger starts at seq {first_seq}: seq 1..{first_seq - 1} are missing"
            )
        head = (anchors[-1].to_seq, anchors[-1].head_hash) if anchors else None
        try:
            _verify_segments(entries, asset_id, agents, domain, splits, head)
        except LedgerError as exc:
            if anchors and exc.problem.startswith(("truncated", "entry hash differs")):
                raise LedgerError(
                    f"{exc.problem} (the head of the last on-chain {anchors[-1].describe()})",
                    exc.seq,
                ) from None
            raise
        verify_service_events(entries, asset_id, domain, splits)
        verify_anchors(entries, anchors)
        if local_anchors is not None:
            notes = _compare_local_anchors(local_anchors, anchors)
    except LedgerError as exc:
        problem = exc
    totals: RevenueTotals | None
    try:
        totals = revenue_totals(entries)
    except LedgerError:
        totals = None
    return LedgerAudit(
        asset_id=asset_id,
        problem=None if problem is None else str(problem),
        problem_seq=None if problem is None else problem.seq,
        entries=count,
        first_seq=first_seq,
        last_seq=last_seq,
        agents=agents,
        split_versions=versions,
        chain_anchors=anchors,
        anchored_seq=anchored_seq,
        anchored=anchored,
        unanchored=count - anchored,
        totals=totals,
        notes=notes,
    )


# ---------------------------------------------------------------------------------------------
# Shares the agent did not pay


@dataclass(frozen=True, slots=True)
class UnpaidShare:
    """A share the ledger owes and the agent's use book records as not paid."""

    seq: int
    payment_id: int
    beneficiary: bytes
    amount: int
    attempts: int
    reason: str

    def describe(self) -> str:
        return (
            f"seq {self.seq}: share payment {self.payment_id} of {self.amount} units to "
            f"0x{self.beneficiary.hex()} not paid after {self.attempts} failed attempt(s): "
            f"{self.reason}"
        )


def check_unpaid_shares(
    entries: Sequence[SignedEntry], failures: Iterable[ShareFailure]
) -> tuple[tuple[UnpaidShare, ...], tuple[str, ...]]:
    """(the shares not paid, other problems): each failure of the use book matched with the
    share its entry records; a failure the ledger does not explain is a problem of its own."""
    by_seq = {entry.seq: entry for entry in entries}
    unpaid: list[UnpaidShare] = []
    problems: list[str] = []
    for failure in failures:
        entry = by_seq.get(failure.seq)
        share = None
        if entry is not None and entry.kind == KIND_USE:
            try:
                shares = entry.decode_use_body().shares
            except LedgerError:
                shares = ()
            share = next((s for s in shares if s.payment_id == failure.payment_id), None)
        if share is None or bytes(share.beneficiary) != failure.beneficiary:
            problems.append(
                f"seq {failure.seq}: the use book records a failed share payment "
                f"{failure.payment_id} that the ledger entry does not hold"
            )
            continue
        unpaid.append(
            UnpaidShare(
                failure.seq,
                failure.payment_id,
                failure.beneficiary,
                share.amount,
                failure.attempts,
                failure.reason,
            )
        )
    return tuple(unpaid), tuple(problems)


# ---------------------------------------------------------------------------------------------
# A beneficiary's payments against the ledger


class ReceivedShare(NamedTuple):
    """A payment a beneficiary's agent received (an invoice of status "received")."""

    payer: bytes
    payment_id: int
    amount: int


def received_shares(
    invoices: Iterable[InvoiceRecord], payers: Collection[bytes]
) -> list[ReceivedShare]:
    """The payments received from any of `payers` (the asset's agents), from an agent's invoices.

    The amount is what the payment carried (`received`), else what the invoice asked.
    """
    return [
        ReceivedShare(bytes(inv.payer), inv.payment_id, inv.received or inv.amount)
        for inv in invoices
        if inv.status == "received" and bytes(inv.payer) in payers
    ]


@dataclass(frozen=True, slots=True)
class ShareIssue:
    """A ledger share of the beneficiary not received as recorded."""

    seq: int
    payment_id: int
    owed: int
    received: int

    def describe(self) -> str:
        if self.received == 0:
            return f"seq {self.seq}: share payment {self.payment_id} of {self.owed} not received"
        return (
            f"seq {self.seq}: share payment {self.payment_id}: the ledger says {self.owed}, "
            f"{self.received} was received"
        )


@dataclass(frozen=True, slots=True)
class BeneficiaryCheck:
    """One beneficiary's ledger shares against what it received from the asset."""

    beneficiary: bytes
    shares: int  # ledger shares paid by a payment (payment id != 0)
    owed: int  # their total
    kept: int  # share amounts the ledger records with no payment (payment id 0)
    received: int  # everything received from the asset, explained or not
    missing: tuple[ShareIssue, ...]
    differing: tuple[ShareIssue, ...]
    unexplained: tuple[ReceivedShare, ...]  # received, but no ledger share has its id
    conflicts: tuple[str, ...]  # ledger shares naming the same payment id

    @property
    def ok(self) -> bool:
        return not (self.missing or self.differing or self.unexplained or self.conflicts)

    def problems(self) -> list[str]:
        """Every discrepancy, one message each."""
        return [
            *self.conflicts,
            *(issue.describe() for issue in self.missing),
            *(issue.describe() for issue in self.differing),
            *(
                f"payment {r.payment_id} of {r.amount} from 0x{r.payer.hex()} is explained by "
                "no ledger share"
                for r in self.unexplained
            ),
        ]


def check_beneficiary(
    entries: Iterable[SignedEntry], beneficiary: bytes, received: Iterable[ReceivedShare]
) -> BeneficiaryCheck:
    """Match each ledger share of `beneficiary` with the payments received (by payment id).

    `received` holds the payments from the asset's agents only (`received_shares`). A payment
    of a retried attempt counts for the share whose id `share_base_id` gives; attempts received
    for the same share add up (paying twice shows as an amount that differs).
    """
    owed_by_id: dict[int, tuple[int, int]] = {}  # payment id -> (seq, amount)
    conflicts: list[str] = []
    kept = 0
    for entry in entries:
        if entry.kind != KIND_USE:
            continue  # service events and admissions owe nothing
        for share in entry.decode_use_body().shares:
            if share.beneficiary != beneficiary:
                continue
            if share.payment_id == 0:
                kept += share.amount
                continue
            if share.payment_id in owed_by_id:
                conflicts.append(
                    f"seq {entry.seq}: share payment id {share.payment_id} is also named at "
                    f"seq {owed_by_id[share.payment_id][0]}"
                )
                continue
            owed_by_id[share.payment_id] = (entry.seq, share.amount)
    got: dict[int, int] = {}
    unexplained: list[ReceivedShare] = []
    total = 0
    for payment in received:
        total += payment.amount
        base = share_base_id(payment.payment_id)
        if base in owed_by_id:
            got[base] = got.get(base, 0) + payment.amount
        else:
            unexplained.append(payment)
    missing: list[ShareIssue] = []
    differing: list[ShareIssue] = []
    for payment_id, (seq, amount) in sorted(owed_by_id.items(), key=lambda item: item[1][0]):
        paid = got.get(payment_id, 0)
        if paid == 0 and amount > 0:
            missing.append(ShareIssue(seq, payment_id, amount, 0))
        elif paid != amount:
            differing.append(ShareIssue(seq, payment_id, amount, paid))
    return BeneficiaryCheck(
        beneficiary=beneficiary,
        shares=len(owed_by_id),
        owed=sum(amount for _, amount in owed_by_id.values()),
        kept=kept,
        received=total,
        missing=tuple(missing),
        differing=tuple(differing),
        unexplained=tuple(unexplained),
        conflicts=tuple(conflicts),
    )


# ---------------------------------------------------------------------------------------------
# A financing pool's kept shares against what the chain shows paid to it


@dataclass(frozen=True, slots=True)
class PoolPaid:
    """One kept beneficiary (a financing pool): the shares the agent kept for it against what the
    chain shows the asset's agents paid it (`BalanceWithdrawn` to the pool)."""

    pool: bytes
    kept: int  # its shares recorded with payment id 0, up to the checked seq
    kept_shares: int  # how many such shares
    paid: int  # paid to it on chain (all time: it may cover shares after the checked seq)
    first_unpaid_seq: int | None  # the first kept share the payments do not cover (in order)
    routed: int  # its shares recorded with a payment id: routed payments a contract cannot take
    first_routed_seq: int | None

    @property
    def short(self) -> int:
        """Kept and not paid."""
        return max(0, self.kept - self.paid)

    @property
    def ok(self) -> bool:
        return self.short == 0 and self.routed == 0

    def problems(self) -> list[str]:
        """What is wrong with this pool's payments, one message each."""
        found = []
        if self.short:
            found.append(
                f"pool 0x{self.pool.hex()}: paid {self.paid} of the {self.kept} kept for it; "
                f"{self.short} unpaid, from the share at seq {self.first_unpaid_seq} on"
            )
        if self.routed:
            found.append(
                f"pool 0x{self.pool.hex()}: {self.routed} of its shares are recorded as routed "
                f"payments (from seq {self.first_routed_seq}), which a contract cannot receive, "
                "and so are not kept for it either"
            )
        return found


@dataclass(frozen=True, slots=True)
class PoolPaymentsCheck:
    """Every kept beneficiary's shares up to `up_to_seq` against what the chain shows paid."""

    up_to_seq: int | None  # None: the whole ledger
    pools: tuple[PoolPaid, ...]  # in address order

    @property
    def ok(self) -> bool:
        return all(pool.ok for pool in self.pools)

    def problems(self) -> list[str]:
        """Every pool paid less than its kept shares, or with shares routed to it."""
        return [problem for pool in self.pools for problem in pool.problems()]


def check_pool_payments(
    entries: Iterable[SignedEntry],
    kept: Collection[bytes],
    paid: Mapping[PaidKey, int],
    *,
    up_to_seq: int | None = None,
) -> PoolPaymentsCheck:
    """Each pool of `kept` (the beneficiaries that are contracts): its shares kept by the agent up
    to `up_to_seq` (the last settled seq; None: every entry) against `paid`, what the chain shows
    the asset's agents paid it (`assets.pool_payments.paid_on_chain`). A financier runs it with
    the asset's verified ledger (`audit_ledger` first) to see its pool was paid at least its kept
    shares; payments beyond (for later shares) are fine.

    `LedgerError` for entries of several assets or out of seq order; `ValueError` for a malformed
    address or a negative amount paid.
    """
    paid_to_pool: dict[bytes, int] = {}
    for payee, amount in paid.items():
        if isinstance(amount, bool) or not isinstance(amount, int) or amount < 0:
            raise ValueError(f"paid to 0x{bytes(payee).hex()} must be an int >= 0, got {amount!r}")
        paid_to_pool[bytes(payee)] = amount
    shares: dict[bytes, list[PoolShare]] = {}
    for share in pool_shares(entries, kept, up_to_seq):
        shares.setdefault(share.pool, []).append(share)
    lines = []
    for pool in sorted({bytes(p) for p in kept}):
        kept_ones = [s for s in shares.get(pool, ()) if s.kept]
        routed = [s for s in shares.get(pool, ()) if not s.kept]
        paid_to = paid_to_pool.get(pool, 0)
        covered = 0
        first_unpaid = None
        for share in kept_ones:
            covered += share.amount
            if covered > paid_to:
                first_unpaid = share.seq
                break
        lines.append(
            PoolPaid(
                pool=pool,
                kept=sum(s.amount for s in kept_ones),
                kept_shares=len(kept_ones),
                paid=paid_to,
                first_unpaid_seq=first_unpaid,
                routed=sum(s.amount for s in routed),
                first_routed_seq=routed[0].seq if routed else None,
            )
        )
    return PoolPaymentsCheck(up_to_seq, tuple(lines))


# ---------------------------------------------------------------------------------------------
# A user's receipts


UseStatus = Literal[
    "ok",  # signed by the agent, and the ledger holds this very entry
    "signed",  # signed by the agent it came from (no ledger to compare with)
    "missing from ledger",
    "differs",  # the ledger holds another entry at this seq
    "bad signature",  # not signed by the asset's agent: forged or changed
    "invalid",  # not a well-formed ledger entry, or not the receipt of this charge
    "other asset",
]


@dataclass(frozen=True, slots=True)
class UseLine:
    """One receipt of a user: the use it records and what checking it found."""

    asset_id: bytes | None  # None when the receipt does not decode
    agent: bytes  # the agent the receipt came from
    seq: int | None
    time: int | None
    units: int | None
    fee: int | None
    charge_payment_id: int  # the user's payment the receipt answers
    status: UseStatus
    detail: str = ""


@dataclass(frozen=True, slots=True)
class UserCheck:
    """A user's receipts of one asset against that asset's ledger."""

    asset_id: bytes
    uses: tuple[UseLine, ...]

    @property
    def ok(self) -> bool:
        return all(line.status == "ok" for line in self.uses)

    @property
    def fee_total(self) -> int:
        """The fees of the uses that checked out."""
        return sum(line.fee or 0 for line in self.uses if line.status == "ok")

    def problems(self) -> list[str]:
        return [
            f"receipt of payment {line.charge_payment_id}"
            + ("" if line.seq is None else f" (seq {line.seq})")
            + f": {line.status}"
            + (f": {line.detail}" if line.detail else "")
            for line in self.uses
            if line.status != "ok"
        ]


def _receipt_line(
    receipt: ReceiptRecord,
    domain: Domain,
    agents: Collection[bytes],
    asset_id: bytes | None,
) -> tuple[UseLine, SignedEntry | None]:
    """The receipt's use, checked on its own: it decodes, is of `asset_id` (when given), is
    signed by one of `agents`, its entry is well-formed and records the charge it answers."""
    agent = bytes(receipt.asset)
    try:
        entry = decode_entry(receipt.entry)
    except LedgerError as exc:
        line = UseLine(None, agent, None, None, None, None, receipt.payment_id, "invalid", str(exc))
        return line, None

    def line_of(status: UseStatus, detail: str = "") -> UseLine:
        units: int | None = None
        fee: int | None = None
        try:
            body = entry.decode_use_body()
            units, fee = body.units, body.fee
        except LedgerError:
            pass
        return UseLine(
            asset_id=entry.asset_id,
            agent=agent,
            seq=entry.seq,
            time=entry.time,
            units=units,
            fee=fee,
            charge_payment_id=receipt.payment_id,
            status=status,
            detail=detail,
        )

    if asset_id is not None and entry.asset_id != asset_id:
        return line_of("other asset", f"an entry of asset 0x{entry.asset_id.hex()}"), None
    signer = _signer(entry, domain)
    if signer is None or signer not in agents:
        who = "no valid signature" if signer is None else f"signed by 0x{signer.hex()}"
        return line_of("bad signature", f"{who}, not by the asset's agent"), None
    try:
        verify_chain([entry], entry.asset_id, signer, domain)
        body = entry.decode_use_body()
    except LedgerError as exc:
        return line_of("invalid", str(exc)), None
    if body.charge_payment_id != receipt.payment_id:
        return line_of(
            "invalid", f"the entry records charge {body.charge_payment_id}, not this payment"
        ), None
    return line_of("signed"), entry


def receipt_uses(receipts: Iterable[ReceiptRecord], domain: Domain) -> tuple[UseLine, ...]:
    """A user's receipts as uses, each checked on its own (signed by the agent it came from)."""
    return tuple(
        _receipt_line(receipt, domain, (bytes(receipt.asset),), None)[0] for receipt in receipts
    )


def check_user_receipts(
    receipts: Iterable[ReceiptRecord],
    entries: Iterable[SignedEntry],
    asset_id: bytes,
    domain: Domain,
    agent: bytes | Collection[bytes],
) -> UserCheck:
    """Each receipt of `asset_id` against the ledger `entries`: signed by `agent` (or any of the
    agents given) and the very entry the ledger holds at its seq (same entry hash)."""
    agents = {agent} if isinstance(agent, bytes) else {bytes(a) for a in agent}
    by_seq = {entry.seq: entry for entry in entries}
    lines: list[UseLine] = []
    for receipt in receipts:
        line, entry = _receipt_line(receipt, domain, agents, asset_id)
        if entry is not None:
            held = by_seq.get(entry.seq)
            if held is None:
                line = _with(line, "missing from ledger", f"the ledger has no seq {entry.seq}")
            elif held.entry_hash != entry.entry_hash:
                line = _with(
                    line,
                    "differs",
                    f"the ledger's seq {entry.seq} is another entry (hash "
                    f"0x{held.entry_hash.hex()[:16]}…, the receipt's "
                    f"0x{entry.entry_hash.hex()[:16]}…)",
                )
            else:
                line = _with(line, "ok")
        lines.append(line)
    return UserCheck(asset_id, tuple(lines))


def _with(line: UseLine, status: UseStatus, detail: str = "") -> UseLine:
    return dataclasses.replace(line, status=status, detail=detail)


# ---------------------------------------------------------------------------------------------
# Statements against the chain


def statement_signer(statement: RevenueStatement, domain: Domain) -> bytes:
    """The address that signed `statement` (over its entries and stated totals)."""
    if not statement.entries:
        raise LedgerError("the statement holds no entries")
    digest = statement_digest(
        domain,
        statement.asset_id,
        statement.first_seq,
        statement.last_seq,
        merkle_root([entry.entry_hash for entry in statement.entries]),
        statement.totals.fee_total,
        statement.totals.uses,
    )
    try:
        return recover_signer(digest, statement.signature)
    except InvalidSignature as exc:
        raise LedgerError(f"bad statement signature: {exc}") from None


def check_statement(
    statement: RevenueStatement,
    *,
    domain: Domain,
    history: AssetHistory,
    chain_anchors: Sequence[Anchor] | None = None,
) -> StatementCheck:
    """`verify_statement` against the chain: signed by an agent the history names (whose key
    must also have signed its entries), splits as recorded, proofs against the chain's anchors.

    `LedgerError` at the first problem.
    """
    agents = _check_history(history, statement.asset_id)
    signer = statement_signer(statement, domain)
    if signer not in agents:
        raise LedgerError(
            f"the statement is signed by 0x{signer.hex()}, no agent of asset "
            f"0x{statement.asset_id.hex()} on chain"
        )
    anchors = anchors_from_history(history) if chain_anchors is None else chain_anchors
    return verify_statement(statement, signer, domain, anchors, splits=splits_from_history(history))


__all__ = [
    "BeneficiaryCheck",
    "LedgerAudit",
    "PoolPaid",
    "PoolPaymentsCheck",
    "ReceivedShare",
    "ShareIssue",
    "UnpaidShare",
    "UseLine",
    "UseStatus",
    "UserCheck",
    "anchors_from_history",
    "audit_ledger",
    "check_beneficiary",
    "check_pool_payments",
    "check_statement",
    "check_unpaid_shares",
    "check_user_receipts",
    "receipt_uses",
    "received_shares",
    "splits_from_history",
    "statement_signer",
]

"""How `cise ledger`, `cise user` and `cise demo` print ledgers, audits and checks (rich tables).

Printing only: it must never compute a verdict (the reports come from `assets.audit`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

from rich.console import Console, JustifyMethod
from rich.markup import escape
from rich.table import Table

from assets.audit import BeneficiaryCheck, LedgerAudit, UnpaidShare, UseLine, UserCheck
from assets.history import Lifecycle
from assets.ledger import (
    AdmissionBody,
    RevenueStatement,
    RevenueTotals,
    ServiceBody,
    SignedEntry,
    StatementCheck,
)
from assets.service_events import ACTIONS
from channels.core.types import to_checksum
from cise.money import euro


def utc(seconds: int | None) -> str:
    """Unix seconds as `YYYY-MM-DD HH:MM:SS` UTC."""
    if seconds is None:
        return "-"
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S")


def short(value: bytes) -> str:
    """0x1234…cdef: enough to tell values apart in a table."""
    text = value.hex()
    return f"0x{text[:4]}…{text[-4:]}"


def seq_ranges(seqs: Iterable[int]) -> str:
    """1..4, 7, 9..10 (ascending seqs)."""
    parts: list[str] = []
    ordered = sorted(seqs)
    start = previous = None
    for seq in [*ordered, None]:
        if start is not None and (seq is None or seq != (previous or 0) + 1):
            parts.append(str(start) if start == previous else f"{start}..{previous}")
            start = None
        if seq is not None:
            start = seq if start is None else start
            previous = seq
    return ", ".join(parts) or "none"


def print_entries(console: Console, entries: Sequence[SignedEntry], title: str = "") -> None:
    """The entries as a table: seq, time, user, units, fee, split version, shares."""
    table = Table(title=title or None)
    columns: tuple[tuple[str, JustifyMethod], ...] = (
        ("seq", "right"),
        ("time (UTC)", "left"),
        ("user", "left"),
        ("units", "right"),
        ("fee", "right"),
        ("split", "right"),
        ("shares", "left"),
    )
    for name, justify in columns:
        table.add_column(name, justify=justify)
    for entry in entries:
        body = entry.decode_body()
        if isinstance(body, ServiceBody):
            what = f"{ACTIONS.get(body.action, body.action)} by {short(body.servicer)}"
            table.add_row(str(entry.seq), utc(entry.time), "", "", "", "", escape(what))
            continue
        if isinstance(body, AdmissionBody):
            what = f"{'admitted' if body.admitted else 'removed'} {short(body.servicer)}"
            table.add_row(str(entry.seq), utc(entry.time), "", "", "", "", what)
            continue
        shares = "\n".join(
            f"{short(share.beneficiary)} {euro(share.amount)}" for share in body.shares
        )
        table.add_row(
            str(entry.seq),
            utc(entry.time),
            short(body.user),
            f"{body.units:,}",
            euro(body.fee),
            str(body.split_version),
            shares,
        )
    console.print(table)


def _totals_rows(table: Table, totals: RevenueTotals) -> None:
    table.add_row("uses", f"{totals.uses:,}")
    table.add_row("units", f"{totals.units:,}")
    table.add_row("fee total", euro(totals.fee_total))
    table.add_row("period (UTC)", f"{utc(totals.first_time)} .. {utc(totals.last_time)}")


def _beneficiary_table(totals: RevenueTotals) -> Table:
    table = Table(title="shares per beneficiary")
    table.add_column("beneficiary")
    table.add_column("total", justify="right")
    for beneficiary, amount in totals.by_beneficiary:
        table.add_row(to_checksum(beneficiary), euro(amount))
    return table


def print_ledger_audit(console: Console, audit: LedgerAudit) -> None:
    """The audit's summary, the totals per beneficiary, and "ledger verified" or the problem."""
    table = Table(title=f"ledger of asset 0x{audit.asset_id.hex()}", show_header=False)
    table.add_column("what")
    table.add_column("value")
    span = "" if audit.first_seq is None else f" (seq {audit.first_seq}..{audit.last_seq})"
    table.add_row("entries", f"{audit.entries:,}{span}")
    table.add_row("agents on chain", ", ".join(to_checksum(a) for a in audit.agents) or "-")
    table.add_row("split versions", ", ".join(str(v) for v in audit.split_versions) or "-")
    table.add_row("anchors on chain", str(len(audit.chain_anchors)))
    table.add_row("anchored up to seq", f"{audit.anchored_seq} ({audit.anchored:,} entries)")
    table.add_row("not yet anchored", f"{audit.unanchored:,} entries")
    if audit.totals is not None:
        _totals_rows(table, audit.totals)
    console.print(table)
    if audit.totals is not None and audit.totals.by_beneficiary:
        console.print(_beneficiary_table(audit.totals))
    for note in audit.notes:
        console.print(f"note: {escape(note)}")
    if audit.ok:
        console.print("[bold green]ledger verified[/]")
    else:
        console.print(f"[bold red]ledger verification FAILED:[/] {escape(audit.problem or '')}")


def print_unpaid_shares(
    console: Console,
    unpaid: Sequence[UnpaidShare],
    problems: Sequence[str],
    ledgered_seqs: Sequence[int],
) -> None:
    """The shares the agent's use book records as not paid (findings), and the uses whose shares
    are still being paid (a note)."""
    for share in unpaid:
        console.print(
            f"[bold red]share not paid:[/] seq {share.seq}: {euro(share.amount)} to "
            f"{to_checksum(share.beneficiary)} (payment {share.payment_id}), "
            f"{share.attempts} failed attempt(s): {escape(share.reason)}"
        )
    for problem in problems:
        console.print(f"[bold red]use book:[/] {escape(problem)}")
    failed = {share.seq for share in unpaid}
    under_way = [seq for seq in ledgered_seqs if seq not in failed]
    if under_way:
        console.print(
            f"note: {len(under_way):,} use(s) have shares being paid (no attempt failed yet): "
            f"seq {', '.join(str(seq) for seq in under_way[:10])}"
            + (" …" if len(under_way) > 10 else "")
        )
    if unpaid:
        total = sum(share.amount for share in unpaid)
        console.print(
            f"[bold red]{len(unpaid):,} share(s) of {euro(total)} not paid[/] "
            "(see `cise asset status`; the agent pays them when it runs again)"
        )


def print_beneficiary_check(console: Console, check: BeneficiaryCheck) -> None:
    """What the ledger owes one beneficiary against what it received, and every discrepancy."""
    table = Table(title=f"payments to {to_checksum(check.beneficiary)}", show_header=False)
    table.add_column("what")
    table.add_column("value", justify="right")
    table.add_row("ledger shares paid by payment", f"{check.shares:,}")
    table.add_row("owed per ledger", euro(check.owed))
    table.add_row("received from the asset", euro(check.received))
    if check.kept:
        table.add_row("shares recorded without payment", euro(check.kept))
    table.add_row("shares missing", f"{len(check.missing):,}")
    table.add_row("amounts that differ", f"{len(check.differing):,}")
    table.add_row("payments no share explains", f"{len(check.unexplained):,}")
    console.print(table)
    for problem in check.problems():
        console.print(f"  {escape(problem)}")
    if check.ok:
        console.print("[bold green]beneficiary payments match the ledger[/]")
    else:
        console.print("[bold red]beneficiary check FAILED[/]")


def print_statement_check(
    console: Console, statement: RevenueStatement, check: StatementCheck
) -> None:
    """A verified statement: its period, totals, and which entries are anchored on chain."""
    table = Table(
        title=f"revenue statement of asset 0x{statement.asset_id.hex()}", show_header=False
    )
    table.add_column("what")
    table.add_column("value")
    table.add_row(
        "period (UTC)", f"{utc(statement.from_time)} .. {utc(statement.to_time)} (end excluded)"
    )
    table.add_row("entries", f"seq {statement.first_seq}..{statement.last_seq}")
    _totals_rows(table, check.totals)
    table.add_row("anchored on chain", seq_ranges(check.anchored))
    table.add_row("not yet anchored", seq_ranges(check.unanchored))
    console.print(table)
    if check.totals.by_beneficiary:
        console.print(_beneficiary_table(check.totals))
    console.print("[bold green]statement verified[/]")


def _use_table(lines: Sequence[UseLine], title: str) -> Table:
    table = Table(title=title)
    columns: tuple[tuple[str, JustifyMethod], ...] = (
        ("asset", "left"),
        ("seq", "right"),
        ("time (UTC)", "left"),
        ("units", "right"),
        ("fee", "right"),
        ("charge payment id", "right"),
        ("status", "left"),
    )
    for name, justify in columns:
        table.add_column(name, justify=justify)
    for line in lines:
        table.add_row(
            "?" if line.asset_id is None else short(line.asset_id),
            "-" if line.seq is None else str(line.seq),
            utc(line.time),
            "-" if line.units is None else f"{line.units:,}",
            "-" if line.fee is None else euro(line.fee),
            str(line.charge_payment_id),
            escape(line.status + (f": {line.detail}" if line.detail else "")),
        )
    return table


def print_user_uses(console: Console, lines: Sequence[UseLine]) -> None:
    """A user's receipts (`receipt_uses`) and its totals per asset."""
    console.print(_use_table(lines, "uses (receipts kept)"))
    per_asset: dict[bytes, tuple[int, int]] = {}
    for line in lines:
        if line.asset_id is not None and line.status == "signed":
            uses, fees = per_asset.get(line.asset_id, (0, 0))
            per_asset[line.asset_id] = (uses + 1, fees + (line.fee or 0))
    table = Table(title="totals per asset (validly signed receipts)")
    table.add_column("asset")
    table.add_column("uses", justify="right")
    table.add_column("fees", justify="right")
    for asset_id, (uses, fees) in sorted(per_asset.items()):
        table.add_row(f"0x{asset_id.hex()}", f"{uses:,}", euro(fees))
    console.print(table)
    bad = [line for line in lines if line.status != "signed"]
    if bad:
        console.print(f"[bold red]{len(bad)} receipt(s) do not check out[/]")


def print_user_check(console: Console, check: UserCheck) -> None:
    """A user's receipts of one asset against its ledger."""
    console.print(
        _use_table(check.uses, f"receipts against the ledger of 0x{check.asset_id.hex()}")
    )
    for problem in check.problems():
        console.print(f"  {escape(problem)}")
    if check.ok:
        console.print(
            f"[bold green]{len(check.uses)} receipt(s) match the ledger[/] "
            f"(fees {euro(check.fee_total)})"
        )
    else:
        console.print("[bold red]receipt check FAILED[/]")


def print_lifecycle(console: Console, name: str, life: Lifecycle) -> None:
    """An asset's history: one timeline of service events and chain facts, revenue per day,
    and who serviced what."""
    timeline = Table(title=f"{name}: lifecycle ({life.uses} uses, revenue {euro(life.revenue)})")
    timeline.add_column("when (UTC)")
    timeline.add_column("what")
    for when, what in life.timeline():
        timeline.add_row(utc(when), escape(what))
    timeline.add_row(
        "now",
        f"{life.uses_since_last_service} uses and {euro(life.revenue_since_last_service)} "
        "since the last service event",
    )
    console.print(timeline)
    periods = Table(title=f"{name}: revenue per day")
    for column in ("day", "uses", "revenue"):
        periods.add_column(column, justify="left" if column == "day" else "right")
    for period in life.periods:
        periods.add_row(period.day, str(period.uses), euro(period.revenue))
    console.print(periods)
    if life.by_servicer:
        servicers = Table(title=f"{name}: who serviced what")
        servicers.add_column("servicer")
        servicers.add_column("events")
        for servicer, actions in life.by_servicer.items():
            servicers.add_row(
                to_checksum(servicer), ", ".join(f"{a}: {n}" for a, n in sorted(actions.items()))
            )
        console.print(servicers)


__all__ = [
    "print_beneficiary_check",
    "print_entries",
    "print_ledger_audit",
    "print_lifecycle",
    "print_statement_check",
    "print_unpaid_shares",
    "print_user_check",
    "print_user_uses",
    "seq_ranges",
    "short",
    "utc",
]

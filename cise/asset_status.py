"""`cise asset status ID --ledger PATH [--store PATH] [--json]`: what an asset agent's ledger file
says of the asset now: uses, revenue, the shares not paid (count and amount per beneficiary, with
the reason), the fee float for routing fees, and the last anchor against the ledger head.

Informational: it exits 0 whenever it could read the files (2 for a bad argument or file, 1 for a
ledger whose rows do not decode); whether the ledger is sound is `cise ledger verify`'s finding.
It opens every file read-only (the agent may be running) and must never write or judge.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from assets.ledger import LedgerError, RevenueTotals, revenue_totals
from assets.use_book import ShareFailure
from channels.core.types import to_checksum
from channels.records import PaymentRecord
from cise.errors import CliError
from cise.ledger_files import read_facts, read_ledger, read_only
from cise.money import euro


def add_status_parser(ops: Any) -> None:
    status = ops.add_parser(
        "status", help="uses, revenue, unpaid shares, fee float and anchoring of an asset"
    )
    status.add_argument("asset", help="asset id: 0x + 64 hex, or its name")
    status.add_argument("--ledger", required=True, type=Path, help="the agent's sqlite ledger")
    status.add_argument("--store", type=Path, help="the agent's store: routing fees paid")
    status.add_argument("--json", action="store_true", help="one JSON object")


def unpaid_lines(failures: Iterable[ShareFailure]) -> list[str]:
    """One line per share not paid: entry, beneficiary, amount, attempts, reason."""
    return [
        f"seq {f.seq}: {euro(f.amount)} to {to_checksum(f.beneficiary)} (payment {f.payment_id}),"
        f" {f.attempts} failed attempt(s): {f.reason}"
        for f in failures
    ]


def _routing_fees(store: Path) -> tuple[int, int]:
    """(routing fees paid, payments completed) from the agent's store."""
    payments = [r for r in read_facts(store, "payment:") if isinstance(r, PaymentRecord)]
    done = [p for p in payments if p.status == "completed"]
    return sum(p.fee for p in done), len(done)


def _last_anchor(path: Path) -> dict[str, int | None] | None:
    db = read_only(path)
    try:
        row = db.execute(
            'SELECT "index", from_seq, to_seq, block FROM anchors ORDER BY "index" DESC LIMIT 1'
        ).fetchone()
    finally:
        db.close()
    if row is None:
        return None
    return {"index": row[0], "from_seq": row[1], "to_seq": row[2], "block": row[3]}


def asset_status(args: argparse.Namespace) -> int:
    from cise.ledger_cmd import parse_asset_id

    asset_id = parse_asset_id(args.asset)
    try:
        ledger = read_ledger(args.ledger, asset_id)
    except LedgerError as exc:
        print(f"cise asset status: the ledger file is broken: {exc}")
        return 1
    if ledger.book is None:
        raise CliError(
            f"--ledger {args.ledger}: status needs the agent's sqlite ledger file (an export "
            "holds no payments)"
        )
    try:
        totals: RevenueTotals | None = revenue_totals(ledger.entries)
    except LedgerError:
        totals = None  # `cise ledger verify` names the entry
    book = ledger.book
    per: dict[bytes, list[int]] = {}
    for failure in book.failures:
        slot = per.setdefault(failure.beneficiary, [0, 0])
        slot[0] += 1
        slot[1] += failure.amount
    head = ledger.entries[-1].seq if ledger.entries else 0
    anchor = _last_anchor(args.ledger)
    fees = _routing_fees(args.store) if args.store is not None else None
    fl = book.fee_float
    report: dict[str, Any] = {
        "asset": "0x" + asset_id.hex(),
        "uses": book.counts,
        "revenue": None if totals is None else totals.fee_total,
        "ledger_head": head,
        "last_anchor": anchor,
        "unanchored": head - (anchor["to_seq"] or 0 if anchor else 0),
        "unpaid_shares": {
            "count": len(book.failures),
            "amount": sum(f.amount for f in book.failures),
            "by_beneficiary": {
                to_checksum(b): {"count": c, "amount": a} for b, (c, a) in sorted(per.items())
            },
            "shares": [
                {
                    "seq": f.seq,
                    "beneficiary": to_checksum(f.beneficiary),
                    "amount": f.amount,
                    "attempts": f.attempts,
                    "reason": f.reason,
                }
                for f in book.failures
            ],
        },
        "uses_being_paid": len(book.ledgered_seqs),
        "fee_float": None
        if fl is None
        else {
            "target": fl.target,
            "spare": fl.spare,
            "owed": fl.owed,
            "deposit": fl.deposit,
            "at": fl.at,
        },
        "routing_fees": None if fees is None else {"paid": fees[0], "payments": fees[1]},
    }
    if args.json:
        print(json.dumps(report))
        return 0
    _print(report, book.failures)
    return 0


def _print(report: dict[str, Any], failures: Iterable[ShareFailure]) -> None:
    console = Console(highlight=False, soft_wrap=False, width=None if os.isatty(1) else 160)
    table = Table(title=f"asset {report['asset']}", show_header=False)
    table.add_column("what")
    table.add_column("value")
    uses = report["uses"]
    table.add_row("uses", ", ".join(f"{n:,} {status}" for status, n in sorted(uses.items())) or "0")
    revenue = report["revenue"]
    table.add_row("revenue", "unreadable" if revenue is None else euro(revenue))
    unpaid = report["unpaid_shares"]
    table.add_row("shares not paid", f"{unpaid['count']:,} ({euro(unpaid['amount'])})")
    for who, line in unpaid["by_beneficiary"].items():
        table.add_row(f"  to {who}", f"{line['count']:,} ({euro(line['amount'])})")
    table.add_row("uses whose shares are being paid", f"{report['uses_being_paid']:,}")
    fl = report["fee_float"]
    table.add_row(
        "fee float",
        "not recorded yet"
        if fl is None
        else f"{euro(fl['spare'])} spare of a {euro(fl['target'])} float (deposit "
        f"{euro(fl['deposit'])}, {euro(fl['owed'])} owed in shares, at unix {fl['at']})",
    )
    if report["routing_fees"] is not None:
        fees = report["routing_fees"]
        table.add_row("routing fees paid", f"{euro(fees['paid'])} ({fees['payments']:,} payments)")
    anchor = report["last_anchor"]
    table.add_row(
        "last anchor",
        "none"
        if anchor is None
        else f"{anchor['index']}: seq {anchor['from_seq']}..{anchor['to_seq']}, block "
        f"{anchor['block'] if anchor['block'] is not None else 'unknown'}",
    )
    table.add_row(
        "ledger head", f"seq {report['ledger_head']} ({report['unanchored']:,} not anchored)"
    )
    console.print(table)
    for line in unpaid_lines(failures):
        console.print(f"[bold red]share not paid:[/] {escape(line)}")


__all__ = ["add_status_parser", "asset_status", "unpaid_lines"]

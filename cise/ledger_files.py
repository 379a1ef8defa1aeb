"""Reading what `cise ledger` and `cise user` check: an asset's ledger (its agent's sqlite file,
or a `.jsonl` export) and an agent's stored invoices and receipts.

Every file is opened read-only (the agent may be running; with no `-wal` file also immutable, so
nothing is left beside it). It must never write to a ledger or a store, or judge what it reads:
that is `assets.audit`.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from assets.ledger import Anchor, LedgerError, SignedEntry, decode_entry, entry_from_json
from assets.use_book import FloatState, ShareFailure, float_state, share_failures
from channels.input_limits import load_json
from channels.ownership import connect_read_only
from channels.records import InvoiceRecord, ReceiptRecord, core_record_codec
from channels.store import StoreError
from cise.errors import CliError

SQLITE_HEADER = b"SQLite format 3\x00"


@dataclass(frozen=True, slots=True)
class UseBookView:
    """What the asset agent's use book (in its sqlite ledger file) says of its uses' payments."""

    counts: dict[str, int]  # uses per status (accepted, ledgered, paid, refused)
    ledgered_seqs: tuple[int, ...]  # entries whose shares are not all paid yet
    failures: tuple[ShareFailure, ...]  # shares not paid after a failed attempt
    fee_float: FloatState | None = None  # as the agent last recorded it


@dataclass(frozen=True, slots=True)
class LedgerFile:
    """A ledger as read from a file: its entries in stored order, the anchors it recorded and
    what its use book says (a sqlite ledger only; None for an export, which holds entries only)."""

    path: Path
    entries: tuple[SignedEntry, ...]
    anchors: tuple[Anchor, ...] | None
    book: UseBookView | None = None


def read_only(path: Path) -> sqlite3.Connection:
    """A read-only connection that leaves no file behind (`channels.ownership.connect_read_only`)."""
    return connect_read_only(path)


def _tables(db: sqlite3.Connection, path: Path, what: str) -> set[str]:
    try:
        rows = db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    except sqlite3.DatabaseError as exc:
        raise CliError(f"{path}: not a readable {what}: {exc}") from None
    return {row[0] for row in rows}


def _read_sqlite_ledger(path: Path) -> LedgerFile:
    db = read_only(path)
    try:
        tables = _tables(db, path, "ledger file")
        if not {"entries", "anchors"} <= tables:
            raise CliError(f"{path}: not a ledger file (it has no entries and anchors tables)")
        try:
            # as bytes: a row rewritten as text that is not UTF-8 is a finding, not a crash
            rows = db.execute(
                "SELECT seq, CAST(entry AS BLOB) FROM entries ORDER BY seq"
            ).fetchall()
            anchor_rows = db.execute(
                'SELECT from_seq, to_seq, root, head_hash FROM anchors ORDER BY "index"'
            ).fetchall()
        except sqlite3.DatabaseError as exc:
            raise CliError(f"{path}: not a readable ledger file: {exc}") from None
        book = _read_use_book(db, path) if "uses" in tables else None
    finally:
        db.close()
    entries = []
    for seq, raw in rows:
        try:
            entry = decode_entry(bytes(raw))
        except LedgerError as exc:
            raise LedgerError(f"the stored entry does not decode: {exc.problem}", seq) from None
        if entry.seq != seq:
            raise LedgerError(f"the stored entry says seq {entry.seq}", seq)
        entries.append(entry)
    try:
        anchors = tuple(
            Anchor(int(a), int(b), bytes(root), bytes(head)) for a, b, root, head in anchor_rows
        )
    except (msgspec.ValidationError, TypeError, ValueError) as exc:
        raise LedgerError(f"a stored anchor is malformed: {exc}") from None
    return LedgerFile(path, tuple(entries), anchors, book)


def _read_use_book(db: sqlite3.Connection, path: Path) -> UseBookView:
    """The use book beside the entries; a malformed row is a `LedgerError` naming it."""
    try:
        counts = {
            bytes(status).decode("utf-8", errors="replace"): int(count)
            for status, count in db.execute(
                "SELECT CAST(status AS BLOB), COUNT(*) FROM uses GROUP BY status"
            )
        }
        seqs = tuple(
            int(seq)
            for (seq,) in db.execute(
                "SELECT seq FROM uses WHERE status = 'ledgered' AND seq IS NOT NULL ORDER BY seq"
            )
        )
        failures = tuple(share_failures(db))
        fee_float = float_state(db)
    except sqlite3.DatabaseError as exc:
        raise CliError(f"{path}: not a readable ledger file: {exc}") from None
    except (TypeError, ValueError) as exc:
        raise LedgerError(f"the use book is malformed: {exc}") from None
    return UseBookView(counts, seqs, failures, fee_float)


def _read_jsonl_ledger(path: Path, text: str) -> LedgerFile:
    entries = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = load_json(line.encode(), what="the line")  # InputError is a ValueError
            if not isinstance(obj, dict):
                raise ValueError("not a JSON object")
            entries.append(entry_from_json(obj))
        except ValueError as exc:  # LedgerError and JSONDecodeError are ValueErrors
            raise CliError(f"{path}:{number}: not a ledger export line: {exc}") from None
    return LedgerFile(path, tuple(entries), None)


def read_ledger(path: Path, asset_id: bytes | None = None) -> LedgerFile:
    """The ledger in `path`: an asset agent's sqlite ledger file, or a JSONL export.

    `CliError` when the file is missing or no ledger, or (with `asset_id`) another asset's;
    `LedgerError` when a stored entry itself is broken (a finding, not a bad argument).
    """
    try:
        with path.open("rb") as file:
            head = file.read(len(SQLITE_HEADER))
    except OSError as exc:
        raise CliError(f"--ledger {path}: {exc.strerror or exc}") from None
    if head == SQLITE_HEADER:
        ledger = _read_sqlite_ledger(path)
    else:
        try:
            text = path.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise CliError(f"--ledger {path}: not a ledger file ({exc})") from None
        if text.strip() and not text.lstrip().startswith("{"):
            raise CliError(f"--ledger {path}: not a ledger file (neither sqlite nor JSON lines)")
        ledger = _read_jsonl_ledger(path, text)
    if asset_id is not None and ledger.entries and ledger.entries[0].asset_id != asset_id:
        raise CliError(
            f"--ledger {path} is the ledger of asset 0x{ledger.entries[0].asset_id.hex()}, "
            f"not of 0x{asset_id.hex()}"
        )
    return ledger


def read_facts(path: Path, prefix: str) -> list[Any]:
    """The facts under `prefix` of an agent's store, read-only (the agent may be running);
    `CliError` naming the first fact that does not decode."""
    records, broken = _read_facts_checked(path, prefix)
    if broken:
        raise CliError(f"--store {path}: {broken[0]}")
    return records


def _read_facts_checked(path: Path, prefix: str) -> tuple[list[Any], list[str]]:
    """(the facts under `prefix` that decode, a message naming each one that does not)."""
    if not path.is_file():
        raise CliError(f"--store {path}: no such file")
    codec = core_record_codec()
    db = read_only(path)
    try:
        if "facts" not in _tables(db, path, "agent store"):
            raise CliError(f"--store {path}: not an agent store (it has no facts table)")
        rows = db.execute(
            "SELECT CAST(key AS BLOB), CAST(kind AS BLOB), payload FROM facts "
            "WHERE key >= ? AND key < ? ORDER BY key",
            (prefix, prefix + "\U0010ffff"),
        ).fetchall()
    except sqlite3.DatabaseError as exc:
        raise CliError(f"--store {path}: not a readable agent store: {exc}") from None
    finally:
        db.close()
    records = []
    broken = []
    for raw_key, raw_kind, payload in rows:
        key = bytes(raw_key).decode("utf-8", errors="replace")
        try:  # UnicodeDecodeError is a ValueError
            records.append(codec.decode(bytes(raw_kind).decode(), bytes(payload)))
        except (ValueError, TypeError, msgspec.DecodeError, StoreError) as exc:
            broken.append(f"fact {key} cannot be decoded: {exc}")
    return records, broken


def read_invoices(path: Path) -> list[InvoiceRecord]:
    """The invoices an agent issued as payee (what it was paid), from its store file."""
    return [r for r in read_facts(path, "invoice:") if isinstance(r, InvoiceRecord)]


def read_receipts(path: Path) -> list[ReceiptRecord]:
    """The receipts an agent kept for the charges it paid, from its store file."""
    return [r for r in read_facts(path, "receipt:") if isinstance(r, ReceiptRecord)]


def read_receipts_checked(path: Path) -> tuple[list[ReceiptRecord], list[str]]:
    """(the receipts that decode, a message naming each stored receipt that does not)."""
    records, broken = _read_facts_checked(path, "receipt:")
    return [r for r in records if isinstance(r, ReceiptRecord)], broken


__all__ = [
    "LedgerFile",
    "UseBookView",
    "read_invoices",
    "read_ledger",
    "read_receipts",
    "read_receipts_checked",
]

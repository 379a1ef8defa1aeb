"""The asset agent's durable record of every meter event it accepted, and how far each got.

One row per event id, in the same sqlite file as the asset's ledger (so a use and its ledger entry
commit together): `accepted` (priced, the charge under way) → `ledgered` (paid by the user, its
entry appended, the beneficiaries' shares being paid) → `paid` (every share paid); or `refused`
(the user did not pay: no entry, no shares). A restarted agent resumes every use that is not
final from here, so nothing is charged twice and no share is skipped. Also kept here: the meter
guard's last accepted event (order checks survive a restart), the payout numbering (each
beneficiary's shares are paid with consecutive payment ids), and every share whose payment failed
and is not paid yet (`share_failures`: its entry, beneficiary, amount, failed attempts and the last
reason), so a restart tries a fresh payment id at once and `cise ledger verify` / `cise asset
status` can name what is owed and why.

This module must never decide anything: it stores what the agent decided.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass

import msgspec

from assets.meter import GuardState, MeterEvent

_SCHEMA = """
CREATE TABLE IF NOT EXISTS uses (
    event_id TEXT PRIMARY KEY,
    event BLOB NOT NULL,
    status TEXT NOT NULL,
    fee INTEGER NOT NULL,
    charge_id TEXT NOT NULL,
    seq INTEGER,
    reason TEXT NOT NULL DEFAULT ''
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS uses_open ON uses (status) WHERE status IN ('accepted', 'ledgered');
CREATE TABLE IF NOT EXISTS guard (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    state BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS service_events (
    event_id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS service_rules (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    state BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS share_failures (
    payment_id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    beneficiary BLOB NOT NULL,
    amount INTEGER NOT NULL,
    attempts INTEGER NOT NULL,
    reason TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS fee_float (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    target INTEGER NOT NULL,
    spare INTEGER NOT NULL,
    owed INTEGER NOT NULL,
    deposit INTEGER NOT NULL,
    at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS payees (
    beneficiary BLOB PRIMARY KEY,
    slot INTEGER NOT NULL UNIQUE,
    paid_count INTEGER NOT NULL
) WITHOUT ROWID;
"""

OPEN = ("accepted", "ledgered")

_json_encoder = msgspec.json.Encoder()
_event_decoder = msgspec.json.Decoder(MeterEvent)
_guard_decoder = msgspec.json.Decoder(GuardState)


class ServiceRulesState(msgspec.Struct, frozen=True):
    """What `assets.service_events.ServiceRules` must get back after a restart."""

    admitted: tuple[bytes, ...] = ()
    last_service_time: int | None = None
    ended_at_seq: int | None = None


_rules_decoder = msgspec.json.Decoder(ServiceRulesState)


@dataclass(frozen=True, slots=True)
class ShareFailure:
    """A share of a ledger entry whose payment failed and that is not paid yet."""

    seq: int  # the ledger entry that owes it
    payment_id: int  # the ledger's id of the share (attempt 0)
    beneficiary: bytes
    amount: int
    attempts: int  # failed attempts so far: the next attempt number
    reason: str  # why the last attempt failed


@dataclass(frozen=True, slots=True)
class FloatState:
    """The fee float as the agent last saw it (`assets.fee_float`), in token units."""

    target: int
    spare: int  # what it could send beyond the shares it owed
    owed: int  # shares being paid
    deposit: int  # its own total deposit in the channel with the hub
    at: int  # unix seconds


@dataclass(frozen=True, slots=True)
class UseRow:
    """One accepted meter event and how far it got."""

    event: MeterEvent
    status: str  # accepted | ledgered | paid | refused
    fee: int
    charge_id: int
    seq: int | None
    reason: str


class UseBook:
    """The `uses`, `guard` and `payees` tables on the ledger's sqlite connection.

    Writes happen inside the caller's transaction (the ledger store's), never committed here.
    """

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        db.executescript(_SCHEMA)

    # -- uses ------------------------------------------------------------------------------------

    def use(self, event_id: str) -> UseRow | None:
        row = self.db.execute(
            "SELECT event, status, fee, charge_id, seq, reason FROM uses WHERE event_id = ?",
            (event_id,),
        ).fetchone()
        return None if row is None else _row(row)

    def accept(self, event: MeterEvent, fee: int, charge_id: int, guard: GuardState) -> None:
        """Record a newly accepted event and the meter guard's state after it."""
        self.db.execute(
            "INSERT INTO uses (event_id, event, status, fee, charge_id) VALUES (?, ?, ?, ?, ?)",
            (event.event_id, _json_encoder.encode(event), "accepted", fee, str(charge_id)),
        )
        self.db.execute(
            "INSERT OR REPLACE INTO guard (id, state) VALUES (1, ?)", (_json_encoder.encode(guard),)
        )

    def set_status(
        self, event_id: str, status: str, *, seq: int | None = None, reason: str = ""
    ) -> None:
        cursor = self.db.execute(
            "UPDATE uses SET status = ?, seq = COALESCE(?, seq), reason = ? WHERE event_id = ?",
            (status, seq, reason, event_id),
        )
        if cursor.rowcount != 1:
            raise KeyError(f"no accepted use has event id {event_id!r}")

    def open_uses(self) -> Iterator[UseRow]:
        """Uses not final yet (accepted or ledgered), in acceptance order of their events."""
        rows = self.db.execute(
            "SELECT event, status, fee, charge_id, seq, reason FROM uses "
            "WHERE status IN ('accepted', 'ledgered')"
        ).fetchall()
        return iter(sorted((_row(r) for r in rows), key=lambda u: (u.event.at, u.seq or 0)))

    def counts(self) -> dict[str, int]:
        """How many uses are in each status."""
        return dict(self.db.execute("SELECT status, COUNT(*) FROM uses GROUP BY status").fetchall())

    def guard_state(self) -> GuardState | None:
        """The meter guard's state after the last accepted event (None before the first)."""
        row = self.db.execute("SELECT state FROM guard WHERE id = 1").fetchone()
        return None if row is None else _guard_decoder.decode(row[0])

    # -- service events -----------------------------------------------------------------------------

    def service_event_seq(self, event_id: str) -> int | None:
        """The ledger seq of a recorded service event or admission (None if there is none)."""
        row = self.db.execute(
            "SELECT seq FROM service_events WHERE event_id = ?", (event_id,)
        ).fetchone()
        return None if row is None else int(row[0])

    def record_service_event(self, event_id: str, seq: int, rules: ServiceRulesState) -> None:
        self.db.execute("INSERT INTO service_events (event_id, seq) VALUES (?, ?)", (event_id, seq))
        self.db.execute(
            "INSERT OR REPLACE INTO service_rules (id, state) VALUES (1, ?)",
            (_json_encoder.encode(rules),),
        )

    def service_rules(self) -> ServiceRulesState | None:
        row = self.db.execute("SELECT state FROM service_rules WHERE id = 1").fetchone()
        return None if row is None else _rules_decoder.decode(row[0])

    # -- shares not paid ------------------------------------------------------------------------

    def record_share_failure(self, failure: ShareFailure) -> None:
        """A failed attempt to pay a share (replaces the share's earlier failure)."""
        self.db.execute(
            "INSERT OR REPLACE INTO share_failures "
            "(payment_id, seq, beneficiary, amount, attempts, reason) VALUES (?, ?, ?, ?, ?, ?)",
            (
                str(failure.payment_id),
                failure.seq,
                failure.beneficiary,
                failure.amount,
                failure.attempts,
                failure.reason,
            ),
        )

    def clear_share_failure(self, payment_id: int) -> None:
        """The share with ledger id `payment_id` is paid."""
        self.db.execute("DELETE FROM share_failures WHERE payment_id = ?", (str(payment_id),))

    def failed_attempts(self, payment_id: int) -> int:
        """How many attempts to pay the share `payment_id` failed (0: none recorded)."""
        row = self.db.execute(
            "SELECT attempts FROM share_failures WHERE payment_id = ?", (str(payment_id),)
        ).fetchone()
        return 0 if row is None else int(row[0])

    def share_failures(self) -> list[ShareFailure]:
        """Every share not paid after a failed attempt, by seq."""
        return share_failures(self.db)

    # -- the fee float ----------------------------------------------------------------------------

    def save_float(self, state: FloatState) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO fee_float (id, target, spare, owed, deposit, at) "
            "VALUES (1, ?, ?, ?, ?, ?)",
            (state.target, state.spare, state.owed, state.deposit, state.at),
        )

    # -- payout numbering ---------------------------------------------------------------------------

    def payees(self) -> dict[bytes, tuple[int, int]]:
        """Every beneficiary paid so far: its slot and how many shares it was given."""
        return {
            bytes(b): (slot, count)
            for b, slot, count in self.db.execute(
                "SELECT beneficiary, slot, paid_count FROM payees"
            )
        }

    def save_payee(self, beneficiary: bytes, slot: int, paid_count: int) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO payees (beneficiary, slot, paid_count) VALUES (?, ?, ?)",
            (beneficiary, slot, paid_count),
        )


def share_failures(db: sqlite3.Connection) -> list[ShareFailure]:
    """The `share_failures` rows of a ledger file's connection (empty when it has none), by seq;
    `ValueError` naming the row when a stored row is malformed."""
    if not db.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'share_failures'"
    ).fetchone():
        return []
    failures = []
    for row in db.execute(
        "SELECT CAST(payment_id AS BLOB), seq, beneficiary, amount, attempts, "
        "CAST(reason AS BLOB) FROM share_failures ORDER BY seq, payment_id"
    ):
        raw_id, seq, beneficiary, amount, attempts, reason = row
        try:
            failures.append(
                ShareFailure(
                    int(seq),
                    int(bytes(raw_id).decode()),
                    bytes(beneficiary),
                    int(amount),
                    int(attempts),
                    bytes(reason).decode("utf-8", errors="replace"),
                )
            )
        except (TypeError, ValueError) as exc:  # UnicodeDecodeError is a ValueError
            raise ValueError(f"share failure row of seq {seq} is malformed: {exc}") from None
    return failures


def float_state(db: sqlite3.Connection) -> FloatState | None:
    """The fee float the agent last recorded in a ledger file (None: never)."""
    if not db.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'fee_float'"
    ).fetchone():
        return None
    row = db.execute(
        "SELECT target, spare, owed, deposit, at FROM fee_float WHERE id = 1"
    ).fetchone()
    return None if row is None else FloatState(*(int(v) for v in row))


def _row(row: tuple[bytes, str, int, str, int | None, str]) -> UseRow:
    event, status, fee, charge_id, seq, reason = row
    return UseRow(_event_decoder.decode(event), status, fee, int(charge_id), seq, reason)


__all__ = [
    "OPEN",
    "FloatState",
    "ServiceRulesState",
    "ShareFailure",
    "UseBook",
    "UseRow",
    "float_state",
    "share_failures",
]

"""The settlement service's durable record: one sqlite file per hub (WAL, synchronous=FULL).

Tables: `meta` (whose file this is: the hub, the chain, the channel manager), `rounds` (one row
per settlement round: why it ran, its block and expiry, its outcome), `items` (each planned
withdraw of a round, with the counterparty's signature once it arrived and the transaction it went
in), `deposits` (the round's re-deposits), `transactions` (each batch transaction: the exact
arguments the hub signed, written BEFORE it is sent, then its hash, gas and outcome; a failed one's
items move to the smaller transactions that retry them), `excluded` (items the chain refuses
alone, with the reason), `misses`
(counterparties that did not sign, since when, and whether their channel was closed), and
`requests` (`cise settle run` asking the running hub for a round now; the hub answers with the
round's id), and `signed` (each batch transaction as the node's transaction manager signed it:
nonce, fees, every signed version; written before its raw bytes leave, so a restart sends the
same nonce again rather than a second transaction), `treasury_counted` (each channel's net
received - sent when the hub's fee income was last counted) and `treasury_payments` (the
community treasury's part of a round's fee income, recorded before it is paid; `settlement.treasury`).
Amounts are stored as decimal text (uint96 does not fit sqlite's integers).

The running hub writes the file only from its node's commit thread (`NodeService.write_durably`:
one pipeline for every durable file of the process, never an fsync on the trio thread), through
a connection of its own; its reads use another connection and see what is committed.

Because a transaction's arguments are durable before it leaves, a hub that crashes mid-round
finds them at start and finishes them (`settlement.rounds.recover` decides how), so nothing is
applied twice and nothing signed is lost. The hub owns the file (`channels.ownership`: a second
owner is refused, naming the running hub). Other processes (`cise settle status|history`, the API)
open it read-only while the hub runs; the one write they may make is a round request
(`requests_only`: `cise settle run`, the API's POST), a row of `requests` whose id sqlite assigns
and which the hub reads afresh each time, so no in-memory state of the hub can disagree with it.

It stores and returns what it is given: it must never decide anything, touch the chain or the
network, or be written by two hubs (the `meta` row says whose it is).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from channels.core.types import Address, to_checksum
from channels.ownership import Ownership, claim, connect_read_only

SCHEMA_VERSION = "1"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS rounds (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    started_at REAL NOT NULL,
    reason TEXT NOT NULL,
    block INTEGER NOT NULL,
    expiry INTEGER NOT NULL,
    status TEXT NOT NULL,  -- collecting, sending, then settled, partial, unsigned, empty,
    -- failed, skipped (the follower was behind) or abandoned (stopped while collecting)
    finished_at REAL,
    note TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS items (
    round_id INTEGER NOT NULL,
    channel_id INTEGER NOT NULL,
    participant BLOB NOT NULL,
    partner BLOB NOT NULL,
    total_withdraw TEXT NOT NULL,
    amount TEXT NOT NULL,
    signature BLOB,  -- the counterparty's, once it signed
    tx_index INTEGER,  -- the round's transaction carrying it
    PRIMARY KEY (round_id, channel_id, participant)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS deposits (
    round_id INTEGER NOT NULL,
    channel_id INTEGER NOT NULL,
    partner BLOB NOT NULL,
    total_deposit TEXT NOT NULL,
    amount TEXT NOT NULL,
    tx_index INTEGER,
    PRIMARY KEY (round_id, channel_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS transactions (
    round_id INTEGER NOT NULL,
    tx_index INTEGER NOT NULL,
    expiry INTEGER NOT NULL,
    hub_signature BLOB NOT NULL,
    withdraws BLOB NOT NULL,  -- packed, as sent
    deposits BLOB NOT NULL,
    gas_limit INTEGER NOT NULL,
    status TEXT NOT NULL,  -- signed, applied, reverted, expired, stale
    tx_hash BLOB,
    gas_used INTEGER,
    block INTEGER,
    error TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (round_id, tx_index)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS excluded (
    round_id INTEGER NOT NULL,
    kind TEXT NOT NULL,  -- withdraw or deposit
    channel_id INTEGER NOT NULL,
    participant BLOB NOT NULL,  -- who withdraws (a re-deposit: the hub)
    reason TEXT NOT NULL,  -- why the chain refuses it alone (its revert, or its gas)
    PRIMARY KEY (round_id, kind, channel_id, participant)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS misses (
    channel_id INTEGER PRIMARY KEY,
    partner BLOB NOT NULL,
    first_missed_at REAL NOT NULL,
    rounds INTEGER NOT NULL,
    closed_at REAL  -- when the hub decided to close it (the node's close follows, reissued at start)
);
CREATE TABLE IF NOT EXISTS signed (
    round_id INTEGER NOT NULL,
    tx_index INTEGER NOT NULL,
    record BLOB NOT NULL,  -- the transaction manager's record (msgpack), newest version last
    PRIMARY KEY (round_id, tx_index)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS requests (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    requested_at REAL NOT NULL,
    round_id INTEGER
);
CREATE TABLE IF NOT EXISTS treasury_counted (
    channel_id INTEGER PRIMARY KEY,
    net TEXT NOT NULL  -- received - sent in the channel when its income was last counted
);
CREATE TABLE IF NOT EXISTS treasury_payments (
    round_id INTEGER PRIMARY KEY,
    income TEXT NOT NULL,  -- the hub's fee income counted in this round
    ppm INTEGER NOT NULL,  -- the governed part in force
    amount TEXT NOT NULL,  -- floor(income * ppm / 1e6), owed to the treasury
    treasury BLOB NOT NULL,
    status TEXT NOT NULL,  -- owed (recorded, not yet landed) or paid
    attempt INTEGER NOT NULL DEFAULT 0,  -- a failed attempt (nothing moved) is followed by another
    signed BLOB,  -- the current attempt as the transaction manager signed it
    tx_hash BLOB,
    gas_used INTEGER,
    error TEXT NOT NULL DEFAULT '',
    recorded_at REAL NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class TreasuryPaymentRow:
    """The treasury's part of one round's fee income, recorded before it is paid."""

    round_id: int
    income: int
    ppm: int
    amount: int
    treasury: Address
    status: str  # owed or paid
    attempt: int
    signed: bytes | None
    tx_hash: bytes | None
    gas_used: int | None
    error: str
    recorded_at: float


class SettlementStoreError(Exception):
    """The file belongs to another hub or network, or cannot be used."""


@dataclass(frozen=True, slots=True)
class ItemRow:
    round_id: int
    channel_id: int
    participant: Address
    partner: Address
    total_withdraw: int
    amount: int
    signature: bytes | None
    tx_index: int | None


@dataclass(frozen=True, slots=True)
class DepositRow:
    round_id: int
    channel_id: int
    partner: Address
    total_deposit: int
    amount: int
    tx_index: int | None


@dataclass(frozen=True, slots=True)
class TransactionRow:
    round_id: int
    tx_index: int
    expiry: int
    hub_signature: bytes
    withdraws: bytes
    deposits: bytes
    gas_limit: int
    status: str
    tx_hash: bytes | None
    gas_used: int | None
    block: int | None
    error: str


@dataclass(frozen=True, slots=True)
class ExcludedRow:
    round_id: int
    kind: str  # withdraw or deposit
    channel_id: int
    participant: Address
    reason: str


@dataclass(frozen=True, slots=True)
class RoundRow:
    id: int
    started_at: float
    reason: str
    block: int
    expiry: int
    status: str
    finished_at: float | None
    note: str


@dataclass(frozen=True, slots=True)
class MissRow:
    channel_id: int
    partner: Address
    first_missed_at: float
    rounds: int
    closed_at: float | None


class SettlementStore:
    """The hub's settlement file (see the module docstring)."""

    def __init__(
        self, path: str | Path, *, read_only: bool = False, requests_only: bool = False
    ) -> None:
        """Open as the hub that owns the file (the default: `StoreInUseError` when another
        process owns it), `read_only`, or `requests_only` (beside the running hub: only
        `request_round` and `withdraw_request` write). The last two need an existing file."""
        if read_only and requests_only:
            raise ValueError("read_only or requests_only, not both")
        self.path = str(path)
        self._access = "read" if read_only else "requests" if requests_only else "owner"
        self._ownership: Ownership | None = None
        self._writer: sqlite3.Connection | None = None
        if self._access == "owner":
            self._ownership = claim(self.path)  # before anything is written
        elif not Path(path).is_file():
            raise SettlementStoreError(f"{path}: no settlement file (has `cise hub serve` run?)")
        try:
            if read_only:
                self._db = connect_read_only(path)
            elif requests_only:  # mode=rw: never creates the file
                uri = Path(path).resolve().as_uri() + "?mode=rw"
                self._db = sqlite3.connect(uri, uri=True, isolation_level=None)
            else:
                # the owner writes through its own connection, which the hub uses from its
                # node's commit thread (`NodeService.write_durably`), never from the trio
                # thread; reads use `_db` and see what is committed
                self._writer = sqlite3.connect(
                    self.path, isolation_level=None, check_same_thread=False
                )
                self._writer.execute("PRAGMA journal_mode=WAL")
                self._writer.execute("PRAGMA synchronous=FULL")
                self._writer.execute("PRAGMA busy_timeout=5000")
                self._writer.executescript(_SCHEMA)
                self._db = sqlite3.connect(self.path, isolation_level=None)
            self._db.execute("PRAGMA busy_timeout=5000")
        except sqlite3.Error as exc:
            self._release()
            raise SettlementStoreError(f"{path}: not a usable settlement file ({exc})") from None
        except BaseException:
            self._release()
            raise

    def _release(self) -> None:
        if self._ownership is not None:
            self._ownership.release()
            self._ownership = None

    def close(self) -> None:
        self._db.close()
        if self._writer is not None:
            self._writer.close()
        self._release()

    @contextmanager
    def _transaction(self, *, request: bool = False) -> Iterator[sqlite3.Connection]:
        """A write transaction; only the owner writes, but for round requests (`request`)."""
        if self._access == "read" or (self._access == "requests" and not request):
            raise SettlementStoreError(
                f"{self.path} is open {'read-only' if self._access == 'read' else 'for round requests only'}"
                ": the hub that owns it writes it"
            )
        db = self._db if self._writer is None else self._writer
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    # -- ownership ------------------------------------------------------------------------------

    def claim(self, hub: Address, chain_id: int, manager: Address) -> None:
        """Bind the file to this hub and network, or refuse one bound to another."""
        want = {
            "schema": SCHEMA_VERSION,
            "hub": to_checksum(hub),
            "chain_id": str(chain_id),
            "manager": to_checksum(manager),
        }
        with self._transaction() as db:
            have = dict(
                db.execute("SELECT key, value FROM meta WHERE key NOT LIKE 'status.%'").fetchall()
            )
            if not have:
                db.executemany("INSERT INTO meta VALUES (?, ?)", want.items())
                return
        if have != want:
            raise SettlementStoreError(
                f"{self.path} belongs to hub {have.get('hub')} on chain {have.get('chain_id')} "
                f"(manager {have.get('manager')}), not {want['hub']} on chain {chain_id}"
            )

    def owner(self) -> Address | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = 'hub'").fetchone()
        return Address(bytes.fromhex(row[0][2:])) if row else None

    # -- rounds ---------------------------------------------------------------------------------

    def start_round(
        self,
        *,
        now: float,
        reason: str,
        block: int,
        expiry: int,
        items: list[tuple[int, Address, Address, int, int]],
        deposits: list[tuple[int, Address, int, int]],
    ) -> int:
        """A new round in status `collecting` with its planned items
        (channel, participant, partner, total, amount) and re-deposits (channel, partner, total,
        amount)."""
        with self._transaction() as db:
            cursor = db.execute(
                "INSERT INTO rounds (started_at, reason, block, expiry, status)"
                " VALUES (?, ?, ?, ?, 'collecting')",
                (now, reason, block, expiry),
            )
            round_id = int(cursor.lastrowid or 0)
            db.executemany(
                "INSERT INTO items (round_id, channel_id, participant, partner, total_withdraw,"
                " amount) VALUES (?, ?, ?, ?, ?, ?)",
                [(round_id, c, bytes(p), bytes(q), str(t), str(a)) for c, p, q, t, a in items],
            )
            db.executemany(
                "INSERT INTO deposits (round_id, channel_id, partner, total_deposit, amount)"
                " VALUES (?, ?, ?, ?, ?)",
                [(round_id, c, bytes(p), str(t), str(a)) for c, p, t, a in deposits],
            )
        return round_id

    def record_signature(
        self, round_id: int, channel_id: int, participant: Address, signature: bytes
    ) -> bool:
        """Keep a counterparty's signature of a planned item; False when no such item waits."""
        return bool(self.record_signatures(round_id, [(channel_id, participant, signature)]))

    def record_signatures(
        self, round_id: int, signatures: Sequence[tuple[int, Address, bytes]]
    ) -> list[tuple[int, bytes]]:
        """Keep counterparties' signatures (channel, participant, signature) of planned items in
        one transaction (one fsync for all those a node commit brought); the (channel,
        participant) keys of the items that were waiting for them."""
        recorded = []
        with self._transaction() as db:
            for channel_id, participant, signature in signatures:
                cursor = db.execute(
                    "UPDATE items SET signature = ? WHERE round_id = ? AND channel_id = ?"
                    " AND participant = ? AND signature IS NULL",
                    (signature, round_id, channel_id, bytes(participant)),
                )
                if cursor.rowcount == 1:
                    recorded.append((channel_id, bytes(participant)))
        return recorded

    def record_transaction(
        self,
        round_id: int,
        tx_index: int,
        *,
        expiry: int,
        hub_signature: bytes,
        withdraws: bytes,
        deposits: bytes,
        gas_limit: int,
        items: list[tuple[int, Address]],
        deposit_channels: list[int],
    ) -> None:
        """A signed batch transaction, durable before it is sent, and which items it carries."""
        with self._transaction() as db:
            db.execute(
                "INSERT INTO transactions (round_id, tx_index, expiry, hub_signature, withdraws,"
                " deposits, gas_limit, status) VALUES (?, ?, ?, ?, ?, ?, ?, 'signed')",
                (round_id, tx_index, expiry, hub_signature, withdraws, deposits, gas_limit),
            )
            db.executemany(
                "UPDATE items SET tx_index = ? WHERE round_id = ? AND channel_id = ?"
                " AND participant = ?",
                [(tx_index, round_id, c, bytes(p)) for c, p in items],
            )
            db.executemany(
                "UPDATE deposits SET tx_index = ? WHERE round_id = ? AND channel_id = ?",
                [(tx_index, round_id, c) for c in deposit_channels],
            )

    def record_signed(self, round_id: int, tx_index: int, record: bytes) -> None:
        """A batch transaction as signed (again, after a replacement), before it is sent."""
        with self._transaction() as db:
            db.execute(
                "INSERT INTO signed VALUES (?, ?, ?) ON CONFLICT (round_id, tx_index)"
                " DO UPDATE SET record = excluded.record",
                (round_id, tx_index, record),
            )

    def signed(self, round_id: int, tx_index: int) -> bytes | None:
        """The signed record of a batch transaction (None: it was never signed)."""
        try:
            row = self._db.execute(
                "SELECT record FROM signed WHERE round_id = ? AND tx_index = ?",
                (round_id, tx_index),
            ).fetchone()
        except sqlite3.OperationalError:  # a file no hub of this version has opened yet
            return None
        return bytes(row[0]) if row else None

    def next_tx_index(self, round_id: int) -> int:
        """The index the round's next transaction gets (0 for its first)."""
        row = self._db.execute(
            "SELECT MAX(tx_index) FROM transactions WHERE round_id = ?", (round_id,)
        ).fetchone()
        return 0 if row is None or row[0] is None else int(row[0]) + 1

    def exclude(
        self,
        round_id: int,
        withdraws: list[tuple[int, Address]],
        deposits: list[tuple[int, Address]],
        reason: str,
    ) -> None:
        """Items (channel, participant) and re-deposits (channel, hub) the chain refuses alone:
        recorded with the reason, and in no transaction of the round any more."""
        rows = [("withdraw", c, p) for c, p in withdraws] + [("deposit", c, p) for c, p in deposits]
        with self._transaction() as db:
            db.executemany(
                "INSERT OR REPLACE INTO excluded VALUES (?, ?, ?, ?, ?)",
                [(round_id, kind, c, bytes(p), reason) for kind, c, p in rows],
            )
            db.executemany(
                "UPDATE items SET tx_index = NULL WHERE round_id = ? AND channel_id = ?"
                " AND participant = ?",
                [(round_id, c, bytes(p)) for c, p in withdraws],
            )
            db.executemany(
                "UPDATE deposits SET tx_index = NULL WHERE round_id = ? AND channel_id = ?",
                [(round_id, c) for c, _ in deposits],
            )

    def excluded(self, round_id: int) -> list[ExcludedRow]:
        try:
            rows = self._db.execute(
                "SELECT round_id, kind, channel_id, participant, reason FROM excluded"
                " WHERE round_id = ? ORDER BY kind DESC, channel_id, participant",
                (round_id,),
            ).fetchall()
        except sqlite3.OperationalError:  # a file no hub of this version has opened yet
            return []
        return [ExcludedRow(r, k, c, Address(p), why) for r, k, c, p, why in rows]

    def finish_transaction(
        self,
        round_id: int,
        tx_index: int,
        status: str,
        *,
        tx_hash: bytes | None = None,
        gas_used: int | None = None,
        block: int | None = None,
        error: str = "",
    ) -> None:
        with self._transaction() as db:
            db.execute(
                "UPDATE transactions SET status = ?, tx_hash = ?, gas_used = ?, block = ?,"
                " error = ? WHERE round_id = ? AND tx_index = ?",
                (status, tx_hash, gas_used, block, error, round_id, tx_index),
            )

    def set_round_status(
        self, round_id: int, status: str, *, now: float | None = None, note: str = ""
    ) -> None:
        with self._transaction() as db:
            db.execute(
                "UPDATE rounds SET status = ?, finished_at = ?, note = ? WHERE id = ?",
                (status, now, note, round_id),
            )

    def rounds(self, limit: int = 20) -> list[RoundRow]:
        rows = self._db.execute(
            "SELECT id, started_at, reason, block, expiry, status, finished_at, note FROM rounds"
            " ORDER BY id DESC LIMIT ?",
            (limit,),
        ).fetchall()
        return [RoundRow(*row) for row in rows]

    def round(self, round_id: int) -> RoundRow | None:
        row = self._db.execute(
            "SELECT id, started_at, reason, block, expiry, status, finished_at, note FROM rounds"
            " WHERE id = ?",
            (round_id,),
        ).fetchone()
        return RoundRow(*row) if row else None

    def unfinished_rounds(self) -> list[RoundRow]:
        rows = self._db.execute(
            "SELECT id, started_at, reason, block, expiry, status, finished_at, note FROM rounds"
            " WHERE status IN ('collecting', 'sending') ORDER BY id"
        ).fetchall()
        return [RoundRow(*row) for row in rows]

    def last_settled_at(self) -> float | None:
        """When the last round that ran (even one that found nothing to do) started."""
        row = self._db.execute(
            "SELECT MAX(started_at) FROM rounds WHERE status NOT IN ('skipped', 'collecting')"
        ).fetchone()
        return float(row[0]) if row and row[0] is not None else None

    def last_applied_block(self) -> int:
        """The block of the latest batch transaction that landed (0: none yet)."""
        row = self._db.execute(
            "SELECT MAX(block) FROM transactions WHERE status = 'applied'"
        ).fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    def items(self, round_id: int) -> list[ItemRow]:
        rows = self._db.execute(
            "SELECT round_id, channel_id, participant, partner, total_withdraw, amount, signature,"
            " tx_index FROM items WHERE round_id = ? ORDER BY channel_id, participant",
            (round_id,),
        ).fetchall()
        return [
            ItemRow(r, c, Address(p), Address(q), int(t), int(a), s, x)
            for r, c, p, q, t, a, s, x in rows
        ]

    def deposits(self, round_id: int) -> list[DepositRow]:
        rows = self._db.execute(
            "SELECT round_id, channel_id, partner, total_deposit, amount, tx_index FROM deposits"
            " WHERE round_id = ? ORDER BY channel_id",
            (round_id,),
        ).fetchall()
        return [DepositRow(r, c, Address(p), int(t), int(a), x) for r, c, p, t, a, x in rows]

    def transactions(self, round_id: int) -> list[TransactionRow]:
        rows = self._db.execute(
            "SELECT round_id, tx_index, expiry, hub_signature, withdraws, deposits, gas_limit,"
            " status, tx_hash, gas_used, block, error FROM transactions WHERE round_id = ?"
            " ORDER BY tx_index",
            (round_id,),
        ).fetchall()
        return [TransactionRow(*row) for row in rows]

    # -- counterparties that do not sign --------------------------------------------------------

    def note_misses(self, misses: list[tuple[int, Address]], now: float) -> None:
        """These channels' counterparties did not sign this round (the first miss is kept)."""
        with self._transaction() as db:
            db.executemany(
                "INSERT INTO misses (channel_id, partner, first_missed_at, rounds) VALUES"
                " (?, ?, ?, 1) ON CONFLICT (channel_id) DO UPDATE SET rounds = rounds + 1",
                [(c, bytes(p), now) for c, p in misses],
            )

    def clear_misses(self, channel_ids: list[int]) -> None:
        """These counterparties signed: they are no longer overdue (a closed one stays recorded)."""
        with self._transaction() as db:
            db.executemany(
                "DELETE FROM misses WHERE channel_id = ? AND closed_at IS NULL",
                [(c,) for c in channel_ids],
            )

    def mark_closed(self, channel_id: int, now: float) -> None:
        """The hub decided to close this channel (durable BEFORE the node's close is issued; the
        service issues the close again at start while the node still has the channel open)."""
        with self._transaction() as db:
            db.execute("UPDATE misses SET closed_at = ? WHERE channel_id = ?", (now, channel_id))

    def misses(self) -> list[MissRow]:
        rows = self._db.execute(
            "SELECT channel_id, partner, first_missed_at, rounds, closed_at FROM misses"
            " ORDER BY channel_id"
        ).fetchall()
        return [MissRow(c, Address(p), f, n, x) for c, p, f, n, x in rows]

    # -- requests from `cise settle run` --------------------------------------------------------

    def request_round(self, now: float | None = None) -> int:
        with self._transaction(request=True) as db:
            cursor = db.execute(
                "INSERT INTO requests (requested_at) VALUES (?)",
                (time.time() if now is None else now,),
            )
        return int(cursor.lastrowid or 0)

    def withdraw_request(self, request_id: int) -> bool:
        """Cancel a request no hub has taken yet; False when one already did."""
        with self._transaction(request=True) as db:
            cursor = db.execute(
                "DELETE FROM requests WHERE id = ? AND round_id IS NULL", (request_id,)
            )
        return cursor.rowcount == 1

    def open_requests(self) -> list[int]:
        rows = self._db.execute("SELECT id FROM requests WHERE round_id IS NULL ORDER BY id")
        return [int(r[0]) for r in rows.fetchall()]

    def answer_requests(self, request_ids: list[int], round_id: int) -> None:
        with self._transaction() as db:
            db.executemany(
                "UPDATE requests SET round_id = ? WHERE id = ?",
                [(round_id, r) for r in request_ids],
            )

    def request_answer(self, request_id: int) -> int | None:
        row = self._db.execute(
            "SELECT round_id FROM requests WHERE id = ?", (request_id,)
        ).fetchone()
        return int(row[0]) if row and row[0] is not None else None

    # -- what the hub reports about itself for `cise settle status` -----------------------------

    def set_status(self, values: dict[str, str]) -> None:
        with self._transaction() as db:
            db.executemany(
                "INSERT INTO meta VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                [(f"status.{k}", v) for k, v in values.items()],
            )

    def status(self) -> dict[str, str]:
        rows = self._db.execute("SELECT key, value FROM meta WHERE key LIKE 'status.%'")
        return {k.removeprefix("status."): v for k, v in rows.fetchall()}

    # -- the community treasury's part of the fee income (settlement.treasury) -----------------

    def treasury_counted(self) -> dict[int, int]:
        """channel -> its net (received - sent) when the hub's fee income was last counted."""
        rows = self._db.execute("SELECT channel_id, net FROM treasury_counted").fetchall()
        return {int(c): int(n) for c, n in rows}

    def record_treasury_share(
        self,
        round_id: int,
        *,
        counted: dict[int, int],
        income: int,
        ppm: int,
        amount: int,
        treasury: Address,
        now: float,
    ) -> None:
        """In one transaction: the channels' nets now counted, and (when `amount` > 0) the
        treasury's part owed for round `round_id`."""
        with self._transaction() as db:
            db.executemany(
                "INSERT INTO treasury_counted (channel_id, net) VALUES (?, ?)"
                " ON CONFLICT (channel_id) DO UPDATE SET net = excluded.net",
                [(c, str(n)) for c, n in sorted(counted.items())],
            )
            if amount > 0:
                db.execute(
                    "INSERT INTO treasury_payments (round_id, income, ppm, amount, treasury,"
                    " status, recorded_at) VALUES (?, ?, ?, ?, ?, 'owed', ?)",
                    (round_id, str(income), ppm, str(amount), bytes(treasury), now),
                )

    def record_treasury_signed(self, round_id: int, attempt: int, record: bytes) -> None:
        """The current attempt of round `round_id`'s payment as signed (before it leaves)."""
        with self._transaction() as db:
            db.execute(
                "UPDATE treasury_payments SET signed = ? WHERE round_id = ? AND attempt = ?",
                (record, round_id, attempt),
            )

    def treasury_paid(self, round_id: int, tx_hash: bytes, gas_used: int | None) -> None:
        with self._transaction() as db:
            db.execute(
                "UPDATE treasury_payments SET status = 'paid', tx_hash = ?, gas_used = ?,"
                " error = '' WHERE round_id = ?",
                (tx_hash, gas_used, round_id),
            )

    def treasury_failed(self, round_id: int, error: str) -> None:
        """The current attempt moved nothing: the next one is a new transaction."""
        with self._transaction() as db:
            db.execute(
                "UPDATE treasury_payments SET attempt = attempt + 1, signed = NULL, error = ?"
                " WHERE round_id = ? AND status = 'owed'",
                (error, round_id),
            )

    def treasury_payments(self, status: str | None = None) -> list[TreasuryPaymentRow]:
        """The treasury's parts recorded (of `status` only, if given), oldest first."""
        query = (
            "SELECT round_id, income, ppm, amount, treasury, status, attempt, signed, tx_hash,"
            " gas_used, error, recorded_at FROM treasury_payments"
        )
        args: tuple[str, ...] = ()
        if status is not None:
            query, args = query + " WHERE status = ?", (status,)
        return [
            TreasuryPaymentRow(
                int(r[0]),
                int(r[1]),
                int(r[2]),
                int(r[3]),
                Address(bytes(r[4])),
                str(r[5]),
                int(r[6]),
                None if r[7] is None else bytes(r[7]),
                None if r[8] is None else bytes(r[8]),
                r[9],
                str(r[10]),
                float(r[11]),
            )
            for r in self._db.execute(query + " ORDER BY round_id", args).fetchall()
        ]


__all__ = [
    "DepositRow",
    "ExcludedRow",
    "ItemRow",
    "MissRow",
    "RoundRow",
    "SettlementStore",
    "SettlementStoreError",
    "TransactionRow",
    "TreasuryPaymentRow",
]

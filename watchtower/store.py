"""The watchtower's durable state: one sqlite file (WAL, synchronous=FULL).

Four tables: `meta` (which tower, which network, and the chain cursor: the last block whose events
are applied), `channels` (the chain's open and closing channels, one row each, from confirmed
events; deleted at settle or cooperative close), `guards` (the one request held per channel and
guarded party, with the block its update was last sent in) and `transactions` (the update
transactions the transaction manager signed and has not yet seen mined with confirmations: their
nonce and every signed version, so a restart sends the same nonce again). So the state is O(1) per
channel, and nothing of a settled channel stays.

Every write is one transaction: the requests of a group (before they are acknowledged), a polled
range of chain events together with the cursor (before anything is done about them), and the marks
of updates about to be sent (before they leave), the signed transactions (before their bytes
leave). Records are stored as msgspec JSON, which carries
uint96 amounts (msgpack stops at 2**64).

It stores and returns what it is given: it must never decide anything (`watchtower.core` does),
never touch the chain or the network, and never be written by two towers (the `meta` row says whose
it is; opening it for another tower or network fails) nor by two processes (`TowerStore` owns the
file through `channels.ownership`; `read_snapshot` reads it read-only beside the running tower).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import msgspec

from channels.core.types import Address, BlockNumber, ChannelId, to_checksum
from channels.ownership import Ownership, claim, connect_read_only
from channels.records import OutboxTransaction
from watchtower.core import GuardedProof, WatchedChannel

SCHEMA_VERSION = "1"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS channels (
    channel_id INTEGER PRIMARY KEY,
    record BLOB NOT NULL  -- msgspec JSON of a WatchedChannel
);
CREATE TABLE IF NOT EXISTS guards (
    channel_id INTEGER NOT NULL,
    guarded BLOB NOT NULL,
    record BLOB NOT NULL,  -- msgspec JSON of a GuardedProof
    submitted_block INTEGER,  -- the block our update was last sent at (NULL: never)
    PRIMARY KEY (channel_id, guarded)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS transactions (
    key TEXT PRIMARY KEY,
    record BLOB NOT NULL  -- msgspec JSON of an OutboxTransaction
) WITHOUT ROWID;
"""

GuardKey = tuple[ChannelId, Address]

_channel_decoder = msgspec.json.Decoder(WatchedChannel)
_proof_decoder = msgspec.json.Decoder(GuardedProof)
_transaction_decoder = msgspec.json.Decoder(OutboxTransaction)
_encoder = msgspec.json.Encoder()


class TowerStoreError(Exception):
    """The file belongs to another tower or network, or cannot be used."""


@dataclass(frozen=True, slots=True)
class TowerSnapshot:
    """Everything stored, as loaded at start (or read by `cise watchtower status`)."""

    tower: Address
    chain_id: int
    manager: Address
    cursor: BlockNumber
    channels: dict[ChannelId, WatchedChannel]
    guards: dict[GuardKey, GuardedProof]
    submitted: dict[GuardKey, BlockNumber]


def _connect(path: str, *, read_only: bool) -> sqlite3.Connection:
    if read_only:
        return connect_read_only(path)
    return sqlite3.connect(path, check_same_thread=False, isolation_level=None)


def _load(db: sqlite3.Connection) -> TowerSnapshot:
    meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
    try:
        tower = Address(bytes.fromhex(meta["tower"][2:]))
        manager = Address(bytes.fromhex(meta["manager"][2:]))
        chain_id = int(meta["chain_id"])
        cursor = BlockNumber(int(meta["cursor"]))
    except (KeyError, ValueError) as exc:
        raise TowerStoreError(f"the watchtower database has a bad meta table: {exc}") from None
    channels = {
        ChannelId(row[0]): _channel_decoder.decode(row[1])
        for row in db.execute("SELECT channel_id, record FROM channels")
    }
    guards: dict[GuardKey, GuardedProof] = {}
    submitted: dict[GuardKey, BlockNumber] = {}
    for record, block in db.execute("SELECT record, submitted_block FROM guards"):
        proof = _proof_decoder.decode(record)
        guards[proof.key] = proof
        if block is not None:
            submitted[proof.key] = BlockNumber(block)
    return TowerSnapshot(tower, chain_id, manager, cursor, channels, guards, submitted)


def read_snapshot(path: Path) -> TowerSnapshot:
    """Read a tower's file without writing (a running tower may hold it open)."""
    if not path.exists():
        raise TowerStoreError(f"no watchtower database at {path}")
    db = _connect(str(path), read_only=True)
    try:
        return _load(db)
    except sqlite3.Error as exc:
        raise TowerStoreError(f"cannot read {path}: {exc}") from None
    finally:
        db.close()


class TowerStore:
    """The tower's sqlite file. Not thread-safe: the shell runs one call at a time (in a worker
    thread for the writes) and keeps its in-memory copy in step after each commit."""

    def __init__(
        self,
        path: Path,
        *,
        tower: Address,
        chain_id: int,
        manager: Address,
        start_cursor: BlockNumber,
    ) -> None:
        self.path = path
        self._ownership: Ownership | None = claim(path)  # StoreInUseError: another process has it
        try:
            self._db = _connect(str(path), read_only=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            self._release()
            raise TowerStoreError(f"cannot open {path}: {exc}") from None
        except BaseException:
            self._release()
            raise
        wanted = {
            "schema": SCHEMA_VERSION,
            "tower": to_checksum(tower),
            "chain_id": str(chain_id),
            "manager": to_checksum(manager),
        }
        existing = dict(self._db.execute("SELECT key, value FROM meta").fetchall())
        if not existing:
            with self._transaction():
                self._db.executemany(
                    "INSERT INTO meta (key, value) VALUES (?, ?)",
                    [*wanted.items(), ("cursor", str(start_cursor))],
                )
        else:
            for key, value in wanted.items():
                if existing.get(key) != value:
                    self.close()
                    raise TowerStoreError(
                        f"{path} belongs to {key} {existing.get(key)}, not {value}: "
                        "one database per tower and network"
                    )

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)

    def load(self) -> TowerSnapshot:
        """Everything stored."""
        return _load(self._db)

    @property
    def synchronous(self) -> int:
        """sqlite's `synchronous` setting (2 = FULL: every commit is fsynced)."""
        value: int = self._db.execute("PRAGMA synchronous").fetchone()[0]
        return value

    def commit_requests(self, proofs: Sequence[GuardedProof]) -> None:
        """Hold these proofs (each replaces the one held for its channel and party), durably."""
        with self._transaction():
            self._db.executemany(
                "INSERT OR REPLACE INTO guards (channel_id, guarded, record, submitted_block) "
                "VALUES (?, ?, ?, NULL)",
                [(p.channel_id, p.guarded, _encoder.encode(p)) for p in proofs],
            )

    def commit_chain(
        self,
        changed: Iterable[WatchedChannel],
        gone: Iterable[ChannelId],
        cursor: BlockNumber,
    ) -> None:
        """Apply a polled range of confirmed events: channel records written or removed (with
        whatever was held for them), and the cursor moved past the range, in one transaction."""
        gone = list(gone)
        with self._transaction():
            self._db.executemany(
                "INSERT OR REPLACE INTO channels (channel_id, record) VALUES (?, ?)",
                [(c.channel_id, _encoder.encode(c)) for c in changed],
            )
            if gone:
                self._db.executemany(
                    "DELETE FROM channels WHERE channel_id = ?", [(c,) for c in gone]
                )
                self._db.executemany(
                    "DELETE FROM guards WHERE channel_id = ?", [(c,) for c in gone]
                )
            self._db.execute("UPDATE meta SET value = ? WHERE key = 'cursor'", (str(cursor),))

    def mark_submitted(self, keys: Sequence[GuardKey], block: BlockNumber) -> None:
        """Record that these updates are being sent at `block` (before they leave)."""
        with self._transaction():
            self._db.executemany(
                "UPDATE guards SET submitted_block = ? WHERE channel_id = ? AND guarded = ?",
                [(block, channel_id, guarded) for channel_id, guarded in keys],
            )

    def transactions(self) -> list[tuple[str, OutboxTransaction]]:
        """The signed transactions not yet let go (key, record)."""
        return [
            (key, _transaction_decoder.decode(record))
            for key, record in self._db.execute("SELECT key, record FROM transactions")
        ]

    def commit_transactions(self, writes: Sequence[tuple[str, OutboxTransaction | None]]) -> None:
        """Record signed transactions (a record) and let go of others (None), in one transaction."""
        with self._transaction():
            self._db.executemany(
                "INSERT OR REPLACE INTO transactions (key, record) VALUES (?, ?)",
                [(key, _encoder.encode(r)) for key, r in writes if r is not None],
            )
            self._db.executemany(
                "DELETE FROM transactions WHERE key = ?",
                [(key,) for key, r in writes if r is None],
            )

    def row_counts(self) -> tuple[int, int]:
        """(channel rows, guard rows)."""
        channels = self._db.execute("SELECT COUNT(*) FROM channels").fetchone()[0]
        guards = self._db.execute("SELECT COUNT(*) FROM guards").fetchone()[0]
        return int(channels), int(guards)

    def _release(self) -> None:
        if self._ownership is not None:
            self._ownership.release()
            self._ownership = None

    def close(self) -> None:
        self._db.close()
        self._release()


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT (ROLLBACK on an exception)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: object, value: object, traceback: object) -> None:
        self._db.execute("COMMIT" if kind is None else "ROLLBACK")

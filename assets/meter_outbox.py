"""A machine's durable buffer of meter events not yet answered by the asset agent (one sqlite file).

`cise meter send` appends each event here before it sends it, and deletes an event only once the
agent answered with its outcome; events left over (the agent was down, the machine lost its
connection or power) stay in the file and are sent first by the next run. The process that
opens the buffer claims it (`channels.ownership`): a second sender on the same file is refused.

This module must never delete an event other than by `remove` (called with answered events only),
never report an append before it is durable (WAL, synchronous=FULL, one transaction each), and
never read events out of their order of arrival. It decides nothing (see `assets.meter_buffer`).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from types import TracebackType

from assets.meter_buffer import Buffered
from channels.ownership import OwnershipError, claim

__all__ = ["MeterOutbox", "MeterOutboxError"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL,
    line BLOB NOT NULL
)
"""


class MeterOutboxError(Exception):
    """The buffer cannot be opened (in use, not a buffer, no folder); the message says why."""


def _connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, timeout=10.0, isolation_level=None, check_same_thread=True)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    return db


class MeterOutbox:
    """The buffer at `path`, claimed for this process until `close`. Each thread that appends
    or reads uses its own `MeterOutbox.reader()`/`appender()` connection (sqlite connections are
    not shared between threads); the owner object holds the claim."""

    def __init__(self, path: Path) -> None:
        try:
            self._claim = claim(path)
        except OwnershipError as exc:
            raise MeterOutboxError(f"meter buffer {exc}") from None
        self.path = path
        try:
            self._db = _connect(path)
            self._db.execute(_SCHEMA)
            self._db.execute("SELECT seq, event_id, line FROM outbox LIMIT 0")
        except sqlite3.Error as exc:
            self._claim.release()
            raise MeterOutboxError(f"meter buffer {path}: {exc}") from None

    def connection(self) -> MeterOutboxConnection:
        """A new connection to the claimed buffer, for one thread."""
        return MeterOutboxConnection(_connect(self.path))

    def close(self) -> None:
        self._db.close()
        self._claim.release()

    def __enter__(self) -> MeterOutbox:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class MeterOutboxConnection:
    """One thread's connection to a claimed buffer."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def append(self, event_id: str, line: bytes) -> int:
        """Buffer one event (durable on return); its seq."""
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            cursor = self._db.execute(
                "INSERT INTO outbox (event_id, line) VALUES (?, ?)", (event_id, line)
            )
        seq = cursor.lastrowid
        assert seq is not None
        return seq

    def oldest(self, limit: int) -> list[Buffered]:
        """Up to `limit` buffered events, oldest first."""
        rows = self._db.execute(
            "SELECT seq, event_id, line FROM outbox ORDER BY seq LIMIT ?", (limit,)
        ).fetchall()
        return [Buffered(int(seq), str(event_id), bytes(line)) for seq, event_id, line in rows]

    def remove(self, answered: list[Buffered]) -> None:
        """Drop events the agent answered for, in one durable transaction."""
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany("DELETE FROM outbox WHERE seq = ?", [(b.seq,) for b in answered])

    def count(self) -> int:
        (count,) = self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()
        return int(count)

    def close(self) -> None:
        self._db.close()

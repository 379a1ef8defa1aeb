"""Durable storage of a node: the write-ahead log of state changes and events, snapshots, outbox.

Persist before progress (DESIGN §5): a state change and the events it caused are written in one
sqlite transaction *before* anything they cause leaves the process. Many state changes share one
transaction (`commit_group`, or `begin_group` + `commit` for a pipelined writer that fills the next
group while a worker thread commits the previous one), so one fsync covers a whole batch of
payments. A group's state changes and events are ONE row of `log_groups` (first id, last id, one
msgpack blob), so the commit binds three parameters however many payments it holds: the worker
thread hardly needs the GIL, which the caller's thread wants for the next group. Restart = the
latest snapshot + the state changes after it, replayed through a transition function the caller passes in. A small outbox
table keeps unconfirmed outgoing messages and transactions so the shell can resend them after a
restart.

Why the stdlib `sqlite3` and not sqlite-utils: this module is on the hot path of every payment and
needs exact control of the pragmas (WAL, synchronous=FULL), of the transaction boundaries (one
explicit BEGIN IMMEDIATE ... COMMIT per group) and of `executemany` on prepared statements;
sqlite-utils adds per-row Python overhead and its own implicit transactions. Records are encoded
with msgspec JSON, not msgpack: JSON carries Python ints of any size (uint256 amounts and ids)
while msgpack stops at 2**64, and it is still well under 1 µs a record. The group blob around
them is msgpack, an array of [kind, record JSON, [[event kind, event JSON], ...]] per state
change: it holds only strings and bytes, and one C call packs a whole group.

One process owns a store file (`channels.ownership`): a writable `SqliteStore` claims it for its
whole life, so a second writer is refused before it changes anything; `read_only=True` opens it
without the claim (`mode=ro`), for commands that only look while the owner runs.

This module must never import the core's transition function (it takes one as an argument),
never send anything, and never decide what is valid: it stores and returns what it is given.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import msgspec

from channels.core.locktree import LockTree
from channels.ownership import Ownership, claim, connect_read_only

# 2: one log row per commit group (1 had a row per state change and event); 3: the `facts` table
SCHEMA_VERSION = 3
_UPGRADABLE = (2,)  # versions that become the current one by creating the missing tables
DEFAULT_SNAPSHOT_INTERVAL = 10_000  # state changes between automatic snapshot suggestions

S = TypeVar("S")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS log_groups (
    first_id INTEGER PRIMARY KEY,  -- the id of the group's first state change
    last_id INTEGER NOT NULL,  -- and of its last; ids are contiguous across groups
    payload BLOB NOT NULL  -- msgpack: [[kind, record JSON, [[event kind, event JSON], ...]], ...]
);
CREATE TABLE IF NOT EXISTS snapshots (
    id INTEGER PRIMARY KEY,
    state_change_id INTEGER NOT NULL,
    kind TEXT NOT NULL,
    payload BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS outbox (
    key TEXT PRIMARY KEY,
    state_change_id INTEGER NOT NULL,
    kind TEXT NOT NULL,
    payload BLOB NOT NULL
) WITHOUT ROWID;  -- one B-tree, not a table plus a key index: fewer pages per commit
CREATE TABLE IF NOT EXISTS facts (
    key TEXT PRIMARY KEY,  -- "<namespace>:<id>", e.g. "payment:42"
    kind TEXT NOT NULL,
    payload BLOB NOT NULL
) WITHOUT ROWID;
"""


class StoreError(Exception):
    """Base class of storage errors."""


class StoreCorruptedError(StoreError):
    """A stored row cannot be decoded or the log is inconsistent; the message names the row."""


class UnknownRecordTypeError(StoreError):
    """A record of a type the codec was not told about (on write or on read)."""


# ---------------------------------------------------------------------------------------------
# Record codec


def _enc_hook(obj: Any) -> Any:
    # A LockTree is stored as its occupied (slot, leaf) pairs and rebuilt on load; the root is
    # recomputed, so a tampered leaf shows up as a different locksRoot, never silently.
    if isinstance(obj, LockTree):
        return obj.items()  # [(slot, leaf), ...], encoded as JSON arrays of [slot, leaf]
    raise NotImplementedError(f"cannot store objects of type {type(obj).__name__}")


def _dec_hook(type_: type, obj: Any) -> Any:
    if type_ is LockTree:
        # Same checks and result as inserting each pair in turn, with each node hashed once.
        return LockTree.from_leaves(msgspec.convert(obj, list[tuple[int, bytes]]))
    raise NotImplementedError(f"cannot load objects of type {type_.__name__}")


class RecordCodec:
    """Encodes frozen records (state changes, events, states) as (kind, bytes).

    `kind` is the class name; decoding looks it up among the types given here, so the store
    never needs to know the core's unions. LockTree fields are supported out of the box; pass
    `enc_hook` / `dec_hook` (msgspec hooks) for other custom field types.
    """

    def __init__(
        self,
        types: Iterable[type],
        *,
        enc_hook: Callable[[Any], Any] | None = None,
        dec_hook: Callable[[type, Any], Any] | None = None,
    ) -> None:
        self._types: dict[str, type] = {}
        for type_ in types:
            name = type_.__name__
            if name in self._types and self._types[name] is not type_:
                raise ValueError(f"two record types share the name {name!r}")
            self._types[name] = type_
        self._kinds: dict[type, str] = {type_: name for name, type_ in self._types.items()}

        def enc(obj: Any) -> Any:
            if enc_hook is not None and not isinstance(obj, LockTree):
                return enc_hook(obj)
            return _enc_hook(obj)

        def dec(type_: type, obj: Any) -> Any:
            if dec_hook is not None and type_ is not LockTree:
                return dec_hook(type_, obj)
            return _dec_hook(type_, obj)

        self._encoder = msgspec.json.Encoder(enc_hook=enc)
        self._dec_hook = dec
        self._decoders: dict[str, msgspec.json.Decoder[Any]] = {}

    @property
    def kinds(self) -> Mapping[str, type]:
        """The known record types by name."""
        return self._types

    def encode(self, record: object) -> tuple[str, bytes]:
        """Return (kind, payload) for a record of a known type."""
        kind = self._kinds.get(type(record))
        if kind is None:
            raise UnknownRecordTypeError(
                f"record type {type(record).__name__!r} is not registered with the store codec"
            )
        return kind, self._encoder.encode(record)

    def decode(self, kind: str, payload: bytes) -> Any:
        """Decode a payload of the named kind; UnknownRecordTypeError or msgspec errors on bad input."""
        decoder = self._decoders.get(kind)
        if decoder is None:
            type_ = self._types.get(kind)
            if type_ is None:
                raise UnknownRecordTypeError(
                    f"record type {kind!r} is not registered with the store codec"
                )
            decoder = msgspec.json.Decoder(type_, dec_hook=self._dec_hook)
            self._decoders[kind] = decoder
        return decoder.decode(payload)


# One state change in a group blob: its kind, its JSON, and its events' (kind, JSON) pairs.
_Entry = tuple[str, bytes, Sequence[tuple[str, bytes]]]
_StoredEntry = tuple[str, bytes, list[tuple[str, bytes]]]
_NO_EVENTS: tuple[tuple[str, bytes], ...] = ()
_group_encoder = msgspec.msgpack.Encoder()
_group_decoder = msgspec.msgpack.Decoder(list[_StoredEntry])


# ---------------------------------------------------------------------------------------------
# Results


@dataclass(frozen=True, slots=True)
class StoredStateChange:
    """One state change read back from the log, with its id."""

    id: int
    state_change: Any


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """An outgoing message or transaction not yet confirmed by its receiver (or the chain)."""

    key: str
    state_change_id: int
    item: Any


@dataclass(frozen=True, slots=True)
class Restored(Generic[S]):
    """What `restore` rebuilt: the state, the id of the last state change in it, and how many
    state changes were replayed on top of the snapshot."""

    state: S
    last_state_change_id: int
    replayed: int
    snapshot_state_change_id: int  # 0 when no snapshot was used


@dataclass(frozen=True, slots=True)
class StoreStatistics:
    """Counters since the store was opened."""

    commits: int
    state_changes_written: int
    events_written: int
    snapshots_written: int
    last_state_change_id: int
    state_changes_since_snapshot: int


# ---------------------------------------------------------------------------------------------
# Commit groups


@dataclass(slots=True)
class CommitGroup:
    """Everything one transaction writes: many state changes and their events, outbox changes,
    at most one snapshot; one fsync for all of it.

    Records are encoded when added (by the caller's thread), so the commit itself, which may
    run in a worker thread, only executes SQL. Nothing is visible or durable before the commit.
    """

    _codec: RecordCodec
    first_id: int  # the id the group's first state change gets
    _next_id: int
    sealed: bool = False  # no more adds once a later group began or the commit started
    # the encoded state changes in id order, from first_id on, each with its encoded events
    state_changes: list[_Entry] = field(default_factory=list)
    event_count: int = 0
    outbox_add: list[tuple[str, int, str, bytes]] = field(default_factory=list)
    outbox_confirm: list[tuple[str]] = field(default_factory=list)
    facts: list[tuple[str, str, bytes]] = field(default_factory=list)
    snapshot: tuple[int, str, bytes] | None = None

    def _check_open(self) -> None:
        if self.sealed:
            raise StoreError("this commit group is sealed (a later group began, or it committed)")

    @property
    def next_id(self) -> int:
        """The id the next state change added here would get."""
        return self._next_id

    def add(self, state_change: object, events: Sequence[object] = ()) -> int:
        """Log a state change and the events it caused; returns the state change's id."""
        if self.sealed:
            self._check_open()
        encode = self._codec.encode
        sc_id = self._next_id
        kind, payload = encode(state_change)
        if events:
            encoded = list(map(encode, events))
            self.event_count += len(encoded)
            self.state_changes.append((kind, payload, encoded))
        else:
            self.state_changes.append((kind, payload, _NO_EVENTS))
        self._next_id = sc_id + 1  # only once everything encoded: a failed add adds nothing
        return sc_id

    def add_unconfirmed(self, key: str, item: object) -> None:
        """Remember an outgoing message/transaction until `confirm(key)`; replaces a same key."""
        self._check_open()
        self.outbox_add.append((key, self._next_id - 1, *self._codec.encode(item)))

    def confirm(self, key: str) -> None:
        """Forget an outgoing item: its receiver acknowledged it (or the chain included it)."""
        self._check_open()
        self.outbox_confirm.append((key,))

    def put_fact(self, key: str, record: object) -> None:
        """Store `record` under `key` (replacing what was there) with this group's commit."""
        self._check_open()
        self.facts.append((key, *self._codec.encode(record)))

    def write_snapshot(self, state: object) -> None:
        """Store `state` as the state after the last state change of this group (or before)."""
        self._check_open()
        self.snapshot = (self._next_id - 1, *self._codec.encode(state))


# ---------------------------------------------------------------------------------------------
# The sqlite store


class SqliteStore:
    """The write-ahead log, snapshots and outbox of one node in one sqlite file (WAL mode).

    Single writer: one writable SqliteStore per file, in one process, which owns the file
    (`channels.ownership.claim`; `StoreInUseError` names the owner when another process has it).
    `read_only=True` takes no claim and refuses every commit. Its database is used by one thread
    at a time: `commit` may run in a worker thread (`trio.to_thread.run_sync`) while the caller's
    thread fills the next group, which touches no database; never read or commit from two threads.
    """

    def __init__(
        self,
        path: str | Path,
        codec: RecordCodec,
        *,
        synchronous: str = "FULL",
        snapshot_interval: int = DEFAULT_SNAPSHOT_INTERVAL,
        read_only: bool = False,
    ) -> None:
        if synchronous not in ("FULL", "EXTRA", "NORMAL"):
            raise ValueError(f"synchronous must be FULL, EXTRA or NORMAL, got {synchronous!r}")
        self._path = str(path)
        self._codec = codec
        self._snapshot_interval = snapshot_interval
        self._read_only = read_only
        self._ownership: Ownership | None = None
        if read_only:
            if not Path(self._path).is_file():
                raise StoreError(f"{self._path}: no store here")
            self._db = connect_read_only(self._path)
        else:
            if self._path not in (":memory:", ""):  # an in-memory store has no file to share
                self._ownership = claim(self._path)  # before anything is written
            try:
                self._db = sqlite3.connect(
                    self._path, isolation_level=None, check_same_thread=False
                )
            except BaseException:
                self._release()
                raise
        try:
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version not in (0, SCHEMA_VERSION, *_UPGRADABLE):
                raise StoreError(
                    f"{self._path}: schema version {version}, this code reads {SCHEMA_VERSION}"
                    " only (there is no migration: keep the file for the code that wrote it)"
                )
            if read_only:
                if version == 0:
                    raise StoreError(f"{self._path}: not a CISE store yet (nothing written)")
            else:
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute(f"PRAGMA synchronous={synchronous}")
                self._db.execute("PRAGMA foreign_keys=OFF")  # ids are assigned here
                self._db.executescript(_SCHEMA)
                self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            self._last_id, self._last_snapshot_id = self._read_ends()
        except sqlite3.DatabaseError as exc:
            self._db.close()
            self._release()
            raise StoreCorruptedError(f"{self._path}: not a readable CISE store: {exc}") from exc
        except BaseException:
            self._db.close()
            self._release()
            raise
        self._in_group = False
        self._reader: sqlite3.Connection | None = None  # for `fact`, opened on first use
        self._current: CommitGroup | None = None
        self._next_free = self._last_id + 1
        self._commits = 0
        self._sc_written = 0
        self._ev_written = 0
        self._snaps_written = 0

    def _read_ends(self) -> tuple[int, int]:
        """(the last logged state change id, the newest snapshot's state change id)."""
        row = self._db.execute(
            "SELECT last_id FROM log_groups ORDER BY first_id DESC LIMIT 1"
        ).fetchone()
        snap = self._db.execute("SELECT COALESCE(MAX(state_change_id), 0) FROM snapshots")
        return (0 if row is None else int(row[0])), int(snap.fetchone()[0])

    def _release(self) -> None:
        if self._ownership is not None:
            self._ownership.release()
            self._ownership = None

    @property
    def path(self) -> str:
        """The sqlite file."""
        return self._path

    @property
    def read_only(self) -> bool:
        """Opened with `read_only=True`: no claim on the file, and every commit is refused."""
        return self._read_only

    @property
    def last_state_change_id(self) -> int:
        """The id of the newest durable state change (0 when the log is empty)."""
        return self._last_id

    @property
    def snapshot_due(self) -> bool:
        """True once `snapshot_interval` state changes were logged after the latest snapshot."""
        return self._last_id - self._last_snapshot_id >= self._snapshot_interval

    @contextmanager
    def commit_group(self) -> Iterator[CommitGroup]:
        """Collect writes in the block; on normal exit write them all in one transaction (one
        fsync). On an exception nothing is written. Returns only once the data is durable."""
        if self._in_group:
            raise StoreError("commit groups do not nest")
        self._in_group = True
        try:
            group = self.begin_group()
            try:
                yield group
            except BaseException:
                self.discard(group)
                raise
            self.commit(group)
        finally:
            self._in_group = False

    def begin_group(self) -> CommitGroup:
        """Start a group for a pipelined writer: fill it, then `commit` it (maybe in a worker
        thread) while the next group is already being filled. Beginning a group seals the one
        before; groups must be committed in the order they began."""
        previous = self._current
        if previous is not None:
            previous.sealed = True
            self._next_free = previous.next_id
        group = CommitGroup(self._codec, self._next_free, self._next_free)
        self._current = group
        return group

    def discard(self, group: CommitGroup) -> None:
        """Drop a group that will not be committed (only the newest one leaves no gap)."""
        group.sealed = True
        if self._current is group:
            self._current = None
            self._next_free = group.first_id

    def commit(self, group: CommitGroup) -> None:
        """Write `group` in one transaction; returns once it is durable (synchronous=FULL).

        May run in a worker thread while the caller's thread fills the next group. After a
        failed commit no later group can commit (their ids would leave a gap): reopen the store.
        """
        if self._read_only:
            raise StoreError(f"{self._path} is open read-only: this process does not own it")
        if group is self._current:
            group.sealed = True
            self._current = None
            self._next_free = group.next_id
        group.sealed = True
        expected = self._last_id + 1
        if group.state_changes and group.first_id != expected:
            raise StoreError(
                f"commit groups must commit in the order they began: this one starts at state "
                f"change {group.first_id}, the log continues at {expected}"
            )
        try:
            self._commit(group)
        except BaseException:
            self._current = None
            self._next_free = self._last_id + 1
            raise

    def write(self, state_change: object, events: Sequence[object] = ()) -> int:
        """Log one state change and its events in its own transaction; returns its id."""
        with self.commit_group() as group:
            sc_id = group.add(state_change, events)
        return sc_id

    def write_snapshot(self, state: object) -> None:
        """Store `state` as the state after the newest logged state change."""
        with self.commit_group() as group:
            group.write_snapshot(state)

    def _commit(self, group: CommitGroup) -> None:
        if not (
            group.state_changes
            or group.outbox_add
            or group.outbox_confirm
            or group.facts
            or group.snapshot is not None
        ):
            return
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            if group.state_changes:
                db.execute(
                    "INSERT INTO log_groups (first_id, last_id, payload) VALUES (?, ?, ?)",
                    (group.first_id, group.next_id - 1, _group_encoder.encode(group.state_changes)),
                )
            if group.outbox_confirm:
                db.executemany("DELETE FROM outbox WHERE key = ?", group.outbox_confirm)
            if group.outbox_add:
                db.executemany(
                    "INSERT OR REPLACE INTO outbox (key, state_change_id, kind, payload)"
                    " VALUES (?, ?, ?, ?)",
                    group.outbox_add,
                )
            if group.facts:
                db.executemany(
                    "INSERT OR REPLACE INTO facts (key, kind, payload) VALUES (?, ?, ?)",
                    group.facts,
                )
            if group.snapshot is not None:
                db.execute(
                    "INSERT INTO snapshots (state_change_id, kind, payload) VALUES (?, ?, ?)",
                    group.snapshot,
                )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        self._commits += 1
        if group.state_changes:
            self._last_id = group.next_id - 1
            self._sc_written += len(group.state_changes)
            self._ev_written += group.event_count
        if group.snapshot is not None:
            self._last_snapshot_id = group.snapshot[0]
            self._snaps_written += 1

    # -- reading ------------------------------------------------------------------------------

    def _decode(self, what: str, row_id: int, kind: str, payload: bytes) -> Any:
        try:
            return self._codec.decode(kind, payload)
        except UnknownRecordTypeError as exc:
            raise StoreCorruptedError(f"{self._path}: {what} {row_id}: {exc}") from exc
        except (msgspec.DecodeError, msgspec.ValidationError, ValueError, TypeError) as exc:
            raise StoreCorruptedError(
                f"{self._path}: {what} {row_id} ({kind}) cannot be decoded: {exc}"
            ) from exc

    def _group_entries(self, first_id: int, last_id: int, payload: bytes) -> list[_StoredEntry]:
        """The decoded blob of one log group, checked to hold exactly its ids."""
        name = f"log group {first_id}..{last_id}"
        try:
            entries = _group_decoder.decode(payload)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise StoreCorruptedError(f"{self._path}: {name} cannot be decoded: {exc}") from exc
        if len(entries) != last_id - first_id + 1:
            raise StoreCorruptedError(
                f"{self._path}: {name} holds {len(entries)} state changes,"
                f" not {last_id - first_id + 1}"
            )
        return entries

    def state_changes(self, after: int = 0) -> Iterator[StoredStateChange]:
        """The logged state changes with id > `after`, in order; StoreCorruptedError on a bad row."""
        expected = after + 1
        # from the group holding `expected` (or the first one after it)
        cursor = self._db.execute(
            "SELECT first_id, last_id, payload FROM log_groups WHERE first_id >= COALESCE("
            " (SELECT first_id FROM log_groups WHERE first_id <= ? ORDER BY first_id DESC LIMIT 1),"
            " 0) ORDER BY first_id",
            (expected,),
        )
        first_row = True
        for first_id, last_id, payload in cursor:
            if last_id < first_id:
                raise StoreCorruptedError(
                    f"{self._path}: log group {first_id}..{last_id} holds no state change"
                )
            # only the first group may start before `expected` (it holds `after`)
            if first_id != expected and not (first_row and first_id < expected):
                problem = "gap" if first_id > expected else "overlap"
                raise StoreCorruptedError(
                    f"{self._path}: state change log has a {problem}: expected id {expected},"
                    f" found {first_id} (log group {first_id}..{last_id})"
                )
            first_row = False
            if last_id < expected:  # `after` is the last id of the first group
                continue
            entries = self._group_entries(first_id, last_id, payload)
            for index in range(expected - first_id, len(entries)):
                kind, record, _events = entries[index]
                sc_id = first_id + index
                what = f"log group {first_id}..{last_id}: state change"
                yield StoredStateChange(sc_id, self._decode(what, sc_id, kind, record))
            expected = last_id + 1

    def events_of(self, state_change_id: int) -> list[Any]:
        """The events a state change caused, in the order they were logged."""
        row = self._db.execute(
            "SELECT first_id, last_id, payload FROM log_groups WHERE first_id <= ?"
            " ORDER BY first_id DESC LIMIT 1",
            (state_change_id,),
        ).fetchone()
        if row is None or row[1] < state_change_id:
            return []
        first_id, last_id, payload = row
        _kind, _record, events = self._group_entries(first_id, last_id, payload)[
            state_change_id - first_id
        ]
        what = f"log group {first_id}..{last_id}: state change {state_change_id}, event"
        return [
            self._decode(what, number, kind, record)
            for number, (kind, record) in enumerate(events, 1)
        ]

    def latest_snapshot(self) -> tuple[int, Any] | None:
        """(state_change_id, state) of the newest snapshot, or None."""
        row = self._db.execute(
            "SELECT id, state_change_id, kind, payload FROM snapshots ORDER BY id DESC LIMIT 1"
        ).fetchone()
        if row is None:
            return None
        snap_id, sc_id, kind, payload = row
        if sc_id > self._last_id:
            raise StoreCorruptedError(
                f"{self._path}: snapshot {snap_id} is after the last state change ({sc_id} > {self._last_id})"
            )
        return sc_id, self._decode("snapshot", snap_id, kind, payload)

    def restore(self, initial: S, apply: Callable[[S, Any], S]) -> Restored[S]:
        """Rebuild the state: the latest snapshot (or `initial`) + the state changes after it,
        each replayed with `apply(state, state_change) -> state` (the core's transition,
        adapted by the caller). Raises StoreCorruptedError naming the first bad row.

        Read-only, it reads in one sqlite read transaction, so what the owner commits meanwhile
        is either all in or all out."""
        if not self._read_only:
            return self._restore(initial, apply)
        self._db.execute("BEGIN")  # deferred: a read transaction, one view of the file
        try:
            self._last_id, self._last_snapshot_id = self._read_ends()
            return self._restore(initial, apply)
        finally:
            self._db.execute("COMMIT")

    def _restore(self, initial: S, apply: Callable[[S, Any], S]) -> Restored[S]:
        snapshot = self.latest_snapshot()
        state: S
        if snapshot is None:
            start, state = 0, initial
        else:
            start, state = snapshot
        replayed = 0
        last = start
        for stored in self.state_changes(after=start):
            state = apply(state, stored.state_change)
            last = stored.id
            replayed += 1
        return Restored(state, last, replayed, start)

    def unconfirmed(self) -> list[OutboxItem]:
        """The outgoing items not yet confirmed, oldest state change first."""
        rows = self._db.execute(
            "SELECT key, state_change_id, kind, payload FROM outbox ORDER BY state_change_id, key"
        ).fetchall()
        return [
            OutboxItem(key, sc_id, self._decode("outbox item", sc_id, kind, payload))
            for key, sc_id, kind, payload in rows
        ]

    def fact(self, key: str) -> Any | None:
        """The committed fact `key` (None if there is none), read on a separate connection, so
        it may run while a commit is under way in a worker thread (WAL readers never block)."""
        if self._reader is None:
            self._reader = sqlite3.connect(
                f"file:{self._path}?mode=ro", uri=True, check_same_thread=False
            )
        row = self._reader.execute(
            "SELECT kind, payload FROM facts WHERE key = ?", (key,)
        ).fetchone()
        return None if row is None else self._decode("fact", 0, row[0], row[1])

    def facts(self, prefix: str) -> list[tuple[str, Any]]:
        """Every fact whose key starts with `prefix`, by key (read at start-up, not per payment)."""
        rows = self._db.execute(
            "SELECT key, kind, payload FROM facts WHERE key >= ? AND key < ? ORDER BY key",
            (prefix, prefix + "\U0010ffff"),
        ).fetchall()
        return [(key, self._decode("fact", 0, kind, payload)) for key, kind, payload in rows]

    def statistics(self) -> StoreStatistics:
        """Counters since open."""
        return StoreStatistics(
            commits=self._commits,
            state_changes_written=self._sc_written,
            events_written=self._ev_written,
            snapshots_written=self._snaps_written,
            last_state_change_id=self._last_id,
            state_changes_since_snapshot=self._last_id - self._last_snapshot_id,
        )

    def close(self) -> None:
        """Close the file. Everything committed is already durable; this adds nothing to it."""
        if self._reader is not None:
            self._reader.close()
        self._db.close()
        self._release()

    def __enter__(self) -> SqliteStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


@contextmanager
def open_store(
    path: str | Path, codec: RecordCodec, *, snapshot_interval: int = DEFAULT_SNAPSHOT_INTERVAL
) -> Iterator[SqliteStore]:
    """Open (or create) the durable store at `path` (WAL, synchronous=FULL); closed on exit."""
    store = SqliteStore(path, codec, snapshot_interval=snapshot_interval)
    try:
        yield store
    finally:
        store.close()

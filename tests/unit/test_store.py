"""The durable store: grouped commits, crash safety, snapshot + tail replay, corrupt rows, outbox."""

from __future__ import annotations

import os
import select
import signal
import sqlite3
import subprocess
import sys
import textwrap
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import msgspec
import pytest

import channels
from channels.codec.eip712 import Domain
from channels.core import events as core_events
from channels.core import state_changes as core_state_changes
from channels.core.locktree import LockTree
from channels.core.state import ChannelState, EndState, Lock, NodeState
from channels.fakes import MemoryStore
from channels.store import (
    RecordCodec,
    SqliteStore,
    StoreCorruptedError,
    StoreError,
    UnknownRecordTypeError,
    open_store,
)


@dataclass(frozen=True, slots=True)
class Add:
    amount: int


@dataclass(frozen=True, slots=True)
class Added:
    total: int


@dataclass(frozen=True, slots=True)
class Counter:
    total: int = 0
    count: int = 0


@dataclass(frozen=True, slots=True)
class Outgoing:
    text: str


def apply(state: Counter, change: Add) -> Counter:
    return Counter(state.total + change.amount, state.count + 1)


CODEC = RecordCodec([Add, Added, Counter, Outgoing])


def test_group_commit_is_one_transaction_and_replays(tmp_path: Path) -> None:
    with open_store(tmp_path / "node.db", CODEC) as store:
        with store.commit_group() as group:
            ids = [group.add(Add(i), [Added(i)]) for i in range(1, 101)]
        assert ids == list(range(1, 101))
        assert store.statistics().commits == 1
        assert store.events_of(7) == [Added(7)]
    with open_store(tmp_path / "node.db", CODEC) as store:
        restored = store.restore(Counter(), apply)
    assert restored.state == Counter(5050, 100)
    assert restored.last_state_change_id == 100
    assert restored.replayed == 100


def test_exception_in_group_writes_nothing(tmp_path: Path) -> None:
    with open_store(tmp_path / "node.db", CODEC) as store:
        store.write(Add(1))
        with pytest.raises(RuntimeError), store.commit_group() as group:
            group.add(Add(2))
            raise RuntimeError("the shell failed before commit")
        assert store.last_state_change_id == 1
        assert store.write(Add(3)) == 2  # the id of the rolled-back change is reused
        assert store.restore(Counter(), apply).state == Counter(4, 2)


def test_unencodable_record_fails_the_group_and_keeps_the_log(tmp_path: Path) -> None:
    with open_store(tmp_path / "node.db", CODEC) as store:
        with (
            pytest.raises(UnknownRecordTypeError, match="'Lock' is not registered"),
            store.commit_group() as group,
        ):
            group.add(Add(1))
            group.add(Add(2), [Lock(1, 2, b"\x01" * 32)])
        assert store.last_state_change_id == 0


_CRASH_WRITER = textwrap.dedent(
    """
    import os, sys
    from dataclasses import dataclass
    from channels.store import RecordCodec, SqliteStore

    @dataclass(frozen=True, slots=True)
    class Add:
        amount: int

    @dataclass(frozen=True, slots=True)
    class Added:
        total: int

    store = SqliteStore(sys.argv[1], RecordCodec([Add, Added]))
    n = 0
    while True:
        with store.commit_group() as group:
            for _ in range(10):
                n += 1
                group.add(Add(n), [Added(n)])
        print(n, flush=True)  # committed: durable before we say so
    """
)


def test_killed_writer_leaves_whole_groups_that_replay(tmp_path: Path) -> None:
    """SIGKILL mid-stream (no clean shutdown): every reported commit is there, no partial group."""
    path = tmp_path / "node.db"
    package_root = str(Path(channels.__file__).resolve().parents[1])
    process = subprocess.Popen(
        [sys.executable, "-c", _CRASH_WRITER, str(path)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": package_root},
    )
    try:
        assert process.stdout is not None
        reported = 0
        for _ in range(30):  # at least 30 committed groups
            ready, _, _ = select.select([process.stdout], [], [], 10)
            assert ready, "the writer reported no commit within 10 s"
            reported = int(process.stdout.readline())
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
    with open_store(path, RecordCodec([Add, Added])) as store:
        restored = store.restore(Counter(), apply)
    assert restored.state.count >= reported
    assert restored.state.count % 10 == 0  # groups are atomic
    n = restored.state.count
    assert restored.state.total == n * (n + 1) // 2


def test_snapshot_plus_tail_equals_full_replay(tmp_path: Path) -> None:
    path = tmp_path / "node.db"
    with open_store(path, CODEC, snapshot_interval=25) as store:
        state = Counter()
        snapshots = 0
        for i in range(1, 101):
            with store.commit_group() as group:
                group.add(Add(i), [Added(state.total + i)])
                state = apply(state, Add(i))
            if store.snapshot_due:
                store.write_snapshot(state)
                snapshots += 1
        assert snapshots == 4
        # 7 more after the last snapshot
        for i in range(101, 108):
            store.write(Add(i))
            state = apply(state, Add(i))
    with open_store(path, CODEC) as store:
        from_snapshot = store.restore(Counter(), apply)
        full = Counter()
        for stored in store.state_changes():
            full = apply(full, stored.state_change)
    assert from_snapshot.snapshot_state_change_id == 100
    assert from_snapshot.replayed == 7
    assert from_snapshot.state == full == state


def test_snapshot_written_in_the_same_group(tmp_path: Path) -> None:
    with open_store(tmp_path / "node.db", CODEC) as store:
        with store.commit_group() as group:
            group.add(Add(5))
            group.write_snapshot(Counter(5, 1))
        restored = store.restore(Counter(), apply)
    assert restored == type(restored)(Counter(5, 1), 1, 0, 1)


def test_outbox_survives_reopen_until_confirmed(tmp_path: Path) -> None:
    path = tmp_path / "node.db"
    with open_store(path, CODEC) as store, store.commit_group() as group:
        group.add(Add(1))
        group.add_unconfirmed("tx:deposit:1", Outgoing("deposit"))
        group.add_unconfirmed("msg:peer:1", Outgoing("proof 1"))
    with open_store(path, CODEC) as store:
        items = store.unconfirmed()
        assert [(item.key, item.item) for item in items] == [
            ("msg:peer:1", Outgoing("proof 1")),
            ("tx:deposit:1", Outgoing("deposit")),
        ]
        assert {item.state_change_id for item in items} == {1}
        with store.commit_group() as group:
            group.confirm("msg:peer:1")
    with open_store(path, CODEC) as store:
        assert [item.key for item in store.unconfirmed()] == ["tx:deposit:1"]


def _corrupt(path: Path, sql: str, *params: object) -> None:
    db = sqlite3.connect(path)
    db.execute(sql, params)
    db.commit()
    db.close()


def _log_of_three(path: Path) -> None:
    with open_store(path, CODEC) as store:
        for i in (1, 2, 3):
            store.write(Add(i), [Added(i)])


# a log group's blob: [[kind, record JSON, [[event kind, event JSON], ...]], ...]
_Entries = list[list[typing.Any]]


def _edit_group(path: Path, first_id: int, edit: Callable[[_Entries], object]) -> None:
    """Rewrite the blob of the log group starting at `first_id` through `edit(entries)`."""
    db = sqlite3.connect(path)
    (payload,) = db.execute(
        "SELECT payload FROM log_groups WHERE first_id = ?", (first_id,)
    ).fetchone()
    entries = msgspec.msgpack.decode(payload, type=_Entries)
    edit(entries)
    db.execute(
        "UPDATE log_groups SET payload = ? WHERE first_id = ?",
        (msgspec.msgpack.encode(entries), first_id),
    )
    db.commit()
    db.close()


def test_a_group_is_one_row(tmp_path: Path) -> None:
    path = tmp_path / "node.db"
    with open_store(path, CODEC) as store, store.commit_group() as group:
        group.add(Add(1), [Added(1), Added(11)])
        group.add(Add(2))
    db = sqlite3.connect(path)
    rows = db.execute("SELECT first_id, last_id, payload FROM log_groups").fetchall()
    db.close()
    assert [row[:2] for row in rows] == [(1, 2)]
    assert msgspec.msgpack.decode(rows[0][2]) == [
        ["Add", b'{"amount":1}', [["Added", b'{"total":1}'], ["Added", b'{"total":11}']]],
        ["Add", b'{"amount":2}', []],
    ]


def test_garbage_payload_raises_naming_the_row(tmp_path: Path) -> None:
    path = tmp_path / "node.db"
    _log_of_three(path)
    _edit_group(path, 2, lambda entries: entries[0].__setitem__(1, b"\xff\x00garbage"))
    with (
        open_store(path, CODEC) as store,
        pytest.raises(
            StoreCorruptedError, match=r"log group 2\.\.2: state change 2 \(Add\) cannot be decoded"
        ),
    ):
        store.restore(Counter(), apply)


def test_wrong_field_type_raises(tmp_path: Path) -> None:
    path = tmp_path / "node.db"
    _log_of_three(path)
    _edit_group(path, 3, lambda entries: entries[0].__setitem__(1, b'{"amount": "three"}'))
    with (
        open_store(path, CODEC) as store,
        pytest.raises(StoreCorruptedError, match=r"state change 3 \(Add\).*Expected `int`"),
    ):
        store.restore(Counter(), apply)


def test_unknown_kind_raises(tmp_path: Path) -> None:
    path = tmp_path / "node.db"
    _log_of_three(path)
    _edit_group(path, 1, lambda entries: entries[0].__setitem__(0, "Drop"))
    with (
        open_store(path, CODEC) as store,
        pytest.raises(
            StoreCorruptedError, match="state change 1: record type 'Drop' is not registered"
        ),
    ):
        store.restore(Counter(), apply)


def test_gap_in_the_log_raises(tmp_path: Path) -> None:
    path = tmp_path / "node.db"
    _log_of_three(path)
    _corrupt(path, "DELETE FROM log_groups WHERE first_id = 2")
    with (
        open_store(path, CODEC) as store,
        pytest.raises(StoreCorruptedError, match="gap: expected id 2, found 3"),
    ):
        store.restore(Counter(), apply)


def test_garbage_group_blob_raises_naming_the_group(tmp_path: Path) -> None:
    path = tmp_path / "node.db"
    _log_of_three(path)
    _corrupt(path, "UPDATE log_groups SET payload = ? WHERE first_id = 2", b"\xc1garbage")
    with (
        open_store(path, CODEC) as store,
        pytest.raises(StoreCorruptedError, match=r"log group 2\.\.2 cannot be decoded"),
    ):
        store.restore(Counter(), apply)


def test_group_with_missing_state_changes_raises(tmp_path: Path) -> None:
    path = tmp_path / "node.db"
    _log_of_three(path)
    _corrupt(path, "UPDATE log_groups SET last_id = 4 WHERE first_id = 3")
    with (
        open_store(path, CODEC) as store,
        pytest.raises(StoreCorruptedError, match=r"log group 3\.\.4 holds 1 state changes, not 2"),
    ):
        list(store.state_changes())


def test_corrupt_event_raises(tmp_path: Path) -> None:
    path = tmp_path / "node.db"
    _log_of_three(path)
    _edit_group(path, 2, lambda entries: entries[0][2][0].__setitem__(1, b"["))
    with (
        open_store(path, CODEC) as store,
        pytest.raises(StoreCorruptedError, match=r"state change 2, event 1 \(Added\)"),
    ):
        store.events_of(2)


def test_snapshot_beyond_the_log_raises(tmp_path: Path) -> None:
    path = tmp_path / "node.db"
    _log_of_three(path)
    _corrupt(
        path,
        "INSERT INTO snapshots (state_change_id, kind, payload) VALUES (9, 'Counter', ?)",
        b'{"total": 1, "count": 1}',
    )
    with open_store(path, CODEC) as store, pytest.raises(StoreCorruptedError, match="snapshot"):
        store.restore(Counter(), apply)


def test_not_a_database_raises(tmp_path: Path) -> None:
    path = tmp_path / "node.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreCorruptedError, match="not a readable CISE store"):
        SqliteStore(path, CODEC)


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "node.db"
    _log_of_three(path)
    _corrupt(path, "PRAGMA user_version = 99")
    with pytest.raises(StoreError, match="schema version 99"):
        SqliteStore(path, CODEC)


def test_older_schema_is_refused(tmp_path: Path) -> None:
    """A version 1 file (a row per state change and per event) is not read as an empty log."""
    path = tmp_path / "node.db"
    _log_of_three(path)
    _corrupt(path, "PRAGMA user_version = 1")
    with pytest.raises(StoreError, match="schema version 1, this code reads 3 only"):
        SqliteStore(path, CODEC)


def test_a_version_2_file_is_upgraded_and_keeps_its_log(tmp_path: Path) -> None:
    path = tmp_path / "node.db"
    _log_of_three(path)
    _corrupt(path, "PRAGMA user_version = 2")
    _corrupt(path, "DROP TABLE facts")
    with open_store(path, CODEC) as store:
        assert store.last_state_change_id == 3
        assert store.facts("payment:") == []


def test_facts_are_written_with_their_group_and_read_by_prefix(tmp_path: Path) -> None:
    with open_store(tmp_path / "node.db", CODEC) as store:
        group = store.begin_group()
        group.put_fact("payment:2", Outgoing("two"))
        group.put_fact("payment:1", Outgoing("one"))
        group.put_fact("invoice:1", Outgoing("inv"))
        assert store.facts("payment:") == []  # nothing before the commit
        store.commit(group)
        assert [key for key, _ in store.facts("payment:")] == ["payment:1", "payment:2"]
        assert store.facts("payment:")[0][1] == Outgoing("one")


def test_wal_and_full_sync_are_on(tmp_path: Path) -> None:
    with open_store(tmp_path / "node.db", CODEC) as store:
        db = store._db
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_nested_groups_are_refused() -> None:
    store = MemoryStore(CODEC)
    with store.commit_group(), pytest.raises(StoreError, match="do not nest"), store.commit_group():
        pass


def test_core_records_round_trip() -> None:
    """Every core state change and event type is registrable; a node state with a lock tree
    survives a snapshot (the tree is rebuilt, its root recomputed)."""
    types = [
        *typing.get_args(core_state_changes.StateChange),
        *typing.get_args(core_events.Event),
        NodeState,
    ]
    store = MemoryStore(RecordCodec(types))
    lock = Lock(5, 70, b"\x07" * 32)
    tree, slot = LockTree().insert(lock.leaf)
    ours = EndState(address=b"\x01" * 20, deposit=100, tree=tree, locks={slot: lock})
    channel = ChannelState(
        channel_id=3,
        our=ours,
        partner=EndState(address=b"\x02" * 20),
        settle_timeout=50,
        secrets={b"\x07" * 32: b"\x08" * 32},
        unlocks_pending=frozenset({(b"\x01" * 20, slot)}),
    )
    node = NodeState(
        our_address=b"\x01" * 20,
        domain=Domain(1337, b"\x09" * 20),
        block_number=9,
        channels={3: channel},
    )
    store.write(core_state_changes.Block(10), [core_events.EventChannelOpened(3, b"\x02" * 20)])
    store.write_snapshot(node)
    snapshot = store.latest_snapshot()
    assert snapshot is not None
    assert snapshot[1] == node
    assert snapshot[1].channels[3].our.tree.root == tree.root
    assert snapshot[1].domain.separator == node.domain.separator


def test_pipelined_groups_commit_in_order(tmp_path: Path) -> None:
    """Fill the next group while the previous one commits in a worker thread."""
    import threading

    with open_store(tmp_path / "node.db", CODEC) as store:
        first = store.begin_group()
        assert [first.add(Add(i)) for i in (1, 2, 3)] == [1, 2, 3]
        second = store.begin_group()  # seals `first`
        with pytest.raises(StoreError, match="sealed"):
            first.add(Add(99))
        worker = threading.Thread(target=store.commit, args=(first,))
        worker.start()
        assert [second.add(Add(i), [Added(i)]) for i in (4, 5)] == [4, 5]
        worker.join(timeout=10)
        assert store.last_state_change_id == 3
        store.commit(second)
        assert store.restore(Counter(), apply).state == Counter(15, 5)
        assert store.write(Add(6)) == 6


def test_groups_committed_out_of_order_are_refused(tmp_path: Path) -> None:
    with open_store(tmp_path / "node.db", CODEC) as store:
        first = store.begin_group()
        first.add(Add(1))
        second = store.begin_group()
        second.add(Add(2))
        with pytest.raises(StoreError, match="starts at state change 2, the log continues at 1"):
            store.commit(second)
        store.commit(first)
        store.commit(second)
        assert store.restore(Counter(), apply).state == Counter(3, 2)


def test_overlapping_groups_raise(tmp_path: Path) -> None:
    path = tmp_path / "node.db"
    _log_of_three(path)
    _edit_group(path, 1, lambda entries: entries.append(entries[0]))
    _corrupt(path, "UPDATE log_groups SET last_id = 2 WHERE first_id = 1")  # 1..2, then 2..2
    with (
        open_store(path, CODEC) as store,
        pytest.raises(StoreCorruptedError, match="overlap: expected id 3, found 2"),
    ):
        list(store.state_changes())


def test_reversed_group_raises(tmp_path: Path) -> None:
    path = tmp_path / "node.db"
    _log_of_three(path)
    _corrupt(path, "UPDATE log_groups SET last_id = 2 WHERE first_id = 3")
    with (
        open_store(path, CODEC) as store,
        pytest.raises(StoreCorruptedError, match=r"log group 3\.\.2 holds no state change"),
    ):
        list(store.state_changes())

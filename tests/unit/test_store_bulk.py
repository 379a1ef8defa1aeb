"""Groups of every size commit every state change and event in order; reads start mid-group."""

from __future__ import annotations

from pathlib import Path

import pytest

from channels.store import RecordCodec, SqliteStore
from tests.unit.test_store import Add, Added

CODEC = RecordCodec([Add, Added])


@pytest.mark.parametrize("sizes", [[1], [2, 3], [255, 256, 257], [600, 1], [1000, 7, 513]])
def test_groups_commit_every_row_in_order(tmp_path: Path, sizes: list[int]) -> None:
    total = 0
    expected_events: dict[int, list[Added]] = {}
    with SqliteStore(tmp_path / "s.db", CODEC) as store:
        for size in sizes:
            group = store.begin_group()
            for _ in range(size):
                total += 1
                # every third state change has no event, every fifth has two
                events = [Added(total)] * (0 if total % 3 == 0 else 2 if total % 5 == 0 else 1)
                sc_id = group.add(Add(total), events)
                expected_events[sc_id] = events
            store.commit(group)
        assert store.statistics().state_changes_written == total
    with SqliteStore(tmp_path / "s.db", CODEC) as store:
        stored = list(store.state_changes())
        assert [s.id for s in stored] == list(range(1, total + 1))
        assert [s.state_change for s in stored] == [Add(i) for i in range(1, total + 1)]
        for sc_id, events in expected_events.items():
            assert store.events_of(sc_id) == events


def test_reading_after_any_id_starts_mid_group(tmp_path: Path) -> None:
    with SqliteStore(tmp_path / "s.db", CODEC) as store:
        for size in (3, 1, 4):
            with store.commit_group() as group:
                for _ in range(size):
                    sc_id = group.next_id
                    group.add(Add(sc_id), [Added(sc_id)])
        for after in range(0, 10):
            assert [s.id for s in store.state_changes(after)] == list(range(after + 1, 9))
        assert [s.state_change for s in store.state_changes(5)] == [Add(6), Add(7), Add(8)]
        assert store.events_of(6) == [Added(6)]
        assert store.events_of(0) == store.events_of(9) == []

"""The meter sender's decisions (`assets.meter_buffer`) and its durable buffer
(`assets.meter_outbox`, a real sqlite file)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from assets.meter_buffer import (
    Backoff,
    Buffered,
    MeterLineError,
    check_line,
    encode_batch,
    judge_answer,
    next_batch,
)
from assets.meter_outbox import MeterOutbox, MeterOutboxError


def item(seq: int, event_id: str | None = None, size: int = 0) -> Buffered:
    event_id = event_id or f"e{seq}"
    line = json.dumps({"event_id": event_id, "pad": "x" * size}).encode()
    return Buffered(seq, event_id, line)


def test_lines_need_a_json_object_with_an_event_id() -> None:
    assert check_line(b'{"event_id": "c1", "units": 1}') == "c1"
    for line, reason in (
        (b"{not json", "not valid JSON"),
        (b"[1]", "must be a JSON object"),
        (b'{"units": 1}', "event_id"),
        (b'{"event_id": ""}', "event_id"),
        (b'{"event_id": "\\u00e9"}', "event_id"),
        (b'{"event_id": 7}', "event_id"),
        (b'{"event_id": "' + b"x" * 129 + b'"}', "event_id"),
        (b'{"event_id": "a", "p": "' + b"x" * 70_000 + b'"}', "larger than"),
    ):
        with pytest.raises(MeterLineError, match=reason):
            check_line(line)


def test_batches_are_the_oldest_events_within_the_limits() -> None:
    pending = [item(5), item(2), item(9), item(3)]
    assert [b.seq for b in next_batch(pending)] == [2, 3, 5, 9]
    assert [b.seq for b in next_batch(pending, max_events=2)] == [2, 3]
    big = [item(1, size=600), item(2, size=600), item(3)]
    assert [b.seq for b in next_batch(big, max_bytes=1270)] == [1, 2]
    assert [b.seq for b in next_batch(big, max_bytes=10)] == [1]  # one always goes
    assert next_batch([]) == []
    body = encode_batch([item(1), item(2)])
    assert [e["event_id"] for e in json.loads(body)] == ["e1", "e2"]


def test_only_an_outcome_per_event_drops_the_events() -> None:
    sent = [item(1), item(2)]
    outcomes = [{"event_id": "e1", "status": "charged"}, {"event_id": "e2", "status": "duplicate"}]
    verdict = judge_answer(200, json.dumps(outcomes).encode(), sent)
    assert verdict.kind == "answered" and list(verdict.outcomes) == outcomes
    rejected = [{"event_id": "e1", "status": "rejected", "reason": "x"}, outcomes[1]]
    assert judge_answer(200, json.dumps(rejected).encode(), sent).kind == "answered"
    for status, body in (
        (None, b""),
        (500, b'{"error": "internal error"}'),
        (503, b""),
        (429, b""),
    ):
        assert judge_answer(status, body, sent).kind == "retry", status
    assert "internal error" in judge_answer(500, b'{"error": "internal error"}', sent).reason
    unauthorized = judge_answer(401, b'{"error": "no meter token"}', sent)
    assert unauthorized == judge_answer(401, b"", sent)
    assert (unauthorized.kind, unauthorized.reason) == (
        "fatal",
        "the asset agent refused the meter token",
    )
    for status, body in (
        (400, b'{"error": "bad JSON"}'),
        (404, b""),
        (200, b"<html>"),
        (200, json.dumps(outcomes[:1]).encode()),  # one outcome for two events
        (200, json.dumps(outcomes[::-1]).encode()),  # another event's outcome
        (200, json.dumps([{"event_id": "e1"}, outcomes[1]]).encode()),  # no status
    ):
        verdict = judge_answer(status, body, sent)
        assert verdict.kind == "fatal" and not verdict.outcomes, (status, body)


def test_backoff_doubles_up_to_the_maximum_and_resets() -> None:
    backoff = Backoff(initial=1.0, maximum=5.0)
    assert [backoff.next_delay() for _ in range(5)] == [1.0, 2.0, 4.0, 5.0, 5.0]
    backoff.reset()
    assert backoff.next_delay() == 1.0
    with pytest.raises(ValueError):
        Backoff(initial=2.0, maximum=1.0)


def test_the_outbox_keeps_events_in_order_across_reopening(tmp_path: Path) -> None:
    path = tmp_path / "buffer.sqlite"
    with MeterOutbox(path) as outbox:
        conn = outbox.connection()
        seqs = [conn.append(f"e{i}", f'{{"event_id": "e{i}"}}'.encode()) for i in range(4)]
        assert seqs == sorted(seqs)
        first = conn.oldest(2)
        assert [b.event_id for b in first] == ["e0", "e1"]
        conn.remove(first)
        conn.close()
        with pytest.raises(MeterOutboxError, match="in use"):
            MeterOutbox(path)  # a second sender on the same buffer is refused
    with MeterOutbox(path) as outbox:  # what was not answered is still there, in order
        conn = outbox.connection()
        assert [b.event_id for b in conn.oldest(10)] == ["e2", "e3"] and conn.count() == 2
        assert conn.append("e4", b'{"event_id": "e4"}') > seqs[-1]
        conn.close()
    (tmp_path / "not-a-db").write_text("hello, this is not sqlite" * 100)
    with pytest.raises(MeterOutboxError, match="not-a-db"):
        MeterOutbox(tmp_path / "not-a-db")

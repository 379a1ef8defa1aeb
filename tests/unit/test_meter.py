"""Meter events: decoding with clear errors, and the guard's checks across one asset's events."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest

from assets.meter import (
    GuardState,
    MeterError,
    MeterEvent,
    MeterGuard,
    check_event,
    decode_event,
    encode_event,
)
from channels.core.types import to_checksum

ALICE = "0x" + "aa" * 20
BOB = "0x" + "bb" * 20
MALLORY = "0x" + "cc" * 20
KNOWN = {bytes.fromhex(ALICE[2:]), bytes.fromhex(BOB[2:])}
NOW = 1_800_000_000


def known(user: bytes) -> bool:
    return user in KNOWN


def raw(**fields: Any) -> dict[str, Any]:
    event: dict[str, Any] = {"event_id": "wm-1", "user": ALICE, "units": 1, "at": NOW}
    event.update(fields)
    return {k: v for k, v in event.items() if v is not ...}


def ev(
    event_id: str, *, at: int, units: int = 1, reading: int | None = None, user: str = ALICE
) -> MeterEvent:
    return MeterEvent(event_id=event_id, user=user, units=units, at=at, reading=reading)


# --- decode_event --------------------------------------------------------------------------


def test_decode_from_bytes_str_and_dict() -> None:
    expected = MeterEvent("wm-1", ALICE, 250, NOW, reading=1250, prepaid=True)
    text = json.dumps(raw(units=250, reading=1250, prepaid=True))
    assert decode_event(text) == expected
    assert decode_event(text.encode()) == expected
    assert decode_event(raw(units=250, reading=1250, prepaid=True)) == expected
    assert decode_event(encode_event(expected)) == expected
    assert expected.user_address == b"\xaa" * 20


def test_defaults() -> None:
    event = decode_event(raw())
    assert event.reading is None
    assert event.prepaid is False


def test_user_is_lower_cased_and_checksums_are_checked() -> None:
    checksummed = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"  # EIP-55's own example
    assert to_checksum(bytes.fromhex(checksummed[2:])) == checksummed
    assert decode_event(raw(user=checksummed)).user == checksummed.lower()
    assert decode_event(raw(user="0x" + "AB" * 20)).user == "0x" + "ab" * 20
    broken = "0x5AAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
    with pytest.raises(MeterError, match=r"^user: bad EIP-55 checksum"):
        decode_event(raw(user=broken))


def field_error(value: Any) -> MeterError:
    with pytest.raises(MeterError) as info:
        decode_event(value)
    return info.value


@pytest.mark.parametrize(
    ("value", "field", "words"),
    [
        (raw(units=1.5), "units", "got `float`"),
        (raw(units=1.0), "units", "never floats"),
        (raw(at=NOW + 0.5), "at", "got `float`"),
        (raw(reading=10.25), "reading", "got `float`"),
        (raw(units="1"), "units", "got `str`"),
        (raw(units=True), "units", "got `bool`"),
        (raw(prepaid=1), "prepaid", "got `int`"),
        (raw(event_id=7), "event_id", "got `int`"),
        (raw(units=0), "units", "must be positive, got 0"),
        (raw(units=-3), "units", "must be positive, got -3"),
        (raw(at=-1), "at", "must be non-negative, got -1"),
        (raw(reading=-1), "reading", "must be non-negative"),
        (raw(units=2**63), "units", "at most 2**63-1"),
        (raw(event_id=""), "event_id", "1..128 printable ASCII"),
        (raw(event_id="x" * 129), "event_id", "1..128 printable ASCII"),
        (raw(event_id="tab\there"), "event_id", "printable ASCII"),
        (raw(event_id="caf\u00e9"), "event_id", "printable ASCII"),
        (raw(user="0x" + "aa" * 19), "user", "not an address"),
        (raw(user="aa" * 21), "user", "not an address"),
        (raw(user="0x" + "zz" * 20), "user", "not an address"),
        (raw(user=None), "user", "got `null`"),
        (raw(units=...), "units", "missing required field"),
        (raw(event_id=...), "event_id", "missing required field"),
        (raw(colour="red"), "colour", "unknown field"),
    ],
)
def test_decode_rejects_naming_the_field(value: dict[str, Any], field: str, words: str) -> None:
    for form in (value, json.dumps(value), json.dumps(value).encode()):
        error = field_error(form)
        assert error.field == field
        assert str(error).startswith(f"{field}: ")
        assert words in str(error)
        assert isinstance(error, ValueError)


def test_the_longest_event_id_is_fine() -> None:
    assert decode_event(raw(event_id="~" * 128)).event_id == "~" * 128


@pytest.mark.parametrize("text", ["", "{", '{"event_id": "a",}', "not json", b"\xff\xfe"])
def test_bad_json(text: str | bytes) -> None:
    assert str(field_error(text)).startswith("bad JSON: ")


@pytest.mark.parametrize("text", ["[]", "3", '"event"', "null"])
def test_not_an_object(text: str) -> None:
    assert "expected `object`" in str(field_error(text))


def test_check_event_catches_hand_made_events() -> None:
    check_event(ev("a", at=NOW))
    with pytest.raises(MeterError, match=r"^units: must be positive"):
        check_event(ev("a", at=NOW, units=0))
    with pytest.raises(MeterError, match=r"^user: "):
        check_event(ev("a", at=NOW, user="alice"))


# --- MeterGuard -----------------------------------------------------------------------------


def test_accepts_a_stream_of_consistent_events() -> None:
    guard = MeterGuard(max_units=1000)
    for i in range(5):
        event = ev(f"e{i}", at=NOW + i, units=10, reading=100 + 10 * (i + 1))
        assert guard.process(event, known_user=known, now=NOW + i).accepted
    assert guard.last_at == NOW + 4
    assert guard.last_reading == 150


def test_same_at_twice_is_in_order() -> None:
    guard = MeterGuard(max_units=10)
    assert guard.process(ev("a", at=NOW), known_user=known, now=NOW).accepted
    assert guard.process(ev("b", at=NOW), known_user=known, now=NOW).accepted


def test_duplicate_is_idempotent_even_after_later_events() -> None:
    guard = MeterGuard(max_units=10)
    first = ev("a", at=NOW, reading=1)
    guard.process(first, known_user=known, now=NOW)
    guard.process(ev("b", at=NOW + 60, reading=2), known_user=known, now=NOW + 60)
    before = guard.snapshot()
    again = decode_event(encode_event(first))
    verdict = guard.check(again, known_user=known, now=NOW + 120)
    assert verdict.duplicate and not verdict.accepted and not verdict.rejected
    assert verdict.previous == first
    assert guard.process(again, known_user=known, now=NOW + 120).duplicate
    assert guard.snapshot() == before
    upper = msgspec.structs.replace(first, user=first.user.upper().replace("0X", "0x"))
    assert guard.check(upper, known_user=known, now=NOW).duplicate


def rejected(guard: MeterGuard, event: MeterEvent, *, now: int = NOW) -> str:
    before = guard.snapshot()
    verdict = guard.process(event, known_user=known, now=now)
    assert verdict.rejected, verdict
    assert guard.snapshot() == before, "a rejected event changed the state"
    return verdict.reason


def test_reused_event_id_with_other_content() -> None:
    guard = MeterGuard(max_units=10)
    guard.process(ev("a", at=NOW, units=1), known_user=known, now=NOW)
    reason = rejected(guard, ev("a", at=NOW, units=2))
    assert reason == "event id 'a' was already used for another event"
    reason = rejected(guard, ev("a", at=NOW, user=BOB))
    assert "already used for another event" in reason


def test_out_of_order() -> None:
    guard = MeterGuard(max_units=10)
    guard.process(ev("a", at=NOW), known_user=known, now=NOW)
    reason = rejected(guard, ev("b", at=NOW - 5))
    assert reason.startswith("out of order")
    assert "5 s before" in reason


def test_too_far_in_the_future() -> None:
    guard = MeterGuard(max_units=10)
    assert guard.check(ev("a", at=NOW + 300), known_user=known, now=NOW).accepted
    reason = rejected(guard, ev("b", at=NOW + 301))
    assert "301 s ahead of now" in reason
    assert "at most 300 s" in reason
    strict = MeterGuard(max_units=10, future_slack_s=0)
    assert "1 s ahead" in rejected(strict, ev("c", at=NOW + 1))


def test_units_above_the_maximum() -> None:
    guard = MeterGuard(max_units=500)
    assert guard.check(ev("a", at=NOW, units=500), known_user=known, now=NOW).accepted
    assert rejected(guard, ev("b", at=NOW, units=501)) == (
        "units 501 above the maximum 500 for this asset"
    )


def test_counter_going_backwards() -> None:
    guard = MeterGuard(max_units=100)
    guard.process(ev("a", at=NOW, units=5, reading=1000), known_user=known, now=NOW)
    reason = rejected(guard, ev("b", at=NOW + 1, units=5, reading=990))
    assert "below the last reading 1000" in reason
    assert "backwards by 10" in reason


def test_reading_increase_must_equal_units() -> None:
    guard = MeterGuard(max_units=100)
    guard.process(ev("a", at=NOW, units=5, reading=1000), known_user=known, now=NOW)
    reason = rejected(guard, ev("b", at=NOW + 1, units=5, reading=1007))
    assert "rose by 7" in reason
    assert "units is 5" in reason
    assert "differs by +2" in reason
    reason = rejected(guard, ev("c", at=NOW + 1, units=5, reading=1003))
    assert "differs by -2" in reason


def test_events_without_reading_advance_the_counter() -> None:
    guard = MeterGuard(max_units=100)
    guard.process(ev("a", at=NOW, units=5, reading=1000), known_user=known, now=NOW)
    assert guard.process(ev("b", at=NOW + 1, units=3), known_user=known, now=NOW).accepted
    assert guard.last_reading == 1003
    assert guard.process(ev("c", at=NOW + 2, units=2, reading=1005), known_user=known, now=NOW)
    assert guard.last_reading == 1005


def test_first_reading_sets_the_counter() -> None:
    guard = MeterGuard(max_units=100)
    guard.process(ev("a", at=NOW, units=5), known_user=known, now=NOW)
    assert guard.last_reading is None
    assert guard.process(ev("b", at=NOW, units=5, reading=777), known_user=known, now=NOW)
    assert guard.last_reading == 777


def test_unknown_user() -> None:
    guard = MeterGuard(max_units=10)
    assert rejected(guard, ev("a", at=NOW, user=MALLORY)) == f"unknown user {MALLORY}"
    asked: list[bytes] = []

    def spy(user: bytes) -> bool:
        asked.append(user)
        return True

    assert guard.check(ev("a", at=NOW, user=BOB), known_user=spy, now=NOW).accepted
    assert asked == [b"\xbb" * 20]


def test_rejected_events_leave_the_id_free() -> None:
    guard = MeterGuard(max_units=10)
    rejected(guard, ev("a", at=NOW, units=11))
    assert guard.process(ev("a", at=NOW, units=1), known_user=known, now=NOW).accepted


def test_accept_refuses_what_check_would_reject() -> None:
    guard = MeterGuard(max_units=10)
    guard.accept(ev("a", at=NOW, reading=1))
    before = guard.snapshot()
    for bad in (ev("a", at=NOW, reading=1), ev("b", at=NOW - 1), ev("c", at=NOW, reading=5)):
        with pytest.raises(MeterError):
            guard.accept(bad)
    assert guard.snapshot() == before


def test_snapshot_and_restore() -> None:
    guard = MeterGuard(max_units=100)
    events = [ev(f"e{i}", at=NOW + i, units=2, reading=10 + 2 * i) for i in range(1, 4)]
    for event in events:
        assert guard.process(event, known_user=known, now=NOW).accepted
    stored = msgspec.json.encode(guard.snapshot())
    state = msgspec.json.decode(stored, type=GuardState)
    assert state.last_at == NOW + 3 and state.last_reading == 16 and state.last_event_id == "e3"
    again = MeterGuard.restore(state, max_units=100)
    assert again.snapshot() == guard.snapshot()
    assert again.check(events[0], known_user=known, now=NOW).duplicate
    assert "already used" in rejected(again, ev("e1", at=NOW + 9, units=2, reading=18))
    assert rejected(again, ev("x", at=NOW + 2)).startswith("out of order")
    assert "differs by" in rejected(again, ev("y", at=NOW + 4, units=2, reading=19))
    assert again.process(ev("z", at=NOW + 4, units=2, reading=18), known_user=known, now=NOW)


def test_a_durable_store_answers_seen() -> None:
    store: dict[str, MeterEvent] = {}
    guard = MeterGuard(max_units=100, seen=store.get)
    first = ev("a", at=NOW)
    assert guard.process(first, known_user=known, now=NOW).accepted
    assert guard.snapshot().events == ()  # the guard keeps nothing; the caller's store does
    store[first.event_id] = first
    assert guard.check(first, known_user=known, now=NOW).duplicate
    restored = MeterGuard.restore(guard.snapshot(), max_units=100, seen=store.get)
    assert restored.check(first, known_user=known, now=NOW).duplicate
    assert "already used" in rejected(restored, ev("a", at=NOW, units=2))
    with pytest.raises(ValueError, match="keeps no events"):
        MeterGuard.restore(GuardState(events=(first,)), max_units=1, seen=store.get)


def test_constructor_arguments() -> None:
    for bad in (0, -1, True):
        with pytest.raises(ValueError, match="max_units"):
            MeterGuard(max_units=bad)
    with pytest.raises(ValueError, match="future_slack_s"):
        MeterGuard(max_units=1, future_slack_s=-1)

"""Meter events: what a pay-per-use asset reports for each use, validated before it is priced.

A machine (washing machine, milk robot, car) reports one `MeterEvent` per use: who used it, how
much (`units`, in the tariff's smallest unit: ml, m, Wh; 1 for a wash cycle), when, and
optionally its cumulative counter. `decode_event` checks one event on its own (types, ranges,
address); `MeterGuard` checks an event against the ones accepted before it for the same asset
(idempotent retries, reused ids, order, clock, absurd quantities, counters, unknown users).

This module is pure: it must never do I/O, read the clock or keep state the caller cannot
persist. Time comes in as `now`, user lookups and durable event-id lookups come in as callables,
and the guard's state goes out as a `GuardState` to be stored by the caller. Quantities are
`int` only: a float never becomes units or money.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, Final, Literal

import msgspec

from channels.core.types import to_checksum

__all__ = [
    "DEFAULT_FUTURE_SLACK_S",
    "MAX_EVENT_ID_LENGTH",
    "MAX_INT",
    "GuardState",
    "MeterError",
    "MeterEvent",
    "MeterGuard",
    "Verdict",
    "check_event",
    "decode_event",
    "encode_event",
]

MAX_EVENT_ID_LENGTH: Final = 128
MAX_INT: Final = 2**63 - 1  # every integer field fits a sqlite INTEGER
DEFAULT_FUTURE_SLACK_S: Final = 300

_EVENT_ID = re.compile(r"[\x20-\x7e]{1,128}")
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
_AT_FIELD = re.compile(r"^(?P<detail>.*) - at `\$\.(?P<field>[A-Za-z_]+)`$")
_MISSING = re.compile(r"^Object missing required field `(?P<field>[^`]+)`$")
_UNKNOWN = re.compile(r"^Object contains unknown field `(?P<field>[^`]+)`$")


class MeterError(ValueError):
    """A meter event that cannot be accepted on its own; `field` names the culprit, if one."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class MeterEvent(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One use of an asset, as its meter reports it (JSON object with exactly these fields).

    Build events with `decode_event` (or check hand-made ones with `check_event`): the
    constructor itself validates nothing.
    """

    event_id: str  # 1..128 printable ASCII characters, unique per asset: makes retries idempotent
    user: str  # 0x + 40 hex digits (lower case once decoded)
    units: int  # the use's quantity in the tariff's smallest unit, >= 1
    at: int  # unix seconds, by the machine's clock
    reading: int | None = None  # the machine's cumulative counter after this use, if it has one
    prepaid: bool = False  # True: the machine waits for the payment before starting the cycle

    @property
    def user_address(self) -> bytes:
        """The user's address as 20 raw bytes."""
        return bytes.fromhex(self.user[2:])


_json_decoder: Final = msgspec.json.Decoder(MeterEvent)
_json_encoder: Final = msgspec.json.Encoder()


def decode_event(raw: bytes | str | Mapping[str, Any]) -> MeterEvent:
    """Decode and validate one event from JSON (bytes or str) or an already parsed JSON object.

    Raises `MeterError` naming the field for: bad JSON, a missing or unknown field, a wrong type
    (a float where an int is required, even 1.0), a bad address, an empty or too long event id,
    units below 1, a negative `at` or `reading`, an integer above 2**63-1.
    The returned event's `user` is lower case.
    """
    try:
        if isinstance(raw, bytes | str):
            event = _json_decoder.decode(raw)
        elif isinstance(raw, Mapping):
            event = msgspec.convert(dict(raw), MeterEvent, strict=True)
        else:
            raise MeterError(f"event: expected JSON text or an object, got {type(raw).__name__}")
    except msgspec.ValidationError as exc:
        raise _from_validation(str(exc)) from None
    except msgspec.DecodeError as exc:
        raise MeterError(f"bad JSON: {exc}") from None
    check_event(event)
    if event.user != event.user.lower():
        event = msgspec.structs.replace(event, user=event.user.lower())
    return event


def encode_event(event: MeterEvent) -> bytes:
    """The event as one JSON object (what `decode_event` reads back)."""
    return _json_encoder.encode(event)


def check_event(event: MeterEvent) -> None:
    """Validate the values of an event built in code; `MeterError` naming the field otherwise."""
    if not isinstance(event.event_id, str) or not _EVENT_ID.fullmatch(event.event_id):
        raise MeterError(
            f"event_id: must be 1..{MAX_EVENT_ID_LENGTH} printable ASCII characters, "
            f"got {_show(event.event_id)}",
            field="event_id",
        )
    _check_address(event.user)
    _check_int("units", event.units, minimum=1)
    _check_int("at", event.at, minimum=0)
    if event.reading is not None:
        _check_int("reading", event.reading, minimum=0)
    if not isinstance(event.prepaid, bool):
        raise MeterError(
            f"prepaid: expected a boolean, got {type(event.prepaid).__name__}", field="prepaid"
        )


def _check_address(user: object) -> None:
    if not isinstance(user, str) or not _ADDRESS.fullmatch(user):
        raise MeterError(
            f"user: not an address (want 0x + 40 hex digits), got {_show(user)}", field="user"
        )
    digits = user[2:]
    mixed_case = digits != digits.lower() and digits != digits.upper()
    if mixed_case and to_checksum(bytes.fromhex(digits)) != user:
        raise MeterError(
            f"user: bad EIP-55 checksum in {user} (write it all lower case or checksum it)",
            field="user",
        )


def _check_int(field: str, value: object, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise MeterError(f"{field}: expected an integer, got {type(value).__name__}", field=field)
    if value < minimum:
        kind = "positive" if minimum == 1 else "non-negative"
        raise MeterError(f"{field}: must be {kind}, got {value}", field=field)
    if value > MAX_INT:
        raise MeterError(f"{field}: must be at most 2**63-1, got {value}", field=field)


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _from_validation(message: str) -> MeterError:
    """msgspec's message, rephrased to start with the field it is about."""
    if match := _AT_FIELD.match(message):
        field = match["field"]
        detail = match["detail"].replace("Expected", "expected")
        if "got `float`" in detail:
            detail += " (quantities are whole numbers, never floats)"
        return MeterError(f"{field}: {detail}", field=field)
    if match := _MISSING.match(message):
        return MeterError(f"{match['field']}: missing required field", field=match["field"])
    if match := _UNKNOWN.match(message):
        return MeterError(f"{match['field']}: unknown field", field=match["field"])
    return MeterError(f"event: {message.replace('Expected', 'expected')}")


class Verdict(msgspec.Struct, frozen=True):
    """What the guard makes of an event.

    accepted: new and consistent; price and charge it, then `MeterGuard.accept` it.
    duplicate: this very event was accepted before (`previous`); answer as before, charge nothing.
    rejected: `reason` says why; nothing changes.
    """

    status: Literal["accepted", "duplicate", "rejected"]
    reason: str = ""
    previous: MeterEvent | None = None

    @property
    def accepted(self) -> bool:
        return self.status == "accepted"

    @property
    def duplicate(self) -> bool:
        return self.status == "duplicate"

    @property
    def rejected(self) -> bool:
        return self.status == "rejected"


ACCEPTED: Final = Verdict("accepted")


class GuardState(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What a `MeterGuard` must get back after a restart (msgspec-encodable).

    `last_reading` is the counter after the last accepted event: its reported reading, or the
    previous counter plus its units when it reported none. `events` holds the accepted events
    only when the guard keeps them itself (no `seen` hook); with a hook the caller's store does.
    """

    last_at: int | None = None
    last_reading: int | None = None
    last_event_id: str | None = None
    events: tuple[MeterEvent, ...] = ()


SeenLookup = Callable[[str], MeterEvent | None]


class MeterGuard:
    """The checks across the events of ONE asset; pure, its state is the caller's to persist.

    `seen(event_id)` returns the accepted event with that id, or None. Without it the guard keeps
    every accepted event in memory (exact, grows with the events). With it the caller looks ids
    up in its durable store and must make each accepted event visible there before checking the
    next one (record it in the same transaction as the charge).
    """

    def __init__(
        self,
        *,
        max_units: int,
        future_slack_s: int = DEFAULT_FUTURE_SLACK_S,
        seen: SeenLookup | None = None,
        state: GuardState | None = None,
    ) -> None:
        if isinstance(max_units, bool) or not isinstance(max_units, int) or max_units < 1:
            raise ValueError(f"max_units must be a positive integer, got {max_units!r}")
        if future_slack_s < 0:
            raise ValueError(f"future_slack_s must be non-negative, got {future_slack_s!r}")
        state = state or GuardState()
        if seen is not None and state.events:
            raise ValueError("a guard with a `seen` hook keeps no events: restore without them")
        self.max_units = max_units
        self.future_slack_s = future_slack_s
        self._hook = seen
        self._events: dict[str, MeterEvent] = {e.event_id: e for e in state.events}
        self._last_at = state.last_at
        self._last_reading = state.last_reading
        self._last_event_id = state.last_event_id

    @classmethod
    def restore(
        cls,
        state: GuardState,
        *,
        max_units: int,
        future_slack_s: int = DEFAULT_FUTURE_SLACK_S,
        seen: SeenLookup | None = None,
    ) -> MeterGuard:
        """A guard that continues from a `snapshot()`."""
        return cls(max_units=max_units, future_slack_s=future_slack_s, seen=seen, state=state)

    def snapshot(self) -> GuardState:
        """The state to persist (with the accepted events only when the guard keeps them)."""
        return GuardState(
            last_at=self._last_at,
            last_reading=self._last_reading,
            last_event_id=self._last_event_id,
            events=tuple(self._events.values()),
        )

    @property
    def last_at(self) -> int | None:
        return self._last_at

    @property
    def last_reading(self) -> int | None:
        return self._last_reading

    def _lookup(self, event_id: str) -> MeterEvent | None:
        if self._hook is not None:
            return self._hook(event_id)
        return self._events.get(event_id)

    def check(self, event: MeterEvent, *, known_user: Callable[[bytes], bool], now: int) -> Verdict:
        """Judge `event` against the state and `now` (unix seconds); changes nothing.

        Checked in this order: a known event id (duplicate, or rejected when its content
        differs), units above `max_units`, `at` before the last accepted `at` (out of order), the
        reading against the counter, an unknown user, `at` more than `future_slack_s` after `now`.
        """
        previous = self._lookup(event.event_id)
        if previous is not None:
            if _same(previous, event):
                return Verdict("duplicate", previous=previous)
            return Verdict(
                "rejected", f"event id {event.event_id!r} was already used for another event"
            )
        if reason := self._state_reason(event):
            return Verdict("rejected", reason)
        if not known_user(event.user_address):
            return Verdict("rejected", f"unknown user {event.user}")
        if event.at > now + self.future_slack_s:
            return Verdict(
                "rejected",
                f"at {event.at} is {event.at - now} s ahead of now ({now}); "
                f"at most {self.future_slack_s} s is allowed",
            )
        return ACCEPTED

    def _state_reason(self, event: MeterEvent) -> str:
        """Why `event` does not follow the accepted ones ("" when it does)."""
        if event.units > self.max_units:
            return f"units {event.units} above the maximum {self.max_units} for this asset"
        if self._last_at is not None and event.at < self._last_at:
            return (
                f"out of order: at {event.at} is {self._last_at - event.at} s before the last "
                f"accepted event's at {self._last_at}"
            )
        if event.reading is not None and self._last_reading is not None:
            increase = event.reading - self._last_reading
            if increase < 0:
                return (
                    f"reading {event.reading} is below the last reading {self._last_reading}: "
                    f"the counter went backwards by {-increase}"
                )
            if increase != event.units:
                return (
                    f"reading rose by {increase} (from {self._last_reading} to {event.reading}) "
                    f"but units is {event.units}: differs by {increase - event.units:+d}"
                )
        return ""

    def accept(self, event: MeterEvent) -> None:
        """Record an event `check` accepted. Raises `MeterError` (and changes nothing) when the
        event's id is known or it does not follow the accepted events."""
        if self._lookup(event.event_id) is not None:
            raise MeterError(f"event id {event.event_id!r} was already accepted")
        if reason := self._state_reason(event):
            raise MeterError(f"not accepted: {reason}")
        if event.reading is not None:
            self._last_reading = event.reading
        elif self._last_reading is not None:
            self._last_reading += event.units
        self._last_at = event.at
        self._last_event_id = event.event_id
        if self._hook is None:
            self._events[event.event_id] = event

    def process(
        self, event: MeterEvent, *, known_user: Callable[[bytes], bool], now: int
    ) -> Verdict:
        """`check`, then `accept` when the verdict is accepted."""
        verdict = self.check(event, known_user=known_user, now=now)
        if verdict.accepted:
            self.accept(event)
        return verdict


def _same(a: MeterEvent, b: MeterEvent) -> bool:
    """The same use: equal fields, the address compared case-insensitively."""
    return a == b or (
        a.user.lower() == b.user.lower() and msgspec.structs.replace(a, user=b.user) == b
    )

"""The decisions of a machine's meter sender (`cise meter send`): what to buffer, what to send
next, what the asset agent's answer means for the buffer, and how long to wait before a retry.

The sender buffers every meter event durably before it sends it, sends the oldest first in
batches (the endpoint takes a JSON array and answers one outcome per event, in order), and drops
an event from the buffer only once the agent answered with that event's outcome, whatever the
outcome ("charged", "duplicate", "rejected"...). Re-sending is safe because event ids are
idempotent at the agent: an event it has seen is answered as before and charged once.

This module is pure: it must never do I/O (no sockets, files, clocks or sleeps) and never drop
an event the agent has not answered for.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from channels.input_limits import InputError, load_json

__all__ = [
    "MAX_BATCH_BYTES",
    "MAX_BATCH_EVENTS",
    "MAX_EVENT_BYTES",
    "Backoff",
    "Buffered",
    "MeterLineError",
    "Verdict",
    "check_line",
    "encode_batch",
    "judge_answer",
    "next_batch",
]

MAX_EVENT_BYTES: Final = 64 * 1024  # as `assets.meter_sources.MAX_LINE_BYTES`
MAX_BATCH_EVENTS: Final = 100  # well under the endpoint's 1000
MAX_BATCH_BYTES: Final = 256 * 1024  # well under the endpoint's 1 MiB body
MAX_ANSWER_BYTES: Final = 4 * 1024 * 1024


class MeterLineError(ValueError):
    """A line that is not a meter event object with an event id (it is not buffered)."""


@dataclass(frozen=True, slots=True)
class Buffered:
    """One buffered event: its place in the buffer (`seq`, increasing) and its JSON text."""

    seq: int
    event_id: str
    line: bytes


def check_line(line: bytes) -> str:
    """The event id of `line`, a JSON object with an `event_id` of 1..128 printable ASCII
    characters no longer than `MAX_EVENT_BYTES`; `MeterLineError` naming what is wrong. The
    agent checks the rest of the event (and answers "rejected" when it is wrong)."""
    try:
        document = load_json(line, max_bytes=MAX_EVENT_BYTES, what="the event")
    except InputError as exc:
        raise MeterLineError(str(exc)) from None
    if not isinstance(document, dict):
        raise MeterLineError(f"the event must be a JSON object, got {type(document).__name__}")
    event_id = document.get("event_id")
    if not (
        isinstance(event_id, str)
        and 0 < len(event_id) <= 128
        and event_id.isascii()
        and event_id.isprintable()
    ):
        raise MeterLineError("the event needs an event_id of 1..128 printable ASCII characters")
    return event_id


def next_batch(
    pending: Sequence[Buffered],
    *,
    max_events: int = MAX_BATCH_EVENTS,
    max_bytes: int = MAX_BATCH_BYTES,
) -> list[Buffered]:
    """The oldest events of `pending` (in buffer order) that fit one request: at most
    `max_events` and `max_bytes` of event text, but always at least one when any is pending."""
    ordered = sorted(pending, key=lambda b: b.seq)
    batch: list[Buffered] = []
    size = 0
    for item in ordered:
        if batch and (len(batch) >= max_events or size + len(item.line) + 1 > max_bytes):
            break
        batch.append(item)
        size += len(item.line) + 1
    return batch


def encode_batch(batch: Sequence[Buffered]) -> bytes:
    """The request body: a JSON array of the events' texts, in order."""
    return b"[" + b",".join(item.line for item in batch) + b"]"


@dataclass(frozen=True, slots=True)
class Verdict:
    """What an answer means. "answered": the agent gave one outcome per sent event (`outcomes`,
    in order): drop them all from the buffer. "retry": keep them, wait, send again. "fatal": keep
    them and stop (`reason`); retrying cannot help without the operator."""

    kind: Literal["answered", "retry", "fatal"]
    reason: str = ""
    outcomes: tuple[dict[str, Any], ...] = ()


_RETRY_STATUSES: Final = frozenset({408, 425, 429})


def judge_answer(status: int | None, body: bytes, sent: Sequence[Buffered]) -> Verdict:
    """What the answer (`status` None: no answer, connection failed) to sending `sent` means."""
    if status is None:
        return Verdict("retry", "the asset agent did not answer")
    if status == 401:
        return Verdict("fatal", "the asset agent refused the meter token")
    if status >= 500 or status in _RETRY_STATUSES:
        return Verdict("retry", f"the asset agent answered {status}{_error_of(body)}")
    if status != 200:
        return Verdict("fatal", f"the asset agent answered {status}{_error_of(body)}")
    try:
        answer = load_json(body, max_bytes=MAX_ANSWER_BYTES, what="the answer")
    except InputError as exc:
        return Verdict("fatal", f"the asset agent's answer is not JSON: {exc}")
    if not isinstance(answer, list) or len(answer) != len(sent):
        return Verdict("fatal", f"the asset agent's answer is not a list of {len(sent)} outcomes")
    for item, outcome in zip(sent, answer, strict=True):
        if not (
            isinstance(outcome, dict)
            and isinstance(outcome.get("status"), str)
            and outcome.get("event_id") in (item.event_id, "")
        ):
            return Verdict("fatal", f"the asset agent's answer for {item.event_id!r} is no outcome")
    return Verdict("answered", outcomes=tuple(answer))


def _error_of(body: bytes) -> str:
    try:
        document = load_json(body, max_bytes=MAX_ANSWER_BYTES, what="the answer")
    except InputError:
        return ""
    if isinstance(document, dict) and isinstance(document.get("error"), str):
        return f": {document['error'][:300]}"
    return ""


class Backoff:
    """Waits between retries: `initial` seconds, doubling up to `maximum`; `reset` after a
    request was answered."""

    def __init__(self, *, initial: float = 1.0, maximum: float = 30.0) -> None:
        if not 0 < initial <= maximum:
            raise ValueError(f"need 0 < initial <= maximum, got {initial} and {maximum}")
        self.initial = initial
        self.maximum = maximum
        self._next = initial

    def next_delay(self) -> float:
        """The wait before the next retry (and double the one after it, up to `maximum`)."""
        delay = self._next
        self._next = min(self._next * 2, self.maximum)
        return delay

    def reset(self) -> None:
        self._next = self.initial

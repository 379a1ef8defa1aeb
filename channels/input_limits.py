"""Bounds on external input, checked on the raw bytes before any parser sees them.

What this module is for: one place that says how much outside input (an HTTP body, a JSON file or
argument, a JSON line, a peer's msgpack frame) a CISE process accepts before it parses it: its
size, that it is UTF-8 (for JSON), and how deeply its arrays and objects nest. Each check is a
linear scan that does not recurse, and a refusal is an `InputError` whose text names what was
wrong (an HTTP endpoint answers it as a 4xx, a command prints it and exits non-zero).

Why nesting is bounded here: the JSON and msgpack decoders (msgspec, the standard library's json)
recurse once per nesting level in C and stop only at the interpreter's recursion limit, which a
dependency (py_ecc) raises to 100,000 at import. A C stack overflows long before that, so a
100 kB body of nested arrays ended the whole process with a segmentation fault. Bounding the depth
before parsing keeps that from depending on any library's choice of limit.

What it must never do: parse (it only counts), keep or change any state, or accept input that
fails a check; nor read more than `max_bytes + 1` bytes of a file.
"""

from __future__ import annotations

import re
from itertools import accumulate
from pathlib import Path
from typing import Any, Final

import msgspec

__all__ = [
    "MAX_JSON_BYTES",
    "MAX_JSON_DEPTH",
    "MAX_MSGPACK_DEPTH",
    "InputError",
    "InputTooLargeError",
    "check_json",
    "check_msgpack_depth",
    "check_size",
    "check_utf8",
    "json_depth",
    "load_json",
    "msgpack_depth",
    "read_json_file",
]

MAX_JSON_DEPTH: Final = 32  # CISE documents nest 4 levels at most; 32 leaves room, not danger
MAX_JSON_BYTES: Final = 1024 * 1024  # a default for files and arguments; endpoints pass their own
MAX_MSGPACK_DEPTH: Final = 32  # wire messages nest 4 levels at most (a batch of messages)


class InputError(ValueError):
    """Input refused before parsing; the text names the input and what was wrong with it."""


class InputTooLargeError(InputError):
    """Input longer than its limit (an HTTP endpoint answers 413)."""


def check_size(length: int, max_bytes: int, what: str = "the input") -> None:
    """`InputTooLargeError` when `length` bytes are more than `max_bytes`."""
    if length > max_bytes:
        raise InputTooLargeError(f"{what} is larger than the limit of {max_bytes} bytes")


def check_utf8(data: bytes, what: str = "the input") -> str:
    """`data` decoded as UTF-8; `InputError` naming the first bad byte and its offset."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad = data[exc.start : exc.start + 1].hex()
        raise InputError(f"{what} is not UTF-8 text (byte 0x{bad} at offset {exc.start})") from None


# A JSON string, escapes included, or the rest of the input when it never closes: the closing
# quote is optional so that an unterminated string is one match, never a rescan from each quote
# (the unrolled form has no nested choice, so matching it is linear).
_JSON_STRING: Final = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"?', re.DOTALL)
_NOT_BRACKETS: Final = bytes(b for b in range(256) if b not in b"[]{}")
_JSON_STEP: Final = tuple(1 if b in b"[{" else -1 if b in b"]}" else 0 for b in range(256))


def json_depth(data: bytes) -> int:
    """How deeply arrays and objects nest in the JSON text `data` (0: a scalar), counting the
    brackets outside strings. Linear and without recursion; on text that is not JSON the count
    is still an upper bound of what a parser would descend before it failed."""
    brackets = _JSON_STRING.sub(b"", data).translate(None, _NOT_BRACKETS)
    return max(accumulate(map(_JSON_STEP.__getitem__, brackets)), default=0)


def check_json(
    data: bytes,
    *,
    max_bytes: int = MAX_JSON_BYTES,
    max_depth: int = MAX_JSON_DEPTH,
    what: str = "the input",
) -> str:
    """The JSON text in `data` after the checks a parser needs first (size, UTF-8, nesting);
    `InputError` naming the one that failed."""
    check_size(len(data), max_bytes, what)
    text = check_utf8(data, what)
    depth = json_depth(data)
    if depth > max_depth:
        raise InputError(f"{what} nests arrays and objects {depth} deep; the limit is {max_depth}")
    return text


def load_json(
    data: bytes,
    *,
    max_bytes: int = MAX_JSON_BYTES,
    max_depth: int = MAX_JSON_DEPTH,
    what: str = "the input",
) -> Any:
    """`check_json`, then the parsed document; `InputError` also when it is not JSON."""
    text = check_json(data, max_bytes=max_bytes, max_depth=max_depth, what=what)
    try:
        return msgspec.json.decode(text)
    except msgspec.DecodeError as exc:  # ValidationError included: a number out of range
        raise InputError(f"{what} is not valid JSON: {exc}") from None


def read_json_file(
    path: Path,
    *,
    max_bytes: int = MAX_JSON_BYTES,
    max_depth: int = MAX_JSON_DEPTH,
    what: str | None = None,
) -> str:
    """The checked JSON text of a file (at most `max_bytes + 1` bytes are read); `InputError`
    on a failed check, `OSError` when the file cannot be read."""
    name = what or str(path)
    with path.open("rb") as file:
        data = file.read(max_bytes + 1)
    return check_json(data, max_bytes=max_bytes, max_depth=max_depth, what=name)


# --- msgpack ---------------------------------------------------------------------------------

# The bytes that may begin a container (fixmap, fixarray, array 16/32, map 16/32). A frame has at
# least as many of them as containers nest, so a frame with few needs no exact scan.
_MSGPACK_CONTAINER_BYTES: Final = bytes([*range(0x80, 0xA0), 0xDC, 0xDD, 0xDE, 0xDF])
# Header byte -> (bytes of the length field, bytes that follow it without a length) for the
# formats whose payload is skipped; containers are handled apart.
_FIXED: Final[dict[int, int]] = {
    0xC0: 0, 0xC2: 0, 0xC3: 0, 0xCA: 4, 0xCB: 8, 0xCC: 1, 0xCD: 2, 0xCE: 4, 0xCF: 8,
    0xD0: 1, 0xD1: 2, 0xD2: 4, 0xD3: 8, 0xD4: 2, 0xD5: 3, 0xD6: 5, 0xD7: 9, 0xD8: 17,
}  # fmt: skip
_SIZED: Final[dict[int, tuple[int, int]]] = {
    0xC4: (1, 0), 0xC5: (2, 0), 0xC6: (4, 0), 0xC7: (1, 1), 0xC8: (2, 1), 0xC9: (4, 1),
    0xD9: (1, 0), 0xDA: (2, 0), 0xDB: (4, 0),
}  # fmt: skip


def msgpack_depth(data: bytes, limit: int) -> int:
    """How deeply arrays and maps nest in the msgpack value `data`, counted up to `limit + 1`
    (the scan stops there). Iterative; a truncated or malformed value counts as far as it goes
    (the decoder refuses it afterwards)."""
    remaining: list[int] = []  # items still to read in each open container
    deepest = 0
    position, end = 0, len(data)
    while position < end:
        head = data[position]
        position += 1
        items = 0
        if head <= 0x7F or head >= 0xE0:
            pass
        elif head <= 0x8F:
            items = 2 * (head & 0x0F)
        elif head <= 0x9F:
            items = head & 0x0F
        elif head <= 0xBF:
            position += head & 0x1F
        elif head in _FIXED:
            position += _FIXED[head]
        elif head in _SIZED:
            width, extra = _SIZED[head]
            position += width + extra + int.from_bytes(data[position : position + width])
        elif head in (0xDC, 0xDD, 0xDE, 0xDF):
            width = 2 if head in (0xDC, 0xDE) else 4
            items = int.from_bytes(data[position : position + width])
            items *= 2 if head >= 0xDE else 1
            position += width
        else:  # 0xC1, never used: the decoder refuses it
            break
        if head in _MSGPACK_CONTAINER_BYTES:
            deepest = max(deepest, len(remaining) + 1)
            if deepest > limit:
                break
            if items:
                remaining.append(items)
                continue
        while remaining:  # one item of the innermost open container is done
            remaining[-1] -= 1
            if remaining[-1]:
                break
            remaining.pop()
    return deepest


def check_msgpack_depth(
    data: bytes,
    max_depth: int = MAX_MSGPACK_DEPTH,
    *,
    unscanned_up_to: int = 0,
    what: str = "the frame",
) -> None:
    """`InputError` when arrays and maps nest more than `max_depth` deep in `data`.

    Nesting cannot be deeper than the number of container header bytes, so data with no more of
    them than `max(max_depth, unscanned_up_to)` is passed without the exact (slower) scan. A caller
    whose decoder refuses deep nesting by itself within a bounded stack (typed msgspec structs:
    only skipping a value recurses, a few dozen bytes of C stack a level) may set
    `unscanned_up_to` to the depth it can afford, so that only data that could go deeper is scanned.
    """
    containers = len(data) - len(data.translate(None, _MSGPACK_CONTAINER_BYTES))
    if containers <= max(max_depth, unscanned_up_to):
        return
    if msgpack_depth(data, max_depth) > max_depth:
        raise InputError(f"{what} nests arrays and maps more than {max_depth} deep")

"""`channels.input_limits`: the checks on raw input before parsing, against a parser's own view.

The depth scans are compared with the depth of documents the encoders produce (Hypothesis), and
the hostile shapes (deep nesting, brackets inside strings and escapes, unterminated strings, bad
UTF-8) are named one by one. The scans must stay linear: an input built to make a naive scan
quadratic is checked within a time bound.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from channels import wire
from channels.input_limits import (
    MAX_JSON_DEPTH,
    InputError,
    InputTooLargeError,
    check_json,
    check_msgpack_depth,
    json_depth,
    load_json,
    msgpack_depth,
    read_json_file,
)

_text = st.text(alphabet=st.sampled_from('ab"\\[]{}\u00e9\n'), max_size=8)
_documents = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | _text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
    max_leaves=30,
)


def _depth(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    return 0


@settings(max_examples=300, derandomize=True, database=None)
@given(_documents)
def test_scans_agree_with_the_encoders(document: Any) -> None:
    assert json_depth(json.dumps(document).encode()) == _depth(document)
    assert json_depth(msgspec.json.encode(document)) == _depth(document)
    assert msgpack_depth(msgspec.msgpack.encode(document), 1000) == _depth(document)


@pytest.mark.parametrize(
    ("data", "depth"),
    [
        (b"1", 0),
        (b"[]", 1),
        (b'{"a": [1, {"b": "]]][[["}]}', 3),
        (b'"\\"[["', 0),  # an escaped quote does not end the string
        (b'["\\\\", [', 2),  # an escaped backslash does not escape the quote after it
        (b'"never closed [[[', 0),
        (b"[[[", 3),  # truncated: what a parser would descend before failing
    ],
)
def test_json_depth_of_hostile_shapes(data: bytes, depth: int) -> None:
    assert json_depth(data) == depth


def test_deep_nesting_is_refused_before_parsing() -> None:
    for depth in (MAX_JSON_DEPTH + 1, 50_000, 100_000):
        with pytest.raises(InputError, match=f"nests arrays and objects {depth} deep"):
            load_json(b"[" * depth + b"]" * depth, what="the body")
    fits = b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH
    assert _depth(load_json(fits)) == MAX_JSON_DEPTH


def test_size_utf8_and_syntax_are_named() -> None:
    with pytest.raises(InputTooLargeError, match="the body is larger than the limit of 4 bytes"):
        check_json(b"[1, 2]", max_bytes=4, what="the body")
    with pytest.raises(InputError, match=r"not UTF-8 text \(byte 0xff at offset 7\)"):
        check_json(b'{"a": "\xff"}')
    with pytest.raises(InputError, match="not valid JSON"):
        load_json(b'{"a": ')
    with pytest.raises(InputError, match="not valid JSON"):
        load_json(b"1" * 10_000)  # an integer out of range
    assert load_json('{"é": [1]}'.encode()) == {"é": [1]}


def test_scans_stay_linear() -> None:
    hostile = [
        b'"' + b'\\"' * 500_000,  # one unterminated string full of escaped quotes
        b'"' * 1_000_000,
        b"[" * 1_000_000,
    ]
    began = time.monotonic()
    for data in hostile:
        json_depth(data)
    msgpack_depth(b"\x91" * 1_000_000, 32)
    assert time.monotonic() - began < 2.0


def test_msgpack_depth_is_bounded() -> None:
    deep = b"\x91" * 100_000 + b"\xc0"
    assert msgpack_depth(deep, 32) == 33  # the scan stops past the limit
    with pytest.raises(InputError, match="more than 32 deep"):
        check_msgpack_depth(deep)
    with pytest.raises(InputError, match="more than 32 deep"):
        check_msgpack_depth(deep, unscanned_up_to=1000)  # more container bytes than that: scanned
    check_msgpack_depth(b"\x91" * 1000 + b"\xc0", unscanned_up_to=1000)  # left to the decoder
    check_msgpack_depth(msgspec.msgpack.encode({"a": [b"\x91" * 500, [[1]]]}))  # bytes are data


def test_read_json_file_reads_no_more_than_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "big.json"
    path.write_bytes(b"[" + b"1," * 1_000_000 + b"1]")
    with pytest.raises(InputTooLargeError, match=f"{path} is larger than the limit of 100 bytes"):
        read_json_file(path, max_bytes=100)
    path.write_bytes(b"[" * 40 + b"]" * 40)
    with pytest.raises(InputError, match="nests arrays and objects 40 deep"):
        read_json_file(path)


def test_wire_refuses_deep_frames_without_recursing() -> None:
    """A frame nested deeper than the stack allows, with the tag last (so that the decoder would
    skip the nested value first), is a WireError, whatever the recursion limit."""
    deep = b"\x91" * 300_000 + b"\xc0"
    frame = b"\x82\xa1x" + deep + b"\xa4type\xa5Batch"
    with pytest.raises(wire.WireError, match="more than 32 deep"):
        wire.decode(frame)
    with pytest.raises(wire.WireError, match=r"unknown field|nested too deep"):  # recursion limit
        wire.decode(b"\x82\xa1x" + b"\x91" * 5_000 + b"\xc0" + b"\xa4type\xa5Batch")

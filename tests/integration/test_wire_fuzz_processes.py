"""Fuzzed bytes against the wire ports of RUNNING `cise hub serve` and `cise watchtower serve`
processes (every dependency imported as in production, so the interpreter's recursion limit is the
one a dependency raises at import).

Hypothesis drives, per example, one TCP connection to each service: either raw bytes before any
handshake (garbage, a lying length prefix, a half frame), or a completed challenge handshake as a
real member followed by hostile frames (random bytes, msgpack nested far deeper than the stack
allows, random msgpack documents, maps shaped like wire messages with random fields, a frame above
the size limit). After every example both processes must still run, and at the end each must
still complete a fresh handshake, with no traceback in its stderr.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from channels.signer import LocalSigner
from channels.transport import (
    CHALLENGE_SIZE,
    DEFAULT_MAX_FRAME_SIZE,
    HELLO_MAGIC,
    PROOF_MAGIC,
    auth_digest,
)
from cise.network import load_network
from tests.integration.test_cli_hub import _cli
from tests.integration.test_signals import (  # noqa: F401  (fixtures used by name)
    TOWER,
    USER,
    Net,
    Running,
    hub_port,
    net,
    spawn,
)

pytestmark = pytest.mark.node

TIMEOUT = 5.0


def _frame(payload: bytes) -> bytes:
    return len(payload).to_bytes(4, "big") + payload


def _read_frame(sock: socket.socket) -> bytes:
    header = _read_exact(sock, 4)
    return _read_exact(sock, int.from_bytes(header, "big"))


def _read_exact(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def _handshake(port: int, key: bytes) -> socket.socket:
    """A connection authenticated as `key`'s address (the protocol of channels.transport)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    sock.sendall(_frame(HELLO_MAGIC + os.urandom(CHALLENGE_SIZE)))
    hello = _read_frame(sock)
    assert hello.startswith(HELLO_MAGIC), hello[:16]
    signature = LocalSigner(key).sign_digest(auth_digest(hello[len(HELLO_MAGIC) :]))
    sock.sendall(_frame(PROOF_MAGIC + signature))
    assert _read_frame(sock).startswith(PROOF_MAGIC)
    return sock


def _deep_msgpack(depth: int) -> bytes:
    return b"\x91" * depth + b"\xc0"  # [[[...[nil]...]]]


_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.text(max_size=20)
    | st.binary(max_size=40),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=20,
)
WIRE_TYPES = ["LockedTransfer", "Unlock", "Batch", "Processed", "MonitorRequests", "InvoiceRequest",
              "SecretReveal", "x"]  # fmt: skip
_wire_like = st.fixed_dictionaries(
    {"type": st.sampled_from(WIRE_TYPES)},
    optional={
        "message_id": st.integers(min_value=-(2**63), max_value=2**64 - 1),
        "channel_id": st.integers(min_value=-1, max_value=2**64 - 1),
        "items": st.lists(_json, max_size=3),
        "signature": st.binary(max_size=80),
    },
)
_hostile_frame = st.one_of(
    st.binary(max_size=300),
    st.integers(min_value=33, max_value=400_000),  # msgpack nested that deep, built when sent
    # a map whose deep value comes before the struct tag: the decoder must skip it
    st.integers(min_value=33, max_value=400_000).map(lambda depth: ("tag last", depth)),
    _json.map(msgspec.msgpack.encode),
    _wire_like.map(msgspec.msgpack.encode),
    st.just(None),  # a frame above the size limit
)
_before_handshake = st.one_of(
    st.binary(min_size=1, max_size=200),
    st.binary(max_size=40).map(lambda b: (2**32 - 1).to_bytes(4, "big") + b),  # lying length
    st.binary(max_size=40).map(lambda b: _frame(HELLO_MAGIC + b)),  # a bad hello
)
_example = st.one_of(
    st.tuples(st.just("raw"), st.lists(_before_handshake, min_size=1, max_size=3)),
    st.tuples(st.just("authenticated"), st.lists(_hostile_frame, min_size=1, max_size=4)),
)


def _attack(port: int, key: bytes, kind: str, frames: list[Any]) -> None:
    try:
        if kind == "raw":
            sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
            for payload in frames:
                sock.sendall(payload)
        else:
            sock = _handshake(port, key)
            for frame in frames:
                if frame is None:
                    sock.sendall((DEFAULT_MAX_FRAME_SIZE + 1).to_bytes(4, "big") + b"\x00" * 1024)
                elif isinstance(frame, int):
                    sock.sendall(_frame(_deep_msgpack(frame)))
                elif isinstance(frame, tuple):
                    deep = _deep_msgpack(frame[1])
                    sock.sendall(_frame(b"\x82\xa1x" + deep + b"\xa4type\xa9Processed"))
                else:
                    sock.sendall(_frame(frame))
        sock.settimeout(0.3)
        try:
            while sock.recv(65536):  # whatever the service answers, until it closes or pauses
                pass
        except (TimeoutError, OSError):
            pass
        sock.close()
    except OSError:
        pass  # the service dropped us mid-way: allowed; that it still runs is checked below


@pytest.fixture(scope="module")
def tower(net: Net) -> Iterator[tuple[Running, int]]:  # noqa: F811
    with spawn(_cli(net.file, net.data, TOWER, "watchtower", "serve"), net.data) as running:
        line = running.wait_line("listening on 127.0.0.1:")
        yield running, int(line.split("listening on 127.0.0.1:", 1)[1].split()[0])


@pytest.mark.timeout(300)
def test_hostile_bytes_never_stop_the_hub_or_the_tower(
    net: Net,  # noqa: F811
    hub_port: str,  # noqa: F811
    tower: tuple[Running, int],
    tmp_path: Path,
) -> None:
    keys = load_network(net.file).dev_keys
    tower_process, tport = tower
    hport = int(hub_port)

    @settings(
        max_examples=60,
        derandomize=True,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(example=_example)
    def attack(example: tuple[str, list[Any]]) -> None:
        kind, payloads = example
        _attack(hport, keys[USER], kind, payloads)
        _attack(tport, keys[USER], kind, payloads)
        assert tower_process.process.poll() is None, tower_process.err()[-3000:]
        with _handshake(hport, keys[USER]):
            pass  # the hub still answers: a fresh handshake completes

    attack()
    for port in (hport, tport):
        with _handshake(port, keys[USER]):
            pass
    assert tower_process.process.poll() is None
    assert "Traceback" not in tower_process.err()

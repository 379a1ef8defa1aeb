"""Hostile HTTP bodies against the running processes that take them: each is refused with a 4xx
naming what was wrong, and the process stays up and answers a valid request right after.

The processes are started as in production (`hostile_env`): the asset agent's meter endpoint
(`cise asset run --source http`: `POST /events`, `POST /service`), the API inside the hub
(`cise hub serve --api-port`) and `cise api serve` (`POST /api/settlement/requests`). Before
`channels.input_limits`, a body of arrays nested 50,000 deep (meter) or 100,000 deep (API) ended
the process with a segmentation fault (the hub too, when it served the API), a non-UTF-8 body
answered 500 at the meter, and the API read a 10 MB body whole before answering.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator

import pytest

from api.auth import MAX_BODY_BYTES as API_MAX_BODY
from assets.meter_sources import MAX_BODY_BYTES as METER_MAX_BODY
from channels.codec.eip712 import api_request_digest
from channels.signer import LocalSigner
from tests.integration.hostile_env import (
    TIMEOUT_S,
    HostileEnv,
    Service,
    open_hostile_env,
    read_response,
)

pytestmark = pytest.mark.node

SETTLE = "/api/settlement/requests"


def _deep(depth: int, open_: bytes = b"[", close: bytes = b"]") -> bytes:
    return open_ * depth + close * depth


# (name, body, extra headers, status, a word the error must hold)
HOSTILE: list[tuple[str, bytes, dict[str, str], int, str]] = [
    ("nested 8,000 deep", _deep(8_000), {}, 400, "8000 deep"),  # under the API's 16 KiB
    ("nested 50,000 deep", _deep(50_000), {}, 400, "50000 deep"),
    ("nested 100,000 deep", _deep(100_000), {}, 400, "100000 deep"),
    ("objects nested deep", b'{"a":' * 60_000 + b"1" + b"}" * 60_000, {}, 400, "60000 deep"),
    ("deep and unclosed", b"[" * 100_000, {}, 400, "100000 deep"),
    ("not UTF-8", b'{"event_id": "\xff\xfe", "request": 1}', {}, 400, "not UTF-8"),
    ("truncated JSON", b'{"event_id": "a", "us', {}, 400, "not valid JSON"),
    ("huge number", b'{"event_id": "a", "units": ' + b"9" * 100_000 + b"}", {}, 400, "JSON"),
    ("huge exponent", b'{"request": {"timestamp": 1e999999}}', {}, 400, "JSON"),
    ("wrong content type", b'{"event_id": "a"}', {"content-type": "text/plain"}, 415, "content-type"),
    ("form content type", b"a=1", {"content-type": "application/x-www-form-urlencoded"}, 415,
     "content-type"),
]  # fmt: skip


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostileEnv]:
    with open_hostile_env(tmp_path_factory.mktemp("hostile")) as running:
        yield running


def _assert_still_serving(env: HostileEnv, service: Service) -> None:
    """The process is alive and answers a valid request correctly."""
    assert service.alive(), f"{service.name} died (exit {service.process.returncode})"
    if service is env.meter:
        assert service.request("GET", "/health") == (200, {"ok": True})
        event_id = f"ok-{time.monotonic_ns()}"
        event = {"event_id": event_id, "user": env.user, "units": 1, "at": int(time.time())}
        status, answer = service.request("POST", "/events", json.dumps(event).encode())
        assert status == 200, answer
        assert answer["event_id"] == event_id and answer["status"] in ("accepted", "charged")
        return
    status, answer = service.request("GET", "/api/network")
    assert status == 200 and answer["chain_id"] == env.domain.chain_id, answer
    status, answer = service.request("POST", SETTLE, json.dumps(_signed(env)).encode())
    # a well-formed request from a non-member: parsed and checked, refused for who signed it
    assert status in (403, 404) and "body" not in answer["error"], answer


def _signed(env: HostileEnv) -> dict[str, object]:
    now = int(time.time())
    signature = LocalSigner(os.urandom(32)).sign_digest(
        api_request_digest(env.domain, "settle", now)
    )
    return {"request": {"action": "settle", "timestamp": now}, "signature": "0x" + signature.hex()}


def _targets(env: HostileEnv) -> list[tuple[Service, str]]:
    return [
        (env.meter, "/events"),
        (env.meter, "/service"),
        (env.hub_api, SETTLE),
        (env.api, SETTLE),
    ]


@pytest.mark.parametrize(
    ("name", "body", "headers", "status", "word"), HOSTILE, ids=[h[0] for h in HOSTILE]
)
def test_hostile_body_is_refused_and_the_process_keeps_serving(
    env: HostileEnv, name: str, body: bytes, headers: dict[str, str], status: int, word: str
) -> None:
    for service, path in _targets(env):
        if len(body) > (API_MAX_BODY if path == SETTLE else METER_MAX_BODY):
            status, word = 413, "larger than the limit"  # the API takes 16 KiB, the meter 1 MiB
        got, answer = service.request("POST", path, body, headers)
        assert (got, service.name, path) == (status, service.name, path), answer
        assert isinstance(answer, dict) and word in answer["error"], (service.name, answer)
        _assert_still_serving(env, service)


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_10_mb_body_is_refused_before_it_is_read(env: HostileEnv, chunked: bool) -> None:
    """The answer (413) comes after the first 64 kB: the server never waits for the rest."""
    for service, path in _targets(env):
        length = "transfer-encoding: chunked" if chunked else f"content-length: {10 * 2**20}"
        head = f"POST {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
        first = b"[" + b" " * (64 * 1024)
        if chunked:  # chunks of 64 kB until the limit is passed (the meter's is 1 MiB)
            first = b"".join(b"%x\r\n%s\r\n" % (len(first), first) for _ in range(20))
        began = time.monotonic()
        with socket.create_connection(("127.0.0.1", service.port), timeout=TIMEOUT_S) as sock:
            sock.sendall(f"{head}{length}\r\n\r\n".encode() + first)
            status, answer = read_response(sock)
        assert status == 413, (service.name, answer)
        assert "larger than" in answer["error"], answer
        assert time.monotonic() - began < 10
        _assert_still_serving(env, service)


def test_every_process_is_still_up_after_all_of_them(env: HostileEnv) -> None:
    """All three processes are still up after every hostile test above (module order)."""
    for service in env.services:
        _assert_still_serving(env, service)


def test_keep_alive_connection_survives_a_refused_body(env: HostileEnv) -> None:
    """A refused deep body on a keep-alive connection; then a valid request on a new one."""
    service = env.meter
    body = _deep(50_000)
    head = (
        f"POST /events HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", service.port), timeout=TIMEOUT_S) as sock:
        sock.sendall(head + body)
        status, answer = read_response(sock)
    assert status == 400 and "deep" in answer["error"]
    _assert_still_serving(env, service)

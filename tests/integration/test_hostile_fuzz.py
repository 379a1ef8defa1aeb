"""Fuzzing the running processes over HTTP: Hypothesis builds hostile bodies (deep and unclosed
nesting, JSON cut short or with bytes that are not UTF-8, huge numbers, random bytes, odd
content types) and sends them to the meter endpoint of `cise asset run --source http`, to the API
inside `cise hub serve --api-port` and to `cise api serve`. No answer may be a 5xx, and every
process must still be running afterwards. Seeded (derandomized) and short, for CI.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.generation.modes import GenerationMode

from api.openapi import openapi_document
from tests.integration.hostile_env import HostileEnv, Service, open_hostile_env

pytestmark = pytest.mark.node

MAX_EXAMPLES = 60

_scalars = st.none() | st.booleans() | st.integers() | st.text(max_size=20)
_documents = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
_events = st.fixed_dictionaries(
    {"event_id": st.text(max_size=20), "user": st.text(max_size=44), "units": st.integers()},
    optional={"at": st.integers(), "reading": st.integers(), "prepaid": st.booleans()},
)
_requests = st.fixed_dictionaries(
    {"request": st.fixed_dictionaries({"action": st.text(max_size=8), "timestamp": st.integers()})},
    optional={"signature": st.text(max_size=140), "signer": st.text(max_size=42)},
)


@st.composite
def _nested(draw: st.DrawFn) -> bytes:
    depth = draw(st.sampled_from([60_000, 120_000, 33, 1_000, 7_000, 20_000]))
    opener = draw(st.sampled_from([b"[", b'{"a":', b'[{"a":']))
    closer = {b"[": b"]", b'{"a":': b"}", b'[{"a":': b"}]"}[opener]
    closed = draw(st.booleans())
    return opener * depth + b"0" + (closer * depth if closed else b"")


@st.composite
def _mangled(draw: st.DrawFn) -> bytes:
    """A JSON document cut short, or with a byte replaced (often by one that is not UTF-8)."""
    data = json.dumps(draw(_documents | _events | _requests)).encode()
    at = draw(st.integers(0, len(data)))
    if draw(st.booleans()):
        return data[:at]
    return data[:at] + bytes([draw(st.integers(0x80, 0xFF))]) + data[at + 1 :]


@st.composite
def _not_utf8(draw: st.DrawFn) -> bytes:
    """A JSON object whose string (key or value) holds bytes that are not UTF-8."""
    bad = draw(st.binary(min_size=1, max_size=8).filter(_is_not_utf8))
    field = draw(st.sampled_from([b"event_id", b"user", b"request", b"signature"]))
    if draw(st.booleans()):
        return b'{"' + field + b'": "' + bad + b'"}'
    return b'{"' + bad + b'": 1}'


def _is_not_utf8(data: bytes) -> bool:
    try:
        data.decode()
    except UnicodeDecodeError:
        return True
    return False


# Repeated branches are drawn more often: the hostile shapes come first.
_bodies = st.one_of(
    _nested(),
    _nested(),
    _nested(),
    _not_utf8(),
    _not_utf8(),
    _mangled(),
    st.binary(max_size=2_000),
    _documents.map(lambda d: json.dumps(d).encode()),
    _events.map(lambda d: json.dumps(d).encode()),
    _requests.map(lambda d: json.dumps(d).encode()),
    st.integers(1, 200_000).map(lambda n: b"[" + b"9" * n + b"]"),
)
_content_types = st.sampled_from(
    ["application/json", "application/json; charset=utf-8", "", "application/json", "text/plain"]
)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostileEnv]:
    with open_hostile_env(tmp_path_factory.mktemp("fuzz")) as running:
        yield running


def _fuzz(service: Service, path: str) -> None:
    @given(body=_bodies, content_type=_content_types)
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def post(body: bytes, content_type: str) -> None:
        status, answer = service.request("POST", path, body, {"content-type": content_type})
        assert status < 500, (service.name, path, body[:200], answer)
        assert service.alive(), f"{service.name} died on {body[:200]!r}"

    post()


@pytest.mark.parametrize(
    ("which", "path"),
    [
        ("meter", "/events"),
        ("meter", "/service"),
        ("hub_api", "/api/settlement/requests"),
        ("api", "/api/settlement/requests"),
    ],
)
def test_no_server_errors_and_the_process_lives(env: HostileEnv, which: str, path: str) -> None:
    service: Service = getattr(env, which)
    _fuzz(service, path)
    assert service.alive()
    health = "/health" if service is env.meter else "/api/network"
    assert service.request("GET", health)[0] == 200


_API_PATHS = openapi_document()["paths"]
_API_OPERATIONS = [(m.upper(), p) for p, item in _API_PATHS.items() for m in item]


@pytest.mark.parametrize("which", ["api", "hub_api"])
def test_every_api_operation_of_the_running_processes(env: HostileEnv, which: str) -> None:
    """schemathesis over every operation of `/openapi.json`, as served by the running process
    (`cise api serve`, and the API inside `cise hub serve`): requests that fit the schema and
    requests that do not; no 5xx, and the process lives."""
    service: Service = getattr(env, which)
    base = f"http://127.0.0.1:{service.port}"
    schema = schemathesis.openapi.from_url(base + "/openapi.json")
    for method, path in _API_OPERATIONS:
        operation = schema[path][method]
        # invalid data needs something to be invalid: operations with parameters or a body
        spec = _API_PATHS[path][method.lower()]
        negative = [GenerationMode.NEGATIVE] if {"parameters", "requestBody"} & set(spec) else []
        for mode in (GenerationMode.POSITIVE, *negative):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=4,
                deadline=None,
                derandomize=True,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            def fuzz(case: Any) -> None:
                case.call_and_validate(base_url=base, checks=[not_a_server_error], timeout=30)

            fuzz()
        assert service.alive(), f"{service.name} died on {method} {path}"

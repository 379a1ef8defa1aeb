"""Meter sources: the seeded simulator, JSON lines, and the HTTP endpoint over real loopback
sockets (every wait bounded)."""

from __future__ import annotations

import itertools
import json
import random
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import h11
import msgspec
import pytest
import trio
import trio.testing

from assets.meter import MeterEvent, MeterGuard
from assets.meter_sources import (
    Outcome,
    run_jsonl,
    run_simulator,
    serve_http,
    simulate_events,
)

TIMEOUT = 10
ALICE = "0x" + "aa" * 20
BOB = "0x" + "bb" * 20
MALLORY = "0x" + "cc" * 20
PRICE = 7  # token units per unit used
FAR_FUTURE = 10**10


class Agent:
    """A stand-in asset agent: judges each event with a MeterGuard at once (in call order), then
    takes a while to "charge" it; records what it saw and how many calls overlapped."""

    def __init__(self, *, delays: Sequence[float] = (0,), seed: int = 0) -> None:
        self.guard = MeterGuard(max_units=1000)
        self.users = {bytes.fromhex(u[2:]) for u in (ALICE, BOB)}
        self.order: list[str] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.seq = 0
        self.delays = delays
        self.rng = random.Random(seed)

    async def __call__(self, event: MeterEvent) -> Outcome:
        self.order.append(event.event_id)
        verdict = self.guard.process(event, known_user=self.users.__contains__, now=FAR_FUTURE)
        if verdict.duplicate:
            return Outcome(event.event_id, "duplicate")
        if verdict.rejected:
            return Outcome(event.event_id, "rejected", verdict.reason)
        self.seq += 1
        seq = self.seq
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await trio.sleep(self.rng.choice(self.delays))
        finally:
            self.in_flight -= 1
        return Outcome(event.event_id, "charged", fee=event.units * PRICE, seq=seq)


SIM: dict[str, Any] = {
    "users": [ALICE, BOB],
    "count": 200,
    "seed": 42,
    "start_at": 1_800_000_000,
    "mean_gap_s": 90.0,
    "units": (1, 500),
    "prefix": "robot7-",
}


# --- simulator -------------------------------------------------------------------------------


def test_simulated_events_are_deterministic_and_ordered() -> None:
    events = list(simulate_events(**SIM, start_reading=1000))
    assert events == list(simulate_events(**SIM, start_reading=1000))
    assert events != list(simulate_events(**{**SIM, "seed": 43}, start_reading=1000))
    assert len(events) == 200
    assert len({e.event_id for e in events}) == 200
    assert all(e.event_id.startswith("robot7-") for e in events)
    assert {e.user for e in events} == {ALICE, BOB}
    assert all(1 <= e.units <= 500 for e in events)
    assert all(isinstance(e.units, int) and isinstance(e.at, int) for e in events)
    assert all(a.at < b.at for a, b in itertools.pairwise(events))
    assert events[0].at > SIM["start_at"]
    reading = 1000
    for event in events:
        reading += event.units
        assert event.reading == reading


def test_simulator_arguments_are_checked() -> None:
    bad: dict[str, Any]
    for bad in (
        {"users": []},
        {"users": ["bob"]},
        {"units": (0, 3)},
        {"units": (5, 3)},
        {"mean_gap_s": 0.0},
        {"count": -1},
    ):
        with pytest.raises(ValueError):
            list(simulate_events(**{**SIM, **bad}))


async def test_run_simulator_submits_in_order_and_returns_outcomes() -> None:
    agent = Agent()
    with trio.fail_after(TIMEOUT):
        outcomes = await run_simulator(agent, **SIM, rate_per_s=None)
    events = list(simulate_events(**SIM))
    assert agent.order == [e.event_id for e in events]
    assert [o.event_id for o in outcomes] == agent.order
    assert all(o.status == "charged" for o in outcomes)
    assert [o.fee for o in outcomes] == [e.units * PRICE for e in events]
    assert [o.seq for o in outcomes] == list(range(1, 201))
    assert agent.max_in_flight == 1


async def test_concurrent_submissions_start_in_order() -> None:
    agent = Agent(delays=(0, 0.001, 0.003, 0.01), seed=1)
    with trio.fail_after(TIMEOUT):
        outcomes = await run_simulator(agent, **SIM, rate_per_s=None, concurrency=8)
    assert agent.order == [e.event_id for e in simulate_events(**SIM)]
    assert [o.event_id for o in outcomes] == agent.order
    # every event followed the previous one: the guard accepted them all (none out of order)
    assert all(o.status == "charged" for o in outcomes), outcomes
    assert 1 < agent.max_in_flight <= 8


async def test_run_simulator_paces_in_real_time(autojump_clock: trio.testing.MockClock) -> None:
    agent = Agent()
    began = trio.current_time()
    with trio.fail_after(TIMEOUT):
        outcomes = await run_simulator(agent, **{**SIM, "count": 21}, rate_per_s=4.0)
    assert len(outcomes) == 21
    assert trio.current_time() - began == pytest.approx(5.0)


async def test_a_replayed_simulation_is_all_duplicates() -> None:
    agent = Agent()
    with trio.fail_after(TIMEOUT):
        await run_simulator(agent, **SIM, rate_per_s=None)
        again = await run_simulator(agent, **SIM, rate_per_s=None, concurrency=4)
    assert {o.status for o in again} == {"duplicate"}


# --- JSON lines ------------------------------------------------------------------------------


def line(event_id: str, at: int, **more: Any) -> bytes:
    event = {"event_id": event_id, "user": ALICE, "units": 3, "at": at, **more}
    return json.dumps(event).encode() + b"\n"


async def feed_jsonl(
    data: bytes, *, chunk: int = 4096, max_line_bytes: int = 64 * 1024
) -> tuple[Agent, list[Outcome], dict[str, int]]:
    agent = Agent()
    stream = trio.testing.MemoryReceiveStream()
    for i in range(0, len(data), chunk):
        stream.put_data(data[i : i + chunk])
    stream.put_eof()
    out = trio.testing.MemorySendStream()
    with trio.fail_after(TIMEOUT):
        counts = await run_jsonl(agent, stream, out, max_line_bytes=max_line_bytes)
    try:
        written = bytes(out.get_data_nowait())
    except trio.WouldBlock:
        written = b""
    assert written.endswith(b"\n") or not written
    outcomes = [msgspec.json.decode(x, type=Outcome) for x in written.splitlines()]
    return agent, outcomes, dict(counts)


@pytest.mark.parametrize("chunk", [1, 7, 4096])
async def test_jsonl_good_and_bad_lines(chunk: int) -> None:
    data = b"".join(
        [
            line("a", 100),  # 1
            b"{not json\n",  # 2
            b"\n",  # 3: blank lines are skipped, but counted
            line("b", 101, units=1.5),  # 4
            line("c", 102, reading=10)[:-1] + b"\r\n",  # 5: CRLF is fine
            b'{"event_id": "d", "user": "0x12", "units": 1, "at": 103}\n',  # 6
            line("a", 100),  # 7: a retry
            line("e", 99),  # 8: out of order (the sink says so)
            b"   \n",  # 9
            line("f", 104)[:-1],  # 10: the last line needs no newline
        ]
    )
    agent, outcomes, counts = await feed_jsonl(data, chunk=chunk)
    got = [(o.event_id, o.status) for o in outcomes]
    assert got == [
        ("a", "charged"),
        ("", "rejected"),
        ("b", "rejected"),
        ("c", "charged"),
        ("d", "rejected"),
        ("a", "duplicate"),
        ("e", "rejected"),
        ("f", "charged"),
    ]
    assert outcomes[1].reason.startswith("line 2: bad JSON")
    assert outcomes[2].reason.startswith("line 4: units: expected `int`, got `float`")
    assert outcomes[4].reason.startswith("line 6: user: not an address")
    assert outcomes[6].reason.startswith("out of order")
    assert agent.order == ["a", "c", "a", "e", "f"]  # invalid lines never reach the sink
    assert counts == {"charged": 3, "rejected": 4, "duplicate": 1}


@pytest.mark.parametrize("chunk", [1000, 64 * 1024])
async def test_jsonl_overlong_lines_are_rejected_and_skipped(chunk: int) -> None:
    padding = " " * 5000
    long_event = line("long", 101)[:-2] + padding.encode() + b"}\n"
    huge = b"x" * (3 * 1024 * 1024) + b"\n"  # megabytes without a newline, then one
    data = line("a", 100) + long_event + line("b", 102) + huge + line("c", 103) + huge[:-1]
    agent, outcomes, _ = await feed_jsonl(data, chunk=chunk, max_line_bytes=4096)
    assert [(o.event_id, o.status) for o in outcomes] == [
        ("a", "charged"),
        ("", "rejected"),
        ("b", "charged"),
        ("", "rejected"),
        ("c", "charged"),
        ("", "rejected"),
    ]
    assert outcomes[1].reason == "line 2: longer than 4096 bytes"
    assert outcomes[3].reason == "line 4: longer than 4096 bytes"
    assert outcomes[5].reason == "line 6: longer than 4096 bytes"
    assert agent.order == ["a", "b", "c"]


async def test_jsonl_line_of_exactly_the_limit_is_read() -> None:
    event = line("a", 100)[:-2]
    exact = event + b" " * (100 - len(event) - 1) + b"}"
    assert len(exact) == 100
    _, outcomes, _ = await feed_jsonl(exact + b"\n" + exact + b" \n", max_line_bytes=100)
    assert [o.status for o in outcomes] == ["charged", "rejected"]
    assert outcomes[1].reason == "line 2: longer than 100 bytes"


async def test_jsonl_without_out_and_empty_input() -> None:
    stream = trio.testing.MemoryReceiveStream()
    stream.put_data(line("a", 1) + line("a", 1))
    stream.put_eof()
    with trio.fail_after(TIMEOUT):
        assert dict(await run_jsonl(Agent(), stream)) == {"charged": 1, "duplicate": 1}
    _, outcomes, counts = await feed_jsonl(b"")
    assert outcomes == [] and counts == {}


# --- HTTP ------------------------------------------------------------------------------------


class Client:
    """A tiny HTTP/1.1 client on h11 over one real TCP connection."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.conn = h11.Connection(h11.CLIENT)

    async def request(
        self,
        method: str,
        target: str,
        body: bytes = b"",
        *,
        headers: Sequence[tuple[str, str]] = (),
        chunked: bool = False,
    ) -> tuple[int, dict[str, str], Any]:
        if self.conn.our_state is h11.DONE:
            self.conn.start_next_cycle()
        framing = (
            [("transfer-encoding", "chunked")] if chunked else [("content-length", str(len(body)))]
        )
        all_headers = [("host", "127.0.0.1"), *framing, *headers]
        await self.send(h11.Request(method=method, target=target, headers=all_headers))
        for i in range(0, len(body), 256 * 1024):
            await self.send(h11.Data(data=body[i : i + 256 * 1024]))
        await self.send(h11.EndOfMessage())
        return await self.response()

    async def send(self, event: Any) -> None:
        await self.stream.send_all(self.conn.send(event) or b"")

    async def response(self) -> tuple[int, dict[str, str], Any]:
        status = 0
        head: dict[str, str] = {}
        body = bytearray()
        while True:
            event = self.conn.next_event()
            if event is h11.NEED_DATA:
                self.conn.receive_data(await self.stream.receive_some(65536))
            elif isinstance(event, h11.Response):
                status = event.status_code
                head = {k.decode(): v.decode() for k, v in event.headers}
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                return status, head, json.loads(body)
            elif isinstance(event, h11.InformationalResponse):
                continue
            else:  # pragma: no cover - a broken server
                raise AssertionError(f"unexpected {event!r}")


@asynccontextmanager
async def http_server(sink: Any, **options: Any) -> AsyncIterator[int]:
    async with trio.open_nursery() as nursery:
        port = await nursery.start(
            lambda task_status: serve_http(sink, task_status=task_status, **options)
        )
        yield port
        nursery.cancel_scope.cancel()


@asynccontextmanager
async def client(port: int) -> AsyncIterator[Client]:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        yield Client(stream)


def event(event_id: str, at: int, **more: Any) -> dict[str, Any]:
    return {"event_id": event_id, "user": ALICE, "units": 4, "at": at, **more}


def body(value: Any) -> bytes:
    return json.dumps(value).encode()


async def test_http_one_event_then_a_second_request_on_the_same_connection() -> None:
    agent = Agent()
    with trio.fail_after(TIMEOUT):
        async with http_server(agent) as port, client(port) as c:
            status, head, got = await c.request("POST", "/events", body(event("a", 100)))
            assert status == 200
            assert head["content-type"] == "application/json"
            assert got == {"event_id": "a", "status": "charged", "reason": "", "fee": 28, "seq": 1}
            status, _, got = await c.request("POST", "/events", body(event("a", 100)))
            assert (status, got["status"]) == (200, "duplicate")
            status, _, got = await c.request("GET", "/health")
            assert (status, got) == (200, {"ok": True})
    assert agent.order == ["a", "a"]


async def test_http_array_is_submitted_in_order() -> None:
    agent = Agent()
    batch: list[Any] = [event(f"e{i}", 100 + i) for i in range(50)]
    batch[10] = event("bad", 110, units=2.5)
    batch[20] = "not an object"
    batch[30] = event("e29", 130)  # id reused, other content
    with trio.fail_after(TIMEOUT):
        async with http_server(agent) as port, client(port) as c:
            status, _, got = await c.request("POST", "/events?source=robot7", body(batch))
            status_empty, _, empty = await c.request("POST", "/events", b"[]")
    assert status == 200 and len(got) == 50
    assert (status_empty, empty) == (200, [])
    assert [o["event_id"] for o in got[:12]] == [*(f"e{i}" for i in range(10)), "bad", "e11"]
    assert got[10]["status"] == "rejected" and "units: expected `int`" in got[10]["reason"]
    assert got[20] == {
        "event_id": "",
        "status": "rejected",
        "reason": "event: expected a JSON object, got str",
        "fee": 0,
        "seq": 0,
    }
    assert got[30]["reason"] == "event id 'e29' was already used for another event"
    charged = [o for o in got if o["status"] == "charged"]
    assert len(charged) == 47
    assert [o["seq"] for o in charged] == list(range(1, 48))
    assert agent.order == [e["event_id"] for e in batch if e not in (batch[10], batch[20])]


async def test_http_errors() -> None:
    agent = Agent()
    with trio.fail_after(TIMEOUT):
        async with http_server(agent, max_body_bytes=10_000, max_batch_events=5) as port:
            async with client(port) as c:  # each of these keeps the connection open
                status, _, got = await c.request("POST", "/events", b'{"event_id": ')
                assert status == 400 and got["error"].startswith("bad JSON: ")
                status, _, got = await c.request("POST", "/events", b"42")
                assert status == 400 and "JSON object" in got["error"]
                status, _, got = await c.request("GET", "/nowhere")
                assert status == 404 and got == {"error": "no such path: /nowhere"}
                status, head, got = await c.request("GET", "/events")
                assert (status, head["allow"]) == (405, "POST")
                status, head, _ = await c.request("POST", "/health", b"{}")
                assert (status, head["allow"]) == (405, "GET")
                status, _, got = await c.request("POST", "/events", body([event("x", 1)] * 6))
                assert status == 413 and got == {"error": "at most 5 events per request"}
                status, _, got = await c.request("POST", "/events", body(event("ok", 1)))
                assert (status, got["status"]) == (200, "charged")
            for chunked in (False, True):
                async with client(port) as c:
                    big = body([event("x", 1, padding="y" * 10_000)])
                    status, head, got = await c.request("POST", "/events", big, chunked=chunked)
                    assert status == 413 and got == {"error": "body larger than 10000 bytes"}
                    assert head["connection"] == "close"
                    assert await c.stream.receive_some(100) == b""  # and the server hung up
            async with client(port) as c:
                await c.stream.send_all(b"NONSENSE\r\n\r\n")
                status, _, got = await c.response()
                assert status == 400 and got["error"].startswith("bad HTTP request")
    assert agent.order == ["ok"]


async def test_http_one_mebibyte_body_is_the_default_limit() -> None:
    with trio.fail_after(TIMEOUT):
        async with http_server(Agent()) as port:
            async with client(port) as c:
                fits = body([event("a", 1, pad="p" * (1024 * 1024 - 200))])
                assert len(fits) <= 1024 * 1024
                status, _, got = await c.request("POST", "/events", fits)
                assert status == 200 and "unknown field" in got[0]["reason"]
            async with client(port) as c:
                status, _, _ = await c.request("POST", "/events", b" " * (1024 * 1024 + 1))
                assert status == 413


async def test_http_stalled_and_idle_clients_are_dropped() -> None:
    agent = Agent()
    with trio.fail_after(TIMEOUT):
        async with http_server(agent, timeout_s=0.2) as port:
            async with client(port) as c:  # stalls in the middle of its headers
                await c.stream.send_all(b"POST /events HTTP/1.1\r\nhost: x\r\n")
                began = trio.current_time()
                assert await c.stream.receive_some(100) == b""
                assert 0.15 < trio.current_time() - began < 5
            async with client(port) as c:  # stalls in the middle of its body
                await c.stream.send_all(
                    b"POST /events HTTP/1.1\r\nhost: x\r\ncontent-length: 50\r\n\r\n{"
                )
                assert await c.stream.receive_some(100) == b""
            async with client(port) as c:  # idle after a first request
                status, _, _ = await c.request("GET", "/health")
                assert status == 200
                await trio.sleep(0.5)
                assert await c.stream.receive_some(100) == b""
            async with client(port) as c:  # and the server still serves
                assert (await c.request("POST", "/events", body(event("a", 1))))[0] == 200
    assert agent.order == ["a"]


async def test_http_sink_failure_is_a_500_and_the_server_goes_on() -> None:
    calls = 0

    async def flaky(ev: MeterEvent) -> Outcome:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("boom")
        return Outcome(ev.event_id, "accepted")

    with trio.fail_after(TIMEOUT):
        async with http_server(flaky) as port:
            async with client(port) as c:
                status, _, got = await c.request("POST", "/events", body(event("a", 1)))
                assert (status, got) == (500, {"error": "internal error"})
            async with client(port) as c:
                status, _, got = await c.request("POST", "/events", body(event("a", 1)))
                assert (status, got["status"]) == (200, "accepted")


async def test_http_connections_above_the_limit_are_closed() -> None:
    with trio.fail_after(TIMEOUT):
        async with http_server(Agent(), max_connections=1) as port, client(port) as first:
            assert (await first.request("GET", "/health"))[0] == 200
            async with client(port) as second:
                assert await second.stream.receive_some(100) == b""
            assert (await first.request("GET", "/health"))[0] == 200
            async with client(port) as third:  # still one too many
                assert await third.stream.receive_some(100) == b""
        async with http_server(Agent(), max_connections=1) as port:
            for _ in range(3):  # a closed connection frees its place (once the server saw it)
                while True:
                    try:
                        async with client(port) as c:
                            assert (await c.request("GET", "/health"))[0] == 200
                            break
                    except (h11.RemoteProtocolError, trio.BrokenResourceError):
                        await trio.sleep(0.01)


async def test_http_listens_off_the_loopback_only_with_tls() -> None:
    for host in ("0.0.0.0", "::", "192.168.1.10", "example.org"):
        with trio.fail_after(TIMEOUT), pytest.raises(ValueError, match="only with TLS"):
            await serve_http(Agent(), host=host)

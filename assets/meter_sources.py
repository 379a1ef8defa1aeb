"""Where meter events come from: a seeded simulator, a JSON-lines stream, and an HTTP endpoint.

Each source turns its input into `MeterEvent`s, hands them one by one to an async `sink` (the
asset agent: guard, price, charge) and reports the `Outcome` the sink returns. Input that is not
a valid event never reaches the sink; it gets a "rejected" outcome from the source itself.

These are trio I/O shells only: they must never price, charge or judge an event beyond
`decode_event` (that is the sink's job), never use floats for units, never buffer input without a
bound, never parse JSON that `channels.input_limits` has not checked first (size, UTF-8, nesting), never wait on a peer without a timeout, and the HTTP endpoint must never listen off
the loopback without TLS (`serve_http(ssl_context=)`; or put a reverse proxy in front),
never submit an event or a /service document of a request without a valid token when tokens
are set (`assets.meter_auth`), and never log a token.
"""

from __future__ import annotations

import logging
import math
import os
import random
import ssl
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from typing import Any, Final, Literal

import h11
import msgspec
import trio

from assets.meter import MeterError, MeterEvent, check_event, decode_event
from assets.meter_auth import AddressSlots, identify
from channels.input_limits import InputError, InputTooLargeError, check_json, load_json
from channels.tls import is_loopback_host

__all__ = [
    "HTTP_HOST",
    "MAX_BATCH_EVENTS",
    "MAX_BODY_BYTES",
    "MAX_LINE_BYTES",
    "Outcome",
    "Sink",
    "decode_user",
    "open_stdin",
    "open_stdout",
    "run_jsonl",
    "run_simulator",
    "serve_http",
    "simulate_events",
]

log = logging.getLogger(__name__)

Status = Literal["charged", "accepted", "duplicate", "rejected", "refused"]


class Outcome(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What became of one event: charged (paid), accepted (recorded, payment pending), duplicate
    (seen before, nothing charged again), rejected (invalid), refused (valid, but not served:
    e.g. the user cannot pay). `seq` is the sink's sequence number for the event, if any."""

    event_id: str
    status: Status
    reason: str = ""
    fee: int = 0
    seq: int = 0


Sink = Callable[[MeterEvent], Awaitable[Outcome]]
JsonHandler = Callable[[Any], Awaitable[tuple[int, Any]]]  # JSON document -> (status, JSON)

_encoder: Final = msgspec.json.Encoder()


def _rejected(event_id: str, reason: str) -> Outcome:
    return Outcome(event_id=event_id, status="rejected", reason=reason)


def _event_id_of(obj: object) -> str:
    """The event id of an invalid event, when it has a usable one (to name it in the answer)."""
    if isinstance(obj, dict):
        event_id = obj.get("event_id")
        if isinstance(event_id, str) and 0 < len(event_id) <= 128 and event_id.isascii():
            return event_id
    return ""


# --- simulator ------------------------------------------------------------------------------


def simulate_events(
    *,
    users: Sequence[str],
    count: int,
    seed: int,
    start_at: int,
    mean_gap_s: float,
    units: tuple[int, int],
    prefix: str,
    start_reading: int = 0,
    prepaid: bool = False,
) -> Iterator[MeterEvent]:
    """`count` deterministic events: the same arguments give the same events.

    Ids are `prefix` + a 9-digit index; users are drawn from `users`; units uniformly from the
    inclusive range `units`; `at` (simulated unix seconds) strictly increases by whole-second
    gaps drawn from an exponential distribution of mean `mean_gap_s`; `reading` is the counter
    from `start_reading` on, increased by each event's units.
    """
    lo, hi = units
    if not users:
        raise ValueError("users must not be empty")
    if count < 0:
        raise ValueError(f"count must be non-negative, got {count}")
    if not 1 <= lo <= hi:
        raise ValueError(f"units must be a range 1 <= lo <= hi, got {units}")
    if not (math.isfinite(mean_gap_s) and mean_gap_s > 0):
        raise ValueError(f"mean_gap_s must be positive, got {mean_gap_s}")
    checked_users = [decode_user(u) for u in users]
    rng = random.Random(seed)
    at = start_at
    reading = start_reading
    for index in range(count):
        at += max(1, round(rng.expovariate(1.0 / mean_gap_s)))
        used = rng.randint(lo, hi)
        reading += used
        event = MeterEvent(
            event_id=f"{prefix}{index:09d}",
            user=rng.choice(checked_users),
            units=used,
            at=at,
            reading=reading,
            prepaid=prepaid,
        )
        check_event(event)
        yield event


def decode_user(user: str) -> str:
    """A user address checked as `decode_event` checks it, in lower case."""
    probe = {"event_id": "x", "user": user, "units": 1, "at": 0}
    return decode_event(probe).user


async def run_simulator(
    sink: Sink,
    *,
    users: Sequence[str],
    count: int,
    seed: int,
    start_at: int,
    mean_gap_s: float,
    units: tuple[int, int],
    prefix: str,
    rate_per_s: float | None,
    concurrency: int = 1,
    start_reading: int = 0,
    prepaid: bool = False,
) -> list[Outcome]:
    """Feed `simulate_events(...)` to `sink`; return the outcomes in event order.

    `rate_per_s` paces the submissions in real time (None: as fast as the sink takes them).
    With `concurrency` > 1 up to that many sink calls are in flight, started in event order:
    each call runs until its first checkpoint inside the sink before the next one begins.
    """
    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, got {concurrency}")
    if rate_per_s is not None and not (math.isfinite(rate_per_s) and rate_per_s > 0):
        raise ValueError(f"rate_per_s must be positive or None, got {rate_per_s}")
    events = simulate_events(
        users=users,
        count=count,
        seed=seed,
        start_at=start_at,
        mean_gap_s=mean_gap_s,
        units=units,
        prefix=prefix,
        start_reading=start_reading,
        prepaid=prepaid,
    )
    outcomes: list[Outcome | None] = [None] * count
    began = trio.current_time()
    slots = trio.Semaphore(concurrency)

    async def submit(
        index: int,
        event: MeterEvent,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        try:
            # started() is not a checkpoint: the sink call below runs up to its first checkpoint
            # before run_simulator resumes, so calls start in event order.
            task_status.started()
            outcomes[index] = await sink(event)
        finally:
            slots.release()

    async with trio.open_nursery() as nursery:
        for index, event in enumerate(events):
            if rate_per_s is not None:
                await trio.sleep_until(began + index / rate_per_s)
            if concurrency == 1:
                outcomes[index] = await sink(event)
                continue
            await slots.acquire()
            await nursery.start(submit, index, event)
    return [o for o in outcomes if o is not None]


# --- JSON lines ------------------------------------------------------------------------------

MAX_LINE_BYTES: Final = 64 * 1024
_RECEIVE_BYTES: Final = 64 * 1024


def open_stdin() -> trio.lowlevel.FdStream:
    """Standard input as a trio stream (a duplicate descriptor: closing it leaves fd 0 open)."""
    return trio.lowlevel.FdStream(os.dup(0))


def open_stdout() -> trio.lowlevel.FdStream:
    """Standard output as a trio stream (a duplicate descriptor: closing it leaves fd 1 open)."""
    return trio.lowlevel.FdStream(os.dup(1))


async def run_jsonl(
    sink: Sink,
    stream: trio.abc.ReceiveStream,
    out: trio.abc.SendStream | None = None,
    *,
    max_line_bytes: int = MAX_LINE_BYTES,
) -> Counter[str]:
    """Read one JSON event per line until end of stream, submit each in order to `sink`.

    Each non-blank line gets one outcome, written to `out` as a JSON line when given. A line
    that is not a valid event, or is longer than `max_line_bytes` (discarded as it arrives,
    never buffered whole), gets a "rejected" outcome whose reason starts with "line N:";
    processing goes on. Returns the number of outcomes per status.
    """
    counts: Counter[str] = Counter()
    line_no = 0

    async def handle(line: bytes | None) -> None:
        nonlocal line_no
        line_no += 1
        if line is None:
            outcome = _rejected("", f"line {line_no}: longer than {max_line_bytes} bytes")
        else:
            line = line.strip()
            if not line:
                return
            outcome = await _submit_line(sink, line, line_no)
        counts[outcome.status] += 1
        if out is not None:
            await out.send_all(_encoder.encode(outcome) + b"\n")

    buffer = bytearray()
    overlong = False  # inside a line already reported as too long: discard up to its newline
    while chunk := await stream.receive_some(_RECEIVE_BYTES):
        start = 0
        while (end := chunk.find(b"\n", start)) >= 0:
            if overlong:
                overlong = False
            elif len(buffer) + (end - start) > max_line_bytes:
                await handle(None)
            else:
                buffer += chunk[start:end]
                await handle(bytes(buffer))
            buffer.clear()
            start = end + 1
        if overlong:
            continue
        if len(buffer) + (len(chunk) - start) > max_line_bytes:
            buffer.clear()
            overlong = True
            await handle(None)
        else:
            buffer += chunk[start:]
    if buffer:
        await handle(bytes(buffer))
    return counts


async def _submit_line(sink: Sink, line: bytes, line_no: int) -> Outcome:
    try:
        check_json(line, max_bytes=len(line), what="the line")
        event = decode_event(line)
    except InputError as exc:
        return _rejected("", f"line {line_no}: {exc}")
    except MeterError as exc:
        try:
            event_id = _event_id_of(msgspec.json.decode(line))
        except msgspec.DecodeError:
            event_id = ""
        return _rejected(event_id, f"line {line_no}: {exc}")
    return await sink(event)


# --- HTTP ------------------------------------------------------------------------------------

HTTP_HOST: Final = "127.0.0.1"
MAX_BODY_BYTES: Final = 1024 * 1024
MAX_BATCH_EVENTS: Final = 1000
DEFAULT_TIMEOUT_S: Final = 30.0
_MAX_HEADER_BYTES: Final = 16 * 1024
_LINGER_S: Final = 2.0
_LINGER_BYTES: Final = 4 * MAX_BODY_BYTES
_SERVER_HEADER: Final = ("server", "cise-meter")


class _DropError(Exception):
    """The connection is finished (closed, stalled, broken or unusable)."""


class _ReplyError(Exception):
    """Answer with this status and message, then close (the request cannot be read on)."""

    def __init__(self, status: int, message: str, headers: Sequence[tuple[str, str]] = ()) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = list(headers)


async def serve_http(
    sink: Sink,
    *,
    host: str = HTTP_HOST,
    port: int = 0,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    max_body_bytes: int = MAX_BODY_BYTES,
    max_batch_events: int = MAX_BATCH_EVENTS,
    max_connections: int = 128,
    max_connections_per_address: int = 16,
    posts: Mapping[str, JsonHandler] | None = None,
    tokens: Mapping[str, bytes] | None = None,
    ssl_context: ssl.SSLContext | None = None,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve meter events over HTTP/1.1 (keep-alive) on host:port; never returns.

    `host`: a loopback address, or any address with `ssl_context` (HTTPS: every connection's TLS
    handshake within `timeout_s`, a failed one logged and dropped; ValueError for a non-loopback
    host without it).

    `posts` adds routes: POST /path with a JSON body → `handler(document)` → (status, JSON)
    (e.g. "/service" for servicers' signed service events).

    POST /events with one JSON event object → 200 and its outcome; with a JSON array of up to
    `max_batch_events` events → 200 and their outcomes in order (submitted to the sink in order).
    An invalid event gets a "rejected" outcome like any other. GET /health → 200 {"ok": true}.
    Errors: 400 bad HTTP, or a body that is not JSON (not UTF-8, arrays and objects nested
    deeper than `channels.input_limits.MAX_JSON_DEPTH`, malformed: checked before it is parsed),
    404 unknown path, 405 wrong method, 413 body above `max_body_bytes` or too many events, 415 a
    content-type other than JSON (none is taken as JSON), 500 when the sink raises; every error body is
    {"error": message}. A client that takes longer than `timeout_s` to send a request (or to
    take a response) is dropped, and so is every connection above `max_connections` at once, or
    above `max_connections_per_address` from one remote address (answered 503 first; logged at
    most once per address per minute).
    With `tokens` (machine name → token, `assets.meter_auth.load_tokens`), every POST must carry
    `Authorization: Bearer TOKEN` of one of them, else 401 (nothing submitted, a log line naming
    the remote address; the token is never logged); GET /health stays open.
    Connections are served concurrently: the sink must take concurrent calls (the asset agent
    serializes per asset) and bound its own waits. `task_status.started(port)` reports the port.
    """
    if ssl_context is None and not is_loopback_host(host):
        raise ValueError(
            f"the meter endpoint listens on {host!r} only with TLS (plain HTTP: loopback only)"
        )
    if timeout_s <= 0:
        raise ValueError(f"timeout_s must be positive, got {timeout_s}")
    listeners = await trio.open_tcp_listeners(port, host=host)
    bound_port: int = listeners[0].socket.getsockname()[1]
    server = _HttpServer(sink, timeout_s, max_body_bytes, max_batch_events, max_connections)
    server.slots = AddressSlots(max_connections_per_address)
    server.tokens = dict(tokens) if tokens is not None else None
    server.posts = {path.encode(): handler for path, handler in (posts or {}).items()}
    server.ssl_context = ssl_context
    async with trio.open_nursery() as nursery:
        await nursery.start(trio.serve_listeners, server.handle, listeners)
        task_status.started(bound_port)


class _HttpServer:
    def __init__(
        self,
        sink: Sink,
        timeout_s: float,
        max_body_bytes: int,
        max_batch_events: int,
        max_connections: int,
    ) -> None:
        self.sink = sink
        self.posts: dict[bytes, JsonHandler] = {}
        self.timeout_s = timeout_s
        self.max_body_bytes = max_body_bytes
        self.max_batch_events = max_batch_events
        self.max_connections = max_connections
        self.connections = 0
        self.slots = AddressSlots(16)
        self.tokens: dict[str, bytes] | None = None
        self.ssl_context: ssl.SSLContext | None = None

    async def handle(self, stream: trio.SocketStream) -> None:
        self.connections += 1
        peer = _peer_of(stream)
        slot = False
        try:
            if self.connections > self.max_connections:
                if self.slots.should_log("(any address)", trio.current_time()):
                    log.warning(
                        "meter http: more than %d connections, further ones refused"
                        " (logged once a minute)",
                        self.max_connections,
                    )
                return
            slot = self.slots.take(peer)
            if not slot:
                await self._refuse_flood(stream, peer)
                return
            conn = h11.Connection(h11.SERVER, max_incomplete_event_size=_MAX_HEADER_BYTES)
            await self._serve(await self._secure(stream, peer), conn, peer)
        except _DropError:
            pass
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            log.debug("meter http: connection lost: %s", exc)
        finally:
            self.connections -= 1
            if slot:
                self.slots.give_back(peer)
            with trio.move_on_after(1) as scope:
                scope.shield = True
                await stream.aclose()

    async def _secure(self, stream: trio.SocketStream, peer: str) -> trio.abc.Stream:
        """The connection itself, or over TLS with `ssl_context` (its handshake within
        `timeout_s`; a failed or stalled one is logged and dropped)."""
        if self.ssl_context is None:
            return stream
        secure = trio.SSLStream(stream, self.ssl_context, server_side=True, https_compatible=True)
        with trio.move_on_after(self.timeout_s) as scope:
            try:
                await secure.do_handshake()
            except trio.BrokenResourceError as exc:
                log.warning(
                    "meter http: TLS handshake with %s failed: %s", peer, exc.__cause__ or exc
                )
                raise _DropError from None
        if scope.cancelled_caught:
            log.warning("meter http: TLS handshake with %s stalled for %s s, dropped", peer,
                        self.timeout_s)  # fmt: skip
            raise _DropError
        return secure

    async def _refuse_flood(self, stream: trio.SocketStream, peer: str) -> None:
        """Answer 503 (best effort, briefly) to a connection above the per-address cap."""
        if self.slots.should_log(peer, trio.current_time()):
            log.warning(
                "meter http: %s holds %d connections already, further ones refused"
                " (logged once a minute)",
                peer,
                self.slots.per_address,
            )
        body = _encoder.encode({"error": "too many connections from your address"})
        head = (
            "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
        )
        with trio.move_on_after(min(self.timeout_s, 1.0)):
            await stream.send_all(head.encode() + body)

    async def _serve(self, stream: trio.abc.Stream, conn: h11.Connection, peer: str) -> None:
        while True:
            try:
                with trio.move_on_after(self.timeout_s) as scope:
                    request, body = await self._read_request(stream, conn)
                if scope.cancelled_caught:
                    log.info("meter http: client stalled for %s s, dropped", self.timeout_s)
                    raise _DropError
            except _ReplyError as reply:
                await self._send_error(
                    stream, conn, reply.status, reply.message, reply.headers, close=True
                )
                await self._linger(stream)
                return
            except h11.RemoteProtocolError as exc:
                status = exc.error_status_hint
                await self._send_error(stream, conn, status, f"bad HTTP request: {exc}", close=True)
                await self._linger(stream)
                return
            try:
                status, payload, extra = await self._route(request, body, peer)
            except Exception:  # a bug in the sink: answer 500, keep serving other connections
                log.exception("meter http: the sink failed")
                await self._send_error(stream, conn, 500, "internal error", close=True)
                return
            await self._send(stream, conn, status, payload, extra)
            if conn.our_state is h11.MUST_CLOSE or conn.their_state is not h11.DONE:
                return
            conn.start_next_cycle()

    async def _linger(self, stream: trio.abc.Stream) -> None:
        """After an answer to a request not read to its end: stop sending, then discard what the
        client still sends for a moment, so that closing does not reset the connection before
        the client has read the answer."""
        with trio.move_on_after(min(self.timeout_s, _LINGER_S)):
            if isinstance(stream, trio.abc.HalfCloseableStream):  # TLS cannot half-close
                await stream.send_eof()
            discarded = 0
            while discarded < _LINGER_BYTES and (data := await stream.receive_some(_RECEIVE_BYTES)):
                discarded += len(data)

    async def _read_request(
        self, stream: trio.abc.Stream, conn: h11.Connection
    ) -> tuple[h11.Request, bytes]:
        request = await self._next_event(stream, conn)
        if not isinstance(request, h11.Request):  # ConnectionClosed: the client is done
            raise _DropError
        length = _content_length(request)
        if length is not None and length > self.max_body_bytes:
            raise _ReplyError(413, f"body larger than {self.max_body_bytes} bytes")
        if conn.they_are_waiting_for_100_continue:
            await self._send_all(
                stream, conn, h11.InformationalResponse(status_code=100, headers=[])
            )
        body = bytearray()
        while True:
            event = await self._next_event(stream, conn)
            if isinstance(event, h11.Data):
                body += event.data
                if len(body) > self.max_body_bytes:
                    raise _ReplyError(413, f"body larger than {self.max_body_bytes} bytes")
            elif isinstance(event, h11.EndOfMessage):
                return request, bytes(body)
            else:
                raise _DropError

    async def _next_event(self, stream: trio.abc.Stream, conn: h11.Connection) -> Any:
        while True:
            event = conn.next_event()
            if event is not h11.NEED_DATA:
                return event
            data = await stream.receive_some(_RECEIVE_BYTES)
            conn.receive_data(bytes(data))

    async def _route(
        self, request: h11.Request, body: bytes, peer: str
    ) -> tuple[int, Any, list[tuple[str, str]]]:
        path = request.target.split(b"?", 1)[0]
        method = request.method
        if path == b"/health":
            if method != b"GET":
                return 405, {"error": "use GET /health"}, [("allow", "GET")]
            return 200, {"ok": True}, []
        if path == b"/events":
            if method != b"POST":
                return 405, {"error": "use POST /events"}, [("allow", "POST")]
            return (
                self._unauthorized(request, peer, path)
                or _refused_content_type(request)
                or await self._events(body)
            )
        handler = self.posts.get(path)
        if handler is not None:
            if method != b"POST":
                return 405, {"error": f"use POST {path.decode()}"}, [("allow", "POST")]
            refused = self._unauthorized(request, peer, path) or _refused_content_type(request)
            if refused is not None:
                return refused
            try:
                document = self._load(body)
            except _ReplyError as reply:
                return reply.status, {"error": reply.message}, []
            status, answer = await handler(document)
            return status, answer, []
        return 404, {"error": f"no such path: {path.decode('latin-1')}"}, []

    def _unauthorized(
        self, request: h11.Request, peer: str, path: bytes
    ) -> tuple[int, Any, list[tuple[str, str]]] | None:
        """401 when tokens are set and the request carries none of them (logged, no token)."""
        if self.tokens is None:
            return None
        header = next((v for n, v in request.headers if n == b"authorization"), None)
        if identify(self.tokens, header) is not None:
            return None
        reason = "no meter token" if header is None else "a wrong meter token"
        log.warning(
            "meter http: POST %s from %s refused: %s",
            path.decode("latin-1"),
            peer,
            reason,
        )
        error = f"{reason}: send 'Authorization: Bearer TOKEN' with this machine's token"
        return 401, {"error": error}, [("www-authenticate", 'Bearer realm="cise-meter"')]

    def _load(self, body: bytes) -> Any:
        """The JSON document of a body, checked before it is parsed (size, UTF-8, nesting:
        `channels.input_limits`); `_ReplyError` 413 or 400 naming what was wrong."""
        try:
            return load_json(body, max_bytes=self.max_body_bytes, what="the body")
        except InputTooLargeError as exc:
            raise _ReplyError(413, str(exc)) from None
        except InputError as exc:
            raise _ReplyError(400, f"bad JSON: {exc}") from None

    async def _events(self, body: bytes) -> tuple[int, Any, list[tuple[str, str]]]:
        try:
            document = self._load(body)
        except _ReplyError as reply:
            return reply.status, {"error": reply.message}, []
        if isinstance(document, dict):
            return 200, await self._submit(document), []
        if isinstance(document, list):
            if len(document) > self.max_batch_events:
                return (
                    413,
                    {"error": f"at most {self.max_batch_events} events per request"},
                    [],
                )
            return 200, [await self._submit(item) for item in document], []
        return 400, {"error": "expected a JSON object (one event) or an array of events"}, []

    async def _submit(self, item: object) -> Outcome:
        if not isinstance(item, dict):
            return _rejected("", f"event: expected a JSON object, got {type(item).__name__}")
        try:
            event = decode_event(item)
        except MeterError as exc:
            return _rejected(_event_id_of(item), str(exc))
        return await self.sink(event)

    async def _send(
        self,
        stream: trio.abc.Stream,
        conn: h11.Connection,
        status: int,
        payload: Any,
        extra: Sequence[tuple[str, str]] = (),
        *,
        close: bool = False,
    ) -> None:
        body = _encoder.encode(payload)
        headers = [
            ("content-type", "application/json"),
            ("content-length", str(len(body))),
            _SERVER_HEADER,
            *extra,
        ]
        if close:
            headers.append(("connection", "close"))
        await self._send_all(stream, conn, h11.Response(status_code=status, headers=headers))
        await self._send_all(stream, conn, h11.Data(data=body))
        await self._send_all(stream, conn, h11.EndOfMessage())

    async def _send_error(
        self,
        stream: trio.abc.Stream,
        conn: h11.Connection,
        status: int,
        message: str,
        extra: Sequence[tuple[str, str]] = (),
        *,
        close: bool,
    ) -> None:
        if conn.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            raise _DropError
        await self._send(stream, conn, status, {"error": message}, extra, close=close)

    async def _send_all(self, stream: trio.abc.Stream, conn: h11.Connection, event: Any) -> None:
        data = conn.send(event)
        if not data:
            return
        with trio.move_on_after(self.timeout_s) as scope:
            await stream.send_all(data)
        if scope.cancelled_caught:
            log.info(
                "meter http: client did not take the response for %s s, dropped", self.timeout_s
            )
            raise _DropError


def _refused_content_type(request: h11.Request) -> tuple[int, Any, list[tuple[str, str]]] | None:
    """415 for a body declared as anything but JSON (no content-type is taken as JSON)."""
    for name, value in request.headers:
        if name == b"content-type":
            media = value.split(b";", 1)[0].strip().lower()
            if media != b"application/json" and not media.endswith(b"+json"):
                shown = value.decode("latin-1")[:100]
                return 415, {"error": f"content-type must be application/json, not {shown!r}"}, []
    return None


def _peer_of(stream: trio.SocketStream) -> str:
    """The remote host of a connection (its address, without the port), for slots and logs."""
    try:
        name = stream.socket.getpeername()
    except OSError:
        return "unknown"
    return str(name[0]) if isinstance(name, tuple) else str(name)


def _content_length(request: h11.Request) -> int | None:
    for name, value in request.headers:
        if name == b"content-length":
            return int(value)  # h11 validated it
    return None

"""`cise meter`: the machine side of a meter endpoint.

`cise meter token NAME --append FILE` adds a new line `NAME TOKEN` to a token file (mode 0600):
the asset agent reads the file (`cise asset run --source http --meter-token-file FILE`), the
machine gets its own line. `cise meter send --url URL --token-file FILE --buffer PATH` reads meter
events as JSON lines on stdin, buffers each durably (`assets.meter_outbox`), posts them in order
in batches with the machine's token, and drops an event from the buffer only once the agent
answered with its outcome (printed as one JSON line); a connection failure or a 5xx is retried
with backoff, a 401 or a server without the `--server-cert` certificate stops it (exit 2). At
the end of stdin it waits up to `--drain-timeout` for the buffer to empty: exit 0 when it did, 1
when events are still buffered (the next run sends them first). The decisions live in
`assets.meter_buffer`; this is the I/O shell.

This command must never drop a buffered event the agent has not answered for, never print or
log a token, and never wait on the agent without a timeout.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import select
import ssl
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from assets.meter_auth import MeterAuthError, check_name, load_tokens, new_token_line
from assets.meter_buffer import (
    MAX_ANSWER_BYTES,
    MAX_BATCH_EVENTS,
    MAX_EVENT_BYTES,
    Backoff,
    MeterLineError,
    Verdict,
    check_line,
    encode_batch,
    judge_answer,
    next_batch,
)
from assets.meter_outbox import MeterOutbox, MeterOutboxConnection, MeterOutboxError
from cise.errors import CliError
from cise.tls_options import add_server_cert_argument, pinned_context

REQUEST_TIMEOUT = 30.0  # seconds for one POST (connect, send, answer)
READ_SLICE = 0.2  # seconds the stdin reader waits for input before it looks at its stop flag


def add_parsers(sub: Any) -> None:
    """Register `cise meter ...`."""
    parser = sub.add_parser("meter", help="a machine's meter: tokens, send events to the agent")
    ops = parser.add_subparsers(dest="meter_command", required=True, metavar="COMMAND")
    token = ops.add_parser("token", help="add a new machine token line to a token file (0600)")
    token.add_argument("name", help="the machine's name: letters, digits, '.', '_', '-'")
    token.add_argument("--append", required=True, type=Path, help="the token file")
    send = ops.add_parser("send", help="send meter events (JSON lines on stdin) to an asset agent")
    send.add_argument(
        "--url",
        required=True,
        help="the asset agent: http://HOST:PORT, or https://HOST:PORT with --server-cert",
    )
    add_server_cert_argument(send)
    send.add_argument("--token-file", required=True, type=Path, help="this machine's token line")
    send.add_argument("--buffer", required=True, type=Path, help="the durable buffer (sqlite)")
    send.add_argument("--retry-max", type=float, default=30.0, help="longest wait between retries")
    send.add_argument(
        "--drain-timeout", type=float, default=60.0, help="seconds to empty the buffer at the end"
    )


def run(args: argparse.Namespace) -> int:
    """Run a `cise meter` subcommand; its exit code."""
    if args.meter_command == "token":
        return _token(args.name, args.append)
    return _send(args)


def _token(name: str, path: Path) -> int:
    try:
        line = new_token_line(check_name(name))
        if path.exists():
            existing = load_tokens(path) if path.stat().st_size else {}
            if name in existing:
                raise CliError(f"token file {path} has a token for {name!r} already")
    except MeterAuthError as exc:
        raise CliError(str(exc)) from None
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, line.encode())
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise CliError(f"token file {path}: {exc.strerror or exc}") from None
    print(json.dumps({"machine": name, "token_file": str(path)}))
    return 0


class _Endpoint:
    """POST /events at the agent's URL, with the machine's token."""

    def __init__(self, url: str, token: bytes, certificate: Path | None = None) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query:
            raise CliError(f"--url must be http://HOST:PORT or https://HOST:PORT, got {url!r}")
        try:
            port = parts.port
        except ValueError:
            raise CliError(f"--url has a bad port: {url!r}") from None
        self.https = parts.scheme == "https"
        self.context = pinned_context(certificate) if self.https else None
        self.host = parts.hostname
        self.port = port
        self.path = parts.path.rstrip("/") + "/events"
        self._headers = {
            "content-type": "application/json",
            "authorization": f"Bearer {token.decode('ascii')}",
        }

    def post(self, body: bytes, timeout: float) -> tuple[int | None, bytes]:
        """(status, body) of the answer; (None, b"") when the agent could not be reached.
        ssl.SSLCertVerificationError when the server is not the pinned certificate's."""
        conn: http.client.HTTPConnection
        if self.context is not None:
            conn = http.client.HTTPSConnection(
                self.host, self.port, timeout=timeout, context=self.context
            )
        else:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            conn.request("POST", self.path, body=body, headers=self._headers)
            response = conn.getresponse()
            return response.status, response.read(MAX_ANSWER_BYTES + 1)
        except ssl.SSLCertVerificationError:
            raise  # not a server that did not answer: another one (retrying cannot change it)
        except (OSError, http.client.HTTPException):
            return None, b""
        finally:
            conn.close()


class _Output:
    """JSON lines on stdout, one per outcome, from either thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def line(self, document: object) -> None:
        with self._lock:
            print(json.dumps(document), flush=True)


class _Reader(threading.Thread):
    """Reads stdin, buffers each valid event durably, then wakes the sender.

    It never blocks in a read the process cannot interrupt: it waits for input with `select` in
    short slices and stops when `stop` is set, so the process can exit (a 401, a TLS refusal)
    while stdin is still open; a thread left inside `readline` makes the interpreter abort at
    exit (SIGABRT, "could not acquire lock for <stdin>") instead of exiting with its code."""

    def __init__(
        self, stream: IO[bytes], outbox: MeterOutbox, output: _Output, wake: threading.Event
    ) -> None:
        super().__init__(name="meter-stdin", daemon=True)
        self.stream = stream
        self.outbox = outbox
        self.output = output
        self.wake = wake
        self.stop = threading.Event()
        self.ended = threading.Event()
        self.failure: BaseException | None = None

    def run(self) -> None:
        try:
            conn = self.outbox.connection()
            try:
                self._read(conn)
            finally:
                conn.close()
        except BaseException as exc:  # reported by the sender, which stops
            self.failure = exc
        finally:
            self.ended.set()
            self.wake.set()

    def _lines(self) -> Iterator[bytes | None]:
        """Each line of stdin (without its end); None for one longer than MAX_EVENT_BYTES (its
        bytes skipped up to the next line end). Ends at end of input or when `stop` is set."""
        try:
            fd: int | None = self.stream.fileno()
        except (AttributeError, OSError, ValueError):  # an in-memory stream: reads never block
            fd = None
        pending = b""
        skipping = False
        while not self.stop.is_set():
            if fd is None:
                chunk = self.stream.read(1 << 16)
            else:
                ready, _, _ = select.select([fd], [], [], READ_SLICE)
                if not ready:
                    continue
                chunk = os.read(fd, 1 << 16)
            if not chunk:
                break
            pending += chunk
            while (end := pending.find(b"\n")) >= 0:
                line, pending = pending[:end], pending[end + 1 :]
                yield None if skipping or len(line) > MAX_EVENT_BYTES else line
                skipping = False
            if len(pending) > MAX_EVENT_BYTES:
                pending, skipping = b"", True
        else:
            return
        if skipping or len(pending) > MAX_EVENT_BYTES:
            yield None
        elif pending:
            yield pending

    def _read(self, conn: MeterOutboxConnection) -> None:
        for number, raw in enumerate(self._lines(), start=1):
            if raw is None:
                self._refuse(number, f"longer than {MAX_EVENT_BYTES} bytes")
                continue
            line = raw.strip()
            if not line:
                continue
            try:
                event_id = check_line(line)
            except MeterLineError as exc:
                self._refuse(number, str(exc))
                continue
            conn.append(event_id, line)
            self.wake.set()

    def _refuse(self, number: int, reason: str) -> None:
        self.output.line(
            {"event_id": "", "status": "rejected", "reason": f"line {number}: {reason} (not sent)"}
        )


def _send(args: argparse.Namespace) -> int:
    if not args.retry_max >= 1 or not args.drain_timeout >= 0:
        raise CliError("--retry-max must be at least 1 and --drain-timeout not negative")
    try:
        tokens = load_tokens(args.token_file)
    except MeterAuthError as exc:
        raise CliError(str(exc)) from None
    if len(tokens) != 1:
        raise CliError(
            f"token file {args.token_file}: expected this machine's one line, got {len(tokens)}"
        )
    (token,) = tokens.values()
    endpoint = _Endpoint(args.url, token, args.server_cert)
    try:
        outbox = MeterOutbox(args.buffer)
    except MeterOutboxError as exc:
        raise CliError(str(exc)) from None
    with outbox:
        output = _Output()
        wake = threading.Event()
        reader = _Reader(sys.stdin.buffer, outbox, output, wake)
        conn = outbox.connection()
        try:
            reader.start()
            return _sender(args, endpoint, conn, reader, output, wake)
        finally:
            reader.stop.set()  # it leaves its wait within READ_SLICE
            reader.join(timeout=2 * READ_SLICE + 1)
            conn.close()


def _sender(
    args: argparse.Namespace,
    endpoint: _Endpoint,
    conn: MeterOutboxConnection,
    reader: _Reader,
    output: _Output,
    wake: threading.Event,
) -> int:
    backoff = Backoff(initial=1.0, maximum=args.retry_max)
    deadline: float | None = None
    while True:
        wake.clear()
        ended = reader.ended.is_set()  # before looking: every event read is buffered by then
        if ended and reader.failure is not None:
            raise CliError(f"reading the meter events failed: {reader.failure}")
        if ended and deadline is None:
            deadline = time.monotonic() + args.drain_timeout
        batch = next_batch(conn.oldest(MAX_BATCH_EVENTS))
        if not batch:
            if ended:
                return 0
            wake.wait(timeout=5.0)
            continue
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            return _still_buffered(conn, args.buffer)
        timeout = REQUEST_TIMEOUT if left is None else max(0.5, min(REQUEST_TIMEOUT, left))
        try:
            status, body = endpoint.post(encode_batch(batch), timeout)
        except ssl.SSLCertVerificationError as exc:
            verdict = Verdict(
                "fatal",
                f"TLS refused: the server at {args.url} does not show the pinned certificate "
                f"{args.server_cert} ({exc.verify_message or exc})",
            )
        else:
            verdict = judge_answer(status, body, batch)
        if verdict.kind == "answered":
            conn.remove(batch)
            backoff.reset()
            for outcome in verdict.outcomes:
                output.line(outcome)
            continue
        if verdict.kind == "fatal":
            print(f"cise meter send: {verdict.reason}", file=sys.stderr, flush=True)
            print(
                f"cise meter send: {conn.count()} events stay in {args.buffer}",
                file=sys.stderr,
                flush=True,
            )
            return 2
        delay = backoff.next_delay()
        if deadline is not None:
            delay = min(delay, max(0.0, deadline - time.monotonic()))
        print(
            f"cise meter send: {verdict.reason}; retrying in {delay:.0f} s",
            file=sys.stderr,
            flush=True,
        )
        if reader.ended.is_set():
            time.sleep(delay)
        else:  # the end of stdin starts the drain deadline at once
            reader.ended.wait(timeout=delay)


def _still_buffered(conn: MeterOutboxConnection, buffer: Path) -> int:
    count = conn.count()
    print(
        f"cise meter send: {count} events still buffered in {buffer}"
        " (not answered by the asset agent; the next run sends them first)",
        file=sys.stderr,
        flush=True,
    )
    return 1

"""Authenticated, length-prefixed message connections between peers over trio streams.

Frames: a 4-byte big-endian length, then that many bytes of one encoded message; a frame larger
than `max_frame_size` is refused with `FrameTooLargeError` (on send before anything is written, on
receive as soon as its header arrives) and the connection is closed. Each connection has one
reader task, which turns bytes into typed messages and dispatches them through a type -> handler
table, and one writer task, which sends everything queued since its last write in one
`send_all` (frames are batched on write).

Authentication: each side sends a random 32-byte challenge; each answers with its signature over
`keccak(AUTH_PREFIX ‖ peer_challenge)`; the signer is recovered, so both ends know the other's
address before any message is dispatched. The prefix cannot start an EIP-712 digest preimage
(those start with 0x1901), so an answer is never a signature on a payment. The accepting side
(`server_side`) answers only after it has checked the connecting side's answer, so it can refuse
(a bad answer, or an address its `admit` callback does not admit) with a `CISEDENY` frame naming
the reason instead of its own answer.

TLS (`tls: TlsConfig`, see `channels.tls`): the stream is first wrapped in a TLS 1.3
`trio.SSLStream` (no CA; the handshake is bounded by the same timeout), then the challenge-response
runs inside it with channel binding: each side signs `keccak(AUTH_PREFIX_V2 ‖ role ‖
peer_challenge ‖ sha256(server certificate DER))` and sends its claimed address with it, so an
answer relayed by a man in the middle (who must show its own certificate) recovers to another
address and is refused. Without TLS (the loopback-only development mode) only loopback hosts are
allowed.

This module moves messages; it must never decide whether a message is valid for the channel
(that is the core's job), never hold a key (it asks a `LocalSigner`), and never listen anywhere
but the host it is given (127.0.0.1 by default).
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import trio

from channels.codec.ecdsa import InvalidSignature, recover_signer
from channels.codec.keccak import keccak
from channels.signer import LocalSigner
from channels.tls import TlsConfig, certificate_hash, require_tls_off_loopback

log = logging.getLogger(__name__)

M = TypeVar("M")

HEADER_SIZE = 4
DEFAULT_MAX_FRAME_SIZE = 1 << 20  # 1 MiB: far above any CISE message
AUTH_PREFIX = b"CISE transport authentication v1\x00"
AUTH_PREFIX_V2 = b"CISE transport authentication v2\x00"  # bound to the TLS session
ROLE_CLIENT = b"\x01"  # the role byte of v2: an answer is never valid in the other direction
ROLE_SERVER = b"\x02"
HELLO_MAGIC = b"CISEHELO"
PROOF_MAGIC = b"CISEAUTH"
DENY_MAGIC = b"CISEDENY"  # the accepting side refuses: a UTF-8 reason follows
MAX_DENY_REASON = 300
ADDRESS_SIZE = 20
CHALLENGE_SIZE = 32
HANDSHAKE_TIMEOUT = 10.0
MAX_CONNECTIONS_PER_ADDRESS = 256  # one host's agents share its address: generous, but bounded
FLOOD_LOG_INTERVAL = 60.0  # seconds between two "refused" lines for one address
RECEIVE_CHUNK = 1 << 18
WRITE_HIGH_WATER = 1 << 20  # `send` waits while more than this is queued
# The reader yields to other tasks after this many messages, so that a consumer stage (a group
# commit, a writer) overlaps with decoding the rest of a large read instead of waiting for it.
DISPATCH_SLICE = 64


class TransportError(Exception):
    """Base class: the connection is unusable and has been closed."""


class FrameTooLargeError(TransportError):
    """A frame (sent or received) is larger than the connection's `max_frame_size`."""


class MalformedMessageError(TransportError):
    """A frame that does not decode to a message this connection handles."""


class AuthenticationError(TransportError):
    """The handshake failed: bad format, bad signature, or not the peer we expected."""


class PeerRefusedError(AuthenticationError):
    """The accepting side refused this peer (its `admit` callback said no), or was refused."""


class ConnectionClosedError(TransportError):
    """The connection is closed (by us, by the peer, or after an error)."""


class MessageCodec(Protocol):
    """Turns messages into frame payloads and back (`channels.wire` provides one)."""

    def encode(self, message: Any) -> bytes: ...

    def decode(self, payload: bytes) -> Any:
        """Return the message; raise any Exception on a malformed payload."""
        ...


Handler = Callable[["Connection", M], Awaitable[None]]


class DispatchTable:
    """Message type -> async handler; `register` keeps the handler's type tied to its message."""

    def __init__(self) -> None:
        self._handlers: dict[type, Handler[Any]] = {}

    def register(self, message_type: type[M], handler: Handler[M]) -> None:
        """Route messages of exactly `message_type` to `handler` (one handler per type)."""
        if message_type in self._handlers:
            raise ValueError(f"a handler for {message_type.__name__} is already registered")
        self._handlers[message_type] = handler

    def lookup(self) -> Mapping[type, Handler[Any]]:
        """The table itself (read-only by convention)."""
        return self._handlers


@dataclass(frozen=True, slots=True)
class ConnectionStatistics:
    """Counters of one connection."""

    frames_sent: int
    frames_received: int
    bytes_sent: int
    bytes_received: int
    writes: int  # send_all calls: frames_sent / writes is the write batching factor
    queued_bytes: int


def auth_digest(challenge: bytes) -> bytes:
    """The digest a peer signs to prove its address: keccak(AUTH_PREFIX ‖ challenge)."""
    return keccak(AUTH_PREFIX + challenge)


def auth_digest_v2(role: bytes, challenge: bytes, server_certificate_hash: bytes) -> bytes:
    """The TLS-bound digest: keccak(AUTH_PREFIX_V2 ‖ role ‖ challenge ‖ sha256(server cert))."""
    return keccak(AUTH_PREFIX_V2 + role + challenge + server_certificate_hash)


class FrameDecoder:
    """Incremental frame splitter: `feed` bytes, get the complete payloads out."""

    __slots__ = ("_buffer", "_max")

    def __init__(self, max_frame_size: int) -> None:
        self._buffer = bytearray()
        self._max = max_frame_size

    def feed(self, data: bytes | bytearray) -> list[bytes]:
        """Add received bytes; return every complete payload. FrameTooLargeError on a big header."""
        buffer = self._buffer
        buffer += data
        frames: list[bytes] = []
        position = 0
        end = len(buffer)
        limit = self._max
        while end - position >= HEADER_SIZE:
            length = int.from_bytes(buffer[position : position + HEADER_SIZE], "big")
            if length > limit:
                raise FrameTooLargeError(
                    f"received a frame of {length} bytes; the limit is {limit}"
                )
            start = position + HEADER_SIZE
            if end - start < length:
                break
            frames.append(bytes(buffer[start : start + length]))
            position = start + length
        if position:
            del buffer[:position]
        return frames

    @property
    def pending(self) -> int:
        """Bytes received but not yet part of a complete frame."""
        return len(self._buffer)


def encode_frame(payload: bytes, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE) -> bytes:
    """Length-prefix one payload; FrameTooLargeError when it exceeds `max_frame_size`."""
    if len(payload) > max_frame_size:
        raise FrameTooLargeError(
            f"refusing to send a frame of {len(payload)} bytes; the limit is {max_frame_size}"
        )
    return len(payload).to_bytes(HEADER_SIZE, "big") + payload


class Connection:
    """One authenticated connection; made by `open_stream_connection` and its TCP wrappers.

    `peer` is the recovered address of the other side. `send_nowait` queues a message for the
    writer task (which batches everything queued into one write); `send` does the same and then
    waits while too much is queued.
    """

    def __init__(
        self,
        stream: trio.abc.Stream,
        peer: bytes,
        codec: MessageCodec,
        handlers: Mapping[type, Handler[Any]],
        decoder: FrameDecoder,
        max_frame_size: int,
    ) -> None:
        self._stream = stream
        self.peer = peer
        self._codec = codec
        self._handlers = handlers
        self._decoder = decoder
        self._max = max_frame_size
        self._out = bytearray()
        self._writer_lot = trio.lowlevel.ParkingLot()
        self._drained_lot = trio.lowlevel.ParkingLot()
        self._closed = trio.Event()
        self.error: TransportError | None = None
        self._frames_sent = 0
        self._frames_received = 0
        self._bytes_sent = 0
        self._bytes_received = 0
        self._writes = 0

    # -- sending ------------------------------------------------------------------------------

    def send_nowait(self, message: Any) -> None:
        """Queue `message`; it leaves with the writer's next batch. Never blocks."""
        if self._closed.is_set():
            raise ConnectionClosedError(self._closed_reason())
        payload = self._codec.encode(message)
        if len(payload) > self._max:
            raise FrameTooLargeError(
                f"refusing to send a frame of {len(payload)} bytes; the limit is {self._max}"
            )
        self._out += len(payload).to_bytes(HEADER_SIZE, "big")
        self._out += payload
        self._frames_sent += 1
        self._writer_lot.unpark_all()

    def send_encoded(self, payloads: list[bytes]) -> None:
        """Queue messages already encoded with this connection's codec, one frame each (a
        shell that keeps encoded messages for resending sends them without re-encoding)."""
        if self._closed.is_set():
            raise ConnectionClosedError(self._closed_reason())
        out = self._out
        for payload in payloads:
            if len(payload) > self._max:
                raise FrameTooLargeError(
                    f"refusing to send a frame of {len(payload)} bytes; the limit is {self._max}"
                )
            out += len(payload).to_bytes(HEADER_SIZE, "big")
            out += payload
        self._frames_sent += len(payloads)
        self._writer_lot.unpark_all()

    async def send(self, message: Any) -> None:
        """Queue `message`, then wait while more than WRITE_HIGH_WATER bytes are queued."""
        self.send_nowait(message)
        while len(self._out) > WRITE_HIGH_WATER and not self._closed.is_set():
            await self._drained_lot.park()
        await trio.lowlevel.checkpoint()

    async def _writer(self) -> None:
        stream = self._stream
        while True:
            if not self._out:
                self._drained_lot.unpark_all()
                await self._writer_lot.park()
                continue
            batch = bytes(self._out)
            self._out.clear()
            await stream.send_all(batch)
            self._bytes_sent += len(batch)
            self._writes += 1

    async def _flush(self) -> None:
        """Wait until everything queued has been handed to the stream."""
        while self._out and not self._closed.is_set():
            await self._drained_lot.park()

    # -- receiving ----------------------------------------------------------------------------

    async def _dispatch(self, frames: list[bytes]) -> None:
        decode = self._codec.decode
        handlers = self._handlers
        for index, frame in enumerate(frames, 1):
            if index % DISPATCH_SLICE == 0:
                await trio.lowlevel.checkpoint()
            try:
                message = decode(frame)
            except Exception as exc:
                raise MalformedMessageError(
                    f"undecodable frame of {len(frame)} bytes: {exc}"
                ) from exc
            handler = handlers.get(type(message))
            if handler is None:
                raise MalformedMessageError(f"no handler for message type {type(message).__name__}")
            await handler(self, message)
        self._frames_received += len(frames)

    async def _reader(self) -> None:
        stream = self._stream
        decoder = self._decoder
        while True:
            data = await stream.receive_some(RECEIVE_CHUNK)
            if not data:
                if decoder.pending:
                    raise MalformedMessageError(
                        f"peer closed in the middle of a frame ({decoder.pending} bytes pending)"
                    )
                return
            self._bytes_received += len(data)
            frames = decoder.feed(data)
            if frames:
                await self._dispatch(frames)

    # -- state --------------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    async def wait_closed(self) -> None:
        """Return once the connection is closed (peer hung up, error, or local close)."""
        await self._closed.wait()

    def _closed_reason(self) -> str:
        if self.error is not None:
            return f"connection closed after an error: {self.error}"
        return "connection closed"

    def statistics(self) -> ConnectionStatistics:
        return ConnectionStatistics(
            frames_sent=self._frames_sent,
            frames_received=self._frames_received,
            bytes_sent=self._bytes_sent,
            bytes_received=self._bytes_received,
            writes=self._writes,
            queued_bytes=len(self._out),
        )


async def _read_exact_frame(
    stream: trio.abc.Stream, decoder: FrameDecoder
) -> tuple[bytes, list[bytes]]:
    """Read until one frame is complete; returns it and any frames that arrived after it."""
    while True:
        data = await stream.receive_some(RECEIVE_CHUNK)
        if not data:
            raise AuthenticationError(
                "peer closed the connection during the handshake"
                + ("" if isinstance(stream, trio.SSLStream) else " (is it a TLS service?)")
            )
        if (
            not isinstance(stream, trio.SSLStream)
            and not decoder.pending
            and data[:2] == b"\x16\x03"
        ):
            raise AuthenticationError(
                "the peer started a TLS handshake; this end speaks plain TCP (no TLS configured)"
            )
        frames = decoder.feed(data)
        if frames:
            return frames[0], frames[1:]


async def _handshake(
    stream: trio.abc.Stream,
    signer: LocalSigner,
    decoder: FrameDecoder,
    expected_peer: bytes | None,
    *,
    server_side: bool = False,
    binding: bytes | None = None,
    admit: Callable[[bytes], bool] | None = None,
) -> tuple[bytes, list[bytes]]:
    """Mutual challenge-response; returns the peer's address and frames received after it.

    `binding` (TLS only) is sha256 of the server's certificate in this TLS session; the answers
    are then v2 (role, binding, claimed address). The server side answers last and refuses with
    a DENY frame naming the reason.
    """
    challenge = os.urandom(CHALLENGE_SIZE)
    await stream.send_all(encode_frame(HELLO_MAGIC + challenge))
    hello, early = await _read_exact_frame(stream, decoder)
    if len(hello) != len(HELLO_MAGIC) + CHALLENGE_SIZE or not hello.startswith(HELLO_MAGIC):
        raise AuthenticationError("the peer's first frame is not a CISE hello")
    peer_challenge = hello[len(HELLO_MAGIC) :]
    own_role, peer_role = (ROLE_SERVER, ROLE_CLIENT) if server_side else (ROLE_CLIENT, ROLE_SERVER)
    if binding is None:
        own_proof = PROOF_MAGIC + signer.sign_digest(auth_digest(peer_challenge))
    else:
        digest = auth_digest_v2(own_role, peer_challenge, binding)
        own_proof = PROOF_MAGIC + signer.address + signer.sign_digest(digest)
    if not server_side:
        await stream.send_all(encode_frame(own_proof))
    if early:
        proof, early = early[0], early[1:]
    else:
        proof, early = await _read_exact_frame(stream, decoder)
    try:
        peer = _check_proof(proof, challenge, peer_role, binding, expected_peer)
        if admit is not None and not _admits(admit, peer):
            raise PeerRefusedError(f"0x{peer.hex()} is not admitted here (not a member)")
    except AuthenticationError as exc:
        if server_side:
            reason = str(exc).encode()[:MAX_DENY_REASON]
            # Best effort: if the peer already left, the log line still names the reason.
            with (
                trio.move_on_after(1),
                suppress(trio.BrokenResourceError, trio.ClosedResourceError),
            ):
                await stream.send_all(encode_frame(DENY_MAGIC + reason))
        raise
    if server_side:
        await stream.send_all(encode_frame(own_proof))
    return peer, early


async def _start_tls(
    stream: trio.abc.Stream, tls: TlsConfig, server_side: bool
) -> tuple[trio.SSLStream[trio.abc.Stream], bytes]:
    """Wrap `stream` in TLS and finish the TLS handshake; returns the TLS stream and the binding
    (sha256 of the server's certificate as this side sees it)."""
    context = tls.server_context if server_side else tls.client_context
    tls_stream = trio.SSLStream(stream, context, server_side=server_side)
    try:
        await tls_stream.do_handshake()
    except trio.BrokenResourceError as exc:
        cause = exc.__cause__ if exc.__cause__ is not None else exc
        raise AuthenticationError(
            f"the TLS handshake failed: {cause} (does the peer speak TLS 1.3?)"
        ) from exc
    if server_side:
        return tls_stream, certificate_hash(tls.certificate_der)
    server_certificate = tls_stream.getpeercert(binary_form=True)
    if not server_certificate:
        raise AuthenticationError("the TLS server showed no certificate")
    return tls_stream, certificate_hash(server_certificate)


def _admits(admit: Callable[[bytes], bool], peer: bytes) -> bool:
    """`admit(peer)`; a callback that fails refuses (PeerRefusedError naming why), so a broken
    membership view never ends the listener."""
    try:
        return admit(peer)
    except Exception as exc:
        raise PeerRefusedError(
            f"could not check whether 0x{peer.hex()} is admitted here: {type(exc).__name__}: {exc}"
        ) from exc


def _check_proof(
    proof: bytes,
    challenge: bytes,
    peer_role: bytes,
    binding: bytes | None,
    expected_peer: bytes | None,
) -> bytes:
    """The address that signed `proof` (the peer's answer to our `challenge`), or
    AuthenticationError naming what is wrong with it."""
    if proof.startswith(DENY_MAGIC):
        reason = proof[len(DENY_MAGIC) :].decode("utf-8", "replace")
        raise PeerRefusedError(f"the peer refused the connection: {reason}")
    if not proof.startswith(PROOF_MAGIC):
        raise AuthenticationError("the peer's second frame is not a CISE authentication proof")
    body = proof[len(PROOF_MAGIC) :]
    claimed: bytes | None = None
    if binding is None:
        digest = auth_digest(challenge)
    else:
        claimed, body = body[:ADDRESS_SIZE], body[ADDRESS_SIZE:]
        digest = auth_digest_v2(peer_role, challenge, binding)
    try:
        peer = recover_signer(digest, body)
    except InvalidSignature as exc:
        raise AuthenticationError(f"the peer's authentication signature is invalid: {exc}") from exc
    if claimed is not None and peer != claimed:
        raise AuthenticationError(
            f"the peer claims to be 0x{claimed.hex()} but its answer is not bound to this TLS"
            " session (a relay in the middle, or a different certificate)"
        )
    if expected_peer is not None and peer != expected_peer:
        raise AuthenticationError(
            f"expected peer 0x{expected_peer.hex()}, the connection is signed by 0x{peer.hex()}"
        )
    return peer


def _single(exc: BaseException) -> BaseException:
    """The one exception inside (nested) single-member exception groups, else `exc` itself."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


@asynccontextmanager
async def open_stream_connection(
    stream: trio.abc.Stream,
    *,
    signer: LocalSigner,
    codec: MessageCodec,
    handlers: Mapping[type, Handler[Any]],
    expected_peer: bytes | None = None,
    max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
    handshake_timeout: float = HANDSHAKE_TIMEOUT,
    tls: TlsConfig | None = None,
    server_side: bool = False,
    admit: Callable[[bytes], bool] | None = None,
) -> AsyncIterator[Connection]:
    """Authenticate over `stream`, then run the connection's reader and writer for the block.

    With `tls`, the stream is wrapped in TLS first (the TLS and CISE handshakes share the
    `handshake_timeout`). `server_side`: this is the accepting end (the TLS server, and the side
    that answers last and may refuse); `admit` (server side): refuse, with a reason sent to the
    peer, every address it returns False for.

    On a transport error (bad frame, oversized frame, handshake failure, broken stream) the
    stream is closed, the block is cancelled and the error is raised here. On leaving the block
    normally, queued messages are flushed (bounded) and the stream closed. The stream is owned
    (and closed) by this function.
    """
    decoder = FrameDecoder(max_frame_size)
    connection: Connection | None = None
    try:
        try:
            with trio.fail_after(handshake_timeout):
                binding: bytes | None = None
                if tls is not None:
                    stream, binding = await _start_tls(stream, tls, server_side)
                peer, early = await _handshake(
                    stream,
                    signer,
                    decoder,
                    expected_peer,
                    server_side=server_side,
                    binding=binding,
                    admit=admit,
                )
        except trio.TooSlowError:
            raise AuthenticationError(f"handshake took longer than {handshake_timeout} s") from None
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise ConnectionClosedError(f"stream broke during the handshake: {exc}") from exc
        connection = Connection(stream, peer, codec, handlers, decoder, max_frame_size)
        conn = connection

        async def run_reader(nursery: trio.Nursery) -> None:
            try:
                if early:
                    await conn._dispatch(early)
                await conn._reader()
            except TransportError as exc:
                conn.error = exc
                nursery.cancel_scope.cancel()
            except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                if not conn.closed:
                    conn.error = ConnectionClosedError(f"stream broke: {exc!r}")
                    nursery.cancel_scope.cancel()
            finally:
                conn._closed.set()
                conn._drained_lot.unpark_all()

        async def run_writer(nursery: trio.Nursery) -> None:
            try:
                await conn._writer()
            except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                if conn.error is None:
                    conn.error = ConnectionClosedError(f"stream broke while writing: {exc!r}")
                conn._closed.set()
                conn._drained_lot.unpark_all()
                nursery.cancel_scope.cancel()

        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(run_reader, nursery)
                nursery.start_soon(run_writer, nursery)
                yield conn
                with trio.move_on_after(handshake_timeout):
                    await conn._flush()
                nursery.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            raise _single(group) from None
        if conn.error is not None:
            raise conn.error
    finally:
        if connection is not None:
            connection._closed.set()
        with trio.CancelScope(shield=True), trio.move_on_after(1):
            await stream.aclose()


class TcpTransport:
    """The real Transport: TCP on the loopback by default, one LocalSigner per node."""

    def __init__(
        self,
        signer: LocalSigner,
        codec: MessageCodec,
        handlers: Mapping[type, Handler[Any]],
        *,
        on_connection: Callable[[Connection], Awaitable[None]] | None = None,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
        tls: TlsConfig | None = None,
        admit: Callable[[bytes], bool] | None = None,
    ) -> None:
        self.signer = signer
        self.codec = codec
        self.handlers = handlers
        self.on_connection = on_connection
        self.max_frame_size = max_frame_size
        self.tls = tls
        self.admit = admit

    @asynccontextmanager
    async def open_connection(
        self, host: str, port: int, *, expected_peer: bytes | None = None
    ) -> AsyncIterator[Connection]:
        """Connect to a peer and authenticate it (against `expected_peer` when given).

        Over TLS when this transport has `tls`; PlainTransportRefusedError (before connecting) for a
        non-loopback host without it."""
        require_tls_off_loopback(host, self.tls, "connect to")
        stream = await trio.open_tcp_stream(host, port)
        stream.setsockopt(*_NODELAY)
        async with open_stream_connection(
            stream,
            signer=self.signer,
            codec=self.codec,
            handlers=self.handlers,
            expected_peer=expected_peer,
            max_frame_size=self.max_frame_size,
            tls=self.tls,
        ) as connection:
            yield connection

    async def serve(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Accept connections forever; `task_status.started(port)` once listening.

        A connection that fails (bad frame, failed handshake, broken stream) is logged and
        closed; the server keeps serving. Errors raised by handlers are not caught.
        """
        await serve_connections(
            self.signer,
            self.codec,
            self.handlers,
            host=host,
            port=port,
            on_connection=self.on_connection,
            max_frame_size=self.max_frame_size,
            tls=self.tls,
            admit=self.admit,
            task_status=task_status,
        )


try:  # TCP_NODELAY: frames are already batched, so Nagle only adds latency
    import socket as _socket

    _NODELAY: tuple[int, int, int] = (_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
except AttributeError:  # pragma: no cover
    _NODELAY = (6, 1, 1)


async def handle_stream(
    stream: trio.abc.Stream,
    signer: LocalSigner,
    codec: MessageCodec,
    handlers: Mapping[type, Handler[Any]],
    *,
    on_connection: Callable[[Connection], Awaitable[None]] | None = None,
    max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
    tls: TlsConfig | None = None,
    admit: Callable[[bytes], bool] | None = None,
    handshake_timeout: float = HANDSHAKE_TIMEOUT,
    remote: str = "a peer",
) -> None:
    """Serve one accepted stream (as the server side) until it closes; transport errors are
    logged with `remote` (who connected), not raised."""
    try:
        async with open_stream_connection(
            stream,
            signer=signer,
            codec=codec,
            handlers=handlers,
            max_frame_size=max_frame_size,
            handshake_timeout=handshake_timeout,
            tls=tls,
            server_side=True,
            admit=admit,
        ) as connection:
            if on_connection is not None:
                await on_connection(connection)  # its return ends the connection
            else:
                await connection.wait_closed()
    except TransportError as exc:
        log.warning("connection from %s closed: %s: %s", remote, type(exc).__name__, exc)


async def serve_connections(
    signer: LocalSigner,
    codec: MessageCodec,
    handlers: Mapping[type, Handler[Any]],
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    on_connection: Callable[[Connection], Awaitable[None]] | None = None,
    max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
    tls: TlsConfig | None = None,
    admit: Callable[[bytes], bool] | None = None,
    handshake_timeout: float = HANDSHAKE_TIMEOUT,
    max_connections_per_address: int = MAX_CONNECTIONS_PER_ADDRESS,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Listen on host:port (port 0: any free port), serve every connection; never returns.

    `tls`: every connection is TLS (see the module doc); without it only a loopback `host` is
    allowed (PlainTransportRefusedError before listening). `admit`: the addresses served (others are
    refused with a reason and a log line). Each connection is its own task, so one that stalls
    in its handshake is dropped at `handshake_timeout` without holding up the others. One remote
    address holds at most `max_connections_per_address` connections at once: a flood from it is
    closed at accept (logged once a minute per address) while everyone else is served.
    `task_status.started(port)` reports the bound port.
    """
    require_tls_off_loopback(host, tls, "listen on")
    listeners = await trio.open_tcp_listeners(port, host=host)
    open_per_address: dict[str, int] = {}
    flood_logged: dict[str, float] = {}

    async def handler(stream: trio.SocketStream) -> None:
        stream.setsockopt(*_NODELAY)
        try:
            remote_host, remote_port = stream.socket.getpeername()[:2]
            remote = f"{remote_host}:{remote_port}"
        except OSError:
            remote_host, remote = "", "a peer that already left"
        if open_per_address.get(remote_host, 0) >= max_connections_per_address:
            now = trio.current_time()
            if now - flood_logged.get(remote_host, -FLOOD_LOG_INTERVAL) >= FLOOD_LOG_INTERVAL:
                flood_logged[remote_host] = now
                log.warning(
                    "connections from %s refused: it already holds %d (the most one address may)",
                    remote_host,
                    max_connections_per_address,
                )
            await stream.aclose()
            return
        open_per_address[remote_host] = open_per_address.get(remote_host, 0) + 1
        try:
            await handle_stream(
                stream,
                signer,
                codec,
                handlers,
                on_connection=on_connection,
                max_frame_size=max_frame_size,
                tls=tls,
                admit=admit,
                handshake_timeout=handshake_timeout,
                remote=remote,
            )
        finally:
            open_per_address[remote_host] -= 1
            if not open_per_address[remote_host]:
                del open_per_address[remote_host]

    bound_port: int = listeners[0].socket.getsockname()[1]
    async with trio.open_nursery() as nursery:
        await nursery.start(trio.serve_listeners, handler, listeners)
        task_status.started(bound_port)

"""Fakes of the ports in `channels.ports`, for tests and simulations that need no disk or sockets.

- `MemoryStore`: the real `SqliteStore` on an in-memory database: same SQL, same codec, same
  errors, nothing durable (a "crash" loses everything).
- `MemoryTransport` on a `MemoryNetwork`: the real framing, handshake and dispatch over
  `trio.testing.memory_stream_pair` instead of TCP.
- `FakeClock`: time that only moves when told to (or when something sleeps).

Fakes must never be used in production wiring; `cise/` wires the real implementations.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import trio
import trio.testing

from channels.ports import Clock, Store, Transport, TrioClock
from channels.signer import LocalSigner
from channels.store import DEFAULT_SNAPSHOT_INTERVAL, RecordCodec, SqliteStore
from channels.transport import (
    DEFAULT_MAX_FRAME_SIZE,
    Connection,
    ConnectionClosedError,
    Handler,
    MessageCodec,
    TcpTransport,
    handle_stream,
    open_stream_connection,
)


class MemoryStore(SqliteStore):
    """A store that lives in memory only (sqlite ":memory:")."""

    def __init__(
        self, codec: RecordCodec, *, snapshot_interval: int = DEFAULT_SNAPSHOT_INTERVAL
    ) -> None:
        super().__init__(
            ":memory:", codec, synchronous="NORMAL", snapshot_interval=snapshot_interval
        )


class FakeClock:
    """A clock for tests: `advance` moves it; `sleep` advances it by the duration at once."""

    def __init__(self, monotonic: float = 0.0, wall: float = 1_700_000_000.0) -> None:
        self._monotonic = monotonic
        self._wall = wall

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a clock never goes back")
        self._monotonic += seconds
        self._wall += seconds

    def monotonic(self) -> float:
        return self._monotonic

    def wall(self) -> float:
        return self._wall

    async def sleep(self, seconds: float) -> None:
        self.advance(max(0.0, seconds))
        await trio.lowlevel.checkpoint()


class MemoryNetwork:
    """Where `MemoryTransport`s listen: a port number -> the serving transport's inbox."""

    def __init__(self) -> None:
        self._listeners: dict[int, trio.MemorySendChannel[trio.abc.Stream]] = {}
        self._next_port = 40_000

    def _listen(self, port: int, inbox: trio.MemorySendChannel[trio.abc.Stream]) -> int:
        if port == 0:
            self._next_port += 1
            port = self._next_port
        if port in self._listeners:
            raise OSError(f"memory port {port} is in use")
        self._listeners[port] = inbox
        return port

    def _unlisten(self, port: int) -> None:
        self._listeners.pop(port, None)

    def _connect(self, port: int) -> trio.abc.Stream:
        inbox = self._listeners.get(port)
        if inbox is None:
            raise ConnectionClosedError(f"nothing listens on memory port {port}")
        client, server = trio.testing.memory_stream_pair()
        inbox.send_nowait(server)
        return client


class MemoryTransport:
    """The fake Transport: real framing, handshake and dispatch over in-memory streams."""

    def __init__(
        self,
        network: MemoryNetwork,
        signer: LocalSigner,
        codec: MessageCodec,
        handlers: Mapping[type, Handler[Any]],
        *,
        on_connection: Callable[[Connection], Awaitable[None]] | None = None,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
    ) -> None:
        self.network = network
        self.signer = signer
        self.codec = codec
        self.handlers = handlers
        self.on_connection = on_connection
        self.max_frame_size = max_frame_size

    @asynccontextmanager
    async def open_connection(
        self, host: str, port: int, *, expected_peer: bytes | None = None
    ) -> AsyncIterator[Connection]:
        """Connect to the MemoryTransport serving `port` (`host` is ignored)."""
        stream = self.network._connect(port)
        async with open_stream_connection(
            stream,
            signer=self.signer,
            codec=self.codec,
            handlers=self.handlers,
            expected_peer=expected_peer,
            max_frame_size=self.max_frame_size,
        ) as connection:
            yield connection

    async def serve(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Accept in-memory connections forever; `task_status.started(port)` once listening."""
        send, receive = trio.open_memory_channel[trio.abc.Stream](64)
        bound = self.network._listen(port, send)
        try:
            async with trio.open_nursery() as nursery:
                task_status.started(bound)
                async for stream in receive:
                    nursery.start_soon(self._handle, stream)
        finally:
            self.network._unlisten(bound)

    async def _handle(self, stream: trio.abc.Stream) -> None:
        await handle_stream(
            stream,
            self.signer,
            self.codec,
            self.handlers,
            on_connection=self.on_connection,
            max_frame_size=self.max_frame_size,
        )


if TYPE_CHECKING:  # mypy proves each real and fake implementation fits its port

    def _fits_ports(
        sqlite_store: SqliteStore,
        memory_store: MemoryStore,
        tcp: TcpTransport,
        memory: MemoryTransport,
        trio_clock: TrioClock,
        fake_clock: FakeClock,
    ) -> None:
        stores: list[Store] = [sqlite_store, memory_store]
        transports: list[Transport] = [tcp, memory]
        clocks: list[Clock] = [trio_clock, fake_clock]
        del stores, transports, clocks

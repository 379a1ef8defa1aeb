"""Ports: the I/O the shells depend on, as `typing.Protocol`s (DESIGN §5, STYLE 4).

Each port has a real implementation and a fake beside it:

| port        | real                                   | fake                                 |
|-------------|----------------------------------------|--------------------------------------|
| `Store`     | `channels.store.SqliteStore` (file)    | `channels.fakes.MemoryStore`         |
| `Transport` | `channels.transport.TcpTransport`      | `channels.fakes.MemoryTransport`     |
| `Clock`     | `TrioClock` (below)                    | `channels.fakes.FakeClock`           |

(`ChainClient` lives with the chain client in `channels.chain`.) This module only declares the
ports and the trio clock; it must never grow logic of its own.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import trio

if TYPE_CHECKING:
    from channels.store import CommitGroup, OutboxItem, Restored, StoreStatistics
    from channels.transport import Connection

S = TypeVar("S")


class Store(Protocol):
    """Durable log of state changes + events, snapshots and the outbox (see channels.store)."""

    @property
    def last_state_change_id(self) -> int: ...

    @property
    def snapshot_due(self) -> bool: ...

    def commit_group(self) -> AbstractContextManager[CommitGroup]: ...

    def begin_group(self) -> CommitGroup: ...

    def commit(self, group: CommitGroup) -> None: ...

    def discard(self, group: CommitGroup) -> None: ...

    def write(self, state_change: object, events: Sequence[object] = ()) -> int: ...

    def write_snapshot(self, state: object) -> None: ...

    def restore(self, initial: S, apply: Callable[[S, Any], S]) -> Restored[S]: ...

    def unconfirmed(self) -> list[OutboxItem]: ...

    def statistics(self) -> StoreStatistics: ...

    def close(self) -> None: ...


class Transport(Protocol):
    """Authenticated, framed message connections to peers (see channels.transport)."""

    def open_connection(
        self, host: str, port: int, *, expected_peer: bytes | None = None
    ) -> AbstractAsyncContextManager[Connection]: ...

    async def serve(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
    ) -> None: ...


class Clock(Protocol):
    """Time for the shells (the core never reads a clock: time comes in as arguments)."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (for timeouts and latency)."""
        ...

    def wall(self) -> float:
        """Unix time in seconds (for receipts and logs, never for protocol deadlines)."""
        ...

    async def sleep(self, seconds: float) -> None: ...


class TrioClock:
    """The real clock: trio's clock for monotonic time and sleeping, the OS for wall time."""

    def monotonic(self) -> float:
        return trio.current_time()

    def wall(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await trio.sleep(seconds)

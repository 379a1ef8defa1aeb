"""How the long-running `cise` commands end: `run_until_stopped` runs a trio main until it returns
or SIGINT/SIGTERM arrives, then cancels it and exits 0, quietly.

A service stopped this way finishes its durable work first: trio cancels at checkpoints, and a store
commit runs in a worker thread that cancellation does not abandon, so nothing acknowledged is lost
and nothing is half-written. The only output is one line on stderr, `<name> stopped`.

It must never swallow a failure: an exception of the main (other than the cancellation it caused)
goes up as it was raised; a `CliError` inside trio's exception groups is taken out of them, so the
command prints its one-line error and exits 2 instead of showing a traceback.
"""

from __future__ import annotations

import errno
import signal
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import trio

from cise.errors import CliError
from cise.logs import say

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@dataclass
class _Outcome:
    result: object = None
    signal: int | None = None


def run_until_stopped(main: Callable[..., Awaitable[Any]], *args: Any, name: str) -> int:
    """`trio.run(main, *args)` until it returns (its int result, or 0) or SIGINT/SIGTERM arrives
    (then 0, after `<name> stopped` on stderr). Signals are only caught on the main thread (a
    test may run a command in a thread and stop it its own way)."""
    outcome = _Outcome()
    try:
        trio.run(_run, main, args, outcome)
    except KeyboardInterrupt:  # before the handler was in place, or a second Ctrl-C on the way out
        outcome.signal = signal.SIGINT
    except BaseExceptionGroup as group:
        inner = _only(group)
        if isinstance(inner, KeyboardInterrupt):
            outcome.signal = signal.SIGINT
        elif isinstance(inner, CliError):
            raise inner from None
        elif isinstance(inner, OSError) and inner.errno in (errno.EADDRINUSE, errno.EACCES):
            raise CliError(f"{name} cannot listen: {inner.strerror} ({inner})") from None
        else:
            raise
    if outcome.signal is not None:
        say(f"{name} stopped", signal=signal.Signals(outcome.signal).name)
        return 0
    return outcome.result if isinstance(outcome.result, int) else 0


async def _run(main: Callable[..., Awaitable[Any]], args: tuple[Any, ...], out: _Outcome) -> None:
    if threading.current_thread() is not threading.main_thread():
        out.result = await main(*args)
        return
    with trio.open_signal_receiver(*STOP_SIGNALS) as signals:
        async with trio.open_nursery() as nursery:

            async def watch() -> None:
                async for signum in signals:
                    out.signal = signum
                    nursery.cancel_scope.cancel()
                    return

            nursery.start_soon(watch)
            out.result = await main(*args)
            nursery.cancel_scope.cancel()


def _only(error: BaseException) -> BaseException:
    """The one exception inside nested one-exception groups (or the group itself)."""
    while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
        error = error.exceptions[0]
    return error


__all__ = ["STOP_SIGNALS", "run_until_stopped"]

"""What every agent process of a benchmark shares: its stdout protocol, its end, its main.

What it is for: the peer processes of the multi-process benchmarks (`channels.bench.agent_peer`,
`assets.bench_peer`) host `Agent`s connected to a `hub.synthetic_hub`; their parent reads their
stdout line by line (`channels.bench.processes`). This module holds what they do alike: `emit` a
protocol line, wait until the hub acknowledged everything (`wait_quiet`), sum their channels up
(`channel_totals`), and run their trio main tuned for agents, optionally under cProfile
(`run_agents_process`).

What it must never do: print anything but protocol lines on stdout (the parent parses it), wait
without a bound of the caller's, or import a service (`hub`, `assets`, ...) or `cise`. The keys
are public test keys: this must never be pointed at real funds or a real chain.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import NoReturn

import trio

from channels.agent import Agent
from channels.service import SWITCH_INTERVAL


def emit(line: str) -> None:
    """One protocol line on stdout (`READY`, `RESULT <json>`, ...), flushed at once."""
    print(line, flush=True)


async def wait_quiet(agents: Sequence[Agent]) -> None:
    """Until the hub acknowledged every message our agents sent (its effects are durable)."""
    while any(pending for a in agents for pending in a.service.unacked.values()):  # noqa: ASYNC110  # the acks come from another process
        await trio.sleep(0.01)


def channel_totals(agents: Sequence[Agent], deposit: int) -> tuple[int, int]:
    """(sum of balance - deposit over the agents' channels, pending locks)."""
    delta = 0
    locks = 0
    for agent in agents:
        for balance in agent.balances():
            delta += balance.balance - deposit
            locks += balance.pending_locks
    return delta, locks


def run_agents_process(
    main: Callable[[argparse.Namespace], Awaitable[int]],
    args: argparse.Namespace,
    profile: str | None = None,
) -> NoReturn:
    """Run `main(args)` under trio and exit with its status (0 on KeyboardInterrupt); with
    `profile`, under cProfile (CPU time of the trio thread), its stats written there at the end.

    Agents allocate many short-lived records and few cycles: collect the young generation rarely
    and never rescan the long-lived setup objects (see `channels.bench.direct_peer`).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    sys.setswitchinterval(SWITCH_INTERVAL)
    # CPU time of the trio thread (wall time would count the waits and the preemptions)
    profiler = cProfile.Profile(time.thread_time) if profile else None
    if profiler is not None:
        profiler.enable()
    try:
        status = trio.run(main, args)
    except KeyboardInterrupt:
        status = 0
    finally:
        if profiler is not None and profile is not None:
            profiler.disable()
            profiler.dump_stats(profile)
    sys.exit(status)


__all__ = ["channel_totals", "emit", "run_agents_process", "wait_quiet"]

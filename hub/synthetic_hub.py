"""A hub on a synthetic network, as its own process: `python -m hub.synthetic_hub`.

For the mediated benchmark and the kill-restart test: the network's channels are opened by
injected chain events (`channels.bench.synthetic`, fixed public test keys), and a block clock
stands in for the chain, advancing the hub's head every `--block-interval` seconds (the head
reaches the agents in the hub's terms). It prints `PORT <n>` once listening and runs until
killed; a restart with the same `--db` restores the hub from its log and goes on. It must never
be pointed at real funds or a real chain.

For the benchmarks: `--report-restore` prints `RESTORED <json>` after the `PORT` line (state
changes in the log, how many were replayed on top of the latest snapshot, seconds spent
restoring); `--profile PATH` runs the hub under cProfile and writes the stats to PATH when it
stops (SIGTERM then ends it cleanly instead of at once).
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import sys
import time

import trio

from channels.bench.synthetic import address_of, cancel_on_sigterm, hub_channels, open_service
from channels.core import state_changes as sc
from channels.core.fees import FeeSchedule
from channels.core.types import BlockNumber
from channels.service import SWITCH_INTERVAL, NodeService
from hub.mediator import MediationTerms
from hub.service import Hub

DEFAULT_TERMS = MediationTerms(
    FeeSchedule(flat=10, ppm=1_000, cap=5_000), reveal_timeout=5, lock_timeout=30
)


async def block_clock(service: NodeService, interval: float) -> None:
    """Forever: one block every `interval` seconds."""
    while True:
        await trio.sleep(interval)
        service.handle(sc.Block(BlockNumber(service.block_number + 1)))


async def run(args: argparse.Namespace) -> None:
    started = time.perf_counter()
    names = [n for n in args.agents.split(",") if n]
    opening = hub_channels(
        address_of("hub"), [address_of(n) for n in names], args.deposit, args.hub_deposit
    )
    service = open_service(
        "hub",
        args.db,
        opening,
        group_target=args.group_target,
        snapshot_interval=args.snapshot_interval,
    )
    hub = Hub(service, DEFAULT_TERMS)
    restore_s = time.perf_counter() - started
    statistics = service.store.statistics()
    try:
        async with trio.open_nursery() as nursery:
            if args.profile:
                nursery.start_soon(cancel_on_sigterm, nursery.cancel_scope)
            port = await nursery.start(
                lambda task_status: hub.serve(port=args.port, task_status=task_status)
            )
            if args.block_interval > 0:
                nursery.start_soon(block_clock, service, args.block_interval)
            print(f"PORT {port}", flush=True)
            if args.report_restore:
                restored = {
                    "state_changes": statistics.last_state_change_id,
                    "replayed_state_changes": statistics.state_changes_since_snapshot,
                    "restore_s": round(restore_s, 4),
                    "channels": len(service.channels),
                    "unacknowledged": sum(len(m) for m in service.unacked.values()),
                }
                print(f"RESTORED {json.dumps(restored)}", flush=True)
    finally:
        service.store.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", required=True, help="the hub's sqlite store")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: any free)")
    parser.add_argument("--agents", required=True, help="comma-separated agent names")
    parser.add_argument("--deposit", type=int, default=10**12, help="each agent's deposit")
    parser.add_argument("--hub-deposit", type=int, default=10**12, help="the hub's per channel")
    parser.add_argument("--block-interval", type=float, default=0.0, help="seconds; 0: no clock")
    parser.add_argument("--group-target", type=int, default=64)
    parser.add_argument("--snapshot-interval", type=int, default=10_000)
    parser.add_argument(
        "--report-restore", action="store_true", help="print RESTORED <json> after PORT"
    )
    parser.add_argument("--profile", help="run under cProfile, write the stats here on SIGTERM")
    args = parser.parse_args(argv)
    if args.group_target < 1 or args.snapshot_interval < 1 or args.port < 0:
        parser.error("--group-target and --snapshot-interval must be positive, --port >= 0")
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    sys.setswitchinterval(SWITCH_INTERVAL)
    # CPU time of the trio thread (wall time would count the waits and the preemptions)
    profiler = cProfile.Profile(time.thread_time) if args.profile else None
    if profiler is not None:
        profiler.enable()
    try:
        trio.run(run, args)
    except KeyboardInterrupt:
        sys.exit(0)
    finally:
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(args.profile)


if __name__ == "__main__":
    main()

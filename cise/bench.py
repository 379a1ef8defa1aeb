"""`cise bench ...`: run a benchmark and print its figures as one JSON object on stdout."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from channels.bench.processes import BenchError
from cise.errors import CliError


def run_bench(args: argparse.Namespace) -> int:
    try:
        result = _measure(args)
    except BenchError as exc:  # a process failed, a payment failed, or money was not conserved
        raise CliError(f"bench {args.bench}: {exc}") from exc
    json.dump(result, sys.stdout, sort_keys=False)
    sys.stdout.write("\n")
    return 0 if result.get("ok", True) else 1  # a campaign whose invariants failed


def _measure(args: argparse.Namespace) -> dict[str, Any]:
    if args.bench == "gas":
        from channels.bench.gas import measure_gas

        return dict(measure_gas())
    if args.bench == "settlement":
        from cise.bench_settlement import measure_settlement

        return dict(measure_settlement())
    if args.bench == "direct":
        from channels.bench.direct import run_direct_bench

        if args.in_flight > 256:
            raise CliError(f"--in-flight is at most 256, got {args.in_flight}")
        return dict(
            run_direct_bench(payments=args.payments, in_flight=args.in_flight, runs=args.runs)
        )
    if args.bench in ("mediated", "restart"):
        from hub.bench import run_mediated_bench, run_restart_bench

        common = {"payments": args.payments, "in_flight": args.in_flight}
        peers = {"payers": args.payers, "payees": args.payees}
        if args.bench == "restart":
            return dict(run_restart_bench(**common, **peers))
        return dict(
            run_mediated_bench(**common, **peers, runs=args.runs, profile_dir=args.profile_dir)
        )
    if args.bench == "assets":
        from assets.bench import run_assets_bench

        return dict(
            run_assets_bench(
                uses=args.uses,
                in_flight=args.in_flight,
                runs=args.runs,
                users=args.users,
                profile_dir=args.profile_dir,
            )
        )
    if args.bench == "watchtower":
        from cise.watchtower_cmd import run_bench as run_watchtower_bench

        return dict(run_watchtower_bench(args))
    if args.bench == "deadlines":
        from hub.bench_deadlines import DeadlineBenchError, run_deadlines_bench

        if args.settle_timeout < 5:
            raise CliError(
                f"--settle-timeout is at least 5 (the contract's minimum), got {args.settle_timeout}"
            )
        try:
            return run_deadlines_bench(
                closes=args.closes, settle_timeout=args.settle_timeout, block_time=args.block_time
            )
        except DeadlineBenchError as exc:
            raise BenchError(str(exc)) from exc
    if args.bench == "crash":
        from pathlib import Path

        from cise.campaign import CampaignConfig, CampaignError, run_campaign

        config = CampaignConfig(
            kills=args.kills,
            seed=args.seed,
            block_time=args.block_time,
            batch=args.batch,
            workdir=Path(args.workdir) if args.workdir else None,
        )
        try:
            return run_campaign(config)
        except (CampaignError, ValueError) as exc:
            raise BenchError(str(exc)) from exc
    raise AssertionError(args.bench)

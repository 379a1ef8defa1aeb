"""`cise bench ...`: run a benchmark and print its figures as one JSON object on stdout."""

from __future__ import annotations

import argparse
import json
import sys

from cise.errors import CliError


def run_bench(args: argparse.Namespace) -> int:
    if args.bench == "gas":
        from channels.bench.gas import measure_gas

        result = measure_gas()
    elif args.bench == "settlement":
        from cise.bench_settlement import measure_settlement

        result = measure_settlement()
    elif args.bench == "direct":
        from channels.bench.direct import run_direct_bench

        if args.in_flight > 256:
            raise CliError(f"--in-flight is at most 256, got {args.in_flight}")
        result = run_direct_bench(payments=args.payments, in_flight=args.in_flight, runs=args.runs)
    elif args.bench == "mediated":
        from hub.bench import BenchError, run_mediated_bench

        try:
            result = run_mediated_bench(
                payments=args.payments,
                in_flight=args.in_flight,
                runs=args.runs,
                payers=args.payers,
                payees=args.payees,
                profile_dir=args.profile_dir,
            )
        except BenchError as exc:
            raise CliError(f"bench mediated: {exc}") from exc
    elif args.bench == "restart":
        from hub.bench import BenchError, run_restart_bench

        try:
            result = run_restart_bench(
                payments=args.payments,
                in_flight=args.in_flight,
                payers=args.payers,
                payees=args.payees,
            )
        except BenchError as exc:
            raise CliError(f"bench restart: {exc}") from exc
    elif args.bench == "assets":
        from assets.bench import BenchError as AssetsBenchError
        from assets.bench import run_assets_bench

        try:
            result = run_assets_bench(
                uses=args.uses,
                in_flight=args.in_flight,
                runs=args.runs,
                users=args.users,
                profile_dir=args.profile_dir,
            )
        except AssetsBenchError as exc:
            raise CliError(f"bench assets: {exc}") from exc
    elif args.bench == "watchtower":
        from cise.watchtower_cmd import run_bench as run_watchtower_bench

        result = run_watchtower_bench(args)
    else:
        raise AssertionError(args.bench)
    json.dump(result, sys.stdout, sort_keys=False)
    sys.stdout.write("\n")
    return 0

"""`cise` entry point: parses arguments and hands each subcommand to its module.

It must never hold protocol logic: every decision lives in `channels/` or a service package.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import Any

from channels.ownership import OwnershipError
from cise.arguments import positive_int
from cise.errors import CliError
from cise.logs import configure_from, say


class _Parser(argparse.ArgumentParser):
    """No abbreviated options, in every subcommand (subparsers take their parent's class): an
    abbreviation such as `--password X` would otherwise be read as `--password-file X`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["allow_abbrev"] = False
        super().__init__(*args, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="cise", description="CISE: payment channels for circular pay-per-use assets"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser("demo", help="run the end-to-end demo (embedded chain by default)")
    demo.add_argument("--rpc", metavar="URL", help="run against a JSON-RPC node instead")
    demo.add_argument(
        "--uses",
        type=positive_int,
        default=90,
        help="wash cycles in the Bundles day, all machines together (default 90)",
    )
    demo.add_argument(
        "--cycles",
        type=positive_int,
        default=200,
        help="metered steps paid over the direct channel (default 200)",
    )
    demo.add_argument("--no-progress", action="store_true", help="plain output, no progress bars")
    demo.add_argument(
        "--serve", action="store_true", help="then serve the dashboard and API of the demo network"
    )
    demo.add_argument(
        "--serve-seconds", type=float, default=0.0, help="with --serve: stop after S (0: Ctrl-C)"
    )
    demo.add_argument("--port", type=int, default=0, help="with --serve: port on 127.0.0.1")

    chain = sub.add_parser(
        "chain", help="start a local anvil with CISE deployed (for multi-process use)"
    )
    chain.add_argument("--port", type=int, default=8545, help="port on 127.0.0.1 (0 = any free)")
    chain.add_argument(
        "--network-file", default=".cise/network.json", help="where to write addresses and dev keys"
    )
    chain.add_argument(
        "--settle-timeout",
        type=positive_int,
        default=20,
        help="challenge period in blocks (5..1,000,000)",
    )
    chain.add_argument(
        "--block-time",
        type=int,
        metavar="S",
        help="mine a block every S seconds (1..60) and none per transaction (permissioned profile)",
    )
    chain.add_argument(
        "--gas-price",
        type=int,
        metavar="0",
        help="0: free gas (gas price and base fee 0; accounts need no ether)",
    )
    chain.add_argument(
        "--accounts", type=int, metavar="N", help="dev accounts (1..100, default 10)"
    )
    chain.add_argument(
        "--founders",
        type=int,
        metavar="N",
        help="only the first N dev accounts (the deployer first) are founding members",
    )
    chain_mode = chain.add_mutually_exclusive_group()
    chain_mode.add_argument(
        "--detach",
        action="store_true",
        help="run in the background; return once the network file is written and the node answers",
    )
    chain_mode.add_argument(
        "--stop", action="store_true", help="stop the chain started with --detach"
    )

    from cise import channel_cmd

    channel_cmd.add_parser(sub)

    from cise import hub_cmd

    hub_cmd.add_parsers(sub)

    from cise import ledger_cmd

    ledger_cmd.add_parsers(sub)

    from cise import asset_cmd

    asset_cmd.add_parsers(sub)

    from cise import gov_cmd, member_cmd

    gov_cmd.add_parsers(sub)
    member_cmd.add_parsers(sub)

    from cise import watchtower_cmd

    watchtower_cmd.add_parsers(sub)

    from cise import finance_cmd

    finance_cmd.add_parsers(sub)

    from cise import settle_cmd

    settle_cmd.add_parsers(sub)

    from cise import api_cmd

    api_cmd.add_parsers(sub)

    from cise import account_cmd, meter_cmd, network_cmd, token_cmd

    account_cmd.add_parsers(sub)
    network_cmd.add_parsers(sub)
    token_cmd.add_parsers(sub)
    meter_cmd.add_parsers(sub)

    bench = sub.add_parser("bench", help="benchmarks; print one JSON object")
    bench_sub = bench.add_subparsers(dest="bench", required=True, metavar="BENCH")
    direct = bench_sub.add_parser("direct", help="direct payments between two processes")
    direct.add_argument("--json", action="store_true", help="JSON only (the default output)")
    direct.add_argument("--payments", type=positive_int, default=100_000)
    direct.add_argument("--in-flight", type=positive_int, default=256, help="at most 256")
    direct.add_argument("--runs", type=positive_int, default=3, help="median of this many runs")
    mediated = bench_sub.add_parser(
        "mediated", help="routed payments payer -> hub -> payee, three processes"
    )
    mediated.add_argument("--json", action="store_true", help="JSON only (the default output)")
    mediated.add_argument("--payments", type=positive_int, default=20_000)
    mediated.add_argument(
        "--in-flight", type=positive_int, default=256, help="payments under way at most, in total"
    )
    mediated.add_argument("--runs", type=positive_int, default=3, help="median of this many runs")
    mediated.add_argument(
        "--payers", type=positive_int, default=1, help="payer agents (one process hosts all)"
    )
    mediated.add_argument(
        "--payees", type=positive_int, default=1, help="payee agents (one process hosts all)"
    )
    mediated.add_argument(
        "--profile-dir", metavar="DIR", help="write cProfile stats of every process here"
    )
    restart = bench_sub.add_parser("restart", help="hub restart time after N routed payments")
    restart.add_argument("--json", action="store_true", help="JSON only (the default output)")
    restart.add_argument(
        "--payments", type=positive_int, default=50_000, help="routed payments made first"
    )
    restart.add_argument("--in-flight", type=positive_int, default=256)
    restart.add_argument("--payers", type=positive_int, default=1, help="payer agents")
    restart.add_argument("--payees", type=positive_int, default=1, help="payee agents")
    assets = bench_sub.add_parser(
        "assets",
        help="pay-per-use uses end to end: meter -> charge -> 5 shares -> ledger, 3 processes",
    )
    assets.add_argument("--json", action="store_true", help="JSON only (the default output)")
    assets.add_argument("--uses", type=positive_int, default=2_000, help="meter events (postpaid)")
    assets.add_argument(
        "--in-flight", type=positive_int, default=64, help="uses under way at the asset, at most"
    )
    assets.add_argument("--runs", type=positive_int, default=3, help="median of this many runs")
    assets.add_argument(
        "--users", type=positive_int, default=4, help="user agents (one process hosts all)"
    )
    assets.add_argument(
        "--profile-dir", metavar="DIR", help="write cProfile stats of every process here"
    )
    gas = bench_sub.add_parser("gas", help="gas per contract operation on the embedded chain")
    gas.add_argument("--json", action="store_true", help="JSON only (the default output)")
    settlement = bench_sub.add_parser(
        "settlement", help="gas per channel of settlement batches on the embedded chain"
    )
    settlement.add_argument("--json", action="store_true", help="JSON only (the default output)")
    watchtower_cmd.add_bench_parser(bench_sub)
    deadlines = bench_sub.add_parser(
        "deadlines", help="a hub answering N stale closes at one block on anvil, in time"
    )
    deadlines.add_argument("--json", action="store_true", help="JSON only (the default output)")
    deadlines.add_argument("--closes", type=positive_int, default=500, help="counterparty closes")
    deadlines.add_argument(
        "--settle-timeout", type=positive_int, default=20, help="challenge period in blocks (>= 5)"
    )
    deadlines.add_argument("--block-time", type=positive_int, default=2, help="seconds a block")
    crash = bench_sub.add_parser(
        "crash", help="SIGKILL campaign on real cise processes on anvil; checks every invariant"
    )
    crash.add_argument("--json", action="store_true", help="JSON only (the default output)")
    crash.add_argument("--kills", type=positive_int, default=24, help="SIGKILLs in all (>= 8)")
    crash.add_argument("--seed", type=int, default=1, help="random seed of the kill schedule")
    crash.add_argument("--block-time", type=positive_int, default=1, help="seconds a block")
    crash.add_argument("--batch", type=positive_int, default=30, help="payments a payer process")
    crash.add_argument("--workdir", metavar="DIR", help="keep the run's files and logs here")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_from(args)  # a service's --log-format/--log-level, before anything it logs
    try:
        if args.command == "demo":
            from cise.demo import run_demo

            if not 0 <= args.port < 65536:
                raise CliError(f"--port must be 0..65535, got {args.port}")
            if args.serve_seconds < 0:
                raise CliError("--serve-seconds must not be negative")
            return run_demo(
                rpc_url=args.rpc,
                cycles=args.cycles,
                uses=args.uses,
                progress=not args.no_progress,
                serve=args.serve,
                serve_seconds=args.serve_seconds,
                port=args.port,
            )
        if args.command == "chain":
            from cise import chain_detach
            from cise.chain_cmd import ChainProfile, run_chain

            if args.stop:
                return chain_detach.stop_detached(args.network_file)
            profile = ChainProfile.from_options(
                args.block_time, args.gas_price, args.accounts, args.founders
            )
            if args.detach:
                return chain_detach.start_detached(
                    args.port, args.network_file, args.settle_timeout, profile
                )
            return run_chain(
                port=args.port,
                network_file=args.network_file,
                settle_timeout=args.settle_timeout,
                profile=profile,
            )
        if args.command == "channel":
            from cise import channel_cmd

            return channel_cmd.run(args)
        if args.command in ("hub", "agent"):
            from cise import hub_cmd

            return hub_cmd.run(args)
        if args.command == "asset":
            from cise import asset_cmd

            return asset_cmd.run(args)
        if args.command == "finance":
            from cise import finance_cmd

            return finance_cmd.run(args)
        if args.command == "api":
            from cise import api_cmd

            return api_cmd.run(args)
        if args.command == "settle":
            from cise import settle_cmd

            return settle_cmd.run(args)
        if args.command == "watchtower":
            from cise import watchtower_cmd

            return watchtower_cmd.run(args)
        if args.command == "gov":
            from cise import gov_cmd

            return gov_cmd.run(args)
        if args.command == "account":
            from cise import account_cmd

            return account_cmd.run(args)
        if args.command == "network":
            from cise import network_cmd

            return network_cmd.run(args)
        if args.command == "token":
            from cise import token_cmd

            return token_cmd.run(args)
        if args.command == "meter":
            from cise import meter_cmd

            return meter_cmd.run(args)
        if args.command == "member":
            from cise import member_cmd

            return member_cmd.run(args)
        if args.command in ("ledger", "user"):
            from cise import ledger_cmd

            return ledger_cmd.run(args)
        if args.command == "bench":
            from cise.bench import run_bench

            return run_bench(args)
    except (CliError, OwnershipError) as exc:  # OwnershipError: another process owns a store
        say(f"cise: error: {exc}", logging.ERROR)  # a JSON line under `--log-format json`
        return 2
    raise AssertionError(f"unhandled command {args.command}")


if __name__ == "__main__":
    sys.exit(main())

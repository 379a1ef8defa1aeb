"""`cise settle run|status|history`: the hub's periodic net settlement, from a terminal.

The hub (`cise hub serve`) runs the settlement service and keeps its record in
`<data-dir>/settlement-<hub address>.sqlite`. These commands use that file: `run` asks the running
hub for a round now and waits for its outcome, `status` shows what is owed, when the next round is
due and which counterparties have not signed, `history` lists past rounds with what each moved and
its gas. `--json` prints one JSON object instead of tables. Also here: the hub's settlement options
and their parsing, so `cise hub serve` wires the service without deciding anything itself.

Parsing, wiring and printing only: the rules are `settlement.planner` and `settlement.rounds`.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from channels.chain.client import Web3ChainClient
from channels.chain.governance import GovernanceClient
from channels.core.types import Address, to_checksum
from cise.accounts import ACCOUNT_HELP, add_account_arguments
from cise.arguments import positive_int
from cise.channel_cmd import open_account, parse_amount
from cise.errors import CliError
from settlement import summary
from settlement.planner import SettlementPolicy
from settlement.service import SettlementConfig
from settlement.store import SettlementStore, SettlementStoreError

DEFAULT_PERIOD_S = 86_400
FINISHED = ("settled", "partial", "unsigned", "empty", "failed", "skipped", "abandoned")


def add_parsers(sub: Any) -> None:
    settle = sub.add_parser("settle", help="periodic net settlement of the hub's channels")
    ops = settle.add_subparsers(dest="op", required=True, metavar="OP")
    run = ops.add_parser("run", help="ask the running hub for a settlement round now and wait")
    _common(run)
    run.add_argument("--wait", type=float, default=60.0, help="seconds to wait for the outcome")
    status = ops.add_parser("status", help="what is owed, the next round, who did not sign")
    _common(status)
    history = ops.add_parser("history", help="past rounds: items, money moved, gas")
    _common(history)
    history.add_argument("--limit", type=positive_int, default=20, help="rounds to show")


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--network", default=".cise/network.json", help="network file")
    add_account_arguments(parser, 0, help="the hub's account: " + ACCOUNT_HELP)
    parser.add_argument("--data-dir", default=".cise", help="the hub's data folder")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def add_hub_options(serve: argparse.ArgumentParser) -> None:
    """The settlement options of `cise hub serve`."""
    group = serve.add_argument_group("settlement")
    group.add_argument("--no-settle", action="store_true", help="run no settlement rounds")
    group.add_argument("--settle-every", type=positive_int,
                       help="seconds between rounds (default: the network's governed period)")  # fmt: skip
    group.add_argument("--settle-trigger", default="0",
                       help="euros owed that start a round early (0: off)")  # fmt: skip
    group.add_argument("--settle-min", default="0.01", help="euros: smaller withdraws wait")
    group.add_argument("--liquidity-target", default=None,
                       help="euros of capacity the hub keeps towards each partner: it withdraws "
                            "what is above and re-deposits where short (default: it moves none "
                            "of its own capacity)")  # fmt: skip
    group.add_argument("--settle-expiry", type=positive_int, default=40,
                       help="blocks a round's signatures stay valid")  # fmt: skip
    group.add_argument("--settle-collect", type=float, default=10.0,
                       help="seconds a round waits for signatures")  # fmt: skip
    group.add_argument("--close-unsigned-after", type=float, default=7 * 86_400.0,
                       help="seconds: close a channel whose partner keeps not signing (0: never)")  # fmt: skip


def hub_settlement(
    args: argparse.Namespace, client: Web3ChainClient
) -> tuple[SettlementConfig, Path] | None:
    """The settlement service's configuration and file from `cise hub serve`'s options (None
    with --no-settle); raises CliError naming a bad option."""
    if args.no_settle:
        return None
    period = args.settle_every or _network_period(client)
    try:
        policy = SettlementPolicy(
            period_s=period,
            amount_trigger=parse_amount(args.settle_trigger),
            min_withdraw=parse_amount(args.settle_min),
            liquidity_target=parse_amount(args.liquidity_target or "0"),
            expiry_blocks=args.settle_expiry,
            manage_liquidity=args.liquidity_target is not None,
        )
        config = SettlementConfig(
            policy,
            collect_s=args.settle_collect,
            close_unsigned_after_s=args.close_unsigned_after,
            min_gap_s=min(60.0, float(period)),
        )
    except ValueError as exc:
        raise CliError(f"settlement: {exc}") from None
    return config, settlement_path(Path(args.data_dir), client.address)


def _network_period(client: Web3ChainClient) -> int:
    if not client.deployment.governed:
        return DEFAULT_PERIOD_S
    return (
        GovernanceClient(client.connection, client.deployment, None).parameters().settlement_period
    )


def settlement_path(data_dir: Path, hub: Address) -> Path:
    return data_dir / f"settlement-{to_checksum(hub)}.sqlite"


def open_settlement_store(
    path: Path, *, read_only: bool, requests_only: bool = False
) -> SettlementStore:
    """The hub's settlement file: owned (`cise hub serve`), read-only, or `requests_only` (the
    one write beside the running hub: a round request)."""
    if (read_only or requests_only) and not path.exists():
        raise CliError(f"{path}: no settlement record yet (has `cise hub serve` run here?)")
    try:
        return SettlementStore(path, read_only=read_only, requests_only=requests_only)
    except SettlementStoreError as exc:
        raise CliError(str(exc)) from None


def claim_settlement_store(store: SettlementStore, client: Web3ChainClient) -> None:
    """Bind the file to this hub and network, or refuse one of another (before anything runs)."""
    try:
        store.claim(client.address, client.deployment.chain_id, client.deployment.manager)
    except SettlementStoreError as exc:
        raise CliError(str(exc)) from None


# -- commands ---------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    _, client, _ = open_account(args)
    path = settlement_path(Path(args.data_dir), client.address)
    if args.op == "run":
        if not args.wait > 0:
            raise CliError("--wait must be positive")
        return _run_round(path, args.wait, args.json)
    store = open_settlement_store(path, read_only=True)
    try:
        if args.op == "status":
            out = status_summary(store, time.time())
            if args.json:
                print(json.dumps(out))
            else:
                _print_status(out)
        else:
            rounds = [round_summary(store, r.id) for r in store.rounds(args.limit)]
            if args.json:
                print(json.dumps({"rounds": rounds}))
            else:
                _print_history(rounds)
    finally:
        store.close()
    return 0


def _run_round(path: Path, wait: float, as_json: bool) -> int:
    if not path.exists():
        raise CliError(f"{path}: no settlement record yet (is `cise hub serve` running here?)")
    store = open_settlement_store(path, read_only=False, requests_only=True)
    try:
        request = store.request_round()
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            round_id = store.request_answer(request)
            if round_id is not None:
                row = store.round(round_id)
                if row is not None and row.status in FINISHED:
                    summary = round_summary(store, round_id)
                    if as_json:
                        print(json.dumps(summary))
                    else:
                        print(_round_line(summary), flush=True)
                        _print_history([summary])
                    return 0 if row.status in ("settled", "empty") else 1
            time.sleep(0.2)
        if store.withdraw_request(request):
            raise CliError(
                f"no hub took the request within {wait:g} s (is `cise hub serve` running with "
                f"this --data-dir and settlement on?); nothing was done"
            )
        raise CliError(
            f"the hub took the request but its round did not finish within {wait:g} s; "
            "see `cise settle status`"
        )
    finally:
        store.close()


# -- summaries (JSON-ready): settlement.summary, shared with the HTTP API -------------------


def round_summary(store: SettlementStore, round_id: int) -> dict[str, Any]:
    """One round as a JSON-ready dict (`settlement.summary.round_summary`); `CliError` if none."""
    try:
        return summary.round_summary(store, round_id)
    except SettlementStoreError as exc:
        raise CliError(str(exc)) from None


def status_summary(store: SettlementStore, now: float) -> dict[str, Any]:
    return summary.status_summary(store, now)


# -- printing ---------------------------------------------------------------------------------


def _print_status(out: dict[str, Any]) -> None:
    console = Console()
    running = "running" if out["hub_running"] else "not running (status is old)"
    console.print(f"hub {out['hub']}: {running}; {out['channels']} channels")
    console.print(
        f"owed to counterparties now: {out['owed_to_counterparties']} (in a batch not landed "
        f"yet: {out['owed_in_flight']}); next round due "
        f"{out['next_due_at']} (every {out['period_s']} s; early at {out['amount_trigger']})"
    )
    if out["last_round"]:
        _print_history([out["last_round"]], title="last round")
        for left in out["last_round"]["excluded"]:
            console.print(f"left out: {left['kind']} in channel {left['channel']} "
                          f"({left['participant']}): {left['reason']}", markup=False)  # fmt: skip
    if out["not_signing"]:
        table = Table(title="counterparties not signing")
        for column in ("channel", "partner", "since", "rounds missed", "closed at"):
            table.add_column(column)
        for m in out["not_signing"]:
            table.add_row(str(m["channel"]), m["partner"], m["since"], str(m["rounds_missed"]),
                          m["closed_at"] or "-")  # fmt: skip
        console.print(table)


def _round_line(r: dict[str, Any]) -> str:
    """One line saying what a round did, readable at any terminal width."""
    if r["status"] == "empty":
        return (
            f"round {r['round']} empty: nothing owed above the hub's --settle-min, nothing sent "
            "(see `cise settle status`)"
        )
    return (
        f"round {r['round']} {r['status']}: {r['signed']} of {r['planned']} signed; "
        f"{r['to_counterparties']} to counterparties, hub out {r['hub_withdrawn']}, "
        f"re-deposited {r['redeposited']}; {r['gas_used']:,} gas"
    )


def _print_history(rounds: list[dict[str, Any]], title: str = "settlement rounds") -> None:
    table = Table(title=title)
    for column in ("round", "started", "status", "signed", "to parties", "hub out",
                   "re-deposited", "gas", "gas/item"):  # fmt: skip
        table.add_column(column, justify="right" if column not in ("started", "status") else "left")
    for r in rounds:
        table.add_row(
            str(r["round"]),
            r["started_at"],
            r["status"] + (f" ({r['reason']})" if r["reason"] != "requested" else ""),
            f"{r['signed']}/{r['planned']}",
            r["to_counterparties"],
            r["hub_withdrawn"],
            r["redeposited"],
            f"{r['gas_used']:,}",
            f"{r['gas_per_item']:,}" if r["gas_per_item"] else "-",
        )
    Console().print(table)


__all__ = [
    "add_hub_options",
    "add_parsers",
    "claim_settlement_store",
    "hub_settlement",
    "open_settlement_store",
    "round_summary",
    "run",
    "settlement_path",
    "status_summary",
]

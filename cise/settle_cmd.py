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
from cise.arguments import positive_int
from cise.channel_cmd import open_account, parse_amount
from cise.errors import CliError
from cise.money import euro
from settlement.planner import SettlementPolicy
from settlement.service import SettlementConfig
from settlement.store import SettlementStore, SettlementStoreError

DEFAULT_PERIOD_S = 86_400
STATUS_STALE_S = 10.0  # a hub that has not written its status for this long is not running
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
    parser.add_argument("--account", type=int, default=0, help="the hub's dev account index")
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
    group.add_argument("--liquidity-target", default="0",
                       help="euros of capacity the hub keeps towards each partner")  # fmt: skip
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
            liquidity_target=parse_amount(args.liquidity_target),
            expiry_blocks=args.settle_expiry,
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


def open_settlement_store(path: Path, *, read_only: bool) -> SettlementStore:
    if read_only and not path.exists():
        raise CliError(f"{path}: no settlement record yet (has `cise hub serve` run here?)")
    try:
        return SettlementStore(path, read_only=read_only)
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
    store = open_settlement_store(path, read_only=False)
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


# -- summaries (JSON-ready) -------------------------------------------------------------------


def round_summary(store: SettlementStore, round_id: int) -> dict[str, Any]:
    """One round as a JSON-ready dict: what was planned, signed, moved, and its transactions."""
    row = store.round(round_id)
    if row is None:
        raise CliError(f"no settlement round {round_id}")
    hub = store.owner()
    items = store.items(round_id)
    transactions = store.transactions(round_id)
    applied = {t.tx_index for t in transactions if t.status == "applied"}
    landed = [i for i in items if i.tx_index in applied]
    deposits = [d for d in store.deposits(round_id) if d.tx_index in applied]
    return {
        "round": row.id,
        "status": row.status,
        "reason": row.reason,
        "started_at": _when(row.started_at),
        "block": row.block,
        "expiry": row.expiry,
        "planned": len(items),
        "signed": sum(i.signature is not None for i in items),
        "unsigned_channels": sorted({i.channel_id for i in items if i.signature is None}),
        "to_counterparties": euro(sum(i.amount for i in landed if i.participant != hub)),
        "hub_withdrawn": euro(sum(i.amount for i in landed if i.participant == hub)),
        "redeposited": euro(sum(d.amount for d in deposits)),
        "gas_used": sum(t.gas_used or 0 for t in transactions),
        "gas_per_item": (
            round(sum(t.gas_used or 0 for t in transactions) / len(landed)) if landed else None
        ),
        "transactions": [
            {
                "index": t.tx_index,
                "status": t.status,
                "hash": "0x" + t.tx_hash.hex() if t.tx_hash else None,
                "gas_used": t.gas_used,
                "block": t.block,
                "error": t.error,
            }
            for t in transactions
        ],
        "note": row.note,
    }


def status_summary(store: SettlementStore, now: float) -> dict[str, Any]:
    hub = store.owner()
    status = store.status()
    updated = float(status.get("updated_at", "0"))
    rounds = store.rounds(1)
    return {
        "hub": to_checksum(hub) if hub else None,
        "hub_running": now - updated < STATUS_STALE_S,
        "status_written_at": _when(updated) if updated else None,
        "owed_to_counterparties": euro(int(status.get("owed", "0"))),
        "channels": int(status.get("channels", "0")),
        "period_s": int(status.get("period_s", "0")),
        "amount_trigger": euro(int(status.get("amount_trigger", "0"))),
        "next_due_at": _when(float(status["next_due_at"])) if "next_due_at" in status else None,
        "last_round": round_summary(store, rounds[0].id) if rounds else None,
        "not_signing": [
            {
                "channel": m.channel_id,
                "partner": to_checksum(m.partner),
                "since": _when(m.first_missed_at),
                "rounds_missed": m.rounds,
                "closed_at": _when(m.closed_at) if m.closed_at is not None else None,
            }
            for m in store.misses()
        ],
    }


def _when(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(timestamp))


# -- printing ---------------------------------------------------------------------------------


def _print_status(out: dict[str, Any]) -> None:
    console = Console()
    running = "running" if out["hub_running"] else "not running (status is old)"
    console.print(f"hub {out['hub']}: {running}; {out['channels']} channels")
    console.print(
        f"owed to counterparties now: {out['owed_to_counterparties']}; next round due "
        f"{out['next_due_at']} (every {out['period_s']} s; early at {out['amount_trigger']})"
    )
    if out["last_round"]:
        _print_history([out["last_round"]], title="last round")
    if out["not_signing"]:
        table = Table(title="counterparties not signing")
        for column in ("channel", "partner", "since", "rounds missed", "closed at"):
            table.add_column(column)
        for m in out["not_signing"]:
            table.add_row(str(m["channel"]), m["partner"], m["since"], str(m["rounds_missed"]),
                          m["closed_at"] or "-")  # fmt: skip
        console.print(table)


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

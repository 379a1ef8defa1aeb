"""`cise watchtower serve|status|hire`: run a watchtower, see what it guards, hand it your proofs.

- `serve`: the tower of one account of a network file (`cise chain` writes one): its file is
  `<data-dir>/watchtower-<address>.sqlite`; it catches up with the chain, listens on `--host` (TLS:
  `--tls`) and answers closes until SIGINT/SIGTERM (then exits 0, `cise.lifecycle`). A node
  that stops answering does not end it: it says what is unguarded and resumes when the node is back.
- `status`: the tower's own view, read from its file (it may be running): every guarded channel,
  the nonce held and where the channel stands; or, with `--tower`/`--tower-port`, what a running
  tower holds for this account (asked over its API, authenticated as the account).
- `hire`: hand this account's latest received balance proofs (from its log, as `cise channel` and
  `cise agent` keep it) to a running tower, each with a signed MonitorRequest and reward; prints one
  JSON line per channel. Agents running in-process use `watchtower.client.TowerGuard` instead,
  which does this by itself after every received payment.

Parsing, wiring and printing only: the decisions are `watchtower.core`'s.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import trio

from channels.chain.txmanager import DEFAULT_STALL_BLOCKS
from channels.core.types import Address, BlockNumber, parse_address, to_checksum
from channels.records import core_record_codec
from channels.service import read_chain_node
from channels.signer import LocalSigner
from channels.store import SqliteStore, StoreError
from channels.tls import PlainTransportRefusedError, TlsConfig
from channels.transport import TransportError
from cise.accounts import account_address, add_account_arguments
from cise.arguments import positive_int
from cise.channel_cmd import open_account, parse_amount
from cise.errors import CliError
from cise.lifecycle import run_until_stopped
from cise.metrics import add_service_options, run_with_metrics, tower_board
from cise.money import UNITS_PER_EURO
from cise.network import NetworkFileError, load_network
from cise.tls_options import (
    DEFAULT_HOST,
    add_host_argument,
    add_tls_argument,
    host_port,
    show,
    tls_for,
)
from watchtower import messages as msg
from watchtower.client import (
    TowerEndpoint,
    TowerError,
    TowerSession,
    monitor_request,
    open_tower_session,
    receipt_is_valid,
)
from watchtower.core import guard_state
from watchtower.service import DEFAULT_CONFIRMATIONS, DEFAULT_POLL_INTERVAL, Watchtower
from watchtower.store import TowerStore, TowerStoreError, read_snapshot

CONNECT_TIMEOUT = 30.0


def add_parsers(sub: Any) -> None:
    tower = sub.add_parser("watchtower", help="guard offline parties' channels on chain")
    ops = tower.add_subparsers(dest="op", required=True, metavar="OP")
    serve = ops.add_parser("serve", help="run a watchtower until interrupted")
    _common(serve)
    add_host_argument(serve)
    serve.add_argument("--port", type=int, default=0, help="port on --host (0: any free)")
    add_tls_argument(serve)
    serve.add_argument(
        "--confirmations",
        type=int,
        default=DEFAULT_CONFIRMATIONS,
        help="blocks a chain event must be under before the tower believes it",
    )
    serve.add_argument(
        "--poll-interval", type=float, default=DEFAULT_POLL_INTERVAL, help="seconds between polls"
    )
    serve.add_argument("--min-reward", default="0", help="euros: refuse requests paying less")
    serve.add_argument(
        "--stall-blocks",
        type=positive_int,
        default=DEFAULT_STALL_BLOCKS,
        help="blocks an update may stay unmined before it is replaced with a higher fee",
    )
    add_service_options(serve)
    status = ops.add_parser("status", help="which channels are guarded up to which nonce")
    _common(status)
    status.add_argument("--json", action="store_true", help="one JSON object per line")
    _tower_address(status, required=False)
    hire = ops.add_parser("hire", help="hand your latest received proofs to a running tower")
    _common(hire, default_account=1)
    _tower_address(hire, required=True)
    hire.add_argument("--reward", default="0.001", help="euros paid to the tower if it acts")
    hire.add_argument(
        "--any-tower", action="store_true", help="sign for watchtower 0x0 (any tower may submit)"
    )


def add_bench_parser(bench_sub: Any) -> None:
    """`cise bench watchtower` (registered among the other benchmarks)."""
    bench = bench_sub.add_parser(
        "watchtower", help="durable MonitorRequests/s and closes answered per block"
    )
    bench.add_argument("--json", action="store_true", help="JSON only (the default output)")
    bench.add_argument("--requests", type=positive_int, default=20_000)
    bench.add_argument(
        "--channels", type=positive_int, default=200, help="guarded, then closed in one block"
    )
    bench.add_argument("--runs", type=positive_int, default=3, help="median of this many runs")
    bench.add_argument("--frame", type=positive_int, default=256, help="requests a frame (<=1024)")
    bench.add_argument("--window", type=positive_int, default=8, help="frames unanswered at most")
    bench.add_argument("--block-time", type=float, default=1.0, help="seconds between blocks")
    bench.add_argument(
        "--chain",
        choices=("embedded", "anvil"),
        default="anvil",
        help="anvil (default: the chain runs apart, as a real node) or the in-process py-evm",
    )


def run_bench(args: argparse.Namespace) -> dict[str, Any]:
    """Run `cise bench watchtower`; its figures."""
    from watchtower.bench import BenchError, run_watchtower_bench

    if not args.block_time > 0:
        raise CliError("--block-time must be above 0")
    try:
        return run_watchtower_bench(
            requests=args.requests,
            channels=args.channels,
            runs=args.runs,
            frame=args.frame,
            window=args.window,
            block_time=args.block_time,
            chain=args.chain,
        )
    except BenchError as exc:
        raise CliError(f"bench watchtower: {exc}") from exc


def _common(parser: argparse.ArgumentParser, default_account: int = 3) -> None:
    parser.add_argument("--network", default=".cise/network.json", help="network file")
    add_account_arguments(parser, default_account)
    parser.add_argument("--data-dir", default=".cise", help="where this account's files live")


def _tower_address(parser: argparse.ArgumentParser, *, required: bool) -> None:
    parser.add_argument("--tower", required=required, help="the tower's address 0x...")
    parser.add_argument(
        "--tower-port",
        required=required,
        metavar="[HOST:]PORT",
        help="where the tower listens (host default 127.0.0.1)",
    )
    add_tls_argument(parser)


def tower_file(data_dir: Path, address: bytes) -> Path:
    """Where the tower of `address` keeps its state."""
    return data_dir / f"watchtower-{to_checksum(address)}.sqlite"


def _euros(units: int) -> str:
    return f"{Decimal(units) / UNITS_PER_EURO:.6f}"


def run(args: argparse.Namespace) -> int:
    if args.op == "serve":
        return _serve(args)
    if args.op == "hire":
        return _hire(args)
    if args.tower is not None:
        return _status_from_tower(args)
    return _status_from_file(args)


def _serve(args: argparse.Namespace) -> int:
    if not 0 <= args.port < 65536:
        raise CliError(f"--port must be 0..65535, got {args.port}")
    if args.confirmations < 0 or not args.poll_interval > 0:
        raise CliError("--confirmations must be >= 0 and --poll-interval above 0")
    min_reward = parse_amount(args.min_reward)
    key, client, _ = open_account(args)
    deployment = client.deployment
    try:
        store = TowerStore(
            tower_file(Path(args.data_dir), client.address),
            tower=client.address,
            chain_id=deployment.chain_id,
            manager=deployment.manager,
            start_cursor=BlockNumber(deployment.block_number - 1),
        )
    except TowerStoreError as exc:
        raise CliError(str(exc)) from None
    try:
        tower = Watchtower(
            LocalSigner(key),
            client,
            store,
            confirmations=args.confirmations,
            poll_interval=args.poll_interval,
            min_reward=min_reward,
            stall_blocks=args.stall_blocks,
        )
        board = tower_board(args, tower)
        tls = tls_for(args.tls, [args.host], args.data_dir, client.address)
        return run_until_stopped(
            run_with_metrics, board, _serve_tower, tower, args.port, args.host, tls,
            name="watchtower",
        )  # fmt: skip
    finally:
        store.close()


async def _serve_tower(
    tower: Watchtower, port: int, host: str = DEFAULT_HOST, tls: TlsConfig | None = None
) -> None:
    async with trio.open_nursery() as nursery:
        bound = await nursery.start(
            lambda task_status: tower.serve(host=host, port=port, tls=tls, task_status=task_status)
        )
        print(
            f"watchtower {to_checksum(tower.address)} listening on {show(host)}:{bound} "
            f"(chain block {tower.cursor})",
            flush=True,
        )


def _address_of(args: argparse.Namespace) -> Address:
    """The account's address (no node, no password needed)."""
    try:
        network = load_network(Path(args.network))
    except NetworkFileError as exc:
        raise CliError(str(exc)) from None
    return account_address(network, args)


def _status_from_file(args: argparse.Namespace) -> int:
    address = _address_of(args)
    try:
        snapshot = read_snapshot(tower_file(Path(args.data_dir), address))
    except TowerStoreError as exc:
        raise CliError(str(exc)) from None
    head = snapshot.cursor
    rows: list[dict[str, Any]] = []
    for key, proof in sorted(snapshot.guards.items()):
        channel = snapshot.channels.get(proof.channel_id)
        rows.append(
            {
                "channel": proof.channel_id,
                "guarded": to_checksum(proof.guarded),
                "partner": to_checksum(proof.partner),
                "nonce": proof.nonce,
                "reward": proof.reward,
                "state": guard_state(channel, proof, head, snapshot.submitted.get(key)),
                "settle_block": channel.settle_block if channel and channel.closer else None,
            }
        )
    if args.json:
        for row in rows:
            print(json.dumps(row))
        return 0
    print(
        f"watchtower {to_checksum(snapshot.tower)}  confirmed block {head}  "
        f"{len(snapshot.channels)} channels followed, {len(rows)} guarded"
    )
    for row in rows:
        settle = f", settle after block {row['settle_block']}" if row["settle_block"] else ""
        print(
            f"  channel {row['channel']}: {row['guarded']} guarded up to nonce {row['nonce']} "
            f"against {row['partner']} (reward {_euros(int(row['reward']))} €): {row['state']}{settle}"
        )
    return 0


def _endpoint(args: argparse.Namespace) -> TowerEndpoint:
    try:
        address = Address(parse_address(args.tower))
    except ValueError as exc:
        raise CliError(f"--tower: {exc}") from None
    host, port = host_port(args.tower_port, "--tower-port")
    return TowerEndpoint(address, port, host)


@asynccontextmanager
async def _session(
    signer: LocalSigner, endpoint: TowerEndpoint, tls: TlsConfig | None = None
) -> AsyncIterator[TowerSession]:
    """A session with the tower (over TLS with `tls`), its errors turned into CliErrors."""
    where = f"{show(endpoint.host)}:{endpoint.port}" + (" over TLS" if tls is not None else "")
    try:
        with trio.fail_after(CONNECT_TIMEOUT):
            async with open_tower_session(signer, endpoint, tls=tls) as session:
                yield session
    except trio.TooSlowError:
        raise CliError(f"the tower on {where} did not answer") from None
    except (OSError, TransportError, TowerError, PlainTransportRefusedError) as exc:
        raise CliError(f"tower on {where}: {exc}") from None


def _status_from_tower(args: argparse.Namespace) -> int:
    endpoint = _endpoint(args)
    key, client, _ = open_account(args)
    tls = tls_for(args.tls, [endpoint.host], args.data_dir, client.address)

    async def ask() -> msg.StatusReply:
        async with _session(LocalSigner(key), endpoint, tls) as session:
            return await session.status()

    reply = trio.run(ask)
    print(json.dumps({"tower": to_checksum(reply.tower), "block": reply.block_number}))
    for entry in reply.entries:
        print(
            json.dumps(
                {
                    "channel": entry.channel_id,
                    "nonce": entry.nonce,
                    "partner": to_checksum(entry.partner),
                    "reward": msg.amount_from_wire(entry.reward),
                    "state": entry.state,
                }
            )
        )
    return 0


def _hire(args: argparse.Namespace) -> int:
    endpoint = _endpoint(args)
    reward = parse_amount(args.reward)
    key, client, log_path = open_account(args)
    signer = LocalSigner(key)
    if not log_path.exists():
        raise CliError(f"no log for {to_checksum(signer.address)} at {log_path}: nothing to guard")
    try:  # read-only: it runs beside the account's agent, which owns the log
        store = SqliteStore(log_path, core_record_codec(), read_only=True)
    except StoreError as exc:
        raise CliError(str(exc)) from None
    try:
        node = read_chain_node(client, store)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    finally:
        store.close()
    watchtower = Address(b"\x00" * 20) if args.any_tower else endpoint.address
    requests = {}
    for number, channel in enumerate(node.channels.values(), 1):
        proof = channel.partner.balance_proof
        if proof.nonce > 0:
            requests[number] = monitor_request(
                signer, node.domain, proof, channel.partner.address, reward, watchtower, number
            )
    if not requests:
        print(json.dumps({"guarded": 0, "reason": "no channel has a proof from its partner yet"}))
        return 0

    tls = tls_for(args.tls, [endpoint.host], args.data_dir, signer.address)

    async def submit() -> msg.MonitorAnswers:
        async with _session(signer, endpoint, tls) as session:
            return await session.submit(list(requests.values()))

    answers = trio.run(submit)
    for receipt in answers.receipts:
        request = requests.get(receipt.request_id)
        if request is None or not receipt_is_valid(receipt, request, endpoint.address, node.domain):
            raise CliError(f"the tower's receipt for channel {receipt.channel_id} does not hold")
        print(
            json.dumps({"channel": receipt.channel_id, "nonce": receipt.nonce, "status": "guarded"})
        )
    for refusal in answers.refused:
        print(
            json.dumps(
                {
                    "channel": refusal.channel_id,
                    "status": "refused",
                    "code": refusal.code,
                    "reason": refusal.reason,
                }
            )
        )
    return 1 if answers.refused else 0


__all__ = ["add_bench_parser", "add_parsers", "run", "run_bench", "tower_file"]

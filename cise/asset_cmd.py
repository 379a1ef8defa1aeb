"""`cise asset register|run`: put an asset on the registry, and run its pay-per-use agent.

`cise asset register` (the operator's account) registers an asset with its agent key, metadata
and split. `cise asset run` (the agent's account) connects to the hub, reads the asset's current
split from the chain, and serves meter events from one source: `--source simulate` (a day of
deterministic events), `--source stdin` (JSON lines) or `--source http` (a loopback endpoint a
machine POSTs to); it prints one JSON outcome per event, anchors the ledger on chain every
`--anchor-every` seconds and at the end, and follows split changes on chain. `cise asset pay-pools`
(the agent's account) pays each financing pool in the asset's split the shares the agent kept for
it, from its internal balance on chain, once the ledger checks out against the chain.
`cise asset split propose|sign|show|apply`, `set-agent` and `transfer` are `cise.asset_split_cmd`.
`cise asset status` prints what the agent's ledger file says: uses, revenue, the shares not paid
(per beneficiary), the fee float and the last anchor against the ledger head (informational: exit 0
unless it cannot read; findings are `cise ledger verify`'s).

Exit status: 0 when everything asked for was done; 1 when the command ran but left something
undone (`asset run`: a share not paid or the chain's anchors disagreeing with the ledger at its
end; `pay-pools`: a refused payment); 2 for a bad argument (nothing done). Parsing, wiring and
printing only: the decisions are `assets` and `channels`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import msgspec
import trio
from eth_account import Account
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from web3 import Web3

from assets.agent import AssetAgent, AssetConfig, FloatFunder
from assets.anchoring import AnchorMismatchError, anchor_pending
from assets.audit import audit_ledger, splits_from_history
from assets.fee_float import DEFAULT_FEE_FLOAT
from assets.ledger import LedgerError
from assets.ledger_store import LedgerStore
from assets.meter_auth import MeterAuthError, load_tokens
from assets.meter_sources import (
    Outcome,
    open_stdin,
    open_stdout,
    run_jsonl,
    run_simulator,
    serve_http,
)
from assets.pool_payments import PoolPaymentError, PoolPaymentReport, pay_kept_shares
from assets.service_events import (
    ACTIONS,
    ServiceEventError,
    action_code,
    check_fields,
    service_event_to_json,
    sign_service_event,
)
from assets.tariff import Tariff, TariffError, parse_tariff
from channels.agent import Agent
from channels.chain.assets import AssetRegistryClient, canonical_split
from channels.chain.client import Web3ChainClient
from channels.chain.connection import Connection
from channels.chain.errors import ChainError
from channels.chain.financing import FinancingPoolClient
from channels.codec.eip712 import Domain
from channels.codec.keccak import keccak
from channels.core import state_changes as sc
from channels.core.splits import Split
from channels.core.types import Address, TokenAmount, to_checksum
from channels.input_limits import MAX_JSON_BYTES, InputError, check_json, load_json, read_json_file
from channels.service import NodeService, run_on_chain
from channels.signer import LocalSigner
from channels.tls import is_loopback_host
from cise import asset_split_cmd
from cise.accounts import add_account_arguments
from cise.arguments import address_argument, positive_int
from cise.asset_status import add_status_parser, asset_status, unpaid_lines
from cise.channel_cmd import open_account, parse_amount
from cise.errors import CliError
from cise.hub_cmd import connect_to_hub, open_service
from cise.ledger_cmd import asset_history, connect, parse_asset_id
from cise.ledger_files import LedgerFile, read_ledger
from cise.lifecycle import run_until_stopped
from cise.metrics import add_service_options, asset_gauges, node_board, run_with_metrics
from cise.money import euro
from cise.tls_options import (
    DEFAULT_HOST,
    add_host_argument,
    add_server_cert_argument,
    pinned_context,
    show,
    tls_for,
)

SETTLE_TIMEOUT = 120.0  # seconds to finish the uses under way after the source ended
FLOAT_LANDING_TIMEOUT = 60.0  # seconds for a fee-float deposit to show in the channel

log = logging.getLogger(__name__)


def add_parsers(sub: Any) -> None:
    asset = sub.add_parser("asset", help="pay-per-use assets: register, run the asset agent")
    ops = asset.add_subparsers(dest="op", required=True, metavar="OP")
    register = ops.add_parser("register", help="register an asset on chain (operator account)")
    _common(register, default_account=0)
    register.add_argument("asset", help="asset id: 0x + 64 hex, or a name (its keccak is the id)")
    register.add_argument("--agent", required=True, help="the asset agent's address 0x...")
    register.add_argument(
        "--split", required=True, help="beneficiaries: 0xADDR=PPM,0xADDR=PPM (sum 1000000)"
    )
    register.add_argument("--metadata-uri", default="", help="where the asset is described")
    register.add_argument("--metadata", default="", help="description text (its keccak is kept)")

    run = ops.add_parser("run", help="run the asset agent; prints JSON lines")
    _common(run, default_account=2)
    run.add_argument("asset", help="asset id: 0x + 64 hex, or its name")
    run.add_argument("--hub", required=True, help="the hub's address 0x...")
    run.add_argument("--hub-port", type=positive_int, required=True, help="on --hub-host")
    add_host_argument(run, "--hub-host")
    run.add_argument(
        "--tls",
        action="store_true",
        help="TLS to the hub and HTTPS on the meter endpoint (always on off the loopback; both "
        "ends must agree; clients pin the certificate the agent prints: --server-cert)",
    )
    run.add_argument("--tariff", required=True, help="tariff JSON, or @FILE")
    run.add_argument(
        "--users", default="any", help="who may use it: 0xADDR,0xADDR or 'any' (default)"
    )
    run.add_argument("--source", choices=("simulate", "stdin", "http"), default="stdin")
    add_service_options(run)
    run.add_argument("--count", type=positive_int, default=100, help="simulate: events")
    run.add_argument("--seed", type=int, default=1, help="simulate: random seed")
    run.add_argument("--prepaid", action="store_true", help="simulate: prepaid events")
    run.add_argument("--host", default=DEFAULT_HOST, help="http: the meter endpoint's address")
    run.add_argument("--http-port", type=int, default=0, help="http: port on --host")
    run.add_argument("--seconds", type=float, default=3600.0, help="http: how long to serve")
    run.add_argument(
        "--meter-token-file",
        type=Path,
        help="http: lines 'NAME TOKEN' (mode 0600); every POST must then carry one of the tokens"
        " (make one with: cise meter token NAME --append FILE)",
    )
    run.add_argument("--anchor-every", type=float, default=60.0, help="seconds between anchors")
    run.add_argument("--charge-timeout", type=float, default=30.0, help="seconds per charge")
    run.add_argument(
        "--fee-float",
        default=f"{DEFAULT_FEE_FLOAT / 1e6:.6f}",
        help="euros of its own kept in the channel with the hub for the routing fees of the shares"
        " (topped up from the agent's internal balance, else its wallet; 0: none)",
    )
    run.add_argument(
        "--settle-timeout",
        type=float,
        default=SETTLE_TIMEOUT,
        help="seconds to finish the uses under way once the source ended",
    )
    _add_lifecycle_parsers(ops)
    add_status_parser(ops)
    _add_pay_pools_parser(ops)
    asset_split_cmd.add_parsers(ops, _common)


def _add_pay_pools_parser(ops: Any) -> None:
    pay = ops.add_parser(
        "pay-pools", help="pay the financing pools their kept shares on chain (agent account)"
    )
    _common(pay, default_account=2)
    pay.add_argument("asset", help="asset id: 0x + 64 hex, or its name")
    pay.add_argument(
        "--ledger", required=True, type=Path, help="the asset's ledger file (sqlite or .jsonl)"
    )
    pay.add_argument(
        "--up-to-seq",
        type=positive_int,
        default=None,
        metavar="N",
        help="pay the shares kept up to this seq (default: the whole ledger)",
    )
    pay.add_argument("--json", action="store_true", help="print the report as one JSON object")


def _add_lifecycle_parsers(ops: Any) -> None:
    service = ops.add_parser(
        "service", help="record a service event (servicer account): signs and posts it"
    )
    _common(service, default_account=7)
    service.add_argument("asset", help="asset id: 0x + 64 hex, or its name")
    service.add_argument(
        "--url", required=True, help="the asset agent: http://127.0.0.1:PORT or https://HOST:PORT"
    )
    add_server_cert_argument(service)
    service.add_argument("--action", required=True, help=", ".join(ACTIONS.values()))
    service.add_argument("--event-id", required=True, help="unique per asset, e.g. job-2026-117")
    service.add_argument("--part", default="", help="part id (needed for 'part replaced')")
    service.add_argument("--details", default="", help="what was done")
    service.add_argument("--time", type=int, default=None, help="unix seconds (default: now)")
    history = ops.add_parser("history", help="uses, revenue and service events on one timeline")
    history.add_argument("asset", help="asset id: 0x + 64 hex, or its name")
    history.add_argument("--ledger", required=True, type=Path, help="the asset's ledger file")
    history.add_argument("--network", help="network file: add the chain's facts (transfers...)")


def _common(parser: argparse.ArgumentParser, default_account: int) -> None:
    parser.add_argument("--network", default=".cise/network.json", help="network file")
    add_account_arguments(parser, default_account)
    parser.add_argument("--data-dir", default=".cise", help="where this account's files live")


# ----------------------------------------------------------------------------- parsing


def parse_split(text: str) -> tuple[tuple[Address, ...], tuple[int, ...]]:
    """'0xA=400000,0xB=600000' in the contract's order (the contract checks the sum)."""
    parts: dict[Address, int] = {}
    for item in text.split(","):
        address, sep, ppm = item.partition("=")
        if not sep:
            raise CliError(f"--split: {item!r} is not ADDRESS=PPM")
        beneficiary = address_argument(address, "--split")
        if beneficiary in parts:
            raise CliError(f"--split: {address.strip()} appears twice")
        try:
            parts[beneficiary] = int(ppm)
        except ValueError:
            raise CliError(f"--split: {ppm!r} is not a whole number of ppm") from None
    return canonical_split(parts)


def parse_tariff_argument(text: str) -> Tariff:
    try:
        if text.startswith("@"):
            text = read_json_file(Path(text[1:]), what=f"--tariff {text}")
        else:
            text = check_json(text.encode(), what="--tariff")
    except OSError as exc:
        raise CliError(f"--tariff {text}: {exc.strerror}") from None
    except InputError as exc:
        raise CliError(str(exc)) from None
    try:
        return parse_tariff(text)
    except TariffError as exc:
        raise CliError(f"--tariff: {exc}") from None


def parse_users(text: str) -> frozenset[bytes] | None:
    """None means anyone may use the asset."""
    if text.strip() == "any":
        return None
    users = frozenset(address_argument(u, "--users") for u in text.split(",") if u.strip())
    if not users:
        raise CliError("--users: give addresses or 'any'")
    return users


# ----------------------------------------------------------------------------- commands


def run(args: argparse.Namespace) -> int:
    if args.op == "register":
        return _register(args)
    if args.op == "service":
        return _service(args)
    if args.op == "history":
        return _history(args)
    if args.op == "pay-pools":
        return _pay_pools(args)
    if args.op == "status":
        return asset_status(args)
    if args.op in ("split", "set-agent", "transfer"):
        return asset_split_cmd.run(args)
    return _run(args)


def _history(args: argparse.Namespace) -> int:
    asset_id = parse_asset_id(args.asset)
    try:
        ledger = read_ledger(args.ledger, asset_id)
    except LedgerError as exc:
        raise CliError(f"--ledger {args.ledger}: {exc}") from None
    chain = connect(Path(args.network)) if args.network else None
    return asset_history(Console(highlight=False), asset_id, args.asset, ledger, chain)


def _service(args: argparse.Namespace) -> int:
    asset_id = parse_asset_id(args.asset)
    url = urllib.parse.urlsplit(args.url)
    try:
        port = url.port
    except ValueError:
        port = None
    plain_ok = url.scheme == "http" and url.hostname is not None and is_loopback_host(url.hostname)
    if not (plain_ok or url.scheme == "https") or not url.hostname or port is None:
        raise CliError(
            "--url must be http://LOOPBACK:PORT or https://HOST:PORT (plain HTTP is for the "
            f"loopback only), got {args.url!r}"
        )
    context = pinned_context(args.server_cert) if url.scheme == "https" else None
    try:
        action = action_code(args.action)
        check_fields(args.event_id, action, args.part, args.details)
    except ServiceEventError as exc:
        raise CliError(str(exc)) from None
    key, client, _ = open_account(args)
    registry = _registry(client, key)
    try:
        version = registry.asset_of(asset_id).split_version
    except ChainError as exc:
        raise CliError(f"asset 0x{asset_id.hex()}: {exc}") from None
    body = sign_service_event(
        LocalSigner(key).sign_digest,
        Domain(client.deployment.chain_id, registry.registry),
        asset_id=asset_id,
        event_id=args.event_id,
        action=action,
        time=int(time.time()) if args.time is None else args.time,
        part_id=args.part,
        details=args.details,
        servicer=client.address,
        split_version=version,
    )
    request = urllib.request.Request(
        f"{url.scheme}://{show(url.hostname)}:{port}/service",
        data=json.dumps(service_event_to_json(body)).encode(),
        headers={"content-type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30, context=context) as response:
            answer = load_json(response.read(MAX_JSON_BYTES + 1), what=f"the answer of {args.url}")
    except urllib.error.HTTPError as exc:
        print(exc.read().decode(errors="replace"))
        return 1
    except OSError as exc:
        raise CliError(f"no asset agent answered at {args.url}: {exc}") from None
    except InputError as exc:
        raise CliError(str(exc)) from None
    print(json.dumps(answer))
    return 0


def _register(args: argparse.Namespace) -> int:
    asset_id = parse_asset_id(args.asset)
    agent = address_argument(args.agent, "--agent")
    beneficiaries, ppm = parse_split(args.split)
    key, client, _ = open_account(args)
    registry = _registry(client, key)
    try:
        receipt = registry.register_asset(
            asset_id,
            agent,
            keccak(args.metadata.encode()),
            args.metadata_uri,
            beneficiaries,
            ppm,
        )
    except ChainError as exc:
        raise CliError(f"the registry refused the asset: {exc}") from None
    print(
        json.dumps(
            {
                "asset": "0x" + asset_id.hex(),
                "operator": to_checksum(client.address),
                "agent": to_checksum(agent),
                "split_version": 1,
                "transaction": "0x" + receipt.transaction_hash.hex(),
            }
        )
    )
    return 0


def _registry(client: Web3ChainClient, key: bytes) -> AssetRegistryClient:
    try:
        return AssetRegistryClient(client.connection, client.deployment, Account.from_key(key))
    except ValueError as exc:
        raise CliError(f"the network has no asset registry: {exc}") from None


def _current_split(registry: AssetRegistryClient, asset_id: bytes, agent: Address) -> Split:
    try:
        info = registry.asset_of(asset_id)
        history = registry.asset_history(asset_id)
        splits = splits_from_history(history)
    except ChainError as exc:
        raise CliError(f"asset 0x{asset_id.hex()}: {exc}") from None
    except LedgerError as exc:
        raise CliError(str(exc)) from None
    if info.agent != agent:
        raise CliError(
            f"this account ({to_checksum(agent)}) is not the asset's agent "
            f"({to_checksum(info.agent)})"
        )
    return splits[info.split_version]


def contract_beneficiaries(
    connection: Connection, beneficiaries: Iterable[bytes]
) -> frozenset[bytes]:
    """The beneficiaries that have code on chain (financing pools): a contract cannot receive a
    routed payment, so the agent keeps their shares and pays them on chain (`pay-pools`)."""
    w3 = connection.w3
    return frozenset(
        bytes(b) for b in beneficiaries if w3.eth.get_code(Web3.to_checksum_address(bytes(b)))
    )


def _run(args: argparse.Namespace) -> int:
    asset_id = parse_asset_id(args.asset)
    hub = address_argument(args.hub, "--hub")
    tariff = parse_tariff_argument(args.tariff)
    users = parse_users(args.users)
    if not args.anchor_every > 0 or not args.charge_timeout > 0 or not args.seconds > 0:
        raise CliError("--anchor-every, --charge-timeout and --seconds must be positive")
    if not args.settle_timeout > 0:
        raise CliError("--settle-timeout must be positive")
    fee_float = parse_amount(args.fee_float)
    if not 0 <= args.http_port < 65536:
        raise CliError(f"--http-port must be 0..65535, got {args.http_port}")
    if args.source == "simulate" and users is None:
        raise CliError("--source simulate needs --users (whom to simulate)")
    args.meter_tokens = _meter_tokens(args)
    key, client, path = open_account(args)
    args.hub_tls = tls_for(args.tls, [args.hub_host], args.data_dir, client.address)
    args.http_tls = (
        tls_for(args.tls, [args.host], args.data_dir, client.address)
        if args.source == "http"
        else None
    )
    registry = _registry(client, key)
    split = _current_split(registry, asset_id, client.address)
    service = open_service(key, client, path)
    ledger = LedgerStore(Path(args.data_dir) / f"asset-{asset_id.hex()[:16]}-ledger.sqlite")
    # beneficiaries that are contracts (financing pools) are paid on chain at settlement
    kept = contract_beneficiaries(client.connection, split.beneficiaries)
    config = AssetConfig(
        asset_id=asset_id,
        kept=kept,
        domain=Domain(client.deployment.chain_id, registry.registry),
        tariff=tariff,
        split=split,
        known_user=(lambda _: True) if users is None else users.__contains__,
        charge_timeout=args.charge_timeout,
        fee_float=fee_float,
    )
    args.metrics_board = node_board(args, "asset", service, client)
    try:
        return run_until_stopped(
            run_with_metrics, args.metrics_board,
            _serve, args, service, client, registry, hub, ledger, config, users, name="asset agent"
        )  # fmt: skip
    finally:
        ledger.close()
        service.store.close()


def _meter_tokens(args: argparse.Namespace) -> dict[str, bytes] | None:
    """The machines' tokens of `--meter-token-file` (None without it), checked before serving."""
    if args.meter_token_file is None:
        return None
    if args.source != "http":
        raise CliError("--meter-token-file is for --source http")
    try:
        return load_tokens(args.meter_token_file)
    except MeterAuthError as exc:
        raise CliError(str(exc)) from None


async def _serve(
    args: argparse.Namespace,
    service: NodeService,
    client: Web3ChainClient,
    registry: AssetRegistryClient,
    hub: Address,
    ledger: LedgerStore,
    config: AssetConfig,
    users: frozenset[bytes] | None,
) -> int:
    chain_lock = trio.Lock()
    anchoring = _Anchoring()
    async with trio.open_nursery() as nursery:
        await nursery.start(run_on_chain, service, client)
        agent = Agent(service, hub)
        await connect_to_hub(agent, nursery, args.hub_port, host=args.hub_host, tls=args.hub_tls)
        config = dataclasses.replace(config, funder=_float_funder(service, client, hub, chain_lock))
        asset = AssetAgent(agent, ledger, config)
        if args.metrics_board is not None:
            args.metrics_board.add_gauges(lambda: asset_gauges(asset))
        await nursery.start(asset.run)
        nursery.start_soon(
            _keep_anchoring, asset, registry, chain_lock, args.anchor_every, anchoring, service
        )
        await _feed(args, asset, sorted("0x" + u.hex() for u in users or ()))
        with trio.move_on_after(args.settle_timeout):  # the uses under way finish
            await asset.wait_settled()
        anchor = await anchoring.once(asset, registry, chain_lock, service)
        fee_float = await asset.record_float()
        head = ledger.head()
        unpaid = asset.book.share_failures()
        summary: dict[str, object] = {
            "uses": asset.book.counts(),
            "ledger_head": 0 if head is None else head[0],
            "anchored_to": anchor.to_seq if anchor is not None else _anchored_to(ledger),
            "routing_fees": asset.stats.routing_fees,
            "float_top_ups": asset.stats.float_top_ups,
            "fee_float_spare": None if fee_float is None else fee_float.spare,
            "unpaid_shares": [
                {
                    "seq": f.seq,
                    "beneficiary": to_checksum(f.beneficiary),
                    "amount": f.amount,
                    "payment_id": f.payment_id,
                    "attempts": f.attempts,
                    "reason": f.reason,
                }
                for f in unpaid
            ],
            "anchor_mismatch": anchoring.mismatch,
        }
        print(json.dumps({"summary": summary}), flush=True)
        for line in unpaid_lines(unpaid):
            print(f"cise asset run: share not paid: {line}", file=sys.stderr, flush=True)
        if anchoring.mismatch:
            print(f"cise asset run: {anchoring.mismatch}", file=sys.stderr, flush=True)
        nursery.cancel_scope.cancel()
    return 1 if unpaid or anchoring.mismatch else 0


def _float_funder(
    service: NodeService, client: Web3ChainClient, hub: Address, chain_lock: trio.Lock
) -> FloatFunder:
    """The asset agent's `FloatFunder`: raise our deposit in the channel with the hub from our
    internal balance (our settled earnings) when it holds the increase, else from our wallet."""

    async def fund(channel_id: int, total: int) -> bool:
        channel = service.channel_with(hub)
        if channel is None or channel.channel_id != channel_id:
            return False
        increase = total - channel.our.deposit
        async with chain_lock:
            internal = await trio.to_thread.run_sync(client.balance_of, client.address)
            from_balance = internal >= increase
            if not from_balance:
                wallet = await trio.to_thread.run_sync(client.token_balance, client.address)
                if wallet < increase:
                    log.error(
                        "fee float: cannot raise the deposit by %d: internal balance %d, "
                        "wallet %d (shares may fail for lack of fee money)",
                        increase,
                        internal,
                        wallet,
                    )
                    return False
                await trio.to_thread.run_sync(client.approve, increase)
        service.handle(
            sc.ActionDeposit(channel.channel_id, TokenAmount(total), from_balance=from_balance)
        )
        with trio.move_on_after(FLOAT_LANDING_TIMEOUT):
            # the chain follower moves the deposit; no event to wait on
            while (now := service.channel_with(hub)) is not None and now.our.deposit < total:  # noqa: ASYNC110
                await trio.sleep(0.2)
            return now is not None
        log.error(
            "fee float: the deposit to %d did not land within %s s", total, FLOAT_LANDING_TIMEOUT
        )
        return False

    return fund


def _pay_pools(args: argparse.Namespace) -> int:
    """Check every argument and the ledger against the chain, then pay the pools (exit 1 when
    the chain refused a payment; what the balance could not pay is owed, not an error)."""
    asset_id = parse_asset_id(args.asset)
    try:
        ledger = read_ledger(args.ledger, asset_id)
    except LedgerError as exc:
        raise CliError(f"--ledger {args.ledger}: {exc}") from None
    if not ledger.entries:
        raise CliError(f"--ledger {args.ledger}: the ledger holds no entries")
    last = ledger.entries[-1].seq
    if args.up_to_seq is not None and args.up_to_seq > last:
        raise CliError(f"--up-to-seq {args.up_to_seq} is past the ledger's last seq {last}")
    key, client, _ = open_account(args)
    registry = _registry(client, key)
    agents, kept = _pools_of(client, registry, asset_id, ledger)
    factory = client.deployment.financing_factory
    pools = (
        None
        if factory is None
        else FinancingPoolClient(client.connection, factory, Account.from_key(key))
    )
    try:
        report = pay_kept_shares(
            client, ledger.entries, kept, pool_client=pools, up_to_seq=args.up_to_seq, payers=agents
        )
    except PoolPaymentError as exc:
        raise CliError(str(exc)) from None
    except ChainError as exc:
        raise CliError(
            f"the chain did not answer as expected: {exc} (run again: what was paid is read "
            "back from the chain)"
        ) from None
    if args.json:
        print(json.dumps(_report_json(asset_id, report)))
    else:
        # as `cise ledger` prints: wide enough for the addresses when the output is not a terminal
        width = None if os.isatty(1) else 160
        _print_report(Console(highlight=False, soft_wrap=False, width=width), asset_id, report)
    return 0 if report.ok else 1


def _pools_of(
    client: Web3ChainClient, registry: AssetRegistryClient, asset_id: bytes, ledger: LedgerFile
) -> tuple[frozenset[bytes], frozenset[bytes]]:
    """(every agent the asset had, its beneficiaries that are contracts), once this account is
    found to be the asset's agent and the ledger checks out against the chain."""
    try:
        info = registry.asset_of(asset_id)
        history = registry.asset_history(asset_id)
    except ChainError as exc:
        raise CliError(f"asset 0x{asset_id.hex()}: {exc}") from None
    if info.agent != client.address:
        raise CliError(
            f"this account ({to_checksum(client.address)}) is not the asset's agent "
            f"({to_checksum(info.agent)})"
        )
    audit = audit_ledger(
        ledger.entries,
        asset_id=asset_id,
        domain=Domain(client.deployment.chain_id, registry.registry),
        history=history,
        local_anchors=ledger.anchors,
    )
    if not audit.ok:
        raise CliError(f"--ledger {ledger.path}: the ledger does not check out: {audit.problem}")
    agents = frozenset(bytes(agent) for agent in history.agents())
    beneficiaries = {
        b for split in splits_from_history(history).values() for b in split.beneficiaries
    }
    return agents, contract_beneficiaries(client.connection, sorted(beneficiaries - agents))


def _report_json(asset_id: bytes, report: PoolPaymentReport) -> dict[str, object]:
    """The report with amounts in token units (1 unit = EUR 0.000001)."""
    return {
        "asset": "0x" + asset_id.hex(),
        "agent": to_checksum(report.account),
        "up_to_seq": report.up_to_seq,
        "available_before": report.available_before,
        "available_after": report.available_after,
        "paid_now": report.paid_now,
        "still_owed": report.still_owed,
        "pools": [
            {
                "pool": to_checksum(line.pool),
                "kept": line.kept,
                "paid_before": line.paid_before,
                "paid_now": line.paid_now,
                "still_owed": line.still_owed,
                "transaction": None if line.transaction is None else "0x" + line.transaction.hex(),
                "error": line.error or None,
                "synced": None
                if line.synced is None
                else {"to_contributors": line.synced[0], "to_operator": line.synced[1]},
                "sync_error": line.sync_error or None,
            }
            for line in report.pools
        ],
    }


def _print_report(console: Console, asset_id: bytes, report: PoolPaymentReport) -> None:
    if not report.pools:
        console.print(
            f"no beneficiary of asset 0x{asset_id.hex()} is a contract: nothing is kept for a "
            "pool, nothing to pay"
        )
        return
    upto = "the whole ledger" if report.up_to_seq is None else f"up to seq {report.up_to_seq}"
    table = Table(title=f"financing pools of asset 0x{asset_id.hex()} ({upto})")
    for name in ("pool", "kept", "paid before", "paid now", "still owed", "pool synced"):
        if name == "pool":
            table.add_column(name, no_wrap=True)
        else:
            table.add_column(name, justify="left" if name == "pool synced" else "right")
    for line in report.pools:
        if line.synced is not None:
            synced = f"{euro(line.synced[0])} to contributors, {euro(line.synced[1])} to operator"
        else:
            synced = escape(line.sync_error) or "nothing to account"
        table.add_row(
            to_checksum(line.pool),
            euro(line.kept),
            euro(line.paid_before),
            euro(line.paid_now),
            euro(line.still_owed),
            synced,
        )
    console.print(table)
    console.print(
        f"internal balance of the agent {to_checksum(report.account)}: "
        f"{euro(report.available_before)} before, {euro(report.available_after)} after"
    )
    for line in report.pools:
        if line.error:
            console.print(f"[bold red]payment to {to_checksum(line.pool)} refused:[/] "
                          f"{escape(line.error)}")  # fmt: skip
    if not report.ok:
        console.print("[bold red]a payment was refused: run again once the cause is fixed[/]")
    elif report.still_owed:
        console.print(
            f"[bold yellow]{euro(report.still_owed)} still owed:[/] the internal balance was "
            "short; run again after the next settlement"
        )
    else:
        console.print("[bold green]every pool is paid the shares kept for it[/]")


def _anchored_to(ledger: LedgerStore) -> int:
    anchors = ledger.anchors()
    return anchors[-1].to_seq if anchors else 0


def _print_outcome(outcome: Outcome) -> None:
    print(msgspec.json.encode(outcome).decode(), flush=True)


async def _feed(args: argparse.Namespace, asset: AssetAgent, users: list[str]) -> None:
    async def sink(event: Any) -> Outcome:
        outcome = await asset.handle(event)
        if args.source != "stdin":  # run_jsonl prints its own outcome lines
            _print_outcome(outcome)
        return outcome

    if args.source == "simulate":
        await run_simulator(
            sink,
            users=users,
            count=args.count,
            seed=args.seed,
            start_at=int(time.time()) - 86_400,
            mean_gap_s=60.0,
            units=(1, asset.config.tariff.max_units),
            prefix="sim-",
            rate_per_s=None,
            prepaid=args.prepaid,
        )
    elif args.source == "stdin":
        await run_jsonl(sink, open_stdin(), open_stdout())
    else:
        async with trio.open_nursery() as nursery:
            port = await nursery.start(
                lambda task_status: serve_http(
                    sink,
                    port=args.http_port,
                    posts={"/service": asset.service_json},
                    tokens=args.meter_tokens,
                    host=args.host,
                    ssl_context=None if args.http_tls is None else args.http_tls.server_context,
                    task_status=task_status,
                )
            )
            listening: dict[str, str] = {"listening": f"{show(args.host)}:{port}"}
            if args.http_tls is not None:  # what a client pins: --server-cert
                listening["certificate"] = str(args.http_tls.certificate_path)
            print(json.dumps(listening), flush=True)
            await trio.sleep(args.seconds)
            nursery.cancel_scope.cancel()


class _Anchoring:
    """Anchoring for `asset run`: after the chain was found to disagree with the ledger, it says
    so (a JSON finding on stdout, an error in the log) and anchors no more; metering, charging and
    paying shares go on (their money is idempotent by payment id, whatever the anchors say)."""

    def __init__(self) -> None:
        self.mismatch: str | None = None

    async def once(
        self,
        asset: AssetAgent,
        registry: AssetRegistryClient,
        chain_lock: trio.Lock,
        service: NodeService,
    ) -> Any:
        """Anchor what is pending through the agent's node (its transaction manager)."""
        if self.mismatch is not None:
            return None
        try:
            return await anchor_pending(
                asset.ledger, registry, asset.config.asset_id, chain_lock, service.sends
            )
        except AnchorMismatchError as exc:
            self.mismatch = f"anchoring stopped: {exc}"
            log.error("%s", self.mismatch)
            finding = {"finding": "anchor mismatch", "anchor": exc.index, "detail": str(exc)}
            print(json.dumps(finding), flush=True)
            return None


async def _keep_anchoring(
    asset: AssetAgent,
    registry: AssetRegistryClient,
    chain_lock: trio.Lock,
    every: float,
    anchoring: _Anchoring,
    service: NodeService,
) -> None:
    """Anchor every `every` seconds; pick up a new split version when the chain has one."""
    while True:
        await trio.sleep(every)
        await anchoring.once(asset, registry, chain_lock, service)
        async with chain_lock:
            info = await trio.to_thread.run_sync(registry.asset_of, asset.config.asset_id)
        if info.split_version > asset.split.version:
            async with chain_lock:
                history = await trio.to_thread.run_sync(
                    registry.asset_history, asset.config.asset_id
                )
            split = splits_from_history(history)[info.split_version]
            async with chain_lock:
                kept = await trio.to_thread.run_sync(
                    contract_beneficiaries, registry.connection, split.beneficiaries
                )
            asset.set_split(split, kept)


__all__ = ["add_parsers", "contract_beneficiaries", "parse_split", "parse_users", "run"]

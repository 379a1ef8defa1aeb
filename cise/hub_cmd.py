"""`cise hub serve` and `cise agent pay|receive`: the hub and its agents on a network file's chain.

`cise hub serve` runs the routing hub for one account of a network (`cise chain` writes the
file): it restores the hub's log from `--data-dir`, follows the chain, listens on `--host`
(127.0.0.1 by default; over TLS with `--tls`, always off the loopback: `cise.tls_options`; on a
governed network it admits members and its channel partners only: `hub.admission`) and
announces its fee (flat + ppm, never above `--fee-cap`). `cise agent pay` connects an account's
agent to the hub, pays once and prints the outcome as JSON; `cise agent receive` serves as a
payee until stopped (or for `--seconds`) and prints each payment received as a JSON line. On a
governed network the hub and every agent follow the members' hub fee cap while they run
(`channels.governed`): the hub lowers its announced fee to it, an agent refuses to lock a fee above
it or to route through a hub that is not a member with the hub role. Both
services exit 0 on SIGINT/SIGTERM (`cise.lifecycle`). Parsing, wiring and printing
only: decisions are `channels` and `hub`.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import trio

from api.app import create_app
from api.server import serve as serve_api
from api.sources import ApiSources, hub_live_view
from channels.agent import Agent, ChargePolicy, PaymentError, PaymentOutcome
from channels.chain.client import Web3ChainClient
from channels.chain.governance import GovernanceClient
from channels.chain.governed_limits import GovernedLimits, GovernedLimitsFollower
from channels.core.fees import FeeSchedule
from channels.core.types import Address, to_checksum
from channels.governed import follow_governed_limits
from channels.records import core_record_codec
from channels.service import CONFIRMATION_FLUSH, NodeService, restore_chain_node, run_on_chain
from channels.signer import LocalSigner
from channels.store import SqliteStore, StoreError
from channels.tls import PlainTransportRefusedError, TlsConfig
from cise.accounts import add_account_arguments
from cise.api_cmd import parse_ledger
from cise.arguments import address_argument, positive_int
from cise.channel_cmd import open_account, parse_amount
from cise.errors import CliError
from cise.lifecycle import run_until_stopped
from cise.metrics import (
    MetricsBoard,
    add_service_options,
    hub_gauges,
    node_board,
    run_with_metrics,
)
from cise.money import euro
from cise.settle_cmd import (
    add_hub_options,
    claim_settlement_store,
    hub_settlement,
    open_settlement_store,
)
from cise.tls_options import (
    DEFAULT_HOST,
    add_host_argument,
    add_tls_argument,
    host_port,
    show,
    tls_for,
)
from hub.admission import MemberAdmission
from hub.mediator import MediationTerms
from hub.service import Hub
from settlement.service import SettlementConfig, SettlementService
from settlement.store import SettlementStore
from watchtower.client import TowerEndpoint, TowerGuard

log = logging.getLogger(__name__)

READY_TIMEOUT = 30.0
PENDING_EXIT = 3  # `agent pay`: no outcome yet (a lock may still complete); pay the id again


def add_parsers(sub: Any) -> None:
    hub = sub.add_parser("hub", help="the routing hub")
    hub_ops = hub.add_subparsers(dest="op", required=True, metavar="OP")
    serve = hub_ops.add_parser("serve", help="run the hub until interrupted")
    _common(serve, default_account=0)
    add_host_argument(serve)
    serve.add_argument("--port", type=int, default=0, help="port on --host (0: any free)")
    add_tls_argument(serve)
    serve.add_argument("--fee-flat", default="0.000010", help="euros per payment")
    serve.add_argument("--fee-ppm", type=int, default=1_000, help="parts per million of amount")
    serve.add_argument("--fee-cap", default="0.010000", help="euros: the fee never exceeds it")
    serve.add_argument("--reveal-timeout", type=positive_int, default=5, help="blocks")
    serve.add_argument("--lock-timeout", type=positive_int, default=40, help="blocks")
    serve.add_argument("--low-water", default="0", help="euros: report capacity below this")
    serve.add_argument("--top-up-to", default="0", help="euros: then top up from the balance")
    add_hub_options(serve)
    add_service_options(serve)
    serve.add_argument("--api-port", type=int, help="also serve the API and dashboard, live")
    serve.add_argument("--ledger", action="append", default=[], metavar="ID=PATH",
                       help="with --api-port: an asset's ledger file for the API; repeat")  # fmt: skip

    agent = sub.add_parser("agent", help="pay or get paid through a hub")
    agent_ops = agent.add_subparsers(dest="op", required=True, metavar="OP")
    pay = agent_ops.add_parser("pay", help="pay once through the hub; prints JSON")
    _common(pay, default_account=1)
    _hubaddress_argument(pay)
    pay.add_argument("payee", help="payee address 0x...")
    pay.add_argument("amount", help="euros, e.g. 0.004321")
    pay.add_argument("--payment-id", type=positive_int, required=True, help="1 .. 2**64-1")
    pay.add_argument(
        "--count",
        type=positive_int,
        default=1,
        help="pay N payments at once, ids ID .. ID+N-1; one JSON line each as it ends",
    )
    pay.epilog = (
        "Prints status completed (exit 0), failed (exit 1: the payment did not happen), or "
        "pending (exit 3: no outcome in time, a lock may still complete; pay the same id again "
        "to learn how it ended)."
    )
    receive = agent_ops.add_parser("receive", help="serve as a payee; prints JSON lines")
    _common(receive, default_account=2)
    _hubaddress_argument(receive)
    receive.add_argument(
        "--seconds", type=float, default=None, help="stop after this long (default: until stopped)"
    )
    receive.add_argument(
        "--accept-charges-from",
        default="",
        help="assets whose charges (per use) this agent pays: 0xADDR,0xADDR",
    )
    receive.add_argument("--max-charge", default="5", help="euros: the most one charge may ask")
    receive.add_argument(
        "--watchtower",
        action="append",
        default=[],
        metavar="ADDR@[HOST:]PORT",
        help="a watchtower (host default 127.0.0.1) to hand the latest received proofs to "
        "(repeatable; over TLS with --tls or off the loopback)",
    )
    receive.add_argument("--tower-reward", default="0", help="euros paid to a tower that rescues")
    add_service_options(receive)


def _common(parser: argparse.ArgumentParser, default_account: int) -> None:
    parser.add_argument("--network", default=".cise/network.json", help="network file")
    add_account_arguments(parser, default_account)
    parser.add_argument("--data-dir", default=".cise", help="where this account's log lives")


def _hubaddress_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--hub", required=True, help="the hub's address 0x...")
    parser.add_argument("--hub-port", type=positive_int, required=True, help="on --hub-host")
    add_host_argument(parser, "--hub-host")
    add_tls_argument(parser)


def _open(args: argparse.Namespace) -> tuple[NodeService, Web3ChainClient]:
    key, client, path = open_account(args)
    return open_service(key, client, path), client


def open_service(key: bytes, client: Web3ChainClient, path: Path) -> NodeService:
    """The account's node service on its log at `path`, restored and checked against the chain."""
    signer = LocalSigner(key)
    try:
        store = SqliteStore(path, core_record_codec())
    except StoreError as exc:
        raise CliError(str(exc)) from None
    try:
        node = restore_chain_node(signer, client, store)
    except ValueError as exc:
        store.close()
        raise CliError(str(exc)) from None
    return NodeService(signer, store, node)


def run(args: argparse.Namespace) -> int:
    if args.command == "hub":
        fees = _fees(args)
        try:
            terms = MediationTerms(fees, args.reveal_timeout, args.lock_timeout)
        except ValueError as exc:
            raise CliError(str(exc)) from None
        low_water, top_up_to = parse_amount(args.low_water), parse_amount(args.top_up_to)
        if top_up_to and top_up_to <= low_water:
            raise CliError("--top-up-to must be above --low-water")
        if not 0 <= args.port < 65536:
            raise CliError(f"--port must be 0..65535, got {args.port}")
        service, client = _open(args)
        closing = [service.store.close]
        try:
            listen = Listen(
                args.host, tls_for(args.tls, [args.host], args.data_dir, service.address)
            )
            board = node_board(args, "hub", service, client)
            _check_network_fee_cap(client, fees.cap)
            settlement = hub_settlement(args, client)
            if settlement is not None:
                store = open_settlement_store(settlement[1], read_only=False)
                closing.append(store.close)
                claim_settlement_store(store, client)
            return run_until_stopped(
                run_with_metrics,
                board,
                _serve_hub,
                service,
                client,
                terms,
                low_water,
                top_up_to,
                args.port,
                None if settlement is None else (settlement[0], store),
                _api_sources(args, client),
                args.api_port or 0,
                board,
                listen,
                name="hub",
            )
        finally:
            for close in closing:
                close()
    hub = address_argument(args.hub, "--hub")
    if args.op == "pay":
        payee = address_argument(args.payee, "payee")
        amount = parse_amount(args.amount)
        if amount <= 0:
            raise CliError("the amount must be positive")
        if args.payment_id + args.count - 1 >= 2**64:
            raise CliError("--payment-id + --count - 1 must stay below 2**64")
        service, client = _open(args)
        try:
            where = _hub_endpoint(args, service)
            if args.count > 1:
                return trio.run(
                    _pay_many, service, client, hub, where, payee, amount,
                    args.payment_id, args.count,
                )  # fmt: skip
            return trio.run(_pay, service, client, hub, where, payee, amount, args.payment_id)
        except* CliError as group:  # raised inside the agent's nursery: one line, no traceback
            error: BaseException = group
            while isinstance(error, BaseExceptionGroup):
                error = error.exceptions[0]
            raise error from None
        finally:
            service.store.close()
    if args.seconds is not None and not args.seconds > 0:
        raise CliError("--seconds must be positive")
    policy = _charge_policy(args.accept_charges_from, parse_amount(args.max_charge))
    towers = [_tower(text) for text in args.watchtower]
    reward = parse_amount(args.tower_reward)
    service, client = _open(args)
    try:
        where = _hub_endpoint(args, service)
        return run_until_stopped(
            run_with_metrics,
            node_board(args, "agent", service, client),
            _receive,
            service,
            client,
            hub,
            where,
            args.seconds,
            policy,
            towers,
            reward,
            tls_for(args.tls, [t.host for t in towers], args.data_dir, service.address),
            name="agent",
        )
    finally:
        service.store.close()


def _check_network_fee_cap(client: Web3ChainClient, fee_cap: int) -> None:
    """A hub may not announce a cap above the one the members set (`NetworkParameters`)."""
    if not client.deployment.governed:
        return
    network_cap = GovernanceClient(client.connection, client.deployment, None).parameters()
    if fee_cap > network_cap.hub_fee_cap:
        raise CliError(
            f"--fee-cap {euro(fee_cap)} is above the network's hub fee cap "
            f"{euro(network_cap.hub_fee_cap)} (set by the members' governance)"
        )


def _fees(args: argparse.Namespace) -> FeeSchedule:
    try:
        return FeeSchedule(parse_amount(args.fee_flat), args.fee_ppm, parse_amount(args.fee_cap))
    except ValueError as exc:
        raise CliError(f"fee: {exc}") from None


async def _serve_hub(
    service: NodeService,
    client: Web3ChainClient,
    terms: MediationTerms,
    low_water: int,
    top_up_to: int,
    port: int,
    settlement: tuple[SettlementConfig, SettlementStore] | None = None,
    api: ApiSources | None = None,
    api_port_wanted: int = 0,
    board: MetricsBoard | None = None,
    listen: Listen | None = None,
) -> None:
    listen = listen or Listen(DEFAULT_HOST, None)
    hub = Hub(service, terms, low_water=low_water, top_up_to=top_up_to)
    if board is not None:
        board.add_gauges(partial(hub_gauges, hub))
    async with trio.open_nursery() as nursery:
        await nursery.start(run_on_chain, service, client)
        await _follow_limits(
            nursery,
            service,
            client,
            None,
            lambda limits: hub.apply_governed_fee_cap(limits.hub_fee_cap),
        )
        admit = None
        if client.deployment.governed:  # members only (and the hub's channel partners)
            admission = MemberAdmission(
                service, GovernanceClient(client.connection, client.deployment, None)
            )
            await nursery.start(partial(admission.follow, chain_call=service.chain_call))
            admit = admission.admit
        bound = await nursery.start(
            lambda task_status: hub.serve(host=listen.host, port=port, tls=listen.tls,
                                          admit=admit, task_status=task_status)
        )  # fmt: skip
        print(
            f"hub {to_checksum(service.address)} listening on {show(listen.host)}:{bound}",
            flush=True,
        )
        if listen.tls is not None:
            log.info("hub serves over TLS, certificate %s", listen.tls.certificate_path)
        if settlement is not None:
            config, store = settlement
            await nursery.start(SettlementService(service, client, store, config).run)
            print(
                f"settlement every {config.policy.period_s} s; record in {store.path}",
                flush=True,
            )
        if api is not None:
            api.live = lambda: hub_live_view(hub)
            if settlement is not None:
                api.settlement = Path(settlement[1].path)
            api_port = await nursery.start(
                lambda task_status: serve_api(create_app(api), port=api_port_wanted,
                                              task_status=task_status)
            )  # fmt: skip
            print(f"api listening on http://127.0.0.1:{api_port}/", flush=True)


def _api_sources(args: argparse.Namespace, client: Web3ChainClient) -> ApiSources | None:
    """With --api-port: what the API reads (the hub's chain, the ledgers named, and live, the
    hub itself); CliError on a bad port or ledger."""
    if args.api_port is None:
        if args.ledger:
            raise CliError("--ledger is for the API: give --api-port too")
        return None
    if not 0 <= args.api_port < 65536:
        raise CliError(f"--api-port must be 0..65535, got {args.api_port}")
    ledgers, names = {}, {}
    for text in args.ledger:
        asset_id, name, path = parse_ledger(text)
        ledgers[asset_id] = path
        if name is not None:
            names[asset_id] = name
    return ApiSources(client.connection, client.deployment, ledgers=ledgers, names=names)


def _tower(text: str) -> TowerEndpoint:
    """ADDR@PORT or ADDR@HOST:PORT of a watchtower (host default 127.0.0.1)."""
    address, sep, where = text.partition("@")
    if not sep:
        raise CliError(f"--watchtower {text!r}: want ADDRESS@PORT or ADDRESS@HOST:PORT")
    host, port = host_port(where, "--watchtower")
    return TowerEndpoint(address_argument(address, "--watchtower"), port, host)


@dataclass(frozen=True, slots=True)
class Listen:
    """Where a service listens, and its TLS (None: plain, loopback only)."""

    host: str
    tls: TlsConfig | None


@dataclass(frozen=True, slots=True)
class HubEndpoint:
    """Where an agent reaches its hub, and its TLS (None: plain, loopback only)."""

    host: str
    port: int
    tls: TlsConfig | None


def _hub_endpoint(args: argparse.Namespace, service: NodeService) -> HubEndpoint:
    """`--hub-host`/`--hub-port`/`--tls` (TLS off the loopback whatever `--tls` says)."""
    tls = tls_for(args.tls, [args.hub_host], args.data_dir, service.address)
    return HubEndpoint(args.hub_host, args.hub_port, tls)


def _charge_policy(assets: str, max_charge: int) -> ChargePolicy | None:
    """Pay unsolicited charges from these assets, each up to `max_charge` (None: pay none)."""
    allowed = {address_argument(a, "--accept-charges-from") for a in assets.split(",") if a.strip()}
    if not allowed:
        return None

    def accept(payee: Address, amount: int, payment_id: int) -> bool:
        return payee in allowed and amount <= max_charge

    return accept


async def start_agent(
    service: NodeService,
    client: Web3ChainClient,
    hub: Address,
    port: int,
    nursery: trio.Nursery,
    policy: ChargePolicy | None = None,
    *,
    host: str = DEFAULT_HOST,
    tls: TlsConfig | None = None,
) -> Agent:
    """The agent of `service` as `cise agent` runs it, in `nursery`: following the chain and the
    governed limits (the hub fee cap, the hub's role), connected to the hub on `host`:`port`
    (over TLS with `tls`) and ready (its terms known); CliError when no hub answered within
    READY_TIMEOUT, or at once when the hub or its certificate refused us or was not the hub
    named (a refusal does not pass by waiting)."""
    agent = Agent(service, hub) if policy is None else Agent(service, hub, accept_charge=policy)
    await nursery.start(run_on_chain, service, client)
    await _follow_limits(  # before the first payment: each is checked against the cap
        nursery,
        service,
        client,
        hub,
        lambda limits: agent.apply_governed_limits(limits.hub_fee_cap, limits.hub_problem),
    )
    await connect_to_hub(agent, nursery, port, host=host, tls=tls)
    return agent


async def connect_to_hub(
    agent: Agent,
    nursery: trio.Nursery,
    port: int,
    *,
    host: str = DEFAULT_HOST,
    tls: TlsConfig | None = None,
) -> None:
    """`agent.start` on `host`:`port` (TLS with `tls`), then until the hub announced its terms;
    CliError when none did within READY_TIMEOUT, or at once on a refusal (`_watch_refusal`)."""
    try:
        agent.start(nursery, port, host=host, tls=tls)
    except PlainTransportRefusedError as exc:
        raise CliError(f"--hub-host: {exc} (add --tls)") from None
    where = f"{show(host)}:{port}" + (" over TLS" if tls is not None else "")
    with trio.move_on_after(READY_TIMEOUT) as scope:
        async with trio.open_nursery() as waiting:
            waiting.start_soon(_watch_refusal, agent, where)
            await agent.wait_ready()
            waiting.cancel_scope.cancel()
    if scope.cancelled_caught:
        raise CliError(
            f"no hub answered on {where} within {READY_TIMEOUT:g} s"
            f" ({agent.connection_problem or 'no terms announced'})"
        )


# `Agent.connection_problem` texts (from `channels.transport`) that retrying cannot change: not
# admitted, another address than --hub, a TLS end against a plain one
REFUSALS = (
    "the hub refused us",
    "the peer refused the connection",
    "expected peer 0x",
    "the peer started a TLS handshake",
    "the TLS handshake failed",
)
FAILING = "the hub connection failed"  # any other handshake failure: a refusal if it persists
PERSISTING_S = 3.0  # ... this long (several attempts; a hub dying mid-handshake is down after)


async def _watch_refusal(agent: Agent, where: str) -> None:
    """CliError as soon as the connection is refused (not admitted, another address, plain
    against TLS), or fails its handshake for PERSISTING_S in a row: retrying would only repeat
    it. A hub that cannot be reached (not up yet) is waited for."""
    failing_since: float | None = None
    while True:
        problem = agent.connection_problem
        if problem is not None and any(refusal in problem for refusal in REFUSALS):
            raise CliError(f"the hub on {where}: {problem}")
        if problem is None or not problem.startswith(FAILING):
            failing_since = None
        elif failing_since is None:
            failing_since = trio.current_time()
        elif trio.current_time() - failing_since >= PERSISTING_S:
            raise CliError(f"the hub on {where}: {problem}")
        await trio.sleep(0.05)


async def _follow_limits(
    nursery: trio.Nursery,
    service: NodeService,
    client: Web3ChainClient,
    hub: Address | None,
    apply: Callable[[GovernedLimits], None],
) -> None:
    """On a governed network: read the hub fee cap (and `hub`'s standing) now, `apply` it, and
    follow its changes in `nursery`. CliError when the chain cannot say."""
    if not client.deployment.governed:
        return
    follower = GovernedLimitsFollower(client.connection, client.deployment, hub)
    try:
        await service.chain_call(follower.read)
    except Exception as exc:
        raise CliError(f"cannot read the network's hub fee cap: {exc}") from None
    await nursery.start(
        partial(follow_governed_limits, follower, apply, chain_call=service.chain_call)
    )


async def _pay(
    service: NodeService,
    client: Web3ChainClient,
    hub: Address,
    where: HubEndpoint,
    payee: Address,
    amount: int,
    payment_id: int,
) -> int:
    async with trio.open_nursery() as nursery:
        agent = await start_agent(
            service, client, hub, where.port, nursery, host=where.host, tls=where.tls
        )
        try:
            outcome = await agent.pay(payee, amount, payment_id)
        except PaymentError as exc:
            status = _error_status(agent, payment_id, payee, amount)
            print(json.dumps({"payment_id": payment_id, "status": status, "reason": str(exc)}))
            nursery.cancel_scope.cancel()
            return 1 if status == "failed" else PENDING_EXIT
        with trio.move_on_after(3 * CONFIRMATION_FLUSH):
            await agent.wait_delivered()  # a repeat of this command then resends nothing
        print(_outcome_json(outcome))
        nursery.cancel_scope.cancel()
    return 0


def _outcome_json(outcome: PaymentOutcome) -> str:
    return json.dumps(
        {
            "payment_id": outcome.payment_id,
            "status": "completed",
            "payee": to_checksum(outcome.payee),
            "amount": outcome.amount,
            "fee": outcome.fee,
        }
    )


async def _pay_many(
    service: NodeService,
    client: Web3ChainClient,
    hub: Address,
    where: HubEndpoint,
    payee: Address,
    amount: int,
    first_id: int,
    count: int,
) -> int:
    """Pay ids first_id .. first_id+count-1 at once (each idempotent by id, as `_pay`); one JSON
    line per payment as it ends (flushed: a parent may kill this payer with payments in flight).
    Exit status 1 if any failed, else PENDING_EXIT if any is still pending."""
    unfinished = {"failed": 0, "pending": 0}
    async with trio.open_nursery() as nursery:
        agent = await start_agent(
            service, client, hub, where.port, nursery, host=where.host, tls=where.tls
        )

        async def one(payment_id: int) -> None:
            try:
                outcome = await agent.pay(payee, amount, payment_id)
            except PaymentError as exc:
                status = _error_status(agent, payment_id, payee, amount)
                unfinished[status] += 1
                line = {"payment_id": payment_id, "status": status, "reason": str(exc)}
                print(json.dumps(line), flush=True)
                return
            print(_outcome_json(outcome), flush=True)

        async with trio.open_nursery() as payments:
            for payment_id in range(first_id, first_id + count):
                payments.start_soon(one, payment_id)
        with trio.move_on_after(3 * CONFIRMATION_FLUSH):
            await agent.wait_delivered()
        nursery.cancel_scope.cancel()
    if unfinished["failed"]:
        return 1
    return PENDING_EXIT if unfinished["pending"] else 0


def _error_status(agent: Agent, payment_id: int, payee: Address, amount: int) -> str:
    """ "failed" when the payment's record says so; else "pending": the agent gave up waiting
    (the payee or the hub away) while a lock it made may still complete or expire, or the
    payment was never locked; paying the id again reports how it ended. Printing "failed" there
    told an operator a payment had failed that then completed."""
    record = agent.payments.get(payment_id)
    if record is None or (record.payee, record.amount) != (payee, amount):
        return "failed"  # refused before it began (bad arguments, an id used for another)
    return "pending" if record.status in ("requested", "locked") else "failed"


async def _receive(
    service: NodeService,
    client: Web3ChainClient,
    hub: Address,
    where: HubEndpoint,
    seconds: float | None,
    policy: ChargePolicy | None,
    towers: list[TowerEndpoint],
    reward: int,
    tower_tls: TlsConfig | None = None,
) -> int:
    async with trio.open_nursery() as nursery:
        agent = await start_agent(
            service, client, hub, where.port, nursery, policy, host=where.host, tls=where.tls
        )
        if agent.lock_time_problem is not None:  # every payment to us would be refused
            raise CliError(agent.lock_time_problem)
        if towers:  # while we serve, our latest received proofs go to the towers
            TowerGuard(service, towers, reward=reward, tls=tower_tls).start(nursery)
        print(json.dumps({"connected": to_checksum(service.address)}), flush=True)
        with trio.move_on_after(math.inf if seconds is None else seconds) as timer:
            async for payment in agent.received:
                print(
                    json.dumps(
                        {
                            "payment_id": payment.payment_id,
                            "payer": to_checksum(payment.payer),
                            "amount": payment.amount,
                        }
                    ),
                    flush=True,
                )
        why = (
            f"--seconds {seconds:g} elapsed"
            if timer.cancelled_caught
            else "its payment stream ended"
        )
        print(f"agent stopped: {why}", file=sys.stderr, flush=True)
        nursery.cancel_scope.cancel()
    return 0


__all__ = [
    "PENDING_EXIT",
    "READY_TIMEOUT",
    "add_parsers",
    "connect_to_hub",
    "open_service",
    "run",
    "start_agent",
]

"""A process of the asset benchmark: `python -m assets.bench_peer --role asset|peers`.

What it is for: `assets.bench` runs three processes on loopback, a `hub.synthetic_hub` (spawned as
a program, never imported: assets depend on `channels` only) and two of these:

- `--role asset`: the pay-per-use asset, an `Agent` (its channel store, sqlite synchronous=FULL)
  and an `AssetAgent` on top (its ledger and use book in `--ledger`, synchronous=FULL). It prints
  `READY` once connected to the hub, waits for `GO` on stdin, then is its own meter: the seeded
  simulator (`assets.meter_sources.run_simulator`) feeds `--uses` postpaid events to
  `AssetAgent.handle` one after the other, so at most `--in-flight` uses are under way (the agent's
  own bound: `handle` waits for a free slot). It prints `RESULT <json>` (timing, per-use latencies,
  counters, its channel's change) once every use is paid (status "paid": charged, ledgered, every
  share paid), waits until the hub acknowledged everything, closes its stores and exits.
- `--role peers`: the users (who accept charges from the asset, and only from it) and the
  beneficiaries of the asset's split, one `Agent` each in this one process. It prints `READY`
  once all are connected, then `RESULT <json>` (what each user paid, what each beneficiary
  received from the asset by its durable `InvoiceRecord`s, channel changes, pending locks) once
  the beneficiaries received `--expect-uses` x (nonzero shares) payments and the users' charges
  are all completed and durable; then it serves on until SIGTERM, which closes its stores.

The workload (asset id, registry domain, tariff, split, names) is fixed here so that the parent
and both roles agree on it. The split has 5 beneficiaries with unequal ppm and the tariff a small
odd per-cycle fee, so every share is nonzero and the shares round (largest remainder).

The per-use latency "accepted → paid" is the asset agent's own `AssetStats.paid_latencies` (from
the durable accept to the last share paid); its `on_paid` hook tells when every use is paid.

Every wait is bounded. The keys are public test keys derived from names: this must never be
pointed at real funds or a real chain, and it must never import `hub` or `cise`.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import trio

from assets.agent import AssetAgent, AssetConfig
from assets.ledger_store import LedgerStore
from assets.meter_sources import Outcome, open_stdin, run_simulator
from assets.tariff import Tariff
from assets.use_book import UseRow
from channels.agent import INVOICE_FACT, PAYMENT_FACT, Agent
from channels.bench.figures import percentile
from channels.bench.peer import channel_totals, emit, run_agents_process, wait_quiet
from channels.bench.synthetic import (
    CHAIN_ID,
    DEFAULT_DEPOSIT,
    address_of,
    cancel_on_sigterm,
    hub_channels,
    open_service,
)
from channels.codec.eip712 import Domain
from channels.codec.keccak import keccak
from channels.core import state_changes as sc
from channels.core.splits import Split, split_fee
from channels.core.types import Address
from channels.records import InvoiceRecord, PaymentRecord

READY = "READY"
GO = "GO"
RESULT = "RESULT"

ASSET = "asset"
ASSET_ID = keccak(b"cise bench washing machine")
REGISTRY_DOMAIN = Domain(CHAIN_ID, keccak(b"cise bench asset registry")[-20:])
# unequal parts, so the shares of an odd fee round; every one nonzero at the tariff below
BENEFICIARY_PPM = {
    "manufacturer": 400_000,
    "maintenance": 250_000,
    "detergent": 150_000,
    "financier": 130_000,
    "insurer": 70_000,
}
TARIFF = Tariff(kind="cycle", price=9_973, max_units=1)  # €0.009973 a cycle (money in µ€)
DEFAULT_USERS = 4
SEED = 20_240_601
READY_TIMEOUT = 30.0
GO_TIMEOUT = 60.0
QUIET_TIMEOUT = 30.0  # for the hub to acknowledge everything sent, at the end
COMPLETE_TIMEOUT = 30.0  # after the shares arrived, for the users' charges to be recorded


def beneficiary_names() -> list[str]:
    return list(BENEFICIARY_PPM)


def user_names(count: int) -> list[str]:
    return [f"user-{i}" for i in range(count)]


def all_names(users: int) -> list[str]:
    """Every agent of the network, in the hub's channel order."""
    return [ASSET, *user_names(users), *beneficiary_names()]


def bench_split() -> Split:
    """The asset's split: the beneficiaries ascending by address, as the registry wants."""
    ordered = sorted(BENEFICIARY_PPM, key=address_of)
    return Split(
        1, tuple(address_of(n) for n in ordered), tuple(BENEFICIARY_PPM[n] for n in ordered)
    )


def nonzero_shares() -> int:
    """Routed share payments per use (the asset is not among the beneficiaries)."""
    return sum(1 for amount in split_fee(TARIFF.price, bench_split()) if amount > 0)


def _percentiles_ms(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)

    def at(fraction: float) -> float:
        return round(percentile(ordered, fraction) * 1e3, 3)

    return {"p50_ms": at(0.5), "p90_ms": at(0.9), "p99_ms": at(0.99), "max_ms": at(1.0)}


def _start_agent(
    nursery: trio.Nursery,
    stack: ExitStack,
    name: str,
    opening: Sequence[sc.StateChange],
    db_dir: Path,
    hub_port: int,
    accept_charge: Callable[[Address, int, int], bool] | None = None,
) -> Agent:
    service = open_service(name, db_dir / f"{name}.sqlite", opening)
    stack.callback(service.store.close)  # after the nursery: nothing runs on it any more
    hub = address_of("hub")
    if accept_charge is None:
        agent = Agent(service, hub, blocks_from_hub=True)
    else:
        agent = Agent(service, hub, accept_charge=accept_charge, blocks_from_hub=True)
    agent.start(nursery, hub_port)
    return agent


# ----------------------------------------------------------------------------- the asset


class _PaidWatch:
    """Signals when `expect` uses of the asset are paid (its `on_paid` hook)."""

    def __init__(self, asset: AssetAgent, expect: int) -> None:
        self.asset = asset
        self.expect = expect
        self.last_paid_at = 0.0
        self.all_paid = trio.Event()
        asset.on_paid = self._paid

    @property
    def paid_latencies(self) -> list[float]:
        return self.asset.stats.paid_latencies

    def _paid(self, use: UseRow) -> None:
        self.last_paid_at = trio.current_time()
        if len(self.paid_latencies) >= self.expect:
            self.all_paid.set()


async def _wait_go() -> None:
    stream = open_stdin()
    try:
        buffer = b""
        with trio.fail_after(GO_TIMEOUT):
            while b"\n" not in buffer:
                chunk = await stream.receive_some(256)
                if not chunk:
                    raise SystemExit("stdin closed before GO")
                buffer += chunk
        if buffer.split(b"\n", 1)[0].strip() != GO.encode():
            raise SystemExit(f"expected {GO} on stdin, got {buffer!r}")
    finally:
        await stream.aclose()


async def run_asset(
    args: argparse.Namespace, nursery: trio.Nursery, stack: ExitStack
) -> dict[str, Any]:
    users = user_names(args.users)
    opening = hub_channels(
        address_of("hub"),
        [address_of(n) for n in all_names(args.users)],
        args.deposit,
        args.deposit,
    )
    agent = _start_agent(nursery, stack, ASSET, opening, Path(args.db_dir), args.hub_port)
    known = {address_of(u) for u in users}
    config = AssetConfig(
        asset_id=ASSET_ID,
        domain=REGISTRY_DOMAIN,
        tariff=TARIFF,
        split=bench_split(),
        known_user=lambda user: user in known,
        in_flight=args.in_flight,
    )
    ledger = LedgerStore(args.ledger)
    stack.callback(ledger.close)
    asset = AssetAgent(agent, ledger, config)
    watch = _PaidWatch(asset, args.uses)
    with trio.fail_after(READY_TIMEOUT):
        await agent.wait_ready()
    await nursery.start(asset.run)
    emit(READY)
    await _wait_go()
    result: dict[str, Any] = {"role": "asset"}
    # at strictly increases from start_at by >= 1 s a use: keep every event in the past
    start_at = max(0, int(time.time()) - 10 * args.uses - 3600)
    cpu = time.process_time()
    began = trio.current_time()
    outcomes: list[Outcome] = []
    try:
        with trio.fail_after(args.timeout):
            outcomes = await run_simulator(
                asset.handle,
                users=["0x" + address_of(u).hex() for u in users],
                count=args.uses,
                seed=SEED,
                start_at=start_at,
                mean_gap_s=1.0,
                units=(1, 1),
                prefix="use-",
                rate_per_s=None,
            )
            fed = trio.current_time()
            result["feed_seconds"] = round(fed - began, 4)
            await watch.all_paid.wait()
    except trio.TooSlowError:
        result["error"] = (
            f"timed out after {args.timeout} s: {len(outcomes)} events fed, "
            f"{len(watch.paid_latencies)} uses paid, book {asset.book.counts()}"
        )
    result["cpu_s"] = round(time.process_time() - cpu, 3)
    result["seconds"] = round(watch.last_paid_at - began, 4)
    result["outcomes"] = dict(Counter(o.status for o in outcomes))
    result["paid"] = _percentiles_ms(watch.paid_latencies)
    result["ledgered"] = _percentiles_ms(asset.stats.latencies)
    result["paid_uses"] = len(watch.paid_latencies)
    stats = asset.stats
    result["stats"] = {
        "accepted": stats.accepted,
        "duplicates": stats.duplicates,
        "rejected": stats.rejected,
        "refused": stats.refused,
        "ledgered": stats.ledgered,
        "shares_paid": stats.shares_paid,
        "share_retries": stats.share_retries,
        "routing_fees": stats.routing_fees,
    }
    result["book"] = asset.book.counts()
    with trio.move_on_after(QUIET_TIMEOUT) as quiet:
        await wait_quiet([agent])
    if quiet.cancelled_caught and "error" not in result:
        result["error"] = f"the hub did not acknowledge everything within {QUIET_TIMEOUT} s"
    delta, locks = channel_totals([agent], args.deposit)
    result.update(channel_delta=delta, pending_locks=locks)
    return result


# ----------------------------------------------------------------------------- users, beneficiaries


def _user_totals(agent: Agent, asset: Address) -> dict[str, int]:
    """What this user paid the asset, by its durable payment records."""
    paid = amount = fees = expected_fees = 0
    other = 0
    for _, record in agent.service.store.facts(PAYMENT_FACT):
        if not isinstance(record, PaymentRecord):
            continue
        if record.payee != asset or record.status != "completed":
            other += 1
            continue
        paid += 1
        amount += record.amount
        fees += record.fee
        expected_fees += agent.fees.fee(record.amount)
    return {
        "charges_paid": paid,
        "paid_amount": amount,
        "hub_fees": fees,
        "hub_fees_by_schedule": expected_fees,
        "other_payments": other,
    }


def _beneficiary_totals(agent: Agent, asset: Address) -> dict[str, int]:
    """What this beneficiary received from the asset, by its durable invoice records."""
    received = count = 0
    for _, record in agent.service.store.facts(INVOICE_FACT):
        if (
            isinstance(record, InvoiceRecord)
            and record.status == "received"
            and record.payer == asset
        ):
            count += 1
            received += record.received
    return {"shares_received": count, "received": received}


def _completed_charges(agents: Sequence[Agent], asset: Address) -> int:
    return sum(
        1
        for agent in agents
        for record in agent.payments.values()
        if record.payee == asset and record.status == "completed"
    )


async def run_peers(
    args: argparse.Namespace, nursery: trio.Nursery, stack: ExitStack
) -> dict[str, Any]:
    users = user_names(args.users)
    beneficiaries = beneficiary_names()
    asset = address_of(ASSET)
    opening = hub_channels(
        address_of("hub"),
        [address_of(n) for n in all_names(args.users)],
        args.deposit,
        args.deposit,
    )
    db_dir = Path(args.db_dir)

    def from_the_asset(payee: Address, amount: int, payment_id: int) -> bool:
        return payee == asset and 0 < amount <= args.max_charge

    user_agents = {
        name: _start_agent(nursery, stack, name, opening, db_dir, args.hub_port, from_the_asset)
        for name in users
    }
    beneficiary_agents = {
        name: _start_agent(nursery, stack, name, opening, db_dir, args.hub_port)
        for name in beneficiaries
    }
    everyone = [*user_agents.values(), *beneficiary_agents.values()]
    with trio.fail_after(READY_TIMEOUT):
        for agent in everyone:
            await agent.wait_ready()
    emit(READY)
    expected_shares = args.expect_uses * nonzero_shares()
    arrived = {"shares": 0, "from_others": 0}
    enough = trio.Event()

    async def drain(agent: Agent) -> None:
        async for payment in agent.received:
            if payment.payer != asset:
                arrived["from_others"] += 1
                continue
            arrived["shares"] += 1
            if arrived["shares"] >= expected_shares:
                enough.set()

    for agent in beneficiary_agents.values():
        nursery.start_soon(drain, agent)
    result: dict[str, Any] = {"role": "peers"}
    user_list = list(user_agents.values())
    try:
        with trio.fail_after(args.timeout):
            await enough.wait()
        with trio.fail_after(COMPLETE_TIMEOUT):
            while _completed_charges(user_list, asset) < args.expect_uses:  # noqa: ASYNC110  # completions come from the hub
                await trio.sleep(0.02)
        with trio.fail_after(QUIET_TIMEOUT):
            await wait_quiet(everyone)
            for agent in everyone:  # the last records (received, completed) are durable
                await agent.service.wait_committed()
    except trio.TooSlowError:
        result["error"] = (
            f"{arrived['shares']} of {expected_shares} shares received, "
            f"{_completed_charges(user_list, asset)} of {args.expect_uses} charges completed, "
            "or the hub did not acknowledge everything, in time"
        )
    user_loss, user_locks = channel_totals(user_list, args.deposit)
    gained, beneficiary_locks = channel_totals(list(beneficiary_agents.values()), args.deposit)
    fees = user_list[0].fees
    result.update(
        users={name: _user_totals(agent, asset) for name, agent in user_agents.items()},
        beneficiaries={
            name: {
                **_beneficiary_totals(agent, asset),
                "address": "0x" + agent.service.address.hex(),
                "channel_delta": channel_totals([agent], args.deposit)[0],
            }
            for name, agent in beneficiary_agents.items()
        },
        users_lost=-user_loss,
        beneficiaries_gained=gained,
        pending_locks=user_locks + beneficiary_locks,
        shares_from_others=arrived["from_others"],
        hub_fee_schedule={"flat": fees.flat, "ppm": fees.ppm, "cap": fees.cap},
    )
    return result


# ----------------------------------------------------------------------------- process


async def run(args: argparse.Namespace) -> int:
    status = 0
    with ExitStack() as stack:  # the stores close once the nursery (every task on them) is done
        async with trio.open_nursery() as nursery:
            nursery.start_soon(cancel_on_sigterm, nursery.cancel_scope)
            if args.role == "asset":
                result = await run_asset(args, nursery, stack)
                emit(f"{RESULT} {json.dumps(result)}")
                status = 1 if "error" in result else 0
                nursery.cancel_scope.cancel()
            else:
                result = await run_peers(args, nursery, stack)
                emit(f"{RESULT} {json.dumps(result)}")
                await trio.sleep_forever()  # serve on until SIGTERM
    return status


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--role", choices=("asset", "peers"), required=True)
    parser.add_argument("--hub-port", type=int, required=True)
    parser.add_argument("--db-dir", required=True, help="directory of the agents' channel stores")
    parser.add_argument("--users", type=int, default=DEFAULT_USERS)
    parser.add_argument("--deposit", type=int, default=DEFAULT_DEPOSIT)
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds for the whole run")
    parser.add_argument("--ledger", help="asset: its ledger's sqlite file")
    parser.add_argument("--uses", type=int, default=0, help="asset: meter events to feed")
    parser.add_argument("--in-flight", type=int, default=64, help="asset: uses under way at most")
    parser.add_argument("--expect-uses", type=int, default=0, help="peers: uses to report at")
    parser.add_argument(
        "--max-charge", type=int, default=TARIFF.price, help="peers: a user pays at most this"
    )
    parser.add_argument("--profile", help="write cProfile stats of this process here")
    args = parser.parse_args(argv)
    if args.role == "asset" and (not args.ledger or args.uses < 1 or args.in_flight < 1):
        parser.error("the asset needs --ledger, --uses >= 1 and --in-flight >= 1")
    if args.role == "peers" and args.expect_uses < 1:
        parser.error("the peers need --expect-uses >= 1")
    if args.users < 1 or args.deposit < 1 or args.timeout <= 0:
        parser.error("--users, --deposit and --timeout must be positive")
    Path(args.db_dir).mkdir(parents=True, exist_ok=True)
    run_agents_process(run, args, args.profile)


if __name__ == "__main__":
    main()

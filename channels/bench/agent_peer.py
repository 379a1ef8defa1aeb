"""An agent process of the mediated benchmark: `python -m channels.bench.agent_peer`.

Hosts several `Agent`s (each with its own `NodeService` and sqlite store, synchronous=FULL) on a
synthetic network (`channels.bench.synthetic`: fixed public test keys, channels opened by
injected chain events), each connected over loopback TCP to a `hub.synthetic_hub` process and
taking the chain head from the hub's terms (`blocks_from_hub`). Two roles:

- `payee`: serves invoices and reveals secrets. With `--expect N` it prints `RESULT <json>` (its
  counts and balances) once its agents received N payments in total, then serves on.
- `payer`: pays the payees through the hub, round-robin over payers and payees (payment ids
  unique per payer), in two phases: `--payments` closed-loop with at most `--in-flight` payments
  under way in total (the maximum rate), then `--paced-payments` open-loop, started at fixed
  intervals at `--paced-fraction` of the rate just measured (the latency at a sustainable load).
  It records each payment's latency (pay() call to outcome), prints `MAXDONE` after the first
  phase and `RESULT <json>` at the end, and exits; on a failed payment it prints `RESULT` with
  an `error` and exits with status 1.

Both print `READY` once every agent is connected to the hub. Every wait is bounded. The keys are
public test keys: this must never be pointed at real funds or a real chain.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio

from channels.agent import Agent, PaymentError
from channels.bench.figures import percentile
from channels.bench.peer import channel_totals, emit, run_agents_process, wait_quiet
from channels.bench.synthetic import (
    DEFAULT_DEPOSIT,
    address_of,
    cancel_on_sigterm,
    hub_channels,
    open_service,
)
from channels.core import state_changes as sc
from channels.core.types import Address

READY = "READY"
MAX_DONE = "MAXDONE"
RESULT = "RESULT"

DEFAULT_AMOUNT = 1_000
READY_TIMEOUT = 30.0
QUIET_TIMEOUT = 30.0  # for the hub to acknowledge everything sent, at the end


def _percentile_ms(values: list[float], fraction: float) -> float:
    if not values:
        return 0.0
    return round(percentile(sorted(values), fraction) * 1e3, 3)


async def start_agents(
    nursery: trio.Nursery,
    names: Sequence[str],
    opening: Sequence[sc.StateChange],
    db_dir: Path,
    hub_port: int,
    group_target: int,
) -> list[Agent]:
    """One agent per name, each with its store in `db_dir`, connecting to the hub."""
    hub = address_of("hub")
    agents: list[Agent] = []
    for name in names:
        service = open_service(name, db_dir / f"{name}.sqlite", opening, group_target=group_target)
        agent = Agent(service, hub, blocks_from_hub=True)
        agents.append(agent)
        agent.start(nursery, hub_port)
    return agents


async def wait_ready(agents: Sequence[Agent]) -> None:
    for agent in agents:
        await agent.wait_ready()


# ----------------------------------------------------------------------------- paying


def _first(group: BaseExceptionGroup[PaymentError]) -> BaseException:
    first: BaseException = group
    while isinstance(first, BaseExceptionGroup):
        first = first.exceptions[0]
    return first


@dataclass
class _Phase:
    latencies: list[float] = field(default_factory=list)
    seconds: float = 0.0
    start_span: float = 0.0  # from the first payment's start to the last one's
    cpu_s: float = 0.0
    max_in_flight: int = 0

    def summary(self, with_latencies: bool) -> dict[str, Any]:
        out: dict[str, Any] = {
            "payments": len(self.latencies),
            "seconds": round(self.seconds, 4),
            "start_span_s": round(self.start_span, 4),
            "cpu_s": round(self.cpu_s, 3),
            "max_in_flight": self.max_in_flight,
            "p50_ms": _percentile_ms(self.latencies, 0.50),
            "p99_ms": _percentile_ms(self.latencies, 0.99),
        }
        if with_latencies:
            out["latencies_ms"] = [round(x * 1e3, 3) for x in self.latencies]
        return out


@dataclass
class Payer:
    """Pays round-robin: payment i is made by payers[i % P] to payees[(i // P) % Q]."""

    agents: list[Agent]
    payees: list[Address]
    amount: int
    give_up_after: float
    index: int = 0
    next_ids: list[int] = field(default_factory=list)
    in_flight: int = 0
    completed: int = 0
    paid_amount: int = 0
    paid_fees: int = 0

    def __post_init__(self) -> None:
        self.next_ids = [0] * len(self.agents)

    async def pay_one(self, phase: _Phase) -> None:
        index = self.index
        self.index += 1
        which = index % len(self.agents)
        agent = self.agents[which]
        payee = self.payees[(index // len(self.agents)) % len(self.payees)]
        self.next_ids[which] += 1
        payment_id = self.next_ids[which]
        self.in_flight += 1
        phase.max_in_flight = max(phase.max_in_flight, self.in_flight)
        start = time.perf_counter()
        try:
            outcome = await agent.pay(
                payee, self.amount, payment_id, give_up_after=self.give_up_after
            )
        finally:
            self.in_flight -= 1
        phase.latencies.append(time.perf_counter() - start)
        self.completed += 1
        self.paid_amount += outcome.amount
        self.paid_fees += outcome.fee

    async def closed_loop(self, count: int, in_flight: int) -> _Phase:
        """`count` payments, at most `in_flight` under way at once (the maximum rate)."""
        phase = _Phase()
        end = self.index + count

        async def worker() -> None:
            while self.index < end:
                await self.pay_one(phase)

        cpu = time.process_time()
        start = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for _ in range(min(in_flight, count)):
                nursery.start_soon(worker)
        phase.seconds = time.perf_counter() - start
        phase.cpu_s = time.process_time() - cpu
        return phase

    async def open_loop(self, count: int, rate: float) -> _Phase:
        """`count` payments started every 1/`rate` seconds, however many are under way."""
        phase = _Phase()
        interval = 1.0 / rate
        cpu = time.process_time()
        start = time.perf_counter()
        async with trio.open_nursery() as nursery:
            clock_start = trio.current_time()
            for number in range(count):
                await trio.sleep_until(clock_start + number * interval)  # late: at once
                nursery.start_soon(self.pay_one, phase)
            phase.start_span = time.perf_counter() - start
        phase.seconds = time.perf_counter() - start
        phase.cpu_s = time.process_time() - cpu
        return phase


async def run_payer(args: argparse.Namespace, agents: list[Agent]) -> dict[str, Any]:
    payees = [address_of(n) for n in args.payees.split(",") if n]
    payer = Payer(agents, payees, args.amount, args.give_up_after)
    result: dict[str, Any] = {"role": "payer", "agents": len(agents)}
    try:
        with trio.fail_after(args.timeout):
            fastest = await payer.closed_loop(args.payments, args.in_flight)
            result["max"] = fastest.summary(with_latencies=False)
            emit(MAX_DONE)
            if args.paced_payments > 0:
                rate = args.paced_fraction * args.payments / fastest.seconds
                paced = await payer.open_loop(args.paced_payments, rate)
                result["paced"] = paced.summary(with_latencies=True)
                result["paced"]["rate_per_s"] = round(rate, 1)
        with trio.move_on_after(QUIET_TIMEOUT) as quiet:
            await wait_quiet(agents)
        if quiet.cancelled_caught:
            result["error"] = f"the hub did not acknowledge everything within {QUIET_TIMEOUT} s"
    except* PaymentError as failed:
        result["error"] = f"a payment failed: {_first(failed)}"
    except* trio.TooSlowError:
        result["error"] = (
            f"timed out after {args.timeout} s ({payer.completed} payments completed, "
            f"{payer.in_flight} under way)"
        )
    paid_by_balance, locks = channel_totals(agents, args.deposit)
    result.update(
        completed=payer.completed,
        paid_amount=payer.paid_amount,
        paid_fees=payer.paid_fees,
        paid_by_balance=-paid_by_balance,
        pending_locks=locks,
    )
    return result


# ----------------------------------------------------------------------------- being paid


async def run_payee(args: argparse.Namespace, agents: list[Agent]) -> dict[str, Any]:
    """Count what arrives; once `--expect` payments are in, the totals (without one: serve
    forever)."""
    totals = {"received": 0, "received_amount": 0}
    enough = trio.Event()

    async def drain(agent: Agent) -> None:
        async for payment in agent.received:
            totals["received"] += 1
            totals["received_amount"] += payment.amount
            if args.expect and totals["received"] >= args.expect:
                enough.set()

    async with trio.open_nursery() as nursery:
        for agent in agents:
            nursery.start_soon(drain, agent)
        if not args.expect:
            await trio.sleep_forever()
        result: dict[str, Any] = {"role": "payee", "agents": len(agents)}
        try:
            with trio.fail_after(args.timeout):
                await enough.wait()
            with trio.fail_after(QUIET_TIMEOUT):
                await wait_quiet(agents)
        except trio.TooSlowError:
            result["error"] = (
                f"{totals['received']} of {args.expect} payments received, or the hub did not "
                "acknowledge everything, in time"
            )
        received_by_balance, locks = channel_totals(agents, args.deposit)
        result.update(totals, received_by_balance=received_by_balance, pending_locks=locks)
        nursery.cancel_scope.cancel()
    return result


# ----------------------------------------------------------------------------- process


async def run(args: argparse.Namespace) -> int:
    all_names = [n for n in args.agents.split(",") if n]
    names = [n for n in args.names.split(",") if n]
    if not set(names) <= set(all_names):
        raise SystemExit("every --names entry must be in --agents")
    opening = hub_channels(
        address_of("hub"), [address_of(n) for n in all_names], args.deposit, args.hub_deposit
    )
    db_dir = Path(args.db_dir)
    agents: list[Agent] = []
    status = 0
    try:
        async with trio.open_nursery() as nursery:
            if args.graceful_sigterm:
                nursery.start_soon(cancel_on_sigterm, nursery.cancel_scope)
            agents = await start_agents(
                nursery, names, opening, db_dir, args.hub_port, args.group_target
            )
            with trio.fail_after(READY_TIMEOUT):
                await wait_ready(agents)
            emit(READY)
            if args.role == "payer":
                result = await run_payer(args, agents)
                emit(f"{RESULT} {json.dumps(result)}")
                status = 1 if "error" in result else 0
                nursery.cancel_scope.cancel()
            else:
                payee_result = await run_payee(args, agents)
                emit(f"{RESULT} {json.dumps(payee_result)}")
                await trio.sleep_forever()  # serve on until terminated
    finally:
        for agent in agents:
            agent.service.store.close()
    return status


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--role", choices=("payer", "payee"), required=True)
    parser.add_argument("--names", required=True, help="comma-separated agents of this process")
    parser.add_argument("--agents", required=True, help="all agent names, in the hub's order")
    parser.add_argument("--hub-port", type=int, required=True)
    parser.add_argument("--db-dir", required=True, help="directory of the agents' stores")
    parser.add_argument("--deposit", type=int, default=DEFAULT_DEPOSIT)
    parser.add_argument("--hub-deposit", type=int, default=DEFAULT_DEPOSIT)
    parser.add_argument("--group-target", type=int, default=64)
    parser.add_argument("--payees", default="", help="payer: comma-separated payee names")
    parser.add_argument("--payments", type=int, default=0, help="payer: closed-loop payments")
    parser.add_argument("--in-flight", type=int, default=256, help="payer: closed-loop window")
    parser.add_argument("--paced-payments", type=int, default=0, help="payer: open-loop ones")
    parser.add_argument("--paced-fraction", type=float, default=0.5, help="of the max rate")
    parser.add_argument("--amount", type=int, default=DEFAULT_AMOUNT)
    parser.add_argument("--give-up-after", type=float, default=60.0, help="seconds a payment")
    parser.add_argument("--expect", type=int, default=0, help="payee: payments to report at")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds for all payments")
    parser.add_argument("--profile", help="write cProfile stats of this process here")
    parser.add_argument(
        "--graceful-sigterm", action="store_true", help="on SIGTERM: close the stores and exit"
    )
    args = parser.parse_args(argv)
    if args.role == "payer" and (not args.payees or args.payments < 1 or args.in_flight < 1):
        parser.error("a payer needs --payees, --payments >= 1 and --in-flight >= 1")
    if args.amount < 1 or not 0 < args.paced_fraction <= 1 or args.timeout <= 0:
        parser.error("--amount, --paced-fraction (0..1] and --timeout must be positive")
    Path(args.db_dir).mkdir(parents=True, exist_ok=True)
    if args.profile:
        args.graceful_sigterm = True  # the stats are written on the way out
    run_agents_process(run, args, args.profile)


if __name__ == "__main__":
    main()

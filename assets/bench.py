"""The pay-per-use asset benchmark (`cise bench assets`): uses per second end to end.

What it measures: one use is a meter event → the user's payment (a routed charge user → hub →
asset) → the asset's ledger entry → a routed share payment asset → hub → beneficiary for each of
the 5 beneficiaries of the split; a use is final when its status is "paid". `run_assets_bench`
runs `runs` times, each on fresh stores (sqlite synchronous=FULL everywhere):

- three processes on loopback, so that two cores are used: the hub (`python -m hub.synthetic_hub`,
  spawned as a program, a block clock of one block a second), the asset (`python -m
  assets.bench_peer --role asset`: its channel agent, its `AssetAgent`, and the seeded meter
  simulator feeding it) and the peers (`--role peers`: the users, who accept charges from the
  asset only, and the 5 beneficiaries, all hosted in one process);
- `uses` postpaid events, one after the other: the asset answers "accepted" and charges, ledgers
  and pays the shares in the background, at most `in_flight` uses under way (its own bound);
- `uses_per_s` = uses / wall time from the first event until every use is "paid";
  `payments_per_s` = routed payments completed (charges + shares) / the same time;
  `p50_ms`/`p99_ms` = per use, from the asset accepting it (durably) to every share paid (see
  `latency_is`; the agent's own "accepted → ledgered" is `ledgered_p50_ms`/`ledgered_p99_ms`).
  This is a closed loop at full load: by Little's law the latency is about in_flight / uses_per_s.
- the CPU seconds of each process over the run (Linux /proc), and per use.

After each run it checks, and raises `BenchError` naming every failed check otherwise: every use
"paid" (the asset's report and its durable use book), ledger entries = uses, `verify_chain` passes
on the durable ledger (signatures, links, shares = the split of the fee), each beneficiary's
received total (its durable `InvoiceRecord`s "received" from the asset) = the sum of its ledger
shares, the users' channels lost the ledger's fees + the hub's fees (by the hub's announced
schedule, and as the users recorded them), the asset lost exactly the routing fees of its shares,
the hub's durable store gained exactly all hub fees, and nothing is left pending. The result is
the median of the runs, every run's figures under `per_run`.

Layering: assets may import `channels` only. The hub is started as a program; the process
helpers (`channels.bench.processes`) and the figures' arithmetic (`channels.bench.figures`) are
the ones `hub.bench` uses too. Every wait is bounded and every process is stopped in a `finally`
(SIGTERM, then SIGKILL after a grace). The keys are public test keys: this must never be pointed
at real funds or a real chain.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from assets.bench_peer import (
    ASSET,
    ASSET_ID,
    DEFAULT_USERS,
    GO,
    READY,
    REGISTRY_DOMAIN,
    RESULT,
    TARIFF,
    all_names,
    bench_split,
    beneficiary_names,
    nonzero_shares,
)
from assets.ledger import LedgerError, revenue_totals, verify_chain
from assets.ledger_store import LedgerStore
from assets.use_book import UseBook
from channels.bench.figures import cpu_us_per, summarize_runs
from channels.bench.processes import (
    START_TIMEOUT,
    SYNTHETIC_HUB,
    BenchError,
    processes,
    profile_args,
    run_dirs,
    start_process,
    synthetic_hub_args,
)
from channels.bench.synthetic import DEFAULT_DEPOSIT, address_of, hub_store_totals
from channels.core.fees import FeeSchedule
from channels.core.splits import split_fee

DEFAULT_USES = 2_000
DEFAULT_IN_FLIGHT = 64
DEFAULT_RUNS = 3
BLOCK_INTERVAL = 1.0
LATENCY_IS = "use accepted by the asset (durably) -> every share paid (status paid)"
PROCESSES = 3
ROLES = ("hub", "asset", "peers")


def default_timeout(uses: int) -> float:
    """Seconds allowed for `uses` uses (generous: 20 uses a second at least)."""
    return 120.0 + uses / 20.0


# ----------------------------------------------------------------------------- one run


@dataclass(frozen=True)
class _Plan:
    uses: int
    in_flight: int
    users: int
    timeout: float


@dataclass
class LedgerFacts:
    """What the asset's durable ledger and use book say after a run."""

    entries: int
    book: dict[str, int]
    chain_error: str | None
    fee_total: int
    fees: list[int]
    share_amounts: list[int]  # every nonzero share, in ledger order
    by_beneficiary: dict[bytes, int]


def ledger_facts(path: Path) -> LedgerFacts:
    with LedgerStore(path) as ledger:
        entries = list(ledger.entries())
        book = UseBook(ledger.db).counts()
    chain_error = None
    try:
        verify_chain(
            entries, ASSET_ID, address_of(ASSET), REGISTRY_DOMAIN, splits={1: bench_split()}
        )
    except LedgerError as exc:
        chain_error = str(exc)
    totals = revenue_totals(entries)
    fees: list[int] = []
    shares: list[int] = []
    for entry in entries:
        body = entry.decode_use_body()
        fees.append(body.fee)
        shares.extend(s.amount for s in body.shares if s.amount > 0)
    return LedgerFacts(
        entries=len(entries),
        book=book,
        chain_error=chain_error,
        fee_total=totals.fee_total,
        fees=fees,
        share_amounts=shares,
        by_beneficiary=dict(totals.by_beneficiary),
    )


def check_run(
    uses: int,
    asset: dict[str, Any],
    peers: dict[str, Any],
    ledger: LedgerFacts,
    hub_gain: int,
    hub_locks: int,
) -> dict[str, Any]:
    """The checks of one run of `uses` uses, from the asset's and the peers' reports, the
    asset's durable ledger and the hub's durable store: {"checks": {name: passed},
    "failed_checks": [names], the money figures}."""
    schedule = FeeSchedule(**peers["hub_fee_schedule"])
    user_hub_fees = sum(schedule.fee(fee) for fee in ledger.fees)
    share_hub_fees = sum(schedule.fee(amount) for amount in ledger.share_amounts)
    users = peers["users"].values()
    recorded_user_fees = sum(u["hub_fees"] for u in users)
    beneficiaries = peers["beneficiaries"]
    received_ok = all(
        b["received"] == ledger.by_beneficiary.get(bytes.fromhex(b["address"][2:]), 0)
        and b["channel_delta"] == b["received"]
        and b["shares_received"] == uses
        for b in beneficiaries.values()
    )
    checks = {
        "every use paid (asset)": asset["book"] == {"paid": uses} and asset["paid_uses"] == uses,
        "every use paid (durable use book)": ledger.book == {"paid": uses},
        "every event accepted": asset["outcomes"] == {"accepted": uses},
        "ledger entries = uses": ledger.entries == uses,
        "ledger chain verifies": ledger.chain_error is None,
        "every share nonzero and paid": len(ledger.share_amounts) == uses * nonzero_shares()
        and asset["stats"]["shares_paid"] == len(ledger.share_amounts),
        "beneficiaries received their ledger shares": received_ok
        and set(beneficiaries) == set(beneficiary_names()),
        "users paid every charge": sum(u["charges_paid"] for u in users) == uses
        and sum(u["paid_amount"] for u in users) == ledger.fee_total,
        "users lost fees + hub fees": peers["users_lost"] == ledger.fee_total + user_hub_fees,
        "users' recorded hub fees = the schedule's": recorded_user_fees == user_hub_fees
        and all(u["hub_fees"] == u["hub_fees_by_schedule"] for u in users),
        "asset lost its share routing fees": -asset["channel_delta"]
        == asset["stats"]["routing_fees"]
        == share_hub_fees,
        "the hub's store gained all hub fees": hub_gain == user_hub_fees + share_hub_fees,
        "money conserved": peers["users_lost"]
        == peers["beneficiaries_gained"] + hub_gain + asset["channel_delta"],
        "nothing pending": asset["pending_locks"] == 0
        and peers["pending_locks"] == 0
        and hub_locks == 0,
    }
    return {
        "checks": checks,
        "failed_checks": [name for name, ok in checks.items() if not ok],
        "chain_error": ledger.chain_error,
        "ledger_entries": ledger.entries,
        "fee_total": ledger.fee_total,
        "user_hub_fees": user_hub_fees,
        "share_hub_fees": share_hub_fees,
        "hub_gain_in_store": hub_gain,
        "users_lost": peers["users_lost"],
        "beneficiaries_gained": peers["beneficiaries_gained"],
        "asset_channel_delta": asset["channel_delta"],
    }


def run_network(plan: _Plan, workdir: Path, *, profile_dir: Path | None = None) -> dict[str, Any]:
    """Start the hub, the peers and the asset in `workdir`, run the plan's uses, stop everything,
    check; the figures of the run (with its checks)."""
    workdir.mkdir(parents=True, exist_ok=True)
    hub_db = workdir / "hub.sqlite"
    ledger_path = workdir / "asset-ledger.sqlite"
    names = all_names(plan.users)
    common = [
        "--db-dir",
        str(workdir / "agents"),
        "--users",
        str(plan.users),
        "--deposit",
        str(DEFAULT_DEPOSIT),
        "--timeout",
        str(plan.timeout),
    ]

    load_before = os.getloadavg()[0]
    with processes() as started:
        hub_args = synthetic_hub_args(
            hub_db,
            names,
            deposit=DEFAULT_DEPOSIT,
            block_interval=BLOCK_INTERVAL,
            extra=profile_args(profile_dir, "hub"),
        )
        hub = start_process(started, "hub", SYNTHETIC_HUB, hub_args, workdir)
        port = hub.read_line("PORT", START_TIMEOUT)
        peers = start_process(
            started,
            "peers process",
            "assets.bench_peer",
            [
                "--role",
                "peers",
                "--hub-port",
                port,
                "--expect-uses",
                str(plan.uses),
                *common,
                *profile_args(profile_dir, "peers"),
            ],
            workdir,
        )
        peers.read_line(READY, START_TIMEOUT)
        asset = start_process(
            started,
            "asset process",
            "assets.bench_peer",
            [
                "--role",
                "asset",
                "--hub-port",
                port,
                "--ledger",
                str(ledger_path),
                "--uses",
                str(plan.uses),
                "--in-flight",
                str(plan.in_flight),
                *common,
                *profile_args(profile_dir, "asset"),
            ],
            workdir,
            stdin=True,  # it waits for GO
        )
        asset.read_line(READY, START_TIMEOUT)
        roles = (hub, asset, peers)  # as ROLES
        cpu_before = [p.cpu_seconds() for p in roles]
        asset.send_line(GO)
        asset_result = asset.read_result(RESULT, plan.timeout + 60)
        cpu_after = [p.cpu_seconds() for p in roles]
        peers_result = peers.read_result(RESULT, 60)
        asset.wait_exit(30)  # it exits by itself after its result, its stores closed
    # every process is stopped: read what they left durably
    hub_gain, hub_locks, _ = hub_store_totals(hub_db, DEFAULT_DEPOSIT)
    ledger = ledger_facts(ledger_path)
    seconds = asset_result["seconds"]
    payments = asset_result["stats"]["ledgered"] + asset_result["stats"]["shares_paid"]
    result: dict[str, Any] = {
        "uses": plan.uses,
        "seconds": seconds,
        "uses_per_s": round(plan.uses / seconds, 1),
        "payments": payments,
        "payments_per_s": round(payments / seconds, 1),
        "feed_seconds": asset_result["feed_seconds"],
        **asset_result["paid"],
        "ledgered_p50_ms": asset_result["ledgered"]["p50_ms"],
        "ledgered_p99_ms": asset_result["ledgered"]["p99_ms"],
        "asset_stats": asset_result["stats"],
    }
    for index, role in enumerate(ROLES):
        before, after = cpu_before[index], cpu_after[index]
        cpu_s = None if before is None or after is None else round(after - before, 3)
        result[f"{role}_cpu_s"] = cpu_s
        result[f"{role}_cpu_us_per_use"] = cpu_us_per(before, after, plan.uses)
        result[f"{role}_cpu_share"] = None if cpu_s is None else round(cpu_s / seconds, 3)
    result.update(check_run(plan.uses, asset_result, peers_result, ledger, hub_gain, hub_locks))
    result["load_average_1m"] = round(load_before, 2)
    return result


# ----------------------------------------------------------------------------- the benchmark


MEDIAN_KEYS = (
    "uses_per_s",
    "payments_per_s",
    "p50_ms",
    "p90_ms",
    "p99_ms",
    "max_ms",
    "ledgered_p50_ms",
    "ledgered_p99_ms",
    "seconds",
    "hub_cpu_s",
    "asset_cpu_s",
    "peers_cpu_s",
    "hub_cpu_us_per_use",
    "asset_cpu_us_per_use",
    "peers_cpu_us_per_use",
    "hub_cpu_share",
    "asset_cpu_share",
    "peers_cpu_share",
)


def run_assets_bench(
    uses: int = DEFAULT_USES,
    *,
    in_flight: int = DEFAULT_IN_FLIGHT,
    runs: int = DEFAULT_RUNS,
    users: int = DEFAULT_USERS,
    workdir: str | Path | None = None,
    timeout: float | None = None,
    profile_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Run the asset benchmark `runs` times (see the module docstring); the median figures.

    Raises BenchError when a process fails, a use does not complete or a check fails.
    """
    if min(uses, in_flight, runs, users) < 1:
        raise ValueError("uses, in_flight, runs and users must be positive")
    plan = _Plan(
        uses=uses,
        in_flight=in_flight,
        users=users,
        timeout=timeout if timeout is not None else default_timeout(uses),
    )
    results: list[dict[str, Any]] = []
    for index in range(runs):
        with run_dirs("cise-bench-assets-", index, workdir, profile_dir) as (base, profile):
            run = run_network(plan, base, profile_dir=profile)
        if run["failed_checks"]:
            raise BenchError(
                f"run {index + 1}: failed checks: {', '.join(run['failed_checks'])} "
                f"(chain: {run['chain_error']}); figures: {run}"
            )
        results.append(run)
    shares = split_fee(TARIFF.price, bench_split())
    summary: dict[str, Any] = {
        "uses_per_s": 0.0,
        "payments_per_s": 0.0,
        "p50_ms": 0.0,
        "p99_ms": 0.0,
        "latency_is": LATENCY_IS,
        "uses": uses,
        "in_flight": in_flight,
        "runs": runs,
        "processes": PROCESSES,
        "users": users,
        "beneficiaries": len(shares),
        "payments_per_use": 1 + nonzero_shares(),
        "fee": TARIFF.price,
        "shares": list(shares),
        "postpaid": True,
        "checked": all(not r["failed_checks"] for r in results),
        "checks": list(results[0]["checks"]),
        "synchronous": "FULL",
        "cpu_count": os.cpu_count() or 1,
    }
    return summarize_runs(summary, results, MEDIAN_KEYS)


__all__ = [
    "BenchError",
    "LedgerFacts",
    "check_run",
    "default_timeout",
    "ledger_facts",
    "run_assets_bench",
]

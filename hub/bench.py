"""The mediated benchmarks: routed payments payer -> hub -> payee, and the hub's restart time.

Three kinds of processes on loopback, all state durable (sqlite synchronous=FULL): the hub
(`python -m hub.synthetic_hub`, a block clock of one block a second), one payer process hosting
the payer agents and one payee process hosting the payee agents (`python -m
channels.bench.agent_peer`). The network is synthetic (`channels.bench.synthetic`: fixed public
test keys, channels opened by injected chain events).

`run_mediated_bench` runs, `runs` times on fresh stores: (1) `payments` payments closed-loop with
at most `in_flight` under way in total: `payments_per_s` = payments / wall time; (2) half as many
payments open-loop, started at fixed intervals at half the rate just measured: `p50_ms`,
`p99_ms` (pay() call to outcome). Then it checks conservation: what the payers' channels lost
(amount + fee) = what the payees' channels gained (amount) + the hub's fees, the hub's fees =
the fees the payers were told and the hub's own durable store agrees; nothing left pending.
`crypto_limit_per_s` = min(cores, 2) / (4 sign + 4 recover): a routed payment costs 4 signatures
and 4 signer recoveries across the processes (two balance proofs each way on each of the two
channels), half of them in the hub, so at most two cores' worth run in parallel. The result is
the median of the runs, with every run's figures under `per_run`.

`run_restart_bench` makes `payments` payments the same way (closed-loop only), stops everything,
then times a hub start on that store up to its `PORT` line, against a hub start on an empty store
(`restart_s` = the difference: what restoring costs beyond starting Python).

The processes are started, read and stopped by `channels.bench.processes` (shared with
`assets.bench`): every wait is bounded and every process is stopped in a `finally` (SIGTERM, then
SIGKILL after a short grace). The keys are public test keys: this must never be pointed at real
funds.
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from channels.bench.agent_peer import DEFAULT_AMOUNT, MAX_DONE, READY, RESULT
from channels.bench.direct import measure_crypto
from channels.bench.figures import cpu_us_per, percentile, summarize_runs
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
from channels.bench.synthetic import DEFAULT_DEPOSIT, hub_store_totals

DEFAULT_PAYMENTS = 20_000
DEFAULT_IN_FLIGHT = 256
DEFAULT_RUNS = 3
DEFAULT_PAYERS = 4
DEFAULT_PAYEES = 4
DEFAULT_RESTART_PAYMENTS = 50_000
RESTART_TARGET_S = 2.0
BLOCK_INTERVAL = 1.0
CRYPTO_FORMULA = "min(cpu_count, 2) / (4 * sign_s + 4 * recover_s)"


def default_timeout(payments: int) -> float:
    """Seconds allowed for `payments` payments (generous: 100 a second at least)."""
    return 120.0 + payments / 100.0


def _hub_args(db: Path, names: Sequence[str], extra: Sequence[str] = ()) -> list[str]:
    return synthetic_hub_args(
        db, names, deposit=DEFAULT_DEPOSIT, block_interval=BLOCK_INTERVAL, extra=extra
    )


# ----------------------------------------------------------------------------- one network run


@dataclass(frozen=True)
class _Plan:
    payments: int
    paced_payments: int
    in_flight: int
    payers: int
    payees: int
    timeout: float
    amount: int = DEFAULT_AMOUNT

    @property
    def payer_names(self) -> list[str]:
        return [f"payer-{i}" for i in range(self.payers)]

    @property
    def payee_names(self) -> list[str]:
        return [f"payee-{i}" for i in range(self.payees)]

    @property
    def names(self) -> list[str]:
        return self.payer_names + self.payee_names


def _conservation(
    plan: _Plan, payer: dict[str, Any], payee: dict[str, Any], hub_gain: int, hub_locks: int
) -> dict[str, Any]:
    expected = plan.payments + plan.paced_payments
    paid, fees = payer["paid_amount"], payer["paid_fees"]
    hub_fees = payer["paid_by_balance"] - payee["received_by_balance"]
    checks = {
        "every payment completed": payer["completed"] == expected,
        "every payment received": payee["received"] == expected,
        "payees received what was paid": payee["received_amount"] == paid
        and payee["received_by_balance"] == paid,
        "payers lost amount + fee": payer["paid_by_balance"] == paid + fees,
        "hub fees = the difference": hub_fees == fees,
        "the hub's store agrees": hub_gain == fees,
        "nothing pending": payer["pending_locks"] == 0
        and payee["pending_locks"] == 0
        and hub_locks == 0,
    }
    return {
        "conserved": all(checks.values()),
        "failed_checks": [name for name, ok in checks.items() if not ok],
        "paid_amount": paid,
        "paid_fees": fees,
        "payers_paid": payer["paid_by_balance"],
        "payees_received": payee["received_by_balance"],
        "hub_fees": hub_fees,
        "hub_fees_in_store": hub_gain,
    }


def run_network(plan: _Plan, workdir: Path, *, profile_dir: Path | None = None) -> dict[str, Any]:
    """Start hub, payees and payers in `workdir`, make the plan's payments, stop everything;
    the figures of the run (the hub's store stays in `workdir/hub.sqlite`)."""
    workdir.mkdir(parents=True, exist_ok=True)
    hub_db = workdir / "hub.sqlite"
    names = plan.names
    common = [
        "--agents",
        ",".join(names),
        "--db-dir",
        str(workdir / "agents"),
        "--deposit",
        str(DEFAULT_DEPOSIT),
        "--hub-deposit",
        str(DEFAULT_DEPOSIT),
        "--timeout",
        str(plan.timeout),
    ]

    load_before = os.getloadavg()[0]
    with processes() as started:
        hub = start_process(
            started,
            "hub",
            SYNTHETIC_HUB,
            _hub_args(hub_db, names, profile_args(profile_dir, "hub")),
            workdir,
        )
        port = hub.read_line("PORT", START_TIMEOUT)
        payee = start_process(
            started,
            "payee process",
            "channels.bench.agent_peer",
            [
                "--role",
                "payee",
                "--names",
                ",".join(plan.payee_names),
                "--hub-port",
                port,
                "--expect",
                str(plan.payments + plan.paced_payments),
                *common,
                *profile_args(profile_dir, "payee"),
            ],
            workdir,
        )
        payee.read_line(READY, START_TIMEOUT)
        payer = start_process(
            started,
            "payer process",
            "channels.bench.agent_peer",
            [
                "--role",
                "payer",
                "--names",
                ",".join(plan.payer_names),
                "--payees",
                ",".join(plan.payee_names),
                "--hub-port",
                port,
                "--payments",
                str(plan.payments),
                "--paced-payments",
                str(plan.paced_payments),
                "--in-flight",
                str(plan.in_flight),
                "--amount",
                str(plan.amount),
                *common,
                *profile_args(profile_dir, "payer"),
            ],
            workdir,
        )
        payer.read_line(READY, START_TIMEOUT)
        cpu_before = [p.cpu_seconds() for p in (hub, payer, payee)]
        seen, rest = payer.read_first((MAX_DONE, RESULT), plan.timeout + 10)
        cpu_max = [p.cpu_seconds() for p in (hub, payer, payee)]
        if seen == RESULT:  # the first phase did not finish
            payer_result = payer.checked(json.loads(rest))
        else:
            payer_result = payer.read_result(RESULT, plan.timeout + 60)
        payee_result = payee.read_result(RESULT, 60)
        payer.wait_exit(30)  # it exits by itself after its result (and writes its profile)
    hub_gain, hub_locks, state_changes = hub_store_totals(hub_db, DEFAULT_DEPOSIT)
    fastest = payer_result["max"]
    result: dict[str, Any] = {
        "payments": plan.payments,
        "seconds": fastest["seconds"],
        "payments_per_s": round(plan.payments / fastest["seconds"], 1),
        "max_phase_p50_ms": fastest["p50_ms"],
        "max_phase_p99_ms": fastest["p99_ms"],
        "max_in_flight_seen": fastest["max_in_flight"],
    }
    paced = payer_result.get("paced")
    if paced is not None:
        latencies = sorted(paced.pop("latencies_ms"))
        result.update(
            latency_payments=paced["payments"],
            paced_rate_per_s=paced["rate_per_s"],
            paced_started_per_s=round((paced["payments"] - 1) / paced["start_span_s"], 1)
            if paced["payments"] > 1 and paced["start_span_s"] > 0
            else None,
            paced_max_in_flight=paced["max_in_flight"],
            p50_ms=percentile(latencies, 0.50),
            p90_ms=percentile(latencies, 0.90),
            p99_ms=percentile(latencies, 0.99),
            p999_ms=percentile(latencies, 0.999),
            max_ms=latencies[-1],
        )
    for index, role in enumerate(("hub", "payer", "payee")):
        result[f"{role}_cpu_us"] = cpu_us_per(cpu_before[index], cpu_max[index], plan.payments)
    result.update(_conservation(plan, payer_result, payee_result, hub_gain, hub_locks))
    result["hub_state_changes"] = state_changes
    result["load_average_1m"] = round(load_before, 2)
    return result


def _check(run: dict[str, Any]) -> None:
    if not run["conserved"]:
        raise BenchError(f"money was not conserved: {run['failed_checks']} in {run}")


def _crypto(samples: int) -> dict[str, Any]:
    sign_s, recover_s = measure_crypto(samples)
    cores = os.cpu_count() or 1
    limit = min(cores, 2) / (4 * sign_s + 4 * recover_s)
    return {
        "crypto_limit_per_s": round(limit, 1),
        "crypto_limit_formula": CRYPTO_FORMULA,
        "sign_us": round(sign_s * 1e6, 2),
        "recover_us": round(recover_s * 1e6, 2),
        "cpu_count": cores,
    }


# ----------------------------------------------------------------------------- mediated


MEDIAN_KEYS = (
    "payments_per_s",
    "p50_ms",
    "p90_ms",
    "p99_ms",
    "p999_ms",
    "max_ms",
    "crypto_limit_per_s",
    "ratio_to_limit",
    "sign_us",
    "recover_us",
    "seconds",
    "paced_rate_per_s",
    "max_phase_p50_ms",
    "max_phase_p99_ms",
    "hub_cpu_us",
    "payer_cpu_us",
    "payee_cpu_us",
)


def run_mediated_bench(
    payments: int = DEFAULT_PAYMENTS,
    *,
    in_flight: int = DEFAULT_IN_FLIGHT,
    runs: int = DEFAULT_RUNS,
    payers: int = DEFAULT_PAYERS,
    payees: int = DEFAULT_PAYEES,
    latency_payments: int | None = None,
    amount: int = DEFAULT_AMOUNT,
    workdir: str | Path | None = None,
    timeout: float | None = None,
    crypto_samples: int = 2000,
    profile_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Run the mediated benchmark `runs` times (see the module docstring); the median figures.

    Raises BenchError when a process fails, a payment fails or money is not conserved.
    """
    if min(payments, in_flight, runs, payers, payees, amount) < 1:
        raise ValueError("payments, in_flight, runs, payers, payees and amount must be positive")
    paced = max(1, payments // 2) if latency_payments is None else latency_payments
    plan = _Plan(
        payments=payments,
        paced_payments=paced,
        in_flight=in_flight,
        payers=payers,
        payees=payees,
        timeout=timeout if timeout is not None else default_timeout(payments + 2 * paced),
        amount=amount,
    )
    results: list[dict[str, Any]] = []
    for index in range(runs):
        with run_dirs("cise-bench-mediated-", index, workdir, profile_dir) as (base, profile):
            run = run_network(plan, base, profile_dir=profile)
        _check(run)
        run.update(_crypto(crypto_samples))
        run["ratio_to_limit"] = round(run["payments_per_s"] / run["crypto_limit_per_s"], 3)
        results.append(run)
    summary: dict[str, Any] = {
        "payments_per_s": 0.0,
        "p50_ms": 0.0,
        "p99_ms": 0.0,
        "crypto_limit_per_s": 0.0,
        "crypto_limit_formula": CRYPTO_FORMULA,
        "ratio_to_limit": 0.0,
        "in_flight": in_flight,
        "payments": payments,
        "latency_payments": paced,
        "runs": runs,
        "payers": payers,
        "payees": payees,
        "conserved": all(r["conserved"] for r in results),
        "synchronous": "FULL",
        "cpu_count": results[0]["cpu_count"],
    }
    return summarize_runs(summary, results, MEDIAN_KEYS)


# ----------------------------------------------------------------------------- restart


def _db_bytes(db: Path) -> int:
    return sum(p.stat().st_size for p in (db, Path(f"{db}-wal"), Path(f"{db}-shm")) if p.exists())


def _time_hub_start(
    db: Path, names: Sequence[str], workdir: Path, name: str
) -> tuple[float, dict[str, Any]]:
    """Seconds from starting a hub on `db` to its PORT line, and its RESTORED report."""
    with processes() as started:
        began = time.perf_counter()
        hub = start_process(
            started, name, SYNTHETIC_HUB, _hub_args(db, names, ["--report-restore"]), workdir
        )
        hub.read_line("PORT", START_TIMEOUT)
        elapsed = time.perf_counter() - began
        restored = hub.read_json("RESTORED", START_TIMEOUT)
    return elapsed, restored


def run_restart_bench(
    payments: int = DEFAULT_RESTART_PAYMENTS,
    *,
    in_flight: int = DEFAULT_IN_FLIGHT,
    payers: int = DEFAULT_PAYERS,
    payees: int = DEFAULT_PAYEES,
    starts: int = 3,
    workdir: str | Path | None = None,
    timeout: float | None = None,
) -> dict[str, Any]:
    """Hub restart time after `payments` routed payments (see the module docstring).

    `restart_s` is the median time to PORT on the store minus the median on an empty store,
    each over `starts` starts.
    """
    if min(payments, in_flight, payers, payees, starts) < 1:
        raise ValueError("payments, in_flight, payers, payees and starts must be positive")
    plan = _Plan(
        payments=payments,
        paced_payments=0,
        in_flight=in_flight,
        payers=payers,
        payees=payees,
        timeout=timeout if timeout is not None else default_timeout(payments),
    )
    with tempfile.TemporaryDirectory(prefix="cise-bench-restart-") as scratch:
        base = Path(workdir) if workdir is not None else Path(scratch)
        generation = run_network(plan, base / "network")
        _check(generation)
        hub_db = base / "network" / "hub.sqlite"
        db_bytes = _db_bytes(hub_db)
        warm: list[float] = []
        restored: dict[str, Any] = {}
        for index in range(starts):
            elapsed, report = _time_hub_start(hub_db, plan.names, base, f"restarted hub {index}")
            warm.append(elapsed)
            restored = restored or report  # the first start: on the store as the run left it
        cold: list[float] = []
        for index in range(starts):
            empty = base / f"empty{index}.sqlite"
            elapsed, _ = _time_hub_start(empty, plan.names, base, f"fresh hub {index}")
            cold.append(elapsed)
    restart_total = statistics.median(warm)
    cold_start = statistics.median(cold)
    restart = max(0.0, restart_total - cold_start)
    return {
        "restart_s": round(restart, 4),
        "cold_start_s": round(cold_start, 4),
        "restart_total_s": round(restart_total, 4),
        "restart_target_s": RESTART_TARGET_S,
        "restart_within_target": restart < RESTART_TARGET_S,
        "replayed_state_changes": restored.get("replayed_state_changes"),
        "state_changes": restored.get("state_changes"),
        "restore_in_process_s": restored.get("restore_s"),
        "db_bytes": db_bytes,
        "payments": payments,
        "payments_per_s": generation["payments_per_s"],
        "conserved": generation["conserved"],
        "in_flight": in_flight,
        "payers": payers,
        "payees": payees,
        "starts": starts,
        "first_restart_total_s": round(warm[0], 4),  # includes sqlite's WAL recovery
        "restart_total_runs_s": [round(x, 4) for x in warm],
        "cold_start_runs_s": [round(x, 4) for x in cold],
    }


__all__ = [
    "BenchError",
    "default_timeout",
    "run_mediated_bench",
    "run_network",
    "run_restart_bench",
]

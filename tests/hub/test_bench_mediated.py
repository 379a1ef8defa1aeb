"""`cise bench mediated` and `cise bench restart`, short: hub, payer and payee processes on
loopback, every payment routed and durable, money conserved, the hub restarted on its store."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cise.main import main
from hub.bench import BenchError, run_mediated_bench

MEDIATED_KEYS = {
    "payments_per_s",
    "p50_ms",
    "p99_ms",
    "crypto_limit_per_s",
    "crypto_limit_formula",
    "ratio_to_limit",
    "in_flight",
    "payments",
    "runs",
    "per_run",
    "conserved",
}
RESTART_KEYS = {
    "restart_s",
    "cold_start_s",
    "restart_total_s",
    "replayed_state_changes",
    "db_bytes",
    "payments",
    "conserved",
}


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    assert main(["bench", *args, "--json"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1  # one JSON object on one line, nothing else on stdout
    result: dict[str, Any] = json.loads(out)
    return result


@pytest.mark.timeout(60)
def test_mediated_bench_routes_every_payment_and_conserves_money(
    capsys: pytest.CaptureFixture[str],
) -> None:
    result = run_cli(
        capsys, "mediated", "--payments", "300", "--runs", "1", "--payers", "2", "--payees", "3"
    )
    assert result.keys() >= MEDIATED_KEYS
    assert result["conserved"] is True
    assert result["payments"] == 300 and result["runs"] == 1 and result["in_flight"] == 256
    for key in ("payments_per_s", "p50_ms", "p99_ms", "crypto_limit_per_s", "ratio_to_limit"):
        assert isinstance(result[key], float) and result[key] > 0, key
    assert result["p50_ms"] <= result["p99_ms"]
    [run] = result["per_run"]
    assert run["conserved"] and run["failed_checks"] == []
    assert run["hub_fees"] == run["hub_fees_in_store"] == run["paid_fees"] > 0
    assert run["payers_paid"] == run["paid_amount"] + run["paid_fees"]
    assert run["latency_payments"] == 150


@pytest.mark.timeout(60)
def test_restart_bench_times_a_hub_restart_on_its_store(
    capsys: pytest.CaptureFixture[str],
) -> None:
    result = run_cli(capsys, "restart", "--payments", "300", "--payers", "2", "--payees", "2")
    assert result.keys() >= RESTART_KEYS
    assert result["conserved"] is True
    assert result["payments"] == 300
    assert result["cold_start_s"] > 0 and result["restart_total_s"] > 0
    assert result["restart_s"] >= 0
    assert result["db_bytes"] > 0
    # every routed payment is several state changes in the hub's log
    assert result["state_changes"] >= 300
    assert 0 <= result["replayed_state_changes"] <= result["state_changes"]


@pytest.mark.timeout(60)
def test_a_failed_payment_is_a_clear_error(tmp_path: Path) -> None:
    # more than a payer's deposit: its core refuses to lock it
    with pytest.raises(BenchError, match="payer process: a payment failed"):
        run_mediated_bench(20, runs=1, payers=1, payees=1, amount=10**13, workdir=tmp_path)

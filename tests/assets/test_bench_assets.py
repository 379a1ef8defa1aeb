"""`cise bench assets`, short: hub, asset and peers processes on loopback, every use charged,
ledgered and split to 5 beneficiaries, the checks run; and the checks themselves on made-up
figures (a wrong total is named)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from assets.bench import LedgerFacts, check_run
from assets.bench_peer import TARIFF, bench_split, beneficiary_names
from channels.bench.synthetic import address_of
from channels.core.fees import FeeSchedule
from channels.core.splits import split_fee
from cise.main import main

KEYS = {
    "uses_per_s",
    "payments_per_s",
    "p50_ms",
    "p99_ms",
    "latency_is",
    "ledgered_p50_ms",
    "ledgered_p99_ms",
    "uses",
    "in_flight",
    "runs",
    "processes",
    "beneficiaries",
    "shares",
    "checked",
    "checks",
    "per_run",
    "asset_cpu_s",
}
CHECKS = {
    "every use paid (asset)",
    "every use paid (durable use book)",
    "ledger entries = uses",
    "ledger chain verifies",
    "beneficiaries received their ledger shares",
    "users lost fees + hub fees",
    "the hub's store gained all hub fees",
    "money conserved",
    "nothing pending",
}


@pytest.mark.timeout(60)
def test_assets_bench_runs_uses_end_to_end_and_checks_them(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["bench", "assets", "--uses", "60", "--runs", "1", "--json"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1  # one JSON object on one line, nothing else on stdout
    result: dict[str, Any] = json.loads(out)
    assert result.keys() >= KEYS
    assert result["uses"] == 60 and result["runs"] == 1 and result["in_flight"] == 64
    assert result["processes"] == 3 and result["beneficiaries"] == 5
    assert result["payments_per_use"] == 6 and all(share > 0 for share in result["shares"])
    assert sum(result["shares"]) == result["fee"] and len(set(result["shares"])) == 5
    assert result["checked"] is True and set(result["checks"]) >= CHECKS
    for key in ("uses_per_s", "payments_per_s", "p50_ms", "p99_ms"):
        assert isinstance(result[key], float) and result[key] > 0, key
    assert result["p50_ms"] <= result["p99_ms"]
    assert result["payments_per_s"] == pytest.approx(6 * result["uses_per_s"], rel=0.01)
    [run] = result["per_run"]
    assert run["failed_checks"] == [] and all(run["checks"].values())
    assert set(run["checks"]) == set(result["checks"])
    assert run["ledger_entries"] == 60 and run["asset_stats"]["shares_paid"] == 300
    assert run["hub_gain_in_store"] == run["user_hub_fees"] + run["share_hub_fees"] > 0
    assert run["users_lost"] == run["fee_total"] + run["user_hub_fees"]


def _consistent_run(uses: int = 2) -> tuple[dict[str, Any], dict[str, Any], LedgerFacts, int]:
    """Reports of `uses` uses that add up (what a correct run gives)."""
    split = bench_split()
    price = TARIFF.price
    shares = split_fee(price, split)
    schedule = FeeSchedule(flat=10, ppm=1_000, cap=5_000)
    user_fee = schedule.fee(price)
    share_fees = sum(schedule.fee(s) for s in shares)
    ledger = LedgerFacts(
        entries=uses,
        book={"paid": uses},
        chain_error=None,
        fee_total=uses * price,
        fees=[price] * uses,
        share_amounts=list(shares) * uses,
        by_beneficiary={b: uses * s for b, s in zip(split.beneficiaries, shares, strict=True)},
    )
    asset = {
        "book": {"paid": uses},
        "paid_uses": uses,
        "outcomes": {"accepted": uses},
        "stats": {"shares_paid": 5 * uses, "routing_fees": uses * share_fees},
        "channel_delta": -uses * share_fees,
        "pending_locks": 0,
    }
    by_name = {
        name: uses * shares[split.beneficiaries.index(address_of(name))]
        for name in beneficiary_names()
    }
    peers = {
        "hub_fee_schedule": {"flat": 10, "ppm": 1_000, "cap": 5_000},
        "users": {
            "user-0": {
                "charges_paid": uses,
                "paid_amount": uses * price,
                "hub_fees": uses * user_fee,
                "hub_fees_by_schedule": uses * user_fee,
            }
        },
        "beneficiaries": {
            name: {
                "address": "0x" + address_of(name).hex(),
                "received": amount,
                "channel_delta": amount,
                "shares_received": uses,
            }
            for name, amount in by_name.items()
        },
        "users_lost": uses * (price + user_fee),
        "beneficiaries_gained": uses * price,
        "pending_locks": 0,
    }
    return asset, peers, ledger, uses * (user_fee + share_fees)


def test_the_checks_pass_on_figures_that_add_up() -> None:
    asset, peers, ledger, hub_gain = _consistent_run()
    checked = check_run(2, asset, peers, ledger, hub_gain, 0)
    assert checked["failed_checks"] == []
    assert set(checked["checks"]) >= CHECKS


def test_the_checks_name_what_does_not_add_up() -> None:
    asset, peers, ledger, hub_gain = _consistent_run()
    peers["beneficiaries"]["insurer"]["received"] -= 1  # one unit short
    ledger.chain_error = "seq 2: bad signature"
    asset["book"] = {"paid": 1, "ledgered": 1}
    checked = check_run(2, asset, peers, ledger, hub_gain + 1, 1)
    assert set(checked["failed_checks"]) == {
        "beneficiaries received their ledger shares",
        "ledger chain verifies",
        "every use paid (asset)",
        "the hub's store gained all hub fees",
        "money conserved",
        "nothing pending",
    }

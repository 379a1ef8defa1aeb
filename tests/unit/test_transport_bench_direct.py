"""The direct-payment benchmark, short: two real processes over loopback, every payment
acknowledged only once durable, and the payee's store rebuilt after its process was terminated."""

from __future__ import annotations

from pathlib import Path

import pytest

from channels.bench.direct import CHANNEL_ID, read_payee_store, run_direct_bench

KEYS = {"payments_per_s", "p50_ms", "p99_ms", "crypto_limit_per_s", "ratio_to_limit", "in_flight"}


@pytest.mark.timeout(120)
def test_short_run_acknowledges_everything_and_persists(tmp_path: Path) -> None:
    result = run_direct_bench(2000, amount=3, workdir=tmp_path, timeout=60, crypto_samples=200)
    assert result.keys() >= KEYS
    assert result["acknowledged"] == 2000
    assert result["payments_per_s"] > 0
    assert 0 < result["p50_ms"] <= result["p99_ms"]
    assert result["ratio_to_limit"] == pytest.approx(
        result["payments_per_s"] / result["crypto_limit_per_s"], rel=0.01
    )
    assert 1 <= result["max_in_flight_seen"] <= result["in_flight"] == 256
    # the payee was terminated (no clean shutdown); its store alone gives the final amount
    assert result["restored_transferred"] == 6000
    node = read_payee_store(tmp_path / "run0" / "payee.db")
    channel = node.channels[CHANNEL_ID]
    assert channel.partner.balance_proof.transferred == 6000
    assert channel.partner.balance_proof.nonce == 2000


@pytest.mark.timeout(120)
def test_window_of_one_and_median_of_runs(tmp_path: Path) -> None:
    result = run_direct_bench(
        50, in_flight=1, runs=2, workdir=tmp_path, timeout=60, crypto_samples=50
    )
    assert result["max_in_flight_seen"] == 1
    assert [run["acknowledged"] for run in result["runs"]] == [50, 50]
    assert result["restored_transferred"] == 50


def test_rejects_a_window_above_256() -> None:
    with pytest.raises(ValueError, match="in_flight must be in"):
        run_direct_bench(10, in_flight=257)

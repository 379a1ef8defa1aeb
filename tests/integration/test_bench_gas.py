"""`cise bench gas` prints one JSON object with every operation, within the issue's targets."""

from __future__ import annotations

import json

import pytest

from cise.main import main

OPERATIONS = [
    "open_with_deposit", "deposit", "withdraw", "cooperative_close",
    "close", "update", "settle", "unlock",
]  # fmt: skip


def test_bench_gas_prints_targets_met(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "gas", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    for operation in OPERATIONS:
        assert isinstance(result[operation], int) and 21_000 < result[operation] < 200_000
    assert result["open_with_deposit"] <= 79_000  # Raiden: 146,956
    assert result["cooperative_close"] <= 50_000  # Raiden: 112,270

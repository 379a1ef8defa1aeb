"""`cise bench watchtower`, short (embedded chain, a client process): one JSON object with both
figures, every request accepted and every close answered (the run checks itself)."""

from __future__ import annotations

import json

import pytest

from cise.main import main


def test_the_benchmark_prints_its_figures(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["bench", "watchtower", "--json", "--requests", "600", "--channels", "30", "--chain"]
    argv.append("embedded")
    assert main([*argv, "--runs", "1", "--block-time", "0.3"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["requests_per_s"] > 0 and result["closes_handled_per_block"] > 0
    assert result["chain"] == "embedded" and result["closes_in_one_block"] == 30
    [run] = result["per_run"]
    assert sum(run["updates_per_block"]) == 30  # every close answered, each once


def test_bad_arguments_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["bench", "watchtower", "--requests", "5", "--channels", "10", "--runs", "1"]
    assert main(argv) == 2
    assert "requests >= channels" in capsys.readouterr().err

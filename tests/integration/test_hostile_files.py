"""Hostile JSON files and arguments given to `cise` commands (run as processes): deep nesting, bytes
that are not UTF-8, files too large. Each is a clear error line and a non-zero exit, never a crash
(before `channels.input_limits`, a statement file nested 100,000 deep ended `cise ledger
check-statement` with a segmentation fault, and a non-UTF-8 tariff file with a traceback).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

DEEP = b"[" * 100_000 + b"]" * 100_000
ASSET = "0x" + "ab" * 32


def _cise(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cise.main", *argv], capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (DEEP, "nests arrays and objects 100000 deep"),
        (b'{"a": "\xff"}', "is not UTF-8 text (byte 0xff at offset 7)"),
        (b'{"a": ', "not JSON"),
    ],
    ids=["deep", "not-utf8", "truncated"],
)
def test_statement_file(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "statement.json"
    path.write_bytes(content)
    run = _cise("ledger", "check-statement", str(path), "--network", str(tmp_path / "n.json"))
    assert run.returncode != 0 and run.returncode != -11, run
    assert message in run.stderr and "Traceback" not in run.stderr, run.stderr


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (DEEP, "nests arrays and objects 100000 deep"),
        (b'{"kind": "cycle\xfe"}', "is not UTF-8 text"),
        (b"[" + b"1," * 600_000 + b"1]", "larger than the limit"),
    ],
    ids=["deep", "not-utf8", "too-large"],
)
def test_tariff_file_and_argument(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "tariff.json"
    path.write_bytes(content)
    common = ["--hub", "0x" + "11" * 20, "--hub-port", "1", "--network", str(tmp_path / "n.json")]
    run = _cise("asset", "run", ASSET, "--tariff", f"@{path}", *common)
    assert run.returncode == 2, run
    assert f"--tariff @{path}" in run.stderr and message in run.stderr, run.stderr
    if content == DEEP:  # the same as an argument (at most 128 kB long)
        argument = "[" * 50_000 + "]" * 50_000
        run = _cise("asset", "run", ASSET, "--tariff", argument, *common)
        assert run.returncode == 2 and "50000 deep" in run.stderr, run.stderr[:500]


def test_network_file(tmp_path: Path) -> None:
    path = tmp_path / "network.json"
    path.write_bytes(DEEP)
    run = _cise("api", "serve", "--network", str(path), "--data-dir", str(tmp_path))
    assert run.returncode == 2, run
    assert "nests arrays and objects 100000 deep" in run.stderr, run.stderr

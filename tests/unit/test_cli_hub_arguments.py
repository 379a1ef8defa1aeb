"""`cise hub serve` and `cise agent` refuse bad arguments with a clear error, before touching
anything (no chain, no store is opened)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cise.main import main

HUB = "0x15d34AAf54267DB7D7c367839AAf71A00a2C6A65"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["hub", "serve", "--fee-flat", "1", "--fee-cap", "0.5"], "above the fee cap"),
        (["hub", "serve", "--fee-ppm", "2000000"], "0..1000000 ppm"),
        (["hub", "serve", "--fee-flat", "0.0000001"], "more than 6 decimals"),
        (["hub", "serve", "--reveal-timeout", "20", "--lock-timeout", "30"], "lock_timeout"),
        (["hub", "serve", "--low-water", "2", "--top-up-to", "1"], "--top-up-to"),
        (["hub", "serve", "--port", "70000"], "--port"),
        (
            ["agent", "pay", "--hub", "0x12", "--hub-port", "1", HUB, "1", "--payment-id", "1"],
            "--hub",
        ),
        (
            ["agent", "pay", "--hub", HUB, "--hub-port", "1", "nope", "1", "--payment-id", "1"],
            "payee",
        ),
        (
            ["agent", "pay", "--hub", HUB, "--hub-port", "1", HUB, "0", "--payment-id", "1"],
            "positive",
        ),
        (["agent", "receive", "--hub", HUB, "--hub-port", "1", "--seconds", "0"], "--seconds"),
        (
            ["agent", "receive", "--hub", HUB, "--hub-port", "1", "--watchtower", f"{HUB}:80"],
            "ADDRESS@PORT",
        ),
        (
            ["agent", "receive", "--hub", HUB, "--hub-port", "1", "--watchtower", "0x12@80"],
            "--watchtower",
        ),
        (
            ["agent", "receive", "--hub", HUB, "--hub-port", "1", "--accept-charges-from", "0x1"],
            "--accept-charges-from",
        ),
    ],
)
def test_bad_arguments_are_clear_errors(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    network = tmp_path / "missing-network.json"  # never reached: arguments are checked first
    argv = [*argv[:2], "--network", str(network), "--data-dir", str(tmp_path), *argv[2:]]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err
    assert not list(tmp_path.glob("*.sqlite"))


def test_a_missing_network_file_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["hub", "serve", "--network", str(tmp_path / "none.json"), "--data-dir", str(tmp_path)]
    assert main(argv) == 2
    assert "no network file" in capsys.readouterr().err

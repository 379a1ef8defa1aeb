"""`cise api serve` refuses bad arguments with a clear `CliError` before it serves anything."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from channels.codec.keccak import keccak
from cise import api_cmd
from cise.errors import CliError

ADDRESS = "0x15d34AAf54267DB7D7c367839AAf71A00a2C6A65"
UNREACHABLE = "http://127.0.0.1:9"  # never reached: every case fails on its arguments first


def _args(tmp_path: Path, *argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    api_cmd.add_parsers(parser.add_subparsers(dest="command"))
    return parser.parse_args(["api", "serve", "--data-dir", str(tmp_path), *argv])


@pytest.fixture
def network(tmp_path: Path) -> Path:
    path = tmp_path / "network.json"
    path.write_text(
        json.dumps(
            {
                "rpc_url": UNREACHABLE,
                "chain_id": 31337,
                "token": ADDRESS,
                "channel_manager": ADDRESS,
                "deployment_block": 1,
                "settle_timeout": 20,
                "dev_private_keys": ["0x" + "11" * 32],
            }
        )
    )
    return path


def test_parse_ledger(tmp_path: Path) -> None:
    ledger = tmp_path / "l.sqlite"
    ledger.write_bytes(b"")
    asset = "0x" + "ab" * 32
    assert api_cmd.parse_ledger(f"{asset}={ledger}") == (bytes.fromhex("ab" * 32), None, ledger)
    assert api_cmd.parse_ledger(f"washer={ledger}") == (keccak(b"washer"), "washer", ledger)
    for bad in ("nothing", f"={ledger}", "0x12=" + str(ledger), "0x" + "zz" * 32 + f"={ledger}"):
        with pytest.raises(CliError, match="--ledger"):
            api_cmd.parse_ledger(bad)
    with pytest.raises(CliError, match="no file"):
        api_cmd.parse_ledger(f"{asset}={tmp_path / 'missing.sqlite'}")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--port", "70000"], "--port"),
        (["--port", "-1"], "--port"),
        (["--hub-account", "0", "--settlement", "x.sqlite"], "not both"),
        (["--hub-account", "5"], "--hub-account 5"),
        (["--settlement", "missing.sqlite"], "--settlement"),
        (["--tower", "missing.sqlite"], "--tower"),
        (["--ledger", "washer"], "--ledger"),
    ],
)
def test_bad_arguments(tmp_path: Path, network: Path, argv: list[str], message: str) -> None:
    args = _args(tmp_path, "--network", str(network), *argv)
    with pytest.raises(CliError, match=message):
        api_cmd.build_sources(args)


def test_no_network_file(tmp_path: Path) -> None:
    with pytest.raises(CliError, match="network file"):
        api_cmd.build_sources(_args(tmp_path, "--network", str(tmp_path / "none.json")))


def test_unreachable_node(tmp_path: Path, network: Path) -> None:
    with pytest.raises(CliError, match="cannot reach"):
        api_cmd.build_sources(_args(tmp_path, "--network", str(network)))

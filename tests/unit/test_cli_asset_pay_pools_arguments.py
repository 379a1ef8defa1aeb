"""`cise asset pay-pools` refuses bad arguments with a clear error naming what was wrong (exit 2)
before touching anything: no transaction, no file written or changed, no data folder made."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from assets.ledger import entry_to_json
from assets.ledger_store import LedgerStore
from cise.main import main
from tests.unit.test_audit import ASSET, OTHER_ASSET, make_ledger
from tests.unit.test_cli_ledger_arguments import snapshot

ASSET_HEX = "0x" + ASSET.hex()
ADDRESS = "0x15d34AAf54267DB7D7c367839AAf71A00a2C6A65"
UNREACHABLE = "http://127.0.0.1:9"  # nothing listens on the discard port: refused at once


@pytest.fixture
def files(tmp_path: Path) -> Path:
    """A ledger file (3 entries), an export, an empty export, junk, a network file naming a node
    that is not there, and one that is broken."""
    with LedgerStore(tmp_path / "ledger.sqlite") as store:
        for entry in make_ledger(3):
            store.append(entry)
    lines = [json.dumps(entry_to_json(entry)) for entry in make_ledger(3)]
    (tmp_path / "ledger.jsonl").write_text("\n".join(lines) + "\n")
    (tmp_path / "empty.jsonl").write_text("")
    (tmp_path / "junk.txt").write_text("hello")
    network = {
        "rpc_url": UNREACHABLE,
        "chain_id": 31337,
        "token": ADDRESS,
        "channel_manager": ADDRESS,
        "asset_registry": ADDRESS,
        "deployment_block": 1,
        "settle_timeout": 20,
        "dev_private_keys": ["0x" + "01" * 32],
    }
    (tmp_path / "network.json").write_text(json.dumps(network))
    (tmp_path / "broken.json").write_text("{")
    return tmp_path


PAY = "asset pay-pools {a} --ledger {d}/ledger.sqlite"
CASES = [
    ("asset pay-pools 0x12 --ledger {d}/ledger.sqlite", "32-byte asset id"),
    ("asset pay-pools 0x" + "zz" * 32 + " --ledger {d}/ledger.sqlite", "not hex"),
    ("asset pay-pools '' --ledger {d}/ledger.sqlite", "the asset name is empty"),
    ("asset pay-pools {a} --ledger {d}/none.sqlite", "--ledger {d}/none.sqlite: No such file"),
    ("asset pay-pools {a} --ledger {d}/junk.txt", "not a ledger file"),
    ("asset pay-pools {a} --ledger {d}/empty.jsonl", "the ledger holds no entries"),
    (
        "asset pay-pools 0x" + OTHER_ASSET.hex() + " --ledger {d}/ledger.sqlite",
        "is the ledger of asset",
    ),
    (PAY + " --up-to-seq 4", "--up-to-seq 4 is past the ledger's last seq 3"),
    ("asset pay-pools {a} --ledger {d}/ledger.jsonl --up-to-seq 9", "last seq 3"),
    (PAY + " --network {d}/none.json", "no network file at"),
    (PAY + " --network {d}/broken.json", "broken.json"),
    (PAY + " --account 5", "--account 5: the network file has dev accounts 0..0"),
    (PAY + " --account 0", f"cannot reach the node at {UNREACHABLE}"),
]


@pytest.mark.parametrize(("command", "message"), CASES)
def test_bad_arguments_are_clear_errors(
    command: str, message: str, files: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = snapshot(files)
    argv = [a if a != "''" else "" for a in command.format(d=files, a=ASSET_HEX).split()]
    if "--network" not in argv:
        argv += ["--network", str(files / "network.json")]
    argv += ["--data-dir", str(files / "data")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message.format(d=files) in err, err
    assert err.startswith("cise: error: ")
    assert snapshot(files) == before
    assert not (files / "data").exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--up-to-seq", "0"], "--up-to-seq: must be positive: '0'"),
        (["--up-to-seq", "x"], "--up-to-seq: not an integer: 'x'"),
        (["--account", "b@d"], "--account: not an account name, 0x address or dev account"),
    ],
)
def test_malformed_options_are_refused_by_the_parser(
    extra: list[str], message: str, files: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = snapshot(files)
    argv = ["asset", "pay-pools", ASSET_HEX, "--ledger", str(files / "ledger.sqlite"), *extra]
    with pytest.raises(SystemExit) as exit_:
        main([*argv, "--network", str(files / "network.json"), "--data-dir", str(files / "d")])
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err
    assert snapshot(files) == before


def test_the_ledger_option_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["asset", "pay-pools", ASSET_HEX])
    assert exit_.value.code == 2
    assert "the following arguments are required: --ledger" in capsys.readouterr().err

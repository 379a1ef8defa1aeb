"""`cise ledger ...` and `cise user statement` refuse bad arguments with a clear error (exit 2)
before touching anything: no chain is reached, and no file is written or changed."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

import pytest

from assets.ledger import entry_to_json
from assets.ledger_store import LedgerStore
from cise.main import main
from tests.unit.test_audit import ASSET, OTHER_ASSET, make_ledger

ASSET_HEX = "0x" + ASSET.hex()
BENEFICIARY = "0x15d34AAf54267DB7D7c367839AAf71A00a2C6A65"
# A node that is never reached: every case below fails on its arguments first.
UNREACHABLE = "http://127.0.0.1:9"


@pytest.fixture
def files(tmp_path: Path) -> Path:
    """A folder with a ledger file, an export, junk, and a network file naming no live node."""
    with LedgerStore(tmp_path / "ledger.sqlite") as store:
        for entry in make_ledger(3):
            store.append(entry)
    lines = [json.dumps(entry_to_json(entry)) for entry in make_ledger(3)]
    (tmp_path / "ledger.jsonl").write_text("\n".join(lines) + "\n")
    (tmp_path / "bad.jsonl").write_text(lines[0] + "\n{not json\n")
    (tmp_path / "junk.txt").write_text("hello")
    sqlite3.connect(tmp_path / "other.sqlite").execute("CREATE TABLE t (x)").connection.close()
    network = {
        "rpc_url": UNREACHABLE,
        "chain_id": 31337,
        "token": BENEFICIARY,
        "channel_manager": BENEFICIARY,
        "asset_registry": BENEFICIARY,
        "deployment_block": 1,
        "settle_timeout": 20,
        "dev_private_keys": ["0x" + "01" * 32],
    }
    (tmp_path / "network.json").write_text(json.dumps(network))
    (tmp_path / "key.txt").write_text("0x1234")
    (tmp_path / "exists.json").write_text("{}")
    return tmp_path


def snapshot(folder: Path) -> dict[str, str]:
    return {
        path.name: hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.iterdir())
        if path.is_file()
    }


SQLITE = "--ledger {d}/ledger.sqlite"
STATEMENT = "ledger statement {a} --ledger {d}/ledger.sqlite --out {d}/s.json"
CASES = [
    ("ledger show 0x12 --ledger {d}/ledger.sqlite", "32-byte asset id"),
    ("ledger show 0x" + "zz" * 32 + " " + SQLITE, "not hex"),
    ("ledger show {a} --ledger {d}/none.sqlite", "No such file"),
    ("ledger show {a} --ledger {d}/junk.txt", "not a ledger file"),
    ("ledger show {a} --ledger {d}/other.sqlite", "no entries and anchors"),
    ("ledger show {a} --ledger {d}/bad.jsonl", "bad.jsonl:2: not a ledger"),
    ("ledger show 0x" + OTHER_ASSET.hex() + " " + SQLITE, "is the ledger of asset"),
    ("ledger show {a} --ledger {d}/ledger.jsonl --from-seq 3 --to-seq 2", "after --to-seq"),
    ("ledger export {a} " + SQLITE + " --out {d}/exists.json", "exists"),
    ("ledger export {a} " + SQLITE + " --out {d}/no/folder.jsonl", "no folder"),
    ("ledger verify {a} " + SQLITE + " --beneficiary {b}", "--beneficiary and --store go"),
    ("ledger verify {a} " + SQLITE + " --beneficiary 0x12 --store {d}/x", "--beneficiary"),
    ("ledger verify {a} " + SQLITE + " --beneficiary {b} --store {d}/none.sqlite", "--store"),
    (
        "ledger verify {a} " + SQLITE + " --beneficiary {b} --store {d}/ledger.sqlite",
        "not an agent store",
    ),
    ("ledger verify {a} " + SQLITE + " --network-file {d}/none.json", "no network file"),
    (
        STATEMENT + " --from yesterday --to 0 --account 0",
        "--from must be unix seconds or an ISO 8601",
    ),
    (
        STATEMENT + " --from 2026-02-01 --to 2026-01-01T00:00:00Z --account 0",
        "must be before --to",
    ),
    (STATEMENT + " --from 0 --to 10 --key-file {d}/key.txt", "32-byte private key"),
    (
        STATEMENT + " --from 0 --to 10 --account 5",
        "--account 5: the network file has dev accounts 0..0",
    ),
    (
        "ledger statement {a} " + SQLITE + " --from 0 --to 10 --account 0 --out {d}/exists.json",
        "exists",
    ),
    ("ledger check-statement {d}/none.json", "No such file"),
    ("ledger check-statement {d}/junk.txt", "not a revenue statement"),
    ("user statement --store {d}/none.sqlite", "--store"),
    ("user statement --store {d}/junk.txt", "not a readable agent store"),
    ("user statement --store {d}/other.sqlite --ledger {d}/ledger.sqlite", "wants ASSET=PATH"),
    (
        "user statement --store {d}/other.sqlite --ledger 0x12={d}/ledger.sqlite",
        "--ledger ASSET must be a 32-byte asset id",
    ),
    ("user statement --store {d}/other.sqlite", "not an agent store"),
]


@pytest.mark.parametrize(("command", "message"), CASES)
def test_bad_arguments_are_clear_errors(
    command: str, message: str, files: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = snapshot(files)
    argv = command.format(d=files, a=ASSET_HEX, b=BENEFICIARY).split()
    if argv[1] in ("verify", "statement", "check-statement") and "--network-file" not in argv:
        argv += ["--network-file", str(files / "network.json")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err, err
    assert err.startswith("cise: error: ")
    assert snapshot(files) == before  # nothing written, nothing changed


@pytest.mark.parametrize(
    "argv",
    [
        ["ledger", "show", ASSET_HEX, "--ledger", "x", "--from-seq", "0"],
        ["ledger", "statement", ASSET_HEX, "--ledger", "x", "--from", "0", "--to", "1",
         "--out", "s"],
        ["ledger", "statement", ASSET_HEX, "--ledger", "x", "--from", "0", "--to", "1",
         "--out", "s", "--account", "0", "--key-file", "k"],
        ["user", "statement"],
    ],
)  # fmt: skip
def test_malformed_command_lines_exit_2(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2


def test_an_unreachable_node_is_a_clear_error(
    files: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["ledger", "verify", ASSET_HEX, "--ledger", str(files / "ledger.sqlite"),
            "--network-file", str(files / "network.json")]  # fmt: skip
    assert main(argv) == 2
    assert f"cannot reach the node at {UNREACHABLE}" in capsys.readouterr().err


def test_show_and_export_read_a_ledger_without_a_chain(
    files: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["ledger", "show", ASSET_HEX, "--ledger", str(files / "ledger.sqlite")]) == 0
    out = capsys.readouterr().out
    assert "€1.000333" in out and "2026-01-01 01:00:00" in out
    out_file = files / "export.jsonl"
    argv = ["ledger", "export", ASSET_HEX, "--ledger", str(files / "ledger.sqlite"),
            "--out", str(out_file)]  # fmt: skip
    assert main(argv) == 0
    assert "exported 3 entries" in capsys.readouterr().out
    assert out_file.read_text() == (files / "ledger.jsonl").read_text().replace(" ", "")
    argv = ["ledger", "show", ASSET_HEX, "--ledger", str(out_file), "--json", "--to-seq", "2"]
    assert main(argv) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line]
    assert [row["seq"] for row in rows] == [1, 2]

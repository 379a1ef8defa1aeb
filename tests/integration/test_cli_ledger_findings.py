"""`cise ledger` and `cise user statement` report what is wrong as findings, never as a traceback.

On the embedded chain and a real ledger file (`test_cli_ledger.build_world`): a byte that is not
UTF-8 in a stored entry or receipt, and a share the agent's use book records as not paid.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from msgspec.structs import replace

from assets.use_book import ShareFailure, UseBook
from channels.chain.connection import Connection
from channels.core.types import to_checksum
from channels.records import core_record_codec
from cise.ledger_cmd import ledger_verify
from cise.ledger_files import read_ledger
from cise.main import main
from cise.network import Network
from tests.integration.test_cli_ledger import (
    ASSET,
    World,
    build_world,
    console,
    receipt_store,
)


@pytest.fixture
def world(tmp_path: Path) -> World:
    return build_world(Connection.embedded(), tmp_path)


def break_utf8(raw: bytes) -> bytes:
    """The event id "wash-2" with one byte that is no UTF-8 (the entry's length unchanged)."""
    assert raw.count(b"wash-2") == 1
    return raw.replace(b"wash-2", b"wash-\xff")


def corrupt_entry(path: Path, seq: int) -> None:
    db = sqlite3.connect(path)
    with db:
        (raw,) = db.execute("SELECT entry FROM entries WHERE seq = ?", (seq,)).fetchone()
        db.execute("UPDATE entries SET entry = ? WHERE seq = ?", (break_utf8(raw), seq))
    db.close()


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    capsys.readouterr()
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out + err


def test_an_entry_that_is_not_utf8_is_a_finding_of_show_export_and_verify(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    corrupt_entry(world.ledger, 2)
    asset = "0x" + ASSET.hex()
    for argv in (["show"], ["show", "--json"]):
        code, out = cli(capsys, "ledger", *argv[:1], asset, "--ledger", str(world.ledger),
                        *argv[1:])  # fmt: skip
        assert code == 1, out
        assert "Traceback" not in out and "broken entry" in out and "seq 2" in out, out
    export = world.tmp / "export.jsonl"
    code, out = cli(capsys, "ledger", "export", asset, "--ledger", str(world.ledger),
                    "--out", str(export))  # fmt: skip
    assert "Traceback" not in out
    if code == 0:  # the export copies entries as they are: verifying it finds the row
        con, text = console()
        assert ledger_verify(con, ASSET, read_ledger(export, ASSET), world.chain) == 1
        assert "seq 2" in text.getvalue()
    else:
        assert code == 1 and "seq 2" in out, out
    con, text = console()
    assert ledger_verify(con, ASSET, read_ledger(world.ledger, ASSET), world.chain) == 1
    report = text.getvalue()
    assert "ledger verification FAILED" in report and "seq 2" in report, report


def test_an_entry_stored_as_text_that_is_not_utf8_is_a_finding(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    db = sqlite3.connect(world.ledger)
    with db:  # what a text-minded edit leaves: the column value is TEXT with a stray 0xff
        db.execute(
            "UPDATE entries SET entry = CAST(? AS TEXT) WHERE seq = 3",
            (b"\x93\xff\xfe garbage",),
        )
    db.close()
    code, out = cli(capsys, "ledger", "show", "0x" + ASSET.hex(), "--ledger", str(world.ledger))
    assert code == 1 and "Traceback" not in out, out
    assert "seq 3" in out, out


@pytest.mark.parametrize("where", ["entry", "payload"])
def test_a_receipt_that_is_not_utf8_is_a_finding_of_the_user_statement(
    world: World, capsys: pytest.CaptureFixture[str], where: str
) -> None:
    store = receipt_store(world)
    codec = core_record_codec()
    db = sqlite3.connect(store)
    with db:
        rows = db.execute("SELECT key, kind, payload FROM facts WHERE key LIKE 'receipt:%'")
        for key, kind, payload in rows.fetchall():
            receipt = codec.decode(kind, payload)
            if b"wash-2" not in receipt.entry:
                continue
            if where == "entry":  # the receipt decodes; the entry it holds does not
                _, payload = codec.encode(replace(receipt, entry=break_utf8(receipt.entry)))
            else:  # the stored record itself
                payload = payload[:-2] + b"\xff" + payload[-1:]
            db.execute("UPDATE facts SET payload = ? WHERE key = ?", (payload, key))
    db.close()
    network = world.tmp / "network.json"
    network.write_text(Network("http://127.0.0.1:9", world.deployment, ()).to_json())
    code, out = cli(capsys, "user", "statement", "--store", str(store), "--ledger",
                    f"0x{ASSET.hex()}={world.ledger}", "--network-file", str(network))  # fmt: skip
    assert "Traceback" not in out
    assert code == 1, out
    if where == "entry":
        assert "(seq 2)" in out and "receipt check FAILED" in out, out
    else:
        assert "broken receipt: fact receipt:" in out, out


def test_a_share_the_use_book_records_as_not_paid_is_a_finding_of_verify(world: World) -> None:
    entry = world.entries[1]  # seq 2
    share = next(s for s in entry.decode_use_body().shares if s.payment_id)
    db = sqlite3.connect(world.ledger)
    with db:
        book = UseBook(db)
        book.record_share_failure(
            ShareFailure(
                2,
                share.payment_id,
                share.beneficiary,
                share.amount,
                3,
                "amount exceeds our capacity",
            )
        )
    db.close()
    con, text = console()
    assert ledger_verify(con, ASSET, read_ledger(world.ledger, ASSET), world.chain) == 1
    report = " ".join(text.getvalue().split())
    assert "ledger verified" in report  # the ledger itself is sound ...
    assert "share not paid: seq 2" in report  # ... but a share it owes is not paid
    assert to_checksum(share.beneficiary) in report
    assert "amount exceeds our capacity" in report
    assert f"€{share.amount / 1e6:.6f}" in report

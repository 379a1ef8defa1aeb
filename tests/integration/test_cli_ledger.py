"""`cise ledger` and `cise user statement` on a real ledger file and a real asset registry.

The embedded chain (in-process py-evm) for the command functions (`ledger_verify`, ...), which
take a `ChainView`; a real anvil (`node` tests) for the full command lines, which connect through
a network file. The ledger is written as the asset agent writes it: `make_use_entry` into a
`LedgerStore` file, anchored by the agent key on chain.
"""

from __future__ import annotations

import io
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import pytest
from eth_account import Account
from msgspec.structs import replace
from rich.console import Console

from assets.ledger import (
    GENESIS_PREV_HASH,
    SignedEntry,
    encode_body,
    make_anchor,
    make_use_entry,
    statement_from_json,
    statement_to_json,
    use_body,
)
from assets.ledger_store import LedgerStore
from assets.payment_ids import charge_payment_id, share_payment_id
from channels.chain.assets import AssetRegistryClient, canonical_split
from channels.chain.connection import Connection
from channels.chain.deploy import Deployment, deploy
from channels.chain.nodes import LocalNode
from channels.codec.keccak import keccak
from channels.core.splits import Split, split_fee
from channels.core.types import Address, to_checksum
from channels.records import InvoiceRecord, ReceiptRecord, core_record_codec
from channels.signer import LocalSigner
from channels.store import SqliteStore
from cise.errors import CliError
from cise.ledger_cmd import (
    ChainView,
    ledger_check_statement,
    ledger_statement,
    ledger_verify,
    user_statement,
)
from cise.ledger_files import read_invoices, read_ledger, read_receipts
from cise.main import main
from cise.network import Network

ASSET = keccak(b"asset washing machine WM-7 #0042")
UNKNOWN = keccak(b"asset never registered")
T0 = 1_767_225_600  # 2026-01-01T00:00:00Z
ENTRIES, ANCHORED = 6, 4
USER = Address(b"\xaa" * 20)


def beneficiary(label: str) -> Address:
    return Address(keccak(f"beneficiary {label}".encode())[12:])


@dataclass
class World:
    """A registered asset, its ledger file anchored up to seq 4, and the chain view."""

    connection: Connection
    deployment: Deployment
    chain: ChainView
    agent_key: bytes
    split: Split
    entries: list[SignedEntry]
    ledger: Path
    tmp: Path

    @property
    def agent(self) -> bytes:
        return LocalSigner(self.agent_key).address


def build_world(connection: Connection, tmp: Path) -> World:
    keys = connection.dev_keys
    deployment = deploy(connection, Account.from_key(keys[0]))
    operator = AssetRegistryClient.from_key(connection, deployment, keys[1])
    agent_key = keys[2]
    agent = LocalSigner(agent_key)
    parts = {beneficiary("maker"): 600_000, beneficiary("servicer"): 300_000}
    parts[beneficiary("platform")] = 100_000
    beneficiaries, ppm = canonical_split(parts)
    operator.register_asset(
        ASSET, Address(agent.address), keccak(b"m"), "ipfs://m", beneficiaries, ppm
    )
    split = Split(1, beneficiaries, ppm)
    chain = ChainView.of(connection, deployment)
    entries: list[SignedEntry] = []
    counts: dict[bytes, int] = {}
    for n in range(1, ENTRIES + 1):
        fee = 2_500 + 7_919 * n
        ids = []
        for b, amount in zip(split.beneficiaries, split_fee(fee, split), strict=True):
            counts[b] = counts.get(b, 0) + 1
            ids.append(
                share_payment_id(split.beneficiaries.index(b) + 1, counts[b]) if amount else 0
            )
        body = use_body(
            event_id=f"wash-{n}",
            user=keccak(USER),
            units=n,
            fee=fee,
            split=split,
            payment_ids=ids,
            charge_payment_id=charge_payment_id(ASSET, f"wash-{n}"),
        )
        entries.append(
            make_use_entry(
                agent.sign_digest,
                chain.domain,
                asset_id=ASSET,
                seq=n,
                prev_hash=entries[-1].entry_hash if entries else GENESIS_PREV_HASH,
                time=T0 + 600 * n,
                body=body,
            )
        )
    path = tmp / "ledger.sqlite"
    anchor = make_anchor(entries[:ANCHORED])
    anchorer = operator.for_account(Account.from_key(agent_key))
    anchorer.anchor_ledger(ASSET, anchor.from_seq, anchor.to_seq, anchor.root, anchor.head_hash)
    with LedgerStore(path) as store:
        for entry in entries:
            store.append(entry)
        store.record_anchor(0, anchor)
    return World(connection, deployment, chain, agent_key, split, entries, path, tmp)


@pytest.fixture
def world(tmp_path: Path) -> World:
    return build_world(Connection.embedded(), tmp_path)


def console() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, width=200, highlight=False), out


def tamper(path: Path, seq: int, entry: SignedEntry) -> None:
    """Overwrite the stored bytes of entry `seq` (what a changed disk or operator does)."""
    db = sqlite3.connect(path)
    with db:
        db.execute("UPDATE entries SET entry = ? WHERE seq = ?", (entry.encode(), seq))
    db.close()


# ---------------------------------------------------------------------------------------------
# verify


def test_verify_a_sound_ledger(world: World) -> None:
    con, out = console()
    assert ledger_verify(con, ASSET, read_ledger(world.ledger, ASSET), world.chain) == 0
    text = out.getvalue()
    assert "ledger verified" in text
    assert "anchored up to seq │ 4 (4 entries)" in text
    assert "not yet anchored   │ 2 entries" in text
    assert to_checksum(beneficiary("maker")) in text


def test_verify_catches_a_tampered_row(world: World) -> None:
    body = world.entries[2].decode_use_body()
    tamper(world.ledger, 3, replace(world.entries[2], body=encode_body(replace(body, units=99))))
    con, out = console()
    assert ledger_verify(con, ASSET, read_ledger(world.ledger, ASSET), world.chain) == 1
    text = out.getvalue()
    assert "ledger verification FAILED" in text
    assert "seq 3: not signed by the agent" in text


def test_verify_catches_an_undecodable_row(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    db = sqlite3.connect(world.ledger)
    with db:
        db.execute("UPDATE entries SET entry = ? WHERE seq = 2", (b"\x93garbage",))
    db.close()
    # the ledger is read before the network file is even opened
    argv = ["ledger", "verify", "0x" + ASSET.hex(), "--ledger", str(world.ledger),
            "--network-file", str(world.tmp / "none.json")]  # fmt: skip
    assert main(argv) == 1
    assert "seq 2: the stored entry does not decode" in capsys.readouterr().out


def test_verify_an_export_and_catch_truncation(world: World) -> None:
    export = world.tmp / "ledger.jsonl"
    assert main(["ledger", "export", "0x" + ASSET.hex(), "--ledger", str(world.ledger),
                 "--out", str(export)]) == 0  # fmt: skip
    con, _ = console()
    assert ledger_verify(con, ASSET, read_ledger(export, ASSET), world.chain) == 0
    lines = export.read_text().splitlines()
    export.write_text("\n".join(lines[:3]) + "\n")  # seq 4, anchored on chain, cut off
    con, out = console()
    assert ledger_verify(con, ASSET, read_ledger(export, ASSET), world.chain) == 1
    assert "truncated" in out.getvalue()


def test_an_unknown_asset_is_a_clear_error(world: World) -> None:
    con, _ = console()
    with pytest.raises(CliError, match="is not registered in the asset registry"):
        ledger_verify(con, UNKNOWN, read_ledger(world.ledger), world.chain)


def invoice_store(world: World, short_by: int = 0) -> Path:
    """The maker's agent store: one received invoice per ledger share (the second short)."""
    maker = beneficiary("maker")
    path = world.tmp / "maker.sqlite"
    with SqliteStore(path, core_record_codec()) as store, store.commit_group() as group:
        n = 0
        for entry in world.entries:
            for share in entry.decode_use_body().shares:
                if share.beneficiary != maker or not share.payment_id:
                    continue
                n += 1
                amount = share.amount - (short_by if n == 2 else 0)
                secrethash = keccak(f"share {n}".encode())
                group.put_fact(
                    f"invoice:{secrethash.hex()}",
                    InvoiceRecord(
                        share.payment_id, world.agent, 0, secrethash, "received", received=amount
                    ),
                )
    return path


def test_verify_with_a_beneficiarys_store(world: World) -> None:
    maker = beneficiary("maker")
    ledger = read_ledger(world.ledger, ASSET)
    store = invoice_store(world)
    con, out = console()
    invoices = read_invoices(store)
    assert len(invoices) == ENTRIES
    assert ledger_verify(con, ASSET, ledger, world.chain, beneficiary=maker, invoices=invoices) == 0
    assert "beneficiary payments match the ledger" in out.getvalue()


def test_verify_reports_a_short_paid_beneficiary(world: World) -> None:
    maker = beneficiary("maker")
    ledger = read_ledger(world.ledger, ASSET)
    invoices = read_invoices(invoice_store(world, short_by=1))
    con, out = console()
    assert ledger_verify(con, ASSET, ledger, world.chain, beneficiary=maker, invoices=invoices) == 1
    text = out.getvalue()
    assert "ledger verified" in text and "beneficiary check FAILED" in text
    assert "seq 2: share payment" in text


# ---------------------------------------------------------------------------------------------
# statements


def test_statement_and_check_statement(world: World) -> None:
    ledger = read_ledger(world.ledger, ASSET)
    con, _ = console()
    statement = ledger_statement(con, ASSET, ledger, world.chain, key=world.agent_key,
                                 from_time=T0, to_time=T0 + 600 * 5 + 1)  # fmt: skip
    assert statement is not None
    assert (statement.first_seq, statement.last_seq) == (1, 5)
    file = world.tmp / "statement.json"
    file.write_bytes(statement_to_json(statement))
    con, out = console()
    assert ledger_check_statement(con, statement_from_json(file.read_bytes()), world.chain) == 0
    text = out.getvalue()
    assert "statement verified" in text
    assert "anchored on chain │ 1..4" in text and "not yet anchored  │ 5" in text
    forged = replace(statement, totals=replace(statement.totals, fee_total=1))
    con, out = console()
    assert ledger_check_statement(con, forged, world.chain) == 1
    assert "statement check FAILED" in out.getvalue()


def test_statement_refuses_a_key_that_is_no_agent(world: World) -> None:
    con, _ = console()
    with pytest.raises(CliError, match="is no agent of asset"):
        ledger_statement(
            con,
            ASSET,
            read_ledger(world.ledger, ASSET),
            world.chain,
            key=world.connection.dev_keys[5],
            from_time=T0,
            to_time=T0 + 10**6,
        )


def test_statement_refuses_a_ledger_that_does_not_verify(world: World) -> None:
    body = world.entries[0].decode_use_body()
    tamper(world.ledger, 1, replace(world.entries[0], body=encode_body(replace(body, units=7))))
    con, out = console()
    statement = ledger_statement(
        con,
        ASSET,
        read_ledger(world.ledger, ASSET),
        world.chain,
        key=world.agent_key,
        from_time=T0,
        to_time=T0 + 10**6,
    )
    assert statement is None
    assert "no statement signed" in out.getvalue()


# ---------------------------------------------------------------------------------------------
# user statement


def receipt_store(world: World, forged: bool = False) -> Path:
    path = world.tmp / "user.sqlite"
    mallory = LocalSigner(keccak(b"mallory"))
    with SqliteStore(path, core_record_codec()) as store, store.commit_group() as group:
        for entry in world.entries[:3]:
            charge = entry.decode_use_body().charge_payment_id
            group.put_fact(
                f"receipt:{world.agent.hex()}:{charge}",
                ReceiptRecord(world.agent, charge, entry.encode()),
            )
        if forged:
            fake = world.entries[3]
            fake = replace(fake, signature=mallory.sign_digest(fake.digest(world.chain.domain)))
            charge = fake.decode_use_body().charge_payment_id
            group.put_fact(
                f"receipt:{world.agent.hex()}:{charge}",
                ReceiptRecord(world.agent, charge, fake.encode()),
            )
    return path


def test_user_statement_checks_receipts_against_the_ledger(world: World) -> None:
    receipts = read_receipts(receipt_store(world))
    ledger = read_ledger(world.ledger, ASSET)
    con, out = console()
    assert user_statement(con, receipts, world.chain.domain, [(ASSET, ledger)]) == 0
    text = out.getvalue()
    assert "3 receipt(s) match the ledger" in text
    fees = sum(e.decode_use_body().fee for e in world.entries[:3])
    assert f"€{fees / 1e6:.6f}" in text


def test_user_statement_reports_a_forged_receipt_and_a_missing_entry(world: World) -> None:
    receipts = read_receipts(receipt_store(world, forged=True))
    short_ledger = world.tmp / "short.jsonl"
    main(["ledger", "export", "0x" + ASSET.hex(), "--ledger", str(world.ledger),
          "--out", str(short_ledger)])  # fmt: skip
    short_ledger.write_text("".join(short_ledger.read_text().splitlines(True)[:2]))
    con, out = console()
    status = user_statement(
        con, receipts, world.chain.domain, [(ASSET, read_ledger(short_ledger, ASSET))]
    )
    assert status == 1
    text = out.getvalue()
    assert "bad signature" in text
    assert "missing from ledger: the ledger has no seq 3" in text


# ---------------------------------------------------------------------------------------------
# the command lines, through a network file, on anvil


@pytest.mark.node
def test_command_lines_on_anvil(
    anvil_node: LocalNode, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    connection = Connection.from_url(anvil_node.url, anvil_node.private_keys)
    world = build_world(connection, tmp_path)
    network = tmp_path / "network.json"
    network.write_text(Network(anvil_node.url, world.deployment, anvil_node.private_keys).to_json())
    asset = "0x" + ASSET.hex()
    common = ["--ledger", str(world.ledger), "--network-file", str(network)]

    def cise(*argv: str) -> tuple[int, str]:
        capsys.readouterr()
        code = main(list(argv))
        out, err = capsys.readouterr()
        return code, out + err

    code, out = cise("ledger", "verify", asset, *common)
    assert code == 0 and "ledger verified" in out, out
    store = invoice_store(world)
    code, out = cise("ledger", "verify", asset, *common, "--beneficiary",
                     to_checksum(beneficiary("maker")), "--store", str(store))  # fmt: skip
    assert code == 0 and "beneficiary payments match the ledger" in out, out

    statement = tmp_path / "statement.json"
    code, out = cise(
        "ledger",
        "statement",
        asset,
        *common,
        "--from",
        "2026-01-01T00:00:00Z",
        "--to",
        str(T0 + 600 * 5 + 1),
        "--account",
        "2",
        "--out",
        str(statement),
    )
    assert code == 0 and "statement of seq 1..5" in out, out
    code, out = cise("ledger", "check-statement", str(statement), "--network-file", str(network))
    assert code == 0 and "statement verified" in out, out

    user = receipt_store(world)
    code, out = cise("user", "statement", "--store", str(user), "--ledger",
                     f"{asset}={world.ledger}", "--network-file", str(network))  # fmt: skip
    assert code == 0 and "3 receipt(s) match the ledger" in out, out

    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    code, out = cise("ledger", "verify", "0x" + UNKNOWN.hex(), "--ledger", str(empty),
                     "--network-file", str(network))  # fmt: skip
    assert code == 2 and "is not registered" in out, out

    body = world.entries[4].decode_use_body()
    tamper(world.ledger, 5, replace(world.entries[4], body=encode_body(replace(body, fee=1))))
    code, out = cise("ledger", "verify", asset, *common)
    assert code == 1 and "ledger verification FAILED" in out and "seq 5" in out, out

"""The ledger store: appends only the head's successor, anchors only what it holds, survives reopening."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from msgspec.structs import replace

from assets.ledger import (
    GENESIS_PREV_HASH,
    SignedEntry,
    UseBody,
    make_anchor,
    make_use_entry,
    use_body,
    verify_anchors,
    verify_chain,
)
from assets.ledger_store import AnchorRecord, LedgerStore, LedgerStoreError
from channels.codec.eip712 import Domain
from channels.codec.keccak import keccak
from channels.core.splits import Split
from channels.core.types import Address
from channels.signer import LocalSigner

AGENT = LocalSigner(keccak(b"asset agent"))
DOMAIN = Domain(1337, b"\x42" * 20)
ASSET = keccak(b"asset")
SPLIT = Split(1, (Address(b"\x01" * 20), Address(b"\x02" * 20)), (600_000, 400_000))


def body(n: int) -> UseBody:
    return use_body(
        event_id=f"ev-{n}",
        user=keccak(b"user"),
        units=n,
        fee=1000 + n,
        split=SPLIT,
        payment_ids=[2 * n, 2 * n + 1],
        charge_payment_id=n,
    )


def make_entries(count: int, asset_id: bytes = ASSET) -> list[SignedEntry]:
    entries: list[SignedEntry] = []
    for n in range(1, count + 1):
        entries.append(
            make_use_entry(
                AGENT.sign_digest,
                DOMAIN,
                asset_id=asset_id,
                seq=n,
                prev_hash=entries[-1].entry_hash if entries else GENESIS_PREV_HASH,
                time=1_700_000_000 + n,
                body=body(n),
            )
        )
    return entries


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "ledger.sqlite"


@pytest.fixture
def store(path: Path) -> Iterator[LedgerStore]:
    with LedgerStore(path) as opened:
        yield opened


def snapshot(store: LedgerStore) -> tuple[object, ...]:
    return (store.head(), store.count(), list(store.entries()), store.anchors())


def test_an_empty_store() -> None:
    with LedgerStore(":memory:") as store:
        assert store.head() is None
        assert store.count() == 0
        assert list(store.entries()) == []
        assert store.entry(1) is None
        assert store.anchors() == []
        assert store.unanchored_range() is None


def test_the_pragmas_are_durable(store: LedgerStore) -> None:
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_append_and_read_back(store: LedgerStore) -> None:
    entries = make_entries(5)
    for entry in entries:
        assert store.append(entry) == entry.entry_hash
    assert store.head() == (5, entries[-1].entry_hash)
    assert store.count() == 5
    assert store.entry(3) == entries[2]
    assert list(store.entries()) == entries
    assert list(store.entries(2, 4)) == entries[1:4]
    assert list(store.entries(from_seq=4)) == entries[3:]
    assert list(store.entries(6)) == []
    verify_chain(list(store.entries()), ASSET, AGENT.address, DOMAIN, splits={1: SPLIT})


def test_reopening_keeps_everything(path: Path) -> None:
    entries = make_entries(4)
    with LedgerStore(path) as store:
        for entry in entries[:3]:
            store.append(entry)
        store.record_anchor(0, make_anchor(entries[:2]), tx_hash=b"\x07" * 32, block=12)
    with LedgerStore(path) as store:
        assert store.head() == (3, entries[2].entry_hash)
        assert list(store.entries()) == entries[:3]
        assert store.anchors()[0].tx_hash == b"\x07" * 32
        assert store.unanchored_range() == (3, 3)
        store.append(entries[3])  # the chain continues across the restart
        assert store.unanchored_range() == (3, 4)


@pytest.mark.parametrize(
    ("index", "change", "message"),
    [
        (2, {"seq": 4}, "refused seq 4: the head is seq 2, so the next is seq 3"),
        (2, {"seq": 2}, "refused seq 2: the head is seq 2, so the next is seq 3"),
        (
            2,
            {"prev_hash": b"\x05" * 32},
            "refused seq 3: its prevHash 0x0505.* is not the hash of seq 2",
        ),
        (2, {"asset_id": keccak(b"other")}, "refused seq 3: it is an entry of asset"),
    ],
)
def test_refused_appends_change_nothing(
    store: LedgerStore, index: int, change: dict[str, object], message: str
) -> None:
    entries = make_entries(3)
    for entry in entries[:index]:
        store.append(entry)
    before = snapshot(store)
    with pytest.raises(LedgerStoreError, match=message):
        store.append(replace(entries[index], **change))
    assert snapshot(store) == before
    store.append(entries[index])  # the right successor still goes in


def test_the_first_entry_must_be_seq_one_after_zero(store: LedgerStore) -> None:
    entries = make_entries(2)
    with pytest.raises(LedgerStoreError, match="the ledger is empty, so the next is seq 1"):
        store.append(entries[1])
    with pytest.raises(LedgerStoreError, match="is not 32 zero bytes"):
        store.append(replace(entries[0], prev_hash=b"\x01" * 32))
    assert store.count() == 0


def test_transactions_join_and_roll_back_together(store: LedgerStore) -> None:
    entries = make_entries(4)
    store.db.execute("CREATE TABLE IF NOT EXISTS uses (event_id TEXT PRIMARY KEY, seq INTEGER)")
    with store.transaction():
        store.append(entries[0])
        store.db.execute("INSERT INTO uses VALUES ('ev-1', 1)")
    with pytest.raises(RuntimeError), store.transaction():
        store.append(entries[1])
        store.db.execute("INSERT INTO uses VALUES ('ev-2', 2)")
        raise RuntimeError("crash before commit")
    assert store.count() == 1
    assert store.db.execute("SELECT COUNT(*) FROM uses").fetchone()[0] == 1
    # a refused append inside an outer transaction leaves the outer one's work intact
    with store.transaction():
        store.append(entries[1])
        with pytest.raises(LedgerStoreError):
            store.append(entries[3])
        store.append(entries[2])
    assert store.head() == (3, entries[2].entry_hash)
    assert not store.db.in_transaction


def test_a_transaction_is_visible_to_another_connection_only_when_committed(
    store: LedgerStore, path: Path
) -> None:
    entries = make_entries(1)
    other = sqlite3.connect(path)
    try:
        with store.transaction():
            store.append(entries[0])
            assert other.execute("SELECT COUNT(*) FROM entries").fetchone()[0] == 0
        assert other.execute("SELECT COUNT(*) FROM entries").fetchone()[0] == 1
    finally:
        other.close()


def test_anchors_are_recorded_confirmed_and_listed(store: LedgerStore) -> None:
    entries = make_entries(7)
    for entry in entries:
        store.append(entry)
    assert store.unanchored_range() == (1, 7)
    first, second = make_anchor(entries[:3]), make_anchor(entries[3:6])
    store.record_anchor(0, first)
    store.record_anchor(1, second, tx_hash=b"\x09" * 32)
    assert store.unanchored_range() == (7, 7)
    store.record_anchor(0, first, tx_hash=b"\x08" * 32, block=100)  # confirmed later
    store.record_anchor(1, second, block=101)
    records = store.anchors()
    assert records == [
        AnchorRecord(0, 1, 3, first.root, first.head_hash, b"\x08" * 32, 100),
        AnchorRecord(1, 4, 6, second.root, second.head_hash, b"\x09" * 32, 101),
    ]
    assert [record.anchor for record in records] == [first, second]
    verify_anchors(store.entries(), [record.anchor for record in records])
    store.record_anchor(2, make_anchor(entries[6:]))
    assert store.unanchored_range() is None


def test_refused_anchors_change_nothing(store: LedgerStore) -> None:
    entries = make_entries(6)
    for entry in entries[:5]:
        store.append(entry)
    store.record_anchor(0, make_anchor(entries[:2]))
    before = snapshot(store)
    cases = [
        (2, make_anchor(entries[2:4]), "the next anchor is 1, from seq 3"),
        (1, make_anchor(entries[3:5]), "the next anchor is 1, from seq 3"),
        (1, make_anchor(entries[2:6]), "seq 3..6 is not stored"),
        (1, replace(make_anchor(entries[2:4]), root=keccak(b"x")), "root or head hash is not"),
        (1, replace(make_anchor(entries[2:4]), head_hash=entries[2].entry_hash), "root or head"),
        (0, make_anchor(entries[:3]), "a different anchor 0 is stored"),
    ]
    for index, anchor, message in cases:
        with pytest.raises(LedgerStoreError, match=message):
            store.record_anchor(index, anchor)
        assert snapshot(store) == before


def test_the_first_anchor_starts_at_seq_one(store: LedgerStore) -> None:
    entries = make_entries(3)
    for entry in entries:
        store.append(entry)
    with pytest.raises(LedgerStoreError, match="the first anchor starts at seq 1"):
        store.record_anchor(0, make_anchor(entries[1:]))
    assert store.anchors() == []


def test_a_corrupted_row_is_reported(store: LedgerStore) -> None:
    store.append(make_entries(1)[0])
    store.db.execute("UPDATE entries SET entry = x'c1' WHERE seq = 1")
    with pytest.raises(LedgerStoreError, match="stored entry seq 1 does not decode"):
        store.entry(1)

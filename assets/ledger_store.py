"""Durable storage of one asset's revenue ledger: its signed entries and its on-chain anchors.

One sqlite file (stdlib `sqlite3`, WAL, synchronous=FULL: a committed entry survives a power
cut). Table `entries` (seq, hash, the encoded signed entry) and table `anchors` (index, from_seq,
to_seq, root, head_hash, tx_hash, block). `db` is the open connection so that another module of
the asset agent may keep its own tables in the same file and write them in the same transaction
(`transaction()` joins an open one), e.g. a use entry together with the charge it records.

The store keeps the chain well-formed: `append` refuses an entry that is not the head's
successor (seq and prevHash), or of another asset; `record_anchor` refuses an anchor that does not
commit to the stored entries. A refusal changes nothing. It must never check signatures, decide
whether a use is valid (that is `assets.ledger`), sign, or send anything. One process owns the
file (`channels.ownership`: a second `LedgerStore` on it is refused, naming the owner); readers
(`cise ledger`, the API) open it read-only beside the running agent.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from assets.ledger import (
    GENESIS_PREV_HASH,
    Anchor,
    Head,
    SignedEntry,
    decode_entry,
    encode_entry,
)
from channels.codec.merkle import merkle_root
from channels.ownership import Ownership, claim

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    seq INTEGER PRIMARY KEY,
    hash BLOB NOT NULL,  -- entry_hash: the chain link and the Merkle leaf
    entry BLOB NOT NULL  -- assets.ledger.encode_entry (msgpack of the SignedEntry)
);
CREATE TABLE IF NOT EXISTS anchors (
    "index" INTEGER PRIMARY KEY,  -- the anchor's number in the AssetRegistry
    from_seq INTEGER NOT NULL,
    to_seq INTEGER NOT NULL,
    root BLOB NOT NULL,
    head_hash BLOB NOT NULL,
    tx_hash BLOB,  -- NULL until the anchoring transaction is known
    block INTEGER  -- NULL until it is mined
);
"""


class LedgerStoreError(Exception):
    """An append or anchor the store refused (nothing was changed), or an unreadable row."""


@dataclass(frozen=True, slots=True)
class AnchorRecord:
    """A stored anchor and, once known, the transaction and block that put it on chain."""

    index: int
    from_seq: int
    to_seq: int
    root: bytes
    head_hash: bytes
    tx_hash: bytes | None
    block: int | None

    @property
    def anchor(self) -> Anchor:
        return Anchor(self.from_seq, self.to_seq, self.root, self.head_hash)


class LedgerStore:
    """One asset's ledger in one sqlite file. One writer at a time (the agent writes only from
    its node's commit thread, in order); reads may come from another thread."""

    def __init__(self, path: str | Path) -> None:
        in_memory = str(path) in (":memory:", "")
        # StoreInUseError (naming the owner) before anything is written when another has it
        self._ownership: Ownership | None = None if in_memory else claim(path)
        try:
            # explicit transactions; the running asset agent writes from its node's commit
            # thread (`NodeService.write_durably`) and reads from the trio thread
            self.db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            self._savepoints = 0
            with self.transaction():  # not executescript: it would commit whatever is open
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        self.db.execute(statement)
        except BaseException:
            self._release()
            raise

    def _release(self) -> None:
        if self._ownership is not None:
            self._ownership.release()
            self._ownership = None

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; inside an open one it joins it (as a savepoint).

        On an exception the writes made inside this block are rolled back and it propagates; the
        outermost block commits (one fsync) when it ends.
        """
        if self.db.in_transaction:
            self._savepoints += 1
            name = f"ledger_store_{self._savepoints}"
            self.db.execute(f"SAVEPOINT {name}")
            try:
                yield self.db
            except BaseException:
                self.db.execute(f"ROLLBACK TO {name}")
                self.db.execute(f"RELEASE {name}")
                raise
            else:
                self.db.execute(f"RELEASE {name}")
            finally:
                self._savepoints -= 1
            return
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # -- entries ---------------------------------------------------------------------------

    def head(self) -> Head | None:
        """(seq, entry_hash) of the last entry; None when the ledger is empty."""
        row = self.db.execute("SELECT seq, hash FROM entries ORDER BY seq DESC LIMIT 1").fetchone()
        return None if row is None else (row[0], bytes(row[1]))

    def _check_successor(self, entry: SignedEntry) -> None:
        head = self.head()
        seq, prev_hash = (1, GENESIS_PREV_HASH) if head is None else (head[0] + 1, head[1])
        if entry.seq != seq:
            where = "the ledger is empty" if head is None else f"the head is seq {head[0]}"
            raise LedgerStoreError(f"refused seq {entry.seq}: {where}, so the next is seq {seq}")
        if entry.prev_hash != prev_hash:
            want = "32 zero bytes (seq 1)" if head is None else f"the hash of seq {head[0]}"
            raise LedgerStoreError(
                f"refused seq {entry.seq}: its prevHash 0x{entry.prev_hash.hex()} is not {want} "
                f"(0x{prev_hash.hex()})"
            )
        first = self.entry(1)
        if first is not None and entry.asset_id != first.asset_id:
            raise LedgerStoreError(
                f"refused seq {entry.seq}: it is an entry of asset 0x{entry.asset_id.hex()}, "
                f"this ledger is asset 0x{first.asset_id.hex()}'s"
            )

    def append(self, entry: SignedEntry) -> bytes:
        """Store `entry` as the new head; returns its entry hash. Refusals change nothing."""
        with self.transaction():
            self._check_successor(entry)
            entry_hash = entry.entry_hash
            self.db.execute(
                "INSERT INTO entries (seq, hash, entry) VALUES (?, ?, ?)",
                (entry.seq, entry_hash, encode_entry(entry)),
            )
        return entry_hash

    def _decode(self, seq: int, raw: bytes) -> SignedEntry:
        try:
            entry = decode_entry(raw)
        except ValueError as exc:
            raise LedgerStoreError(f"stored entry seq {seq} does not decode: {exc}") from None
        if entry.seq != seq:
            raise LedgerStoreError(f"stored entry in row seq {seq} says seq {entry.seq}")
        return entry

    def entry(self, seq: int) -> SignedEntry | None:
        """The entry `seq`, or None."""
        row = self.db.execute("SELECT entry FROM entries WHERE seq = ?", (seq,)).fetchone()
        return None if row is None else self._decode(seq, row[0])

    def entries(self, from_seq: int = 1, to_seq: int | None = None) -> Iterator[SignedEntry]:
        """The entries from_seq..to_seq (to the head when None), ascending."""
        rows = self.db.execute(
            "SELECT seq, entry FROM entries WHERE seq >= ? AND (? IS NULL OR seq <= ?) "
            "ORDER BY seq",
            (from_seq, to_seq, to_seq),
        )
        for seq, raw in rows:
            yield self._decode(seq, raw)

    def count(self) -> int:
        """How many entries are stored."""
        count: int = self.db.execute("SELECT COUNT(*) FROM entries").fetchone()[0]
        return count

    def _hashes(self, from_seq: int, to_seq: int) -> list[bytes]:
        rows = self.db.execute(
            "SELECT hash FROM entries WHERE seq BETWEEN ? AND ? ORDER BY seq", (from_seq, to_seq)
        )
        return [bytes(row[0]) for row in rows]

    # -- anchors ---------------------------------------------------------------------------

    def _check_anchor(self, index: int, anchor: Anchor) -> None:
        last = self.db.execute(
            'SELECT "index", to_seq FROM anchors ORDER BY "index" DESC LIMIT 1'
        ).fetchone()
        if last is not None and (index, anchor.from_seq) != (last[0] + 1, last[1] + 1):
            raise LedgerStoreError(
                f"refused anchor {index} of seq {anchor.from_seq}..{anchor.to_seq}: the next "
                f"anchor is {last[0] + 1}, from seq {last[1] + 1}"
            )
        if last is None and anchor.from_seq != 1:
            raise LedgerStoreError(f"refused anchor {index}: the first anchor starts at seq 1")
        hashes = self._hashes(anchor.from_seq, anchor.to_seq)
        if len(hashes) != anchor.to_seq - anchor.from_seq + 1:
            raise LedgerStoreError(
                f"refused anchor {index}: seq {anchor.from_seq}..{anchor.to_seq} is not stored"
            )
        if merkle_root(hashes) != anchor.root or hashes[-1] != anchor.head_hash:
            raise LedgerStoreError(
                f"refused anchor {index}: its root or head hash is not that of the stored "
                f"entries seq {anchor.from_seq}..{anchor.to_seq}"
            )

    def _anchor_row(self, index: int) -> AnchorRecord | None:
        row = self.db.execute(
            'SELECT "index", from_seq, to_seq, root, head_hash, tx_hash, block FROM anchors '
            'WHERE "index" = ?',
            (index,),
        ).fetchone()
        return None if row is None else _anchor_record(row)

    def record_anchor(
        self,
        index: int,
        anchor: Anchor,
        *,
        tx_hash: bytes | None = None,
        block: int | None = None,
    ) -> None:
        """Store anchor `index`; again with the same anchor, fill in its tx_hash and block.

        Refuses (changing nothing) an anchor that does not follow the last one or does not
        commit to the stored entries, and a different anchor under an existing index.
        """
        with self.transaction():
            existing = self._anchor_row(index)
            if existing is None:
                self._check_anchor(index, anchor)
                self.db.execute(
                    'INSERT INTO anchors ("index", from_seq, to_seq, root, head_hash, tx_hash, '
                    "block) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        index,
                        anchor.from_seq,
                        anchor.to_seq,
                        anchor.root,
                        anchor.head_hash,
                        tx_hash,
                        block,
                    ),
                )
                return
            if existing.anchor != anchor:
                raise LedgerStoreError(
                    f"refused anchor {index}: a different anchor {index} is stored"
                )
            self.db.execute(
                "UPDATE anchors SET tx_hash = COALESCE(?, tx_hash), block = COALESCE(?, block) "
                'WHERE "index" = ?',
                (tx_hash, block, index),
            )

    def anchors(self) -> list[AnchorRecord]:
        """Every stored anchor, by index."""
        rows = self.db.execute(
            'SELECT "index", from_seq, to_seq, root, head_hash, tx_hash, block FROM anchors '
            'ORDER BY "index"'
        )
        return [_anchor_record(row) for row in rows]

    def unanchored_range(self) -> tuple[int, int] | None:
        """(from_seq, to_seq) of the entries no anchor covers yet; None when there are none."""
        head = self.head()
        row = self.db.execute("SELECT MAX(to_seq) FROM anchors").fetchone()
        from_seq = 1 if row[0] is None else row[0] + 1
        if head is None or head[0] < from_seq:
            return None
        return (from_seq, head[0])

    def close(self) -> None:
        """Close the file (an open transaction is rolled back) and give up owning it."""
        self.db.close()
        self._release()

    def __enter__(self) -> LedgerStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _anchor_record(
    row: tuple[int, int, int, bytes, bytes, bytes | None, int | None],
) -> AnchorRecord:
    index, from_seq, to_seq, root, head_hash, tx_hash, block = row
    return AnchorRecord(
        index,
        from_seq,
        to_seq,
        bytes(root),
        bytes(head_hash),
        None if tx_hash is None else bytes(tx_hash),
        block,
    )


__all__ = ["AnchorRecord", "LedgerStore", "LedgerStoreError"]

"""The lock history of one direction: enough to rebuild the locks tree of ANY proof it signed.

Each side signs only its own direction, and the proof of a direction that lands on chain is
chosen by the other side (the closer submits its partner's proof, the non-closer updates the
closer's): it can be ANY proof its sender ever signed, not the latest. After settlement a lock is
unlocked against the root of that proof, so a party must be able to rebuild the tree of every
proof of both directions until the channel is settled (decision note
`docs/decisions/2026-12-07-unlocks-from-submitted-tree.md`).

Representation: an append-only log of the lock operations of a direction, keyed by the nonce of
the proof that made them (a direct transfer changes no lock, so it logs nothing). Records are
packed big-endian in one `bytearray`:

    ADD       nonce u64 | slot u16 | 1 | amount u96 | expiration u64 | secrethash (32)   63 bytes
    UNLOCKED  nonce u64 | slot u16 | 2 | secret (32)                                    43 bytes
    EXPIRED   nonce u64 | slot u16 | 3 | secrethash (32)                                43 bytes

The tree at nonce n is the set of ADDs at nonces <= n not removed at nonces <= n, in their slots
(the tree construction itself is docs/protocol.md's, untouched). An UNLOCKED record keeps the
secret, so a lock unlocked off chain after the proof on chain can still be claimed by registering
its secret. A `LockLog` value is the first `size` bytes of its buffer: appending extends the
shared buffer in place when this value is its newest version (O(1) amortised, the hot path of a
locked payment) and copies the prefix only when an older version is extended (a branch), so
every value stays immutable in meaning. Rebuilding replays the log, only after a close.

It must never do I/O, and never decide which proof is on chain (the channel core does).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

import msgspec

from channels.codec.eip712 import secrethash_of

ADD = 1
UNLOCKED = 2
EXPIRED = 3
UNKNOWN_START = -1  # a log started after the channel's first locks (a channel from before logs)

_HEAD = struct.Struct(">QHB")  # nonce, slot, kind
_HEAD_SIZE = _HEAD.size
_ADD_BODY = struct.Struct(">12s8s32s")
_ADD_SIZE = _HEAD_SIZE + _ADD_BODY.size
_REMOVE_SIZE = _HEAD_SIZE + 32
_pack_head = _HEAD.pack

# (amount, expiration, secrethash) of a lock as the log keeps it
LockFields = tuple[int, int, bytes]


class LockLog(msgspec.Struct, frozen=True, eq=False):
    """The lock operations of one direction since nonce `since` (see the module docstring).

    `since` is the nonce from which the log is complete: 0 for a channel that logged from its
    opening; UNKNOWN_START for one restored from before logs existed (`started` seeds it).
    """

    data: bytearray = msgspec.field(default_factory=bytearray)
    size: int = 0
    since: int = UNKNOWN_START

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, LockLog)
            and self.size == other.size
            and self.since == other.since
            and self.data[: self.size] == other.data[: other.size]
        )

    def __ne__(self, other: object) -> bool:
        return not self == other

    __hash__ = None  # type: ignore[assignment]  # holds a mutable buffer

    def __repr__(self) -> str:
        return f"LockLog(bytes={self.size}, since={self.since})"

    # ------------------------------------------------------------------ appending (hot path)

    def _append(self, record: bytes) -> LockLog:
        data = self.data
        if len(data) != self.size:  # an older version is being extended: branch off a copy
            data = bytearray(memoryview(data)[: self.size])
        data += record
        return LockLog(data, self.size + len(record), self.since)

    def added(
        self, nonce: int, slot: int, amount: int, expiration: int, secret_hash: bytes
    ) -> LockLog:
        """The log with a lock put in `slot` by the proof of `nonce`."""
        return self._append(
            _pack_head(nonce, slot, ADD)
            + amount.to_bytes(12, "big")
            + expiration.to_bytes(8, "big")
            + secret_hash
        )

    def unlocked(self, nonce: int, slot: int, secret: bytes) -> LockLog:
        """The log with the lock in `slot` paid off chain (its secret kept) by the proof of `nonce`."""
        return self._append(_pack_head(nonce, slot, UNLOCKED) + secret)

    def expired(self, nonce: int, slot: int, secret_hash: bytes) -> LockLog:
        """The log with the lock in `slot` removed unpaid (expiry or refusal) at `nonce`."""
        return self._append(_pack_head(nonce, slot, EXPIRED) + secret_hash)

    @classmethod
    def started(cls, nonce: int, pending: Iterable[tuple[int, LockFields]]) -> LockLog:
        """A log complete from `nonce`, whose proof had the locks `pending` ((slot, lock) pairs)."""
        log = cls(bytearray(), 0, nonce)
        for slot, (amount, expiration, secret_hash) in pending:
            log = log.added(nonce, slot, amount, expiration, secret_hash)
        return log

    # ------------------------------------------------------------------ reading (after a close)

    def records(self) -> list[tuple[int, int, int, bytes, LockFields | None]]:
        """(nonce, slot, kind, key, lock) for each record in order; key is the secrethash of an
        ADD or EXPIRED and the secret of an UNLOCKED; lock the ADD's fields (None otherwise)."""
        out: list[tuple[int, int, int, bytes, LockFields | None]] = []
        view = bytes(memoryview(self.data)[: self.size])
        position = 0
        while position < len(view):
            nonce, slot, kind = _HEAD.unpack_from(view, position)
            if kind == ADD:
                amount, expiration, key = _ADD_BODY.unpack_from(view, position + _HEAD_SIZE)
                lock = (int.from_bytes(amount, "big"), int.from_bytes(expiration, "big"), key)
                out.append((nonce, slot, kind, key, lock))
                position += _ADD_SIZE
            elif kind in (UNLOCKED, EXPIRED):
                start = position + _HEAD_SIZE
                out.append((nonce, slot, kind, view[start : start + 32], None))
                position += _REMOVE_SIZE
            else:
                raise ValueError(f"corrupt lock log: record kind {kind} at byte {position}")
        return out

    def locks_at(self, nonce: int) -> dict[int, LockFields] | None:
        """The locks (by slot) of the tree the proof of `nonce` committed to; None when the log
        does not reach back that far (a channel logged only from a later nonce)."""
        if self.since == UNKNOWN_START or nonce < self.since:
            return None
        locks: dict[int, LockFields] = {}
        for record_nonce, slot, _kind, _key, lock in self.records():
            if record_nonce > nonce:
                break  # records are in nonce order
            if lock is not None:
                locks[slot] = lock
            else:
                locks.pop(slot, None)
        return locks

    def secrets(self) -> dict[bytes, bytes]:
        """secrethash -> secret of every lock this direction unlocked off chain."""
        return {
            secrethash_of(key): key
            for _nonce, _slot, kind, key, _lock in self.records()
            if kind == UNLOCKED
        }

    def mentions(self, secret_hash: bytes) -> bool:
        """Whether a lock with `secret_hash` was ever in this direction: every lock has an ADD
        record carrying its secrethash, so a C-speed byte search of the log answers it."""
        return self.data.find(secret_hash, 0, self.size) >= 0


def new_log() -> LockLog:
    """The log of a direction opened from scratch (complete from nonce 0)."""
    return LockLog(bytearray(), 0, 0)


def unknown_log() -> LockLog:
    """The default of a record decoded from before logs: seeded at its first append."""
    return LockLog(bytearray(), 0, UNKNOWN_START)

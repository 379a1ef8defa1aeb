"""The tower's transaction records for the transaction manager (`channels.chain.txmanager.Durable`).

The manager records each update transaction it signs (`record`) and lets it go once mined with
confirmations or refused for good (`done`); `flush` returns once everything recorded so far is in
the tower's sqlite file (one transaction, in a worker thread, under the tower's database lock), and
the manager sends no raw bytes before that. A failed write keeps what it was writing for the next
flush (and raises: the manager's round is tried again).

It stores and forgets what it is given: it must never decide anything, never touch the chain, and
never write outside the tower's database lock.
"""

from __future__ import annotations

import trio

from channels.records import OutboxTransaction
from watchtower.store import TowerStore


class TowerOutbox:
    """Buffered writes of the `transactions` table (see the module docstring)."""

    def __init__(self, store: TowerStore, db_lock: trio.Lock) -> None:
        self._store = store
        self._db_lock = db_lock
        self._flushing = trio.Lock()  # one flush at a time: a second waits for the first
        self._writes: dict[str, OutboxTransaction | None] = {}  # the newest write of each key
        self._stored: set[str] = {key for key, _ in store.transactions()}
        self._writing: set[str] = set()  # keys of the flush under way

    def restorable(self) -> list[tuple[str, OutboxTransaction]]:
        """The transactions signed before a restart (the manager sends them again)."""
        return self._store.transactions()

    @property
    def unwritten(self) -> int:
        """Writes not yet in the file."""
        return len(self._writes)

    def record(self, key: str, record: OutboxTransaction) -> None:
        self._writes[key] = record

    def done(self, key: str) -> None:
        if key in self._stored or key in self._writing:
            self._writes[key] = None
        else:  # never written: nothing to delete
            self._writes.pop(key, None)

    async def flush(self) -> None:
        async with self._flushing:
            if not self._writes:
                return
            writes, self._writes = self._writes, {}
            self._writing = set(writes)
            try:
                async with self._db_lock:
                    await trio.to_thread.run_sync(
                        self._store.commit_transactions, list(writes.items())
                    )
            except BaseException:
                writes.update(self._writes)  # newer writes win
                self._writes = writes
                raise
            finally:
                self._writing = set()
            for key, record in writes.items():
                if record is None:
                    self._stored.discard(key)
                else:
                    self._stored.add(key)


__all__ = ["TowerOutbox"]

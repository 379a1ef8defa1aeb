"""Transactions an application of a node sends through the node's transaction manager.

The settlement service's batches and the asset agent's ledger anchors are not decided by the
core, but they are sent by the same account as the core's transactions: they go through the
node's `TransactionManager` (one nonce allocator, deadlines, replacement when stalled, resending
after a reorganisation) instead of being sent and waited for under the chain lock, which kept
the chain follower blind until each was mined.

`ApplicationSends` (one per `NodeService`, as `service.sends`):

- `transact(key, ...)` queues a call under a durable key and returns its outcome (the receipt,
  or the `ChainError` of a refusal or of a transaction mined with status 0). A key already in
  flight (the same call asked for again, or one restored after a restart) is not sent twice:
  the caller waits for its outcome.
- `add_durable(prefix, durable)`: transactions whose key starts with `prefix` are recorded in
  the application's own store (`Durable`: record before the raw bytes leave, flush, done)
  instead of the node's outbox. A restored one is handed back with `transact(..., restored=)`.
- Keys with the node's transaction prefix are recorded in the node's outbox and restored by the
  node itself at start; `live(prefix)` and `wait(key)` let the application wait for them.

It never signs, sends or decides anything: the manager sends, the application decides.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import trio

from channels.chain.connection import Receipt
from channels.chain.errors import ChainError
from channels.chain.executor import PreparedCall
from channels.chain.txmanager import Durable, TransactionManager
from channels.records import OutboxTransaction

Result = Receipt | ChainError


@dataclass(slots=True)
class _Waiter:
    done: trio.Event = field(default_factory=trio.Event)
    result: Result | None = None


class ApplicationSends:
    """Application transactions of one node (see the module docstring). One trio thread."""

    def __init__(self) -> None:
        self._durables: list[tuple[str, Durable]] = []
        self._unflushed: list[Durable] = []
        self._waiters: dict[str, _Waiter] = {}
        self._live: set[str] = set()
        self._later: list[Callable[[TransactionManager], None]] = []
        self._manager: TransactionManager | None = None

    # -- where records go

    def add_durable(self, prefix: str, durable: Durable) -> None:
        """Record transactions whose key starts with `prefix` in `durable` (replacing the one
        given for the same prefix before: a restarted application)."""
        others = [(p, d) for p, d in self._durables if p != prefix]
        if not prefix or any(prefix.startswith(p) or p.startswith(prefix) for p, _ in others):
            raise ValueError(f"transaction key prefix {prefix!r} is empty or overlaps another")
        self._durables = [*others, (prefix, durable)]

    def durable_for(self, key: str) -> Durable | None:
        for prefix, durable in self._durables:
            if key.startswith(prefix):
                return durable
        return None

    def record(self, key: str, record: OutboxTransaction) -> bool:
        """Record `key`'s signed version in its application's store; False: not an application
        key (the node's outbox records it)."""
        durable = self.durable_for(key)
        if durable is None:
            return False
        durable.record(key, record)
        if durable not in self._unflushed:
            self._unflushed.append(durable)
        return True

    async def flush(self) -> None:
        """Make every application record made so far durable."""
        while self._unflushed:
            await self._unflushed.pop(0).flush()

    def done(self, key: str) -> bool:
        """Let `key` go in its application's store; False: not an application key."""
        durable = self.durable_for(key)
        if durable is None:
            return False
        durable.done(key)
        return True

    # -- the manager

    def attach(self, manager: TransactionManager) -> None:
        """The node's manager runs: hand it what was asked for before."""
        self._manager = manager
        later, self._later = self._later, []
        for action in later:
            action(manager)

    def detach(self) -> None:
        self._manager = None

    def restored(self, key: str) -> None:
        """The node restored `key` from its outbox: in flight until its outcome."""
        self._live.add(key)

    # -- sending

    async def transact(
        self,
        key: str,
        kind: str,
        call: PreparedCall,
        *,
        priority: int,
        deadline: int | None = None,
        gas: int | None = None,
        restored: OutboxTransaction | None = None,
    ) -> Result:
        """Send `call` under `key` (with `gas`, checked by an eth_call, or the manager's
        estimate) and return its
        outcome. With `restored` (its record from before a restart) the same signed version
        goes out again, same nonce. A key already in flight is waited for, not sent again."""
        waiter = self._waiters.get(key)
        if waiter is None:
            waiter = self._waiters[key] = _Waiter()
        if key not in self._live:
            self._live.add(key)

            def hand_over(manager: TransactionManager) -> None:
                if restored is not None:
                    manager.restore(key, restored)
                    return
                manager.submit(key, kind, call, priority, deadline, gas)

            if self._manager is not None:
                hand_over(self._manager)
            else:
                self._later.append(hand_over)
        await waiter.done.wait()
        assert waiter.result is not None
        return waiter.result

    def live(self, prefix: str) -> list[str]:
        """Keys starting with `prefix` sent (or restored) and without an outcome yet."""
        return sorted(key for key in self._live if key.startswith(prefix))

    async def wait(self, key: str) -> Result | None:
        """The outcome of `key` once it comes; None when `key` is not in flight."""
        if key not in self._live:
            return None
        waiter = self._waiters.setdefault(key, _Waiter())
        await waiter.done.wait()
        return waiter.result

    def outcome(self, key: str, result: Result) -> None:
        """The manager's outcome of `key` (mined, or refused for good)."""
        self._live.discard(key)
        waiter = self._waiters.pop(key, None)
        if waiter is not None:
            waiter.result = result
            waiter.done.set()

"""`NodeService.write_durably`: a process's writes to its other durable files (the settlement
file, the asset ledger) go through the node's one commit pipeline: in the commit thread (never
the trio thread), in the order asked, each just before the node group it was asked with, its
result or its error back to the caller, and a failed write never stops the node's group."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import trio
from core_pair import CHANNEL_ID, DOMAIN, Pair

from channels.core import state_changes as sc
from channels.core.state import NodeState
from channels.core.types import BlockNumber, PaymentId, TokenAmount
from channels.records import core_record_codec
from channels.service import NodeService
from channels.store import SqliteStore


def _alice(tmp_path: Path) -> tuple[NodeService, SqliteStore]:
    pair = Pair()
    node = NodeState(pair.a, DOMAIN, BlockNumber(100), {CHANNEL_ID: pair.views[pair.a]}, 5)
    store = SqliteStore(tmp_path / "alice.sqlite", core_record_codec())
    store.write_snapshot(node)
    return NodeService(pair.alice, store, node), store


async def test_side_writes_run_in_the_commit_thread_in_order_with_the_group(
    tmp_path: Path,
) -> None:
    service, store = _alice(tmp_path)
    trio_thread = threading.get_ident()
    seen: list[tuple[str, int, int]] = []  # (write, thread, durable state changes when it ran)

    def write(name: str) -> str:
        seen.append((name, threading.get_ident(), store.last_state_change_id))
        return name.upper()

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(service.run_commits)
            before = store.last_state_change_id
            service.write_durably_soon(lambda: write("first"), lambda r, e: None)
            service.handle(sc.ActionTransfer(CHANNEL_ID, TokenAmount(5), PaymentId(1)))
            assert await service.write_durably(lambda: write("second")) == "SECOND"
            # both ran before the group holding the payment committed, in the order asked
            assert [name for name, _, _ in seen] == ["first", "second"]
            assert all(durable == before for _, _, durable in seen)
            assert store.last_state_change_id == before + 1  # and the payment is durable now
            assert all(thread != trio_thread for _, thread, _ in seen)

            def fails() -> None:
                raise OSError("disk full")

            with pytest.raises(OSError, match="disk full"):
                await service.write_durably(fails)
            service.handle(sc.ActionTransfer(CHANNEL_ID, TokenAmount(5), PaymentId(2)))
            await service.wait_durable()  # the node's own groups go on
            assert store.last_state_change_id == before + 2
            nursery.cancel_scope.cancel()

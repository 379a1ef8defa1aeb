"""Every write the asset agent makes to its ledger file (the ledger and the use book) goes
through its node's commit pipeline (issue 16, point 5): in the node's commit thread, never on
the trio thread, where each fsync stalled every use the machine was metering. Checked over uses
charged, ledgered and paid, and a servicer admitted. Before, every one of these
writes ran on the trio thread."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import trio

from assets.ledger_store import LedgerStore
from channels.bench.synthetic import address_of
from tests.assets.assetfix import running_asset
from tests.assets.test_asset_agent import use


async def test_an_asset_agents_ledger_writes_never_run_on_the_trio_thread(
    tmp_path: Path,
) -> None:
    threads: list[int] = []
    original = LedgerStore.transaction

    @contextmanager
    def watched(self: LedgerStore) -> Iterator[object]:
        threads.append(threading.get_ident())
        with original(self) as db:
            yield db

    async with running_asset(tmp_path) as a:
        a.asset.ledger.transaction = watched.__get__(a.asset.ledger)  # type: ignore[method-assign]
        trio_thread = threading.get_ident()
        with trio.fail_after(60):
            outcomes = [await a.asset.handle(use(n)) for n in (1, 2, 3)]
            assert [o.status for o in outcomes] == ["charged"] * 3
            while a.asset.book.counts().get("paid", 0) < 3:  # noqa: ASYNC110
                await trio.sleep(0.01)
            seq = await a.asset.admit_servicer(address_of("stranger"), note="refurbisher")
            assert seq == 4
        assert len(threads) >= 3 * 3 + 1  # accepted, ledgered, paid for each use; the admission
        assert trio_thread not in threads
        assert a.asset.ledger.count() == 4

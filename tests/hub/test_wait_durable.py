"""`NodeService.wait_durable` and `call_when_durable`: what is recorded before them is durable
when they return or run, even while an earlier group's commit is still being written (which is
exactly when `wait_committed` returns too early: it wakes at the end of THAT commit).

The asset agent withdraws an invoice and then marks the use refused in its ledger file; it must
wait for the withdrawal to be durable first, or a crash in between leaves an invoice the
restarted agent accepts payment for while its use book says the use was refused.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import trio

from channels.bench.synthetic import address_of, hub_channels, open_service
from channels.records import PaymentRecord
from channels.service import NodeService

SLOW_COMMIT = 0.3  # seconds the first commit takes (a slow disk)


def _slow_first_commit(service: NodeService) -> threading.Event:
    """Make the next commit take SLOW_COMMIT seconds; the event is set once it started."""
    commit = service.store.commit
    started = threading.Event()

    def slow(group: object) -> None:
        if not started.is_set():
            started.set()
            time.sleep(SLOW_COMMIT)
        commit(group)  # type: ignore[arg-type]

    service.store.commit = slow  # type: ignore[method-assign]
    return started


async def test_wait_durable_returns_only_once_a_record_made_during_a_commit_is_durable(
    tmp_path: Path,
) -> None:
    opening = hub_channels(address_of("hub"), [address_of("washer")], 10**6, 10**6)
    service = open_service("washer", tmp_path / "washer.sqlite", opening)
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(service.run_commits)
            started = _slow_first_commit(service)
            service.put_fact("payment:1", PaymentRecord(1, b"\x01" * 20, 5))  # group A
            with trio.fail_after(5):
                while not started.is_set():  # noqa: ASYNC110  # the commit thread's flag
                    await trio.sleep(0.001)
            # group A is being written; this record goes into group B
            service.put_fact("payment:2", PaymentRecord(2, b"\x01" * 20, 7))
            ran: list[bool] = []
            service.call_when_durable(
                lambda: ran.append(service.store.fact("payment:2") is not None)
            )
            with trio.fail_after(5):
                await service.wait_committed()  # wakes at the end of group A's commit
            early = service.store.fact("payment:2")
            with trio.fail_after(5):
                await service.wait_durable()
            assert early is None  # what wait_committed promised was not this record
            assert service.store.fact("payment:2") == PaymentRecord(2, b"\x01" * 20, 7)
            assert ran == [True]  # run after, never before, the record was durable
            nursery.cancel_scope.cancel()
    finally:
        service.store.close()


async def test_call_when_durable_runs_at_once_when_nothing_waits_to_commit(tmp_path: Path) -> None:
    opening = hub_channels(address_of("hub"), [address_of("washer")], 10**6, 10**6)
    service = open_service("washer", tmp_path / "washer.sqlite", opening)
    try:
        ran: list[int] = []
        service.call_when_durable(lambda: ran.append(1))
        assert ran == [1]
        with trio.fail_after(5):
            await service.wait_durable()  # no commit loop, nothing pending: returns
            service.put_fact("payment:3", PaymentRecord(3, b"\x01" * 20, 9))
            await service.wait_durable()  # no commit loop: it commits the open group itself
        assert service.store.fact("payment:3") is not None
    finally:
        service.store.close()

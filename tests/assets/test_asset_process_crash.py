"""The whole asset process (its channel agent and its asset agent) stopped at points of a stream
of uses, then restarted on its node store and its ledger file: the ledger and the use book agree
with the node's channel afterwards.

A stopped process loses its node's open commit group and whatever its tasks were doing; a restart
resumes every open use from the use book and reconciles it with the node's records by payment id.
Afterwards: every use is ledgered once and paid, the users paid each use exactly once, every
beneficiary received exactly its shares, and the asset's payment and invoice records equal its
channel (`tests.hub.recordcheck`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
import trio

from assets.agent import AssetAgent
from assets.ledger import verify_chain
from assets.ledger_store import LedgerStore
from channels.agent import Agent
from channels.bench.synthetic import address_of, open_service
from channels.core import state_changes as sc
from channels.core.splits import split_fee
from tests.assets.assetfix import (
    ASSET_ID,
    BENEFICIARIES,
    REGISTRY_DOMAIN,
    TARIFF,
    USERS,
    config,
    split,
)
from tests.assets.test_asset_agent import received_by, use
from tests.hub.netfix import running_net
from tests.hub.recordcheck import record_mismatches

USES = 24


async def _run_asset(
    tmp: Path,
    opening: Sequence[sc.StateChange],
    port: int,
    closed: trio.Event,
    task_status: trio.TaskStatus[tuple[AssetAgent, trio.CancelScope]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """The asset process: its channel agent and asset agent on their files, until cancelled;
    `closed` is set once its files are closed (a new process may then claim them)."""
    service = open_service("asset", tmp / "asset.sqlite", opening)
    ledger = LedgerStore(tmp / "asset-ledger.sqlite")
    try:
        with trio.CancelScope() as scope:
            async with trio.open_nursery() as nursery:
                agent = Agent(service, address_of("hub"), blocks_from_hub=True)
                agent.start(nursery, port)
                with trio.fail_after(10):
                    await agent.wait_ready()
                asset = AssetAgent(agent, ledger, config())
                await nursery.start(asset.run)
                task_status.started((asset, scope))
    finally:
        ledger.close()
        service.store.close()
        closed.set()


def _past(asset: AssetAgent) -> int:
    """Uses ledgered or paid so far (charged by the user)."""
    counts = asset.book.counts()
    return counts.get("ledgered", 0) + counts.get("paid", 0)


@pytest.mark.parametrize(
    "stop_when", [0, 6, 16], ids=["while_charging", "while_ledgering", "while_paying_shares"]
)
async def test_the_asset_process_stopped_midway_keeps_ledger_book_and_channel_in_agreement(
    tmp_path: Path, stop_when: int
) -> None:
    names = ["asset", *USERS, *BENEFICIARIES]
    async with running_net(tmp_path, names, without_agent=["asset"]) as net:
        first_closed = trio.Event()
        asset, scope = await net.nursery.start(
            _run_asset, tmp_path, net.opening, net.port, first_closed
        )
        with trio.fail_after(30):
            for n in range(1, USES + 1):
                await asset.handle(use(n, USERS[n % 2], prepaid=False))
            while _past(asset) < stop_when:  # noqa: ASYNC110  # the agent's tasks move it
                await trio.sleep(0.005)
        assert asset.book.counts().get("paid", 0) < USES  # stopped with work under way
        scope.cancel()  # the process dies wherever it was
        with trio.fail_after(10):  # its files are let go (a loaded machine may take a while)
            await first_closed.wait()
        asset, scope = await net.nursery.start(
            _run_asset, tmp_path, net.opening, net.port, trio.Event()
        )
        with trio.fail_after(60):
            accepted = sum(asset.book.counts().values())
            for n in range(accepted + 1, USES + 1):  # the meter goes on
                await asset.handle(use(n, USERS[n % 2], prepaid=False))
            while asset.book.counts().get("paid", 0) < USES:  # noqa: ASYNC110
                await trio.sleep(0.02)
        ledger = asset.ledger
        entries = list(ledger.entries())
        assert len(entries) == USES
        verify_chain(entries, ASSET_ID, asset.address, REGISTRY_DOMAIN, splits={1: split()})
        store = asset.agent.service.store
        assert sum(received_by(store, address_of(u)) for u in USERS) == USES * TARIFF.price
        shares = split_fee(TARIFF.price, split())
        for beneficiary in BENEFICIARIES:
            owed = USES * shares[split().beneficiaries.index(address_of(beneficiary))]
            beneficiary_store = net.agents[beneficiary].service.store
            with trio.fail_after(10):
                while received_by(beneficiary_store, asset.address) < owed:  # noqa: ASYNC110
                    await trio.sleep(0.02)
            assert received_by(beneficiary_store, asset.address) == owed
        with trio.fail_after(10):
            while asset.agent.service.channel_with(asset.agent.hub).our.slot_of:  # type: ignore[union-attr]  # noqa: ASYNC110
                await trio.sleep(0.02)
        assert record_mismatches(asset.agent) == []
        scope.cancel()


async def test_a_receipt_kept_from_leaving_by_a_stop_is_sent_after_the_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The process stops after uses are ledgered and before their receipts left (played by
    sending none in the first run): after the restart, each user holds the receipt of every use
    that was still open. Before, a resumed use only paid its shares: the receipt was lost."""
    names = ["asset", *USERS, *BENEFICIARIES]
    async with running_net(tmp_path, names, without_agent=["asset"]) as net:
        with monkeypatch.context() as patch:
            patch.setattr(AssetAgent, "_send_receipt", lambda self, use, entry: None)
            first_closed = trio.Event()
            asset, scope = await net.nursery.start(
                _run_asset, tmp_path, net.opening, net.port, first_closed
            )
            with trio.fail_after(30):
                for n in range(1, USES + 1):
                    await asset.handle(use(n, USERS[n % 2], prepaid=False))
                while _past(asset) < 6:  # noqa: ASYNC110  # the agent's tasks move it
                    await trio.sleep(0.005)
            ledgered = [u for u in asset.book.open_uses() if u.status == "ledgered"]
            scope.cancel()  # no checkpoint in between: these were open at the stop
            with trio.fail_after(10):  # its files are let go
                await first_closed.wait()
        assert ledgered, "no use was between its ledger entry and its shares at the stop"
        asset, scope = await net.nursery.start(
            _run_asset, tmp_path, net.opening, net.port, trio.Event()
        )
        with trio.fail_after(30):
            for open_use in ledgered:
                [name] = [u for u in USERS if address_of(u) == open_use.event.user_address]
                user = net.agents[name]
                while not any(  # noqa: ASYNC110
                    r.payment_id == open_use.charge_id for r in user.receipts(asset.address)
                ):
                    await trio.sleep(0.02)
        scope.cancel()

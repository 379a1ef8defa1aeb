"""An on-chain anchor that does not match the agent's ledger is an `AnchorMismatchError` (a
finding the agent reports), raised before anything is anchored: never a crash of the agent, never
an anchor over the mismatch. On the embedded chain's real asset registry."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import trio

from assets.anchoring import AnchorMismatchError, anchor_pending, run_anchoring
from assets.ledger import make_anchor
from assets.ledger_store import LedgerStore
from channels.chain.assets import AssetRegistryClient
from channels.chain.connection import Connection
from tests.integration.test_cli_ledger import ASSET, World, build_world


@pytest.fixture
def world(tmp_path: Path) -> World:
    return build_world(Connection.embedded(), tmp_path)  # anchor 0 of seq 1..4 on chain


def registry(world: World) -> AssetRegistryClient:
    return AssetRegistryClient.from_key(world.connection, world.deployment, world.agent_key)


async def test_a_ledger_behind_the_chains_anchor_is_a_mismatch_and_nothing_is_anchored(
    world: World,
) -> None:
    reg = registry(world)
    with LedgerStore(world.tmp / "rolled-back.sqlite") as ledger:
        for entry in world.entries[:2]:  # a file restored from before seq 3 and 4
            ledger.append(entry)
        with pytest.raises(AnchorMismatchError, match="on-chain anchor 0 does not match"):
            await anchor_pending(ledger, reg, ASSET, trio.Lock())
        assert len(reg.anchors(ASSET)) == 1  # nothing anchored over it
        assert ledger.anchors() == []


async def test_a_local_anchor_other_than_the_chains_is_a_mismatch(world: World) -> None:
    reg = registry(world)
    with LedgerStore(world.tmp / "other.sqlite") as ledger:
        for entry in world.entries:
            ledger.append(entry)
        ledger.record_anchor(0, make_anchor(world.entries[:3]))
        with pytest.raises(AnchorMismatchError, match=r"seq 1\.\.4"):
            await anchor_pending(ledger, reg, ASSET, trio.Lock())
        assert len(reg.anchors(ASSET)) == 1


async def test_run_anchoring_logs_the_mismatch_and_stops_anchoring(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    reg = registry(world)
    with LedgerStore(world.tmp / "rolled-back.sqlite") as ledger:
        ledger.append(world.entries[0])
        with caplog.at_level(logging.ERROR), trio.move_on_after(1.0):
            await run_anchoring(ledger, reg, ASSET, trio.Lock(), interval=0.05)
        assert "anchoring stopped: on-chain anchor 0 does not match" in caplog.text
        assert len(reg.anchors(ASSET)) == 1

"""The client side: an agent's `TowerGuard` hands the latest received proof to its tower by itself,
after `batch_interval` seconds (the risk window) or at once when `batch_count` channels wait;
`flush()` closes the window before a planned shutdown; its status says what is guarded. Embedded."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from tests.watchtower.towerfix import STEP, TowerChain, paid_pair, running_tower, wait_until
from watchtower.client import TowerEndpoint, TowerGuard


@pytest.mark.parametrize("chain", ["embedded"], indirect=True)
async def test_proofs_go_to_the_tower_after_the_interval_at_the_count_or_on_flush(
    chain: TowerChain, tmp_path: Path
) -> None:
    tower_actor = chain.actors[2]
    async with (
        running_tower(chain, tower_actor, tmp_path / "tower.sqlite") as (tower, port),
        paid_pair(chain, tmp_path, 100_000, 1_000_000) as pair,
    ):
        key = (pair.channel_id, pair.machine.address)
        await wait_until(lambda: pair.channel_id in tower.channels, "the tower sees the channel")
        endpoint = TowerEndpoint(tower_actor.address, port)
        guard = TowerGuard(pair.machine, [endpoint], reward=7, batch_count=64, batch_interval=0.5)
        guard.start(pair.machine_tasks)

        def held() -> int:
            proof = tower.guards.get(key)
            return 0 if proof is None else proof.nonce

        # by time: the proof waits for the interval (the risk window), then goes
        await pair.pay(1, 1_000)
        started = trio.current_time()
        await wait_until(lambda: held() == 1, "handed over after the interval")
        assert 0.4 <= trio.current_time() - started <= 2.0

        # by count: one channel waiting is a full batch
        guard.batch_count = 1
        await pair.pay(3, 1_000)
        started = trio.current_time()
        await wait_until(lambda: held() == 4, "handed over at once")
        assert trio.current_time() - started < 0.4

        # a long window closed by flush() before going offline
        guard.batch_count, guard.batch_interval = 64, 3600.0
        await pair.pay(2, 1_000)
        assert held() == 4
        with trio.fail_after(STEP):
            await guard.flush()
        assert held() == 6 and guard.fully_guarded()
        [status] = guard.status()
        assert (status.channel_id, status.latest_nonce, status.guarded_nonce) == (
            pair.channel_id,
            6,
            6,
        )
        assert tower.guards[key].reward == 7
        assert guard.stats.receipts == 3 and guard.stats.refused == 0


@pytest.mark.parametrize("chain", ["embedded"], indirect=True)
async def test_a_channel_the_tower_has_not_confirmed_yet_is_handed_over_once_it_has(
    chain: TowerChain, tmp_path: Path
) -> None:
    tower_actor = chain.actors[2]
    async with (
        running_tower(chain, tower_actor, tmp_path / "tower.sqlite", confirmations=3) as (
            tower,
            port,
        ),
        paid_pair(chain, tmp_path, 100_000, 1_000_000) as pair,
    ):
        endpoint = TowerEndpoint(tower_actor.address, port)
        guard = TowerGuard(
            pair.machine, [endpoint], batch_count=1, batch_interval=0.0, retry_interval=0.1
        )
        guard.start(pair.machine_tasks)
        await pair.pay(1, 1_000)
        await wait_until(lambda: guard.stats.refused >= 1, "refused: not confirmed yet")
        assert pair.channel_id not in tower.channels
        [status] = guard.status()
        assert status.guarded_nonce == 0 and status.refused.startswith("unknown-channel")
        await chain.mine(3)  # now the open is 3 blocks deep
        await wait_until(guard.fully_guarded, "handed over on a retry")
        assert tower.guards[(pair.channel_id, pair.machine.address)].nonce == 1

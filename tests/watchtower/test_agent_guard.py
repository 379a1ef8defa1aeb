"""An agent paid through a hub (locked transfers, then unlocks: the hub's proofs carry locks roots on
the way) keeps its tower up to date by itself: a `TowerGuard` on the agent's node service hands the
hub's latest proof over after the payments, and the tower holds exactly it. Embedded chain."""

from __future__ import annotations

from pathlib import Path

import pytest

from channels.core.fees import FeeSchedule
from cise.local_net import run_local_net
from hub.mediator import MediationTerms
from tests.watchtower.towerfix import TowerChain, mine_until, running_tower, wait_until
from watchtower.client import TowerEndpoint, TowerGuard

TERMS = MediationTerms(
    FeeSchedule(flat=10, ppm=1_000, cap=5_000), reveal_timeout=5, lock_timeout=30
)


@pytest.mark.parametrize("chain", ["embedded"], indirect=True)
async def test_a_machine_paid_through_a_hub_hands_its_proofs_to_its_tower(
    chain: TowerChain, tmp_path: Path
) -> None:
    tower_actor, hub, user, machine = (
        chain.actors[2],
        chain.actors[3],
        chain.actors[4],
        chain.actors[5],
    )
    chain.fund(user, 10_000_000)
    chain.fund(hub, 10_000_000)
    chain.open(user, hub, 10_000_000)
    channel_id = chain.open(hub, machine, 10_000_000)
    async with running_tower(chain, tower_actor, tmp_path / "tower.sqlite") as (tower, port):
        await mine_until(chain, lambda: channel_id in tower.channels, "the tower sees it", 3)
        parties = {"hub": hub, "user": user, "machine": machine}
        async with run_local_net(
            {name: a.client for name, a in parties.items()},
            {name: a.key for name, a in parties.items()},
            tmp_path,
            TERMS,
        ) as net:
            service = net.services["machine"]
            guard = TowerGuard(
                service,
                [TowerEndpoint(tower_actor.address, port)],
                reward=5,
                batch_count=8,
                batch_interval=0.1,
            )
            guard.start(net.nursery)
            for payment_id in range(1, 6):
                await net.agents["user"].pay(machine.address, 10_000, payment_id)
            latest = service.channels[channel_id].partner.balance_proof
            assert latest.transferred == 50_000 and latest.nonce >= 10  # 5 locks, 5 unlocks
            await wait_until(guard.fully_guarded, "the tower holds the hub's latest proof")
            held = tower.guards[(channel_id, machine.address)]
            assert (held.partner, held.nonce, held.transferred, held.locks_root) == (
                hub.address,
                latest.nonce,
                latest.transferred,
                latest.locks_root,
            )
            assert held.reward == 5

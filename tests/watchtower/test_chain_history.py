"""A tower whose poll sees a channel opened and already closed cooperatively (a tower started on a
chain with such history, or one that could not poll for a while) keeps going: it starts, its cursor
moves on, and it still answers a stale close of a channel it guards. Real services on py-evm."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from channels.codec.eip712 import cooperative_close_digest
from channels.core.types import ChannelId
from tests.watchtower.test_rescue import PAYMENTS, _close_as_payer, _pay_and_hand_over
from tests.watchtower.towerfix import TowerChain, mine_until, running_tower, wait_until
from watchtower.client import TowerEndpoint

DEPOSIT = 100_000


def open_and_cooperatively_close(chain: TowerChain) -> ChannelId:
    """A channel between actors 4 and 5, opened and closed cooperatively (synchronous)."""
    a, b = chain.actors[3], chain.actors[4]
    chain.fund(a, DEPOSIT)
    channel_id = chain.open(a, b, DEPOSIT)
    (first, balance1), (second, balance2) = sorted(
        ((a, DEPOSIT), (b, 0)), key=lambda x: x[0].address
    )
    digest = cooperative_close_digest(a.client.domain(), channel_id, balance1, balance2)
    a.client.cooperative_close(
        channel_id,
        first.address,
        second.address,
        balance1,
        balance2,
        first.signer.sign_digest(digest),
        second.signer.sign_digest(digest),
    )
    assert chain.admin.balance_of(a.address) == DEPOSIT  # closed: the deposit is back
    return channel_id


async def _still_guards(chain: TowerChain, tmp_path: Path, port: int) -> None:
    """A new channel guarded by the tower; its partner closes stale; the tower answers."""
    tower_actor = chain.actors[2]
    channel_id, _ = await _pay_and_hand_over(
        chain, tmp_path, [TowerEndpoint(tower_actor.address, port)]
    )
    machine, payer = chain.actors[0], chain.actors[1]
    await _close_as_payer(chain, channel_id)

    def on_chain() -> int:
        return machine.client.get_balance_proof(channel_id, payer.address, machine.address).nonce

    assert on_chain() == 0
    await mine_until(chain, lambda: on_chain() == PAYMENTS, "the tower's update", 12)


@pytest.mark.parametrize("chain", ["embedded"], indirect=True)
async def test_a_tower_started_after_a_cooperative_close_starts_and_still_guards(
    chain: TowerChain, tmp_path: Path
) -> None:
    gone = open_and_cooperatively_close(chain)
    await chain.mine(1)  # the close confirmed: the tower's first poll sees the open and the close
    async with running_tower(chain, chain.actors[2], tmp_path / "tower.sqlite") as (tower, port):
        assert gone not in tower.channels
        await chain.mine(2)
        await wait_until(lambda: tower.cursor >= chain.head() - 1, "the tower's cursor moves on")
        await _still_guards(chain, tmp_path, port)
        assert tower.stats.missed == 0


@pytest.mark.parametrize("chain", ["embedded"], indirect=True)
async def test_a_running_tower_that_sees_open_and_close_in_one_poll_keeps_going(
    chain: TowerChain, tmp_path: Path
) -> None:
    async with running_tower(chain, chain.actors[2], tmp_path / "tower.sqlite") as (tower, port):
        before = tower.cursor
        async with chain.lock:  # the tower cannot poll meanwhile: it sees both at its next poll
            gone = await trio.to_thread.run_sync(open_and_cooperatively_close, chain)
            await trio.to_thread.run_sync(chain.connection.mine, 1)  # the close confirmed
        await chain.mine(2)
        await wait_until(lambda: tower.cursor >= chain.head() - 1, "the tower's cursor moves on")
        assert tower.cursor > before + 2 and gone not in tower.channels
        assert tower.outage_since is None  # no poll failed
        await _still_guards(chain, tmp_path, port)

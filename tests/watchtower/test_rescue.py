"""A machine is paid over a channel, hands each proof to its tower(s) automatically, and goes
offline; its partner closes with an old state (its own payments absent from the chain); the tower
submits the machine's latest proof within the challenge period, and settlement pays the machine
what it is owed minus the reward, which goes to the tower. With two towers only one pays gas and
gets the reward. Real node services (chain followers, sqlite, TCP) on the embedded chain and anvil.
"""

from __future__ import annotations

from pathlib import Path

import trio

from channels.chain.client import ChannelState as OnChain
from channels.core.types import ChannelId
from tests.watchtower.towerfix import (
    STEP,
    TowerChain,
    mine_until,
    paid_pair,
    running_tower,
    slot_of,
    wait_until,
)
from watchtower.client import TowerEndpoint, TowerGuard

MACHINE_DEPOSIT = 500_000
PAYER_DEPOSIT = 1_000_000
PAYMENT = 12_345
PAYMENTS = 10
REWARD = 1_000


async def _pay_and_hand_over(
    chain: TowerChain, tmp: Path, towers: list[TowerEndpoint]
) -> tuple[ChannelId, TowerGuard]:
    """Payer (actor 2) pays the machine (actor 1) PAYMENTS times over a fresh channel; the
    machine's guard hands each new proof to `towers`; returns once every tower holds the last one
    and the machine is offline again."""
    async with paid_pair(chain, tmp, MACHINE_DEPOSIT, PAYER_DEPOSIT) as pair:
        guard = TowerGuard(pair.machine, towers, reward=REWARD, batch_count=4, batch_interval=0.1)
        guard.start(pair.machine_tasks)
        await pair.pay(PAYMENTS, PAYMENT)
        # no flush: the guard hands the proofs over by itself (4 channels or 0.1 s)
        await wait_until(guard.fully_guarded, "every tower holds the latest proof")
    channel_id = pair.channel_id
    return channel_id, guard  # the machine is offline now (its node is stopped)


async def _close_as_payer(chain: TowerChain, channel_id: ChannelId) -> None:
    payer, machine = chain.actors[1], chain.actors[0]
    async with chain.lock:
        await trio.to_thread.run_sync(
            lambda: payer.client.close_channel(
                channel_id, machine.address, 0, 0, 0, b"\0" * 32, b""
            )
        )


async def _settle(chain: TowerChain, channel_id: ChannelId) -> None:
    machine, payer = chain.actors[0], chain.actors[1]
    info = machine.client.get_channel(channel_id, machine.address, payer.address)
    await chain.mine(max(0, info.settle_block + 1 - chain.head()))
    p1, p2 = sorted((machine.address, payer.address))
    async with chain.lock:
        await trio.to_thread.run_sync(lambda: payer.client.settle_channel(channel_id, p1, p2))


def _balances(chain: TowerChain, *actors: int) -> list[int]:
    return [chain.admin.balance_of(chain.actors[i].address) for i in actors]


async def test_the_tower_rescues_an_offline_machine_and_is_paid_at_settle(
    chain: TowerChain, tmp_path: Path
) -> None:
    tower_actor = chain.actors[2]
    async with running_tower(chain, tower_actor, tmp_path / "tower.sqlite") as (tower, port):
        channel_id, _ = await _pay_and_hand_over(
            chain, tmp_path, [TowerEndpoint(tower_actor.address, port)]
        )
        machine, payer = chain.actors[0], chain.actors[1]
        await _close_as_payer(chain, channel_id)  # with none of its own payments on chain

        def on_chain() -> int:
            return machine.client.get_balance_proof(
                channel_id, payer.address, machine.address
            ).nonce

        assert on_chain() == 0
        await mine_until(chain, lambda: on_chain() == PAYMENTS, "the tower's update", 12)
        info = machine.client.get_channel(channel_id, machine.address, payer.address)
        assert chain.head() <= info.settle_block  # within the challenge period
        assert machine.client.get_monitor_reward(channel_id, machine.address, payer.address) == (
            tower_actor.address,
            REWARD,
        )
        await wait_until(lambda: tower.stats.updates_mined == 1, "its receipt is in")
        assert tower.stats.missed == 0
        await _settle(chain, channel_id)
        paid = PAYMENT * PAYMENTS
        assert _balances(chain, 0, 1, 2) == [
            MACHINE_DEPOSIT + paid - REWARD,  # the machine's due minus the reward
            PAYER_DEPOSIT - paid,
            REWARD,  # the tower's reward, credited at settle
        ]
        # the settled channel is forgotten: nothing is left of it in the tower's file
        await mine_until(chain, lambda: channel_id not in tower.channels, "forgotten", 3)
        assert tower.store.row_counts() == (0, 0)
        assert machine.client.get_channel(channel_id, machine.address, payer.address).state is (
            OnChain.NONE
        )


async def test_two_towers_only_one_pays_gas_and_the_other_gets_nothing(
    chain: TowerChain, tmp_path: Path
) -> None:
    # channel 1 of the fresh deployment: two towers whose turns differ (a slot is 2 blocks)
    candidates = sorted(chain.actors[2:], key=lambda a: slot_of(a.address, 1, chain))
    first, second = candidates[0], candidates[-1]
    assert slot_of(first.address, 1, chain) < slot_of(second.address, 1, chain)
    gas_money = [chain.connection.eth_balance(t.address) for t in (first, second)]
    async with (
        running_tower(chain, first, tmp_path / "first.sqlite") as (tower1, port1),
        running_tower(chain, second, tmp_path / "second.sqlite") as (tower2, port2),
    ):
        endpoints = [TowerEndpoint(first.address, port1), TowerEndpoint(second.address, port2)]
        channel_id, _ = await _pay_and_hand_over(chain, tmp_path, endpoints)
        assert channel_id == 1
        machine, payer = chain.actors[0], chain.actors[1]
        await _close_as_payer(chain, channel_id)

        def on_chain() -> int:
            return machine.client.get_balance_proof(
                channel_id, payer.address, machine.address
            ).nonce

        await mine_until(chain, lambda: on_chain() == PAYMENTS, "an update", 12)
        # let the second tower's turn come and go: it sees the update and stands down
        info = machine.client.get_channel(channel_id, machine.address, payer.address)
        closed_at = info.settle_block - chain.deployment.settle_timeout
        second_turn = closed_at + 2 * slot_of(second.address, channel_id, chain)
        await mine_until(chain, lambda: chain.head() >= second_turn + 2, "its turn passed", 25)
        assert (tower1.stats.updates_sent, tower2.stats.updates_sent) == (1, 0)
        assert chain.connection.eth_balance(second.address) == gas_money[1]  # no gas spent
        assert chain.connection.eth_balance(first.address) < gas_money[0]
        await _settle(chain, channel_id)
    machine_index, tower_indexes = 0, [chain.actors.index(t) for t in (first, second)]
    paid = PAYMENT * PAYMENTS
    assert _balances(chain, machine_index, *tower_indexes) == [
        MACHINE_DEPOSIT + paid - REWARD,
        REWARD,
        0,  # did nothing, got nothing
    ]


async def test_no_reward_when_the_machine_was_online_and_answered_itself(
    chain: TowerChain, tmp_path: Path
) -> None:
    """The machine closes the channel itself: its partner's proof goes on chain with the close,
    the tower has nothing to do and is paid nothing."""
    tower_actor = chain.actors[2]
    async with running_tower(chain, tower_actor, tmp_path / "tower.sqlite") as (tower, port):
        channel_id, _ = await _pay_and_hand_over(
            chain, tmp_path, [TowerEndpoint(tower_actor.address, port)]
        )
        machine, payer = chain.actors[0], chain.actors[1]
        held = tower.guards[(channel_id, machine.address)]
        async with chain.lock:
            await trio.to_thread.run_sync(
                lambda: machine.client.close_channel(
                    channel_id,
                    payer.address,
                    held.nonce,
                    held.transferred,
                    held.locked,
                    held.locks_root,
                    held.partner_signature,
                )
            )
        await mine_until(chain, lambda: tower.channels[channel_id].closer is not None, "seen", 3)
        await _settle(chain, channel_id)
        with trio.fail_after(STEP):
            await tower.wait_polled()
        assert tower.stats.updates_sent == 0
    assert _balances(chain, 0, 2) == [MACHINE_DEPOSIT + PAYMENT * PAYMENTS, 0]

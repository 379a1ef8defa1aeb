"""The chain follower: cursor, confirmations, bounded ranges, and resuming from a saved cursor."""

from __future__ import annotations

from channels.chain.events import ChainFollower
from channels.core import state_changes as sc
from channels.core.types import Address, BlockNumber
from tests.integration.chain_env import ChainEnv


def test_follower_respects_confirmations_and_resumes(embedded_chain: ChainEnv) -> None:
    env = embedded_chain
    a, b = Address(env.alice.address), Address(env.bob.address)
    env.admin.mint(a, 1_000)
    env.alice.client.approve(1_000)
    _, receipt = env.alice.client.open_channel(b, 100)
    opened_at = receipt.block_number

    follower = ChainFollower(env.connection, env.deployment, confirmations=3)
    batch = follower.poll()
    assert batch.cursor == env.connection.block_number() - 3 < opened_at
    assert not any(isinstance(c, sc.ContractReceiveChannelOpened) for c in batch.state_changes)

    env.connection.mine(3)
    batch = follower.poll()
    assert batch.cursor == opened_at
    opened = [c for c in batch.state_changes if isinstance(c, sc.ContractReceiveChannelOpened)]
    assert len(opened) == 1 and opened[0].block_number == opened_at
    assert batch.state_changes[-1] == sc.Block(BlockNumber(opened_at))
    assert follower.poll().state_changes == ()  # nothing new: no Block either

    # a restarted shell resumes from its persisted cursor and sees only what came after
    env.alice.client.set_total_deposit(opened[0].channel_id, b, 150)
    env.connection.mine(3)
    resumed = ChainFollower(
        env.connection, env.deployment, cursor=batch.cursor, confirmations=3, max_range=1
    )
    batches = resumed.poll_until_head()
    assert all(x.cursor - y.cursor == 1 for x, y in zip(batches[1:], batches, strict=False))
    changes = [c for x in batches for c in x.state_changes if not isinstance(c, sc.Block)]
    assert [type(c) for c in changes] == [sc.ContractReceiveChannelDeposited]
    assert resumed.cursor == env.connection.block_number() - 3

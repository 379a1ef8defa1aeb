"""A transaction the core asked for survives a crash: it is an outbox row until it was sent.

On the embedded chain: Alice's service decides to close a channel; the decision is durable but
the process stops before the transaction leaves. The restarted service sends it (the channel
closes on chain), and once sent it is never sent again.
"""

from __future__ import annotations

from pathlib import Path

import trio

from channels.chain.client import ChannelState as OnChain
from channels.chain.events import ChainFollower
from channels.core import state_changes as sc
from channels.records import core_record_codec
from channels.service import TRANSACTION_PREFIX, NodeService, restore_chain_node
from channels.store import SqliteStore
from tests.integration.chain_env import ChainEnv, Party


def _service(party: Party, path: Path) -> NodeService:
    store = SqliteStore(path, core_record_codec())
    return NodeService(party.signer, store, restore_chain_node(party.signer, party.client, store))


def _pending_transactions(path: Path) -> list[str]:
    store = SqliteStore(path, core_record_codec())
    try:
        return [i.key for i in store.unconfirmed() if i.key.startswith(TRANSACTION_PREFIX)]
    finally:
        store.close()


async def test_a_transaction_decided_before_a_crash_is_sent_after_the_restart(
    embedded_chain: ChainEnv, tmp_path: Path
) -> None:
    env, alice, bob = embedded_chain, embedded_chain.alice, embedded_chain.bob
    env.admin.mint(alice.client.address, 10_000_000)
    alice.client.approve(1_000_000)
    channel_id, _ = alice.client.open_channel(bob.client.address, 1_000_000)
    path = tmp_path / "alice.sqlite"

    service = _service(alice, path)
    follower = ChainFollower(env.connection, env.deployment, cursor=service.block_number)
    for batch in follower.poll_until_head():
        for change in batch.state_changes:
            service.handle(change)
    assert channel_id in service.channels
    service.handle(sc.ActionClose(channel_id))
    await service.commit_now()  # durable, and then the process "dies" before sending
    service.store.close()
    assert len(_pending_transactions(path)) == 1
    info = alice.client.get_channel(channel_id, alice.client.address, bob.client.address)
    assert info.state is OnChain.OPENED

    restarted = _service(alice, path)
    try:
        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(restarted.run_transactions, alice.client)
                while not (restarted.stats.transactions_sent or restarted.chain_failures):  # noqa: ASYNC110
                    await trio.sleep(0.02)
                nursery.cancel_scope.cancel()
        await restarted.commit_now()
        assert not restarted.chain_failures
        info = alice.client.get_channel(channel_id, alice.client.address, bob.client.address)
        assert info.state is OnChain.CLOSED
    finally:
        restarted.store.close()
    assert _pending_transactions(path) == []  # sent once: not again after another restart

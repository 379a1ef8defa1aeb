"""A restarted node learns the chain's head before it processes any peer frame (issue 16).

On the embedded chain: Alice's service follows the chain, stops, and the chain moves on 30 blocks
while it is down. Restarted from its log (its block number is the one it stopped at), the frame a
peer sends at once (as the hub resends its unacknowledged locks on reconnect) is processed only
after the follower fed the current head: every decision on it is judged against that block.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path

import trio

from channels import wire
from channels.records import core_record_codec
from channels.service import NodeService, restore_chain_node, run_on_chain
from channels.store import SqliteStore
from channels.transport import Connection
from tests.integration.chain_env import ChainEnv, Party


class _Recording(NodeService):
    """Notes the block number the node knows when each peer frame item is processed."""

    seen: list[int]

    def receive(self, connection: Connection, item: wire.FrameItem) -> None:
        self.seen.append(int(self.block_number))
        super().receive(connection, item)


@dataclass
class _Peer:
    """What `_on_frame` reads of a connection: who is at the other end."""

    peer: bytes


def _service(party: Party, path: Path) -> _Recording:
    store = SqliteStore(path, core_record_codec())
    node = restore_chain_node(party.signer, party.client, store)
    service = _Recording(party.signer, store, node)
    service.seen = []
    return service


async def test_a_restarted_node_learns_the_head_before_any_peer_frame(
    embedded_chain: ChainEnv, tmp_path: Path
) -> None:
    env, alice, bob = embedded_chain, embedded_chain.alice, embedded_chain.bob
    path = tmp_path / "alice.sqlite"
    first = _service(alice, path)
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(first.run_commits)
            nursery.start_soon(lambda: run_on_chain(first, alice.client, poll_interval=0.05))
            while first.block_number < env.connection.block_number():  # noqa: ASYNC110
                await trio.sleep(0.05)
            await first.commit_now()
            nursery.cancel_scope.cancel()
    stopped_at = int(first.block_number)
    first.store.close()
    env.connection.mine(30)  # the chain moves on while the node is down
    head = int(env.connection.block_number())
    restarted = _service(alice, path)
    assert int(restarted.block_number) == stopped_at < head  # stale until it follows the chain
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            # started as the hub and agents start it: the hold is in place once it has started
            await nursery.start(partial(run_on_chain, restarted, alice.client, poll_interval=0.05))
            # the peer's frame arrives at once (a resend on reconnect)
            peer = _Peer(bytes(bob.address))
            await restarted._on_frame(peer, wire.Processed(message_ids=[1]))  # type: ignore[arg-type]
            nursery.cancel_scope.cancel()
    assert restarted.seen and min(restarted.seen) >= head  # judged against the head, not the past
    restarted.store.close()

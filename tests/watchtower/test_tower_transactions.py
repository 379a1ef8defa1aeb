"""A running tower's updates are its transaction manager's, on anvil: an update the node dropped
(never mined) is replaced with the same nonce and a higher fee, and lands once; an update a
reorganisation took off the chain goes out again (the same signed bytes) and lands once. Each
starts its own anvil keeping every block's state (`anvil_reorg` needs it).

On the tower's old bulk sender both failed: it counted nonces on from its own last one, so an
update sent again after a dropped (or reorganised-away) one took the next nonce and waited behind
the hole for ever.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import trio
from eth_utils.address import to_checksum_address

from channels.chain.connection import Connection
from channels.chain.nodes import (
    DEV_MNEMONIC,
    HOST,
    LocalNode,
    dev_private_keys,
    free_port,
    node_binary,
    rpc_call,
    run_node,
)
from channels.core.types import BlockNumber, ChannelId
from tests.watchtower.towerfix import (
    CLOSE_GAS,
    POLL,
    SETTLE_TIMEOUT,
    STEP,
    Actor,
    TowerChain,
    make_tower_chain,
    manager_send,
    mine_until,
    wait_until,
)
from watchtower.bench_peer import build_requests
from watchtower.client import TowerEndpoint, open_tower_session
from watchtower.core import GuardedProof
from watchtower.sender import transaction_key
from watchtower.service import Watchtower
from watchtower.store import TowerStore

pytestmark = [pytest.mark.node, pytest.mark.timeout(120)]
DEPOSIT = 1_000


@contextmanager
def _anvil_with_history() -> Iterator[LocalNode]:
    """anvil keeping every block's state (`anvil_reorg` needs it; `open_anvil` prunes)."""
    port = free_port()
    argv = [str(node_binary("anvil")), "--host", HOST, "--port", str(port), "--silent",
            "--mnemonic", DEV_MNEMONIC, "--accounts", "10", "--chain-id", "31337"]  # fmt: skip
    with run_node("anvil", argv, port, 30.0, dev_private_keys(10)) as node:
        yield node


@dataclass
class Guarding:
    """A tower (answering every close at once: one response slot) holding the guarded party's
    nonce-1 proof of an open channel partner -> guarded."""

    chain: TowerChain
    node: LocalNode
    tower: Watchtower
    actor: Actor
    guarded: Actor
    partner: Actor
    channel_id: ChannelId
    path: Path

    @property
    def proof(self) -> GuardedProof:
        return self.tower.guards[(self.channel_id, self.guarded.address)]

    def on_chain_nonce(self) -> int:
        client = self.guarded.client
        return client.get_balance_proof(
            self.channel_id, self.partner.address, self.guarded.address
        ).nonce

    def mined_count(self) -> int:
        address = to_checksum_address(self.actor.address)
        return int(self.chain.connection.w3.eth.get_transaction_count(address, "latest"))

    def close(self) -> None:
        manager_send(
            self.partner, "closeChannel", self.channel_id, self.guarded.address, 0, 0, 0,
            b"\0" * 32, b"", gas=CLOSE_GAS,
        )  # fmt: skip


@asynccontextmanager
async def _tower(
    chain: TowerChain, actor: Actor, path: Path, *, confirmations: int, stall_blocks: int = 3
) -> AsyncIterator[tuple[Watchtower, int]]:
    """A tower (one response slot: it answers every close at once) on `path`, serving until the
    block ends (then cancelled without any graceful step, as a killed process would stop)."""
    store = TowerStore(
        path,
        tower=actor.address,
        chain_id=chain.deployment.chain_id,
        manager=chain.deployment.manager,
        start_cursor=BlockNumber(chain.deployment.block_number - 1),
    )
    tower = Watchtower(
        actor.signer,
        actor.client,
        store,
        confirmations=confirmations,
        poll_interval=POLL,
        spacing=SETTLE_TIMEOUT,
        chain_lock=chain.lock,
        stall_blocks=stall_blocks,
    )
    try:
        async with trio.open_nursery() as nursery:
            with trio.fail_after(STEP):
                port: int = await nursery.start(tower.serve)
            yield tower, port
            nursery.cancel_scope.cancel()
    finally:
        store.close()


@asynccontextmanager
async def _guarding(
    tmp_path: Path, *, confirmations: int, stall_blocks: int = 3
) -> AsyncIterator[Guarding]:
    with _anvil_with_history() as node:
        connection = Connection.from_url(node.url, node.private_keys)
        chain = make_tower_chain(connection, "anvil", SETTLE_TIMEOUT)
        guarded, partner, actor = chain.actors[0], chain.actors[1], chain.actors[2]
        chain.fund(partner, DEPOSIT)
        channel_id = chain.open(partner, guarded, DEPOSIT)
        path = tmp_path / "tower.sqlite"
        async with _tower(
            chain, actor, path, confirmations=confirmations, stall_blocks=stall_blocks
        ) as (tower, port):
            g = Guarding(chain, node, tower, actor, guarded, partner, channel_id, path)
            await _hand_over(g, port)
            yield g


async def _hand_over(g: Guarding, port: int) -> None:
    """The guarded party hands its nonce-1 proof to the tower, once it sees the channel."""
    await mine_until(g.chain, lambda: g.channel_id in g.tower.channels, "opened", 5)
    [request] = build_requests(
        g.guarded.signer, g.partner.signer, g.guarded.client.domain(), g.actor.address,
        [g.channel_id], 1, 1,
    )  # fmt: skip
    endpoint = TowerEndpoint(g.actor.address, port)
    async with open_tower_session(g.guarded.signer, endpoint) as session:
        with trio.fail_after(STEP):
            answers = await session.submit([request])
    assert len(answers.receipts) == 1, answers


async def test_a_dropped_update_is_replaced_with_the_same_nonce_and_a_higher_fee(
    tmp_path: Path,
) -> None:
    async with _guarding(tmp_path, confirmations=0, stall_blocks=2) as g:
        chain, tower = g.chain, g.tower
        start = g.mined_count()
        chain.connection.set_automine(False)
        try:
            async with chain.lock:
                await trio.to_thread.run_sync(g.close)
            await chain.mine(1)  # the close alone in its block; the tower answers at once
            await wait_until(lambda: tower.stats.updates_sent == 1, "the update sent")
            key = transaction_key(g.proof)
            job = tower.transactions.scheduler.jobs[key]
            first_hash, nonce, first_fees = job.hashes[0], job.nonce, job.fees
            assert nonce == start and first_fees is not None
            # the node forgets it (as a node restarting with an empty pool, or evicting, would)
            rpc_call(g.node.url, "anvil_dropTransaction", ["0x" + first_hash.hex()])
            assert (
                rpc_call(g.node.url, "eth_getTransactionByHash", ["0x" + first_hash.hex()]) is None
            )
            mined = await mine_until(chain, lambda: g.on_chain_nonce() == 1, "replaced", 8)
        finally:
            chain.connection.set_automine(True)
        assert 2 <= mined <= 4  # stall_blocks after it went out, then the next block
        await wait_until(lambda: tower.stats.updates_mined == 1, "the outcome counted")
        stats = tower.statistics()
        assert stats.replacements == 1 and stats.updates_sent == 1 and stats.missed == 0
        head = chain.connection.block_number()
        [updated] = [
            e
            for e in chain.connection.get_logs(
                chain.deployment.manager, 0, head, g.actor.client.manager_abi
            )
            if e.name == "ChannelBalanceProofUpdated"
        ]
        landed = chain.connection.w3.eth.get_transaction(updated.transaction_hash)
        assert bytes(updated.transaction_hash) != first_hash  # a replacement ...
        assert int(landed["nonce"]) == nonce  # ... with the same nonce ...
        assert int(landed["maxFeePerGas"]) > first_fees.price  # ... paying more
        assert g.mined_count() == start + 1  # one transaction, not two


async def test_an_update_a_reorganisation_dropped_goes_out_again(tmp_path: Path) -> None:
    async with _guarding(tmp_path, confirmations=3) as g:
        chain, tower = g.chain, g.tower
        start = g.mined_count()
        async with chain.lock:
            await trio.to_thread.run_sync(g.close)  # automine: mined at once
        await mine_until(chain, lambda: tower.stats.updates_mined == 1, "answered", 6)
        key = transaction_key(g.proof)
        job = tower.transactions.scheduler.jobs[key]  # mined, not yet 3 blocks deep
        assert job.mined_hash is not None and job.mined_at is not None
        first_hash, first_block = job.mined_hash, job.mined_at
        assert g.on_chain_nonce() == 1 and g.mined_count() == start + 1
        async with chain.lock:
            depth = chain.connection.block_number() - first_block + 1
            rpc_call(g.node.url, "anvil_reorg", [depth, []], timeout=10.0)
        assert chain.connection.receipt(first_hash) is None  # gone from the chain
        assert g.on_chain_nonce() == 0 and g.mined_count() == start
        await mine_until(
            chain, lambda: not tower.transactions.holds(key), "sent again and confirmed", 10
        )
        assert tower.statistics().resent_after_reorg == 1
        again = chain.connection.receipt(first_hash)  # the same signed bytes, mined again
        assert again is not None and int(again["blockNumber"]) > first_block - 1
        assert g.on_chain_nonce() == 1
        assert g.mined_count() == start + 1  # not a second transaction
        assert tower.stats.updates_mined == 1 and tower.stats.missed == 0  # reported once


async def test_a_restarted_tower_sends_its_recorded_update_again_with_the_same_nonce(
    tmp_path: Path,
) -> None:
    """Killed after its update was recorded and handed to the node, which then lost it (as if the
    send never arrived): the restarted tower sends the recorded bytes again at once (same nonce,
    same hash), not a second transaction after `resend_after` blocks."""
    with _anvil_with_history() as node:
        connection = Connection.from_url(node.url, node.private_keys)
        chain = make_tower_chain(connection, "anvil", SETTLE_TIMEOUT)
        guarded, partner, actor = chain.actors[0], chain.actors[1], chain.actors[2]
        chain.fund(partner, DEPOSIT)
        channel_id = chain.open(partner, guarded, DEPOSIT)
        path = tmp_path / "tower.sqlite"
        try:
            async with _tower(chain, actor, path, confirmations=0) as (tower, port):
                g = Guarding(chain, node, tower, actor, guarded, partner, channel_id, path)
                await _hand_over(g, port)
                start = g.mined_count()
                connection.set_automine(False)
                async with chain.lock:
                    await trio.to_thread.run_sync(g.close)
                await chain.mine(1)
                await wait_until(lambda: tower.stats.updates_sent == 1, "the update sent")
                key = transaction_key(g.proof)
                recorded = tower.transactions.scheduler.jobs[key].hashes[-1]
            # the tower is gone (cancelled mid-flight); the node loses what it held
            rpc_call(node.url, "anvil_dropAllTransactions", [])
            await chain.mine(1)
            assert g.on_chain_nonce() == 0 and g.mined_count() == start
            async with _tower(chain, actor, path, confirmations=0) as (again, _):
                assert again.transactions.holds(key)  # restored from its file
                await wait_until(lambda: again.stats.updates_sent == 1, "sent again at start")
                mined = await mine_until(chain, lambda: g.on_chain_nonce() == 1, "landed", 3)
                assert mined == 1
        finally:
            connection.set_automine(True)
        receipt = connection.receipt(recorded)  # the very transaction recorded before
        assert receipt is not None and int(receipt["status"]) == 1
        assert g.mined_count() == start + 1  # one transaction, not two

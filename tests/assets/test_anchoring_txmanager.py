"""The asset agent anchors its ledger through its node's transaction manager (issue 16, point 1),
on real anvil: the anchor is recorded in the node's outbox and in flight under its key while it
waits to be mined; the node's chain follower follows the blocks mined meanwhile (without it: the
base fee jumped above what it pays, and anvil dropped it); the manager replaces it (same nonce,
higher fee) and the ledger records the anchor, its transaction and its block, once."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import trio

from assets.anchoring import anchor_key_prefix, anchor_pending
from assets.ledger import Anchor
from assets.ledger_store import LedgerStore
from channels.chain.assets import AssetRegistryClient
from channels.chain.client import Web3ChainClient
from channels.chain.connection import Connection
from channels.chain.nodes import open_anvil, rpc_call
from channels.records import core_record_codec
from channels.service import NodeService, restore_chain_node, run_on_chain
from channels.signer import LocalSigner
from channels.store import SqliteStore
from tests.integration.test_cli_ledger import ANCHORED, ASSET, ENTRIES, build_world

pytestmark = pytest.mark.node


def _rpc(url: str, method: str, *params: object) -> object:
    return rpc_call(url, method, list(params))


async def _until(predicate: object, seconds: float) -> None:
    with trio.fail_after(seconds):
        while not predicate():  # type: ignore[operator]  # noqa: ASYNC110
            await trio.sleep(0.05)


@pytest.mark.timeout(120)
async def test_an_anchor_goes_through_the_node_and_the_follower_follows_meanwhile(
    tmp_path: Path,
) -> None:
    with open_anvil() as node:
        connection = Connection.from_url(node.url, node.private_keys)
        world = build_world(connection, tmp_path)  # anchor 0 (seq 1..4) on chain, 5..6 not
        registry = AssetRegistryClient.from_key(connection, world.deployment, world.agent_key)
        signer = LocalSigner(world.agent_key)
        client = Web3ChainClient.from_key(connection, world.deployment, world.agent_key)
        store = SqliteStore(tmp_path / "agent.sqlite", core_record_codec())
        service = NodeService(signer, store, restore_chain_node(signer, client, store))
        prefix = anchor_key_prefix(ASSET)
        anchored: list[Anchor | None] = []
        with LedgerStore(world.ledger) as ledger:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(service.run_commits)
                nursery.start_soon(run_on_chain, service, client)
                await _until(lambda: service.block_number >= connection.block_number(), 10)
                await trio.to_thread.run_sync(_rpc, node.url, "evm_setAutomine", False)

                async def anchor() -> None:
                    anchored.append(
                        await anchor_pending(ledger, registry, ASSET, trio.Lock(), service.sends)
                    )

                nursery.start_soon(anchor)
                key = f"{prefix}{ANCHORED + 1}-{ENTRIES}"
                await _until(lambda: service.sends.live(prefix) == [key], 10)
                # signed and recorded in the node's outbox before it left
                await _until(lambda: service.transactions and service.transactions.head >= 0, 10)
                await _until(lambda: _in_outbox(tmp_path / "agent.sqlite", key), 10)
                latest = _rpc(node.url, "eth_getBlockByNumber", "latest", False)
                assert isinstance(latest, dict)
                base_fee = max(int(latest["baseFeePerGas"], 16), 1)
                await trio.to_thread.run_sync(
                    _rpc, node.url, "anvil_setNextBlockBaseFeePerGas", hex(base_fee * 1_000)
                )
                await trio.to_thread.run_sync(_rpc, node.url, "anvil_mine", hex(4))
                head = int(str(_rpc(node.url, "eth_blockNumber")), 16)
                await _until(lambda: service.block_number >= head, 10)  # the follower follows
                assert not anchored and len(registry.anchors(ASSET)) == 1
                with trio.fail_after(60):
                    while not anchored:
                        await trio.to_thread.run_sync(_rpc, node.url, "anvil_mine", hex(1))
                        await trio.sleep(0.3)
                assert service.transactions is not None and service.transactions.replacements >= 1
                nursery.cancel_scope.cancel()
            [made] = anchored
            assert made is not None and (made.from_seq, made.to_seq) == (ANCHORED + 1, ENTRIES)
            on_chain = registry.anchors(ASSET)
            assert [(a.from_seq, a.to_seq) for a in on_chain] == [(1, ANCHORED), (5, ENTRIES)]
            [_, record] = ledger.anchors()
            assert (record.from_seq, record.to_seq, record.root) == (5, ENTRIES, made.root)
            assert record.tx_hash is not None
            assert record.block is not None and record.block > head
            assert service.sends.live(prefix) == []
        store.close()


def _in_outbox(path: Path, key: str) -> bool:
    """Whether the node's committed outbox holds row `key` (read on a connection of our own)."""
    db = sqlite3.connect(path)
    try:
        return db.execute("SELECT 1 FROM outbox WHERE key = ?", (key,)).fetchone() is not None
    finally:
        db.close()

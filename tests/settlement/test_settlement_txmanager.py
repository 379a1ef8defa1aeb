"""A settlement batch goes out through the hub node's transaction manager (issue 16, point 1), on
real anvil: while the batch waits to be mined (blocks mined without it: the base fee jumped
above what it pays, and anvil drops it from its pool), the hub's chain follower keeps following
the chain; the manager replaces
the stalled batch (same nonce, higher fee, each version recorded in the settlement file before
it leaves) and the round ends settled once it lands, applied once.

Before the move the round sent the batch and polled for its receipt holding the node's chain
lock, so the follower saw no block until the batch was mined, and nothing replaced it."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest
import trio

from channels.chain.connection import Connection
from channels.chain.nodes import open_anvil, rpc_call
from channels.records import OutboxTransaction
from settlement.service import RoundReport
from settlement.store import SettlementStore
from tests.settlement.settlefix import settle_net, wait_for

pytestmark = pytest.mark.node


def _rpc(url: str, method: str, *params: object) -> object:
    return rpc_call(url, method, list(params))


@pytest.mark.timeout(180)
async def test_the_follower_keeps_following_while_a_batch_waits_to_be_mined(
    tmp_path: Path,
) -> None:
    with open_anvil() as node:
        connection = Connection.from_url(node.url, node.private_keys)
        async with settle_net(tmp_path, connection=connection) as sn:
            washer = sn.net.address("washer")
            with trio.fail_after(30):
                await sn.net.agents["alice"].pay(washer, 600_000, payment_id=1)
            hub = sn.net.services["hub"]
            hub_address = "0x" + sn.clients["hub"].address.hex()
            await trio.to_thread.run_sync(_rpc, node.url, "evm_setAutomine", False)
            store = SettlementStore(tmp_path / "settlement.sqlite")
            service = sn.service(store, collect_s=10)
            reports: list[RoundReport] = []

            async def settle() -> None:
                reports.append(await service.settle_once())

            def pooled() -> bool:  # the batch is in the node's pool, not mined
                pending = int(
                    str(_rpc(node.url, "eth_getTransactionCount", hub_address, "pending")), 16
                )
                mined = int(
                    str(_rpc(node.url, "eth_getTransactionCount", hub_address, "latest")), 16
                )
                return pending > mined

            async with trio.open_nursery() as nursery:
                nursery.start_soon(settle)
                with trio.fail_after(30):
                    while not await trio.to_thread.run_sync(pooled):  # noqa: ASYNC110
                        await trio.sleep(0.1)
                # blocks without the batch: the base fee jumps 1,000-fold above what it pays
                latest = _rpc(node.url, "eth_getBlockByNumber", "latest", False)
                assert isinstance(latest, dict)
                base_fee = int(latest["baseFeePerGas"], 16)
                await trio.to_thread.run_sync(
                    _rpc, node.url, "anvil_setNextBlockBaseFeePerGas", hex(max(base_fee, 1) * 1_000)
                )
                await trio.to_thread.run_sync(_rpc, node.url, "anvil_mine", hex(4))
                head = int(str(_rpc(node.url, "eth_blockNumber")), 16)
                # the follower sees those blocks while the round still waits for its batch
                await wait_for(lambda: hub.block_number >= head, 10)
                assert not reports  # (anvil even dropped the batch from its pool)
                [row] = store.transactions(store.rounds(1)[0].id)
                assert row.status == "signed"
                # blocks keep coming: the manager replaces the stalled batch until it lands
                with trio.fail_after(90):
                    while not reports:
                        await trio.to_thread.run_sync(_rpc, node.url, "anvil_mine", hex(1))
                        await trio.sleep(0.3)
            [report] = reports
            assert report.status == "settled", report
            assert report.to_counterparties == 600_000
            washer_client = sn.clients["washer"]
            assert washer_client.balance_of(washer_client.address) == 600_000  # applied once
            [row] = store.transactions(report.round_id)
            raw = store.signed(report.round_id, row.tx_index)
            assert raw is not None
            record = msgspec.msgpack.decode(raw, type=OutboxTransaction)
            # every version the manager signed was recorded; a replacement, the same nonce
            assert len(record.hashes) >= 2 and row.tx_hash in record.hashes
            assert row.block is not None and row.block > head
            assert sn.held_by_manager() == sn.tokens
            store.close()

"""The deadlines benchmark (`cise bench deadlines`): a hub answering N closes at once, in time.

One run, fresh: anvil with `block_time`-second blocks, contracts with a challenge period of
`settle_timeout` blocks, and one counterparty account that opens `closes` channels with the hub.
In each channel the counterparty pays the hub (a signed balance proof, nonce 1, handed to the
hub's core as a received direct transfer), then closes every channel at once with no proof of the
hub's: a stale close that, left unanswered, takes the payment back. The hub runs a real
`NodeService` (sqlite, its chain follower and transaction manager, as `cise hub serve` does); its
core answers each close with `updateBalanceProof` and must land it by the channel's settle block.

Figures: `closes`; `close_blocks` (how many blocks the closes took, the block gas limit allowing);
`blocks_to_answer_all` (from the first close's block to the block of the last update);
`max_blocks_after_close` (the most blocks an update landed after its own close); `missed`
(closes whose update did not land by the settle block: money the hub lost); `updates_per_block`;
`max_tx_per_block`; `block_gas_limit`, `update_gas`. It never mines blocks itself: the chain's
own block time rules, as on a real network.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import trio
from eth_account import Account

from channels.chain.client import Web3ChainClient
from channels.chain.connection import Connection, SentTransaction
from channels.chain.deploy import DEFAULT_SETTLE_TIMEOUT, deploy
from channels.chain.nodes import open_anvil
from channels.core import state_changes as sc
from channels.core.state import BalanceProof
from channels.core.types import (
    EMPTY_LOCKS_ROOT,
    Address,
    ChannelId,
    Nonce,
    PaymentId,
    Signature,
    TokenAmount,
)
from channels.records import core_record_codec
from channels.service import NodeService, restore_chain_node, run_on_chain
from channels.signer import LocalSigner
from channels.store import SqliteStore

DEPOSIT = 1_000
PAID = 100  # what the counterparty pays the hub in each channel (lost if the close stands)
OPEN_GAS = 300_000
CLOSE_GAS = 200_000
SEND_CHUNK = 100


class DeadlineBenchError(RuntimeError):
    """A run could not set up what it measures (a channel not opened, a close not mined)."""


def run_deadlines_bench(
    *,
    closes: int = 500,
    settle_timeout: int = DEFAULT_SETTLE_TIMEOUT,
    block_time: int = 2,
    poll_interval: float = 0.2,
) -> dict[str, Any]:
    """One run on a fresh anvil (see the module docstring); the figures as a dict."""
    if closes < 1 or settle_timeout < 5 or block_time < 1:
        raise ValueError(
            "closes >= 1, settle_timeout >= 5 (the contract's minimum), block_time >= 1"
        )
    with (
        tempfile.TemporaryDirectory(prefix="cise-deadlines-") as workdir,
        open_anvil(block_time=block_time) as node,
    ):
        connection = Connection.from_url(node.url, node.private_keys)
        return trio.run(
            _run, connection, Path(workdir), closes, settle_timeout, block_time, poll_interval
        )


def _send_all(
    connection: Connection, client: Web3ChainClient, calls: list[tuple[Any, ...]], gas: int
) -> list[Any]:
    """Send ChannelManager calls (function, *args) from `client` without waiting, then wait for
    each receipt; `DeadlineBenchError` when one fails."""
    account = client.account
    sent: list[SentTransaction] = []
    for function, *args in calls:
        data = client.manager_abi.function(function).encode_call(tuple(args))
        sent.append(
            connection.send(
                account, client.deployment.manager, data, client.manager_abi, function, gas=gas
            )
        )
    return [connection.wait(s) for s in sent]


async def _run(
    connection: Connection,
    workdir: Path,
    closes: int,
    settle_timeout: int,
    block_time: int,
    poll_interval: float,
) -> dict[str, Any]:
    keys = connection.dev_keys
    deployment = deploy(connection, Account.from_key(keys[0]), settle_timeout)
    admin = Web3ChainClient.from_key(connection, deployment, keys[0])
    hub_key, peer_key = keys[1], keys[2]
    hub_client = admin.for_account(Account.from_key(hub_key))
    peer = admin.for_account(Account.from_key(peer_key))
    peer_signer = LocalSigner(peer_key)
    hub = Address(hub_client.address)

    def setup() -> list[ChannelId]:
        admin.mint(peer.address, closes * DEPOSIT)
        peer.approve(closes * DEPOSIT)
        receipts = []
        for start in range(0, closes, SEND_CHUNK):
            count = min(SEND_CHUNK, closes - start)
            receipts += _send_all(
                connection, peer, [("openChannel", hub, DEPOSIT)] * count, OPEN_GAS
            )
        return [ChannelId(int(r.event("ChannelOpened").args["channelId"])) for r in receipts]

    channel_ids = await trio.to_thread.run_sync(setup)
    store = SqliteStore(workdir / "hub.sqlite", core_record_codec())
    service = NodeService(
        LocalSigner(hub_key), store, restore_chain_node(LocalSigner(hub_key), hub_client, store)
    )
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(service.run_commits)
            nursery.start_soon(
                lambda: run_on_chain(service, hub_client, poll_interval=poll_interval)
            )
            with trio.fail_after(120 + closes * 0.1):
                while any(c not in service.channels for c in channel_ids):  # noqa: ASYNC110
                    await trio.sleep(0.1)
            domain = service.node.domain
            for index, channel_id in enumerate(channel_ids):  # the peer pays the hub
                proof = BalanceProof(
                    channel_id, Nonce(1), TokenAmount(PAID), TokenAmount(0), EMPTY_LOCKS_ROOT
                )
                signed = BalanceProof(
                    channel_id,
                    Nonce(1),
                    TokenAmount(PAID),
                    TokenAmount(0),
                    EMPTY_LOCKS_ROOT,
                    Signature(peer_signer.sign_digest(proof.digest(domain))),
                )
                service.handle(sc.ReceiveBalanceProof(peer.address, signed, PaymentId(index + 1)))
            await service.commit_now()
            unpaid = [
                c for c in channel_ids if service.channels[c].partner.balance_proof.nonce != 1
            ]
            if unpaid:
                raise DeadlineBenchError(f"the hub refused {len(unpaid)} of the peer's payments")

            def close_all() -> list[Any]:
                receipts = []
                for start in range(0, closes, SEND_CHUNK * 5):
                    chunk = channel_ids[start : start + SEND_CHUNK * 5]
                    calls = [
                        ("closeChannel", c, hub, 0, 0, 0, EMPTY_LOCKS_ROOT, b"") for c in chunk
                    ]
                    receipts += _send_all(connection, peer, calls, CLOSE_GAS)
                return receipts

            close_receipts = await trio.to_thread.run_sync(close_all)
            close_blocks = sorted({int(r.block_number) for r in close_receipts})
            settle_blocks = {
                ChannelId(int(r.event("ChannelClosed").args["channelId"])): int(r.block_number)
                + settle_timeout
                for r in close_receipts
            }
            last_deadline = max(settle_blocks.values())
            with trio.fail_after((last_deadline - close_blocks[0] + 10) * block_time + 60):
                while connection.block_number() <= last_deadline + 1:  # noqa: ASYNC110
                    await trio.sleep(block_time / 2)
            nursery.cancel_scope.cancel()
    finally:
        store.close()
    head = connection.block_number()
    updates = [
        e
        for e in connection.get_logs(deployment.manager, close_blocks[0], head, admin.manager_abi)
        if e.name == "ChannelBalanceProofUpdated"
    ]
    answered = {
        ChannelId(int(e.args["channelId"])): e.block_number
        for e in updates
        if e.block_number <= settle_blocks.get(ChannelId(int(e.args["channelId"])), -1)
    }
    per_block = Counter(e.block_number for e in updates)
    delays = [answered[c] - (settle_blocks[c] - settle_timeout) for c in answered]
    missed = [c for c in channel_ids if c not in answered]
    gas_limit = connection.block_gas_limit()
    return {
        "closes": closes,
        "challenge_period": settle_timeout,
        "block_time": block_time,
        "close_blocks": len(close_blocks),
        "blocks_to_answer_all": (max(answered.values()) - close_blocks[0]) if answered else None,
        "missed": len(missed),
        # the most blocks one update landed after its own close: the shortest challenge period
        # at which this run would have missed none is this many blocks
        "max_blocks_after_close": max(delays) if delays else None,
        "lost": len(missed) * PAID,
        "updates_per_block": [per_block[b] for b in sorted(per_block)],
        "max_tx_per_block": max(per_block.values()) if per_block else 0,
        "block_gas_limit": gas_limit,
        "transactions_sent": service.stats.transactions_sent,
        "transactions_failed": service.stats.transactions_failed,
    }

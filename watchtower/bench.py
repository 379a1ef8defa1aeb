"""The watchtower benchmark (`cise bench watchtower`): durable requests per second, closes per block.

Each run starts fresh: a chain (a local anvil by default, or the embedded py-evm in this process),
contracts, `channels` channels between a guarded party and its partner opened in one block, and a
tower in this process (its own sqlite file, synchronous=FULL; confirmations 0, a poll every 20 ms).

- `requests_per_s`: a client process (`python -m watchtower.bench_peer`) builds `requests`
  MonitorRequests first (nonces rising round-robin over the channels; the partner's signed proof
  and the guarded party's signed request in each), then streams them over loopback in frames of
  `frame`, at most `window` frames unanswered. The figure is requests / the seconds from the first
  frame sent to the last answer: an answer leaves the tower only after its accepted requests are
  committed (fsynced) and each is signed for. Every request must be accepted.
- `closes_handled_per_block`: the partner then closes every channel in one block, and blocks are
  mined every `block_time` seconds (1 s by default, as `cise chain` does; automine off: a block takes
  whatever was sent since the last one). The tower answers all of them at once (response slots off:
  one tower, nobody to stagger with) and sends its updates as fast as it can check and sign them;
  the figure is the most of its updates one block took. When every close is answered in the first
  block, it is a lower bound (`bounded_by_closes`); otherwise it is what the tower can get into one
  block at that block time. `block_capacity` is how many updates a block's gas limit holds (at
  the gas they used: ~280 in anvil's 30M), `updates_per_s` how fast the tower checks, signs and
  sends them. Every channel must end with the guarded party's last nonce on chain.

The result is the median of the runs, each run's figures under `per_run`. On the embedded chain the
tower, the chain and the miner share one Python process: py-evm's execution of each update is in
the figure (anvil runs the chain apart, `chain="anvil"`).
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import trio
from eth_account import Account
from eth_account.signers.local import LocalAccount

from channels.chain.abi import DecodedEvent
from channels.chain.client import Web3ChainClient
from channels.chain.connection import Connection, SentTransaction
from channels.chain.deploy import deploy
from channels.chain.nodes import LocalNode, open_anvil
from channels.core.types import Address, BlockNumber, ChannelId
from channels.signer import LocalSigner
from watchtower.service import Watchtower
from watchtower.store import TowerStore

SETTLE_TIMEOUT = 40  # blocks: at 1 s a block, 40 s to answer
DEPOSIT = 1_000_000
REWARD = 1
OPEN_GAS = 300_000
CLOSE_GAS = 200_000
PEER_TIMEOUT = 300.0
CHAINS = ("embedded", "anvil")


class BenchError(RuntimeError):
    """A run did not do what it measures (a request refused, a close unanswered)."""


def send_in_one_block(
    connection: Connection,
    client: Web3ChainClient,
    sends: Sequence[Callable[[], SentTransaction]],
    event: str,
) -> list[DecodedEvent]:
    """Send every transaction with automine off, mine them in one block, and return the `event`s
    of that block (one per transaction, else `BenchError`). Dev chains only; synchronous."""
    connection.set_automine(False)
    try:
        for send in sends:
            send()
        block = connection.mine(1)
    finally:
        connection.set_automine(True)
    events = connection.get_logs(client.deployment.manager, block, block, client.manager_abi)
    found = [e for e in events if e.name == event]
    if len(found) != len(sends):
        raise BenchError(f"{len(found)} {event} events in block {block}, not {len(sends)}")
    return found


def manager_call(
    client: Web3ChainClient, account: LocalAccount, function: str, *args: object, gas: int
) -> SentTransaction:
    """A ChannelManager transaction sent without waiting and without an estimate."""
    data = client.manager_abi.function(function).encode_call(args)
    return client.connection.send(
        account, client.deployment.manager, data, client.manager_abi, function, gas=gas
    )


def run_watchtower_bench(
    *,
    requests: int = 20_000,
    channels: int = 200,
    runs: int = 3,
    frame: int = 256,
    window: int = 8,
    block_time: float = 1.0,
    chain: str = "anvil",
) -> dict[str, Any]:
    """Run the benchmark `runs` times; the medians and every run's figures."""
    if chain not in CHAINS:
        raise BenchError(f"chain is one of {', '.join(CHAINS)}, not {chain!r}")
    if requests < channels or channels < 1 or not 1 <= frame <= 1024 or window < 1:
        raise BenchError("want requests >= channels >= 1, frame 1..1024, window >= 1")
    per_run = []
    with ExitStack() as stack:
        node = stack.enter_context(open_anvil()) if chain == "anvil" else None
        for _ in range(runs):
            with tempfile.TemporaryDirectory() as workdir:
                per_run.append(
                    trio.run(
                        _run_once,
                        node,
                        Path(workdir),
                        requests,
                        channels,
                        frame,
                        window,
                        block_time,
                    )
                )

    def median(key: str) -> float:
        return float(statistics.median(run[key] for run in per_run))

    return {
        "requests_per_s": round(median("requests_per_s")),
        "closes_handled_per_block": round(median("closes_handled_per_block")),
        "chain": chain,
        "requests": requests,
        "channels": channels,
        "frame": frame,
        "window": window,
        "block_time_s": block_time,
        "closes_in_one_block": channels,
        "bounded_by_closes": all(run["bounded_by_closes"] for run in per_run),
        "blocks_to_answer_all": median("blocks_to_answer_all"),
        "block_capacity": min(run["block_capacity"] for run in per_run),
        "updates_per_s": round(median("updates_per_s")),
        "requests_per_commit": round(median("requests_per_commit"), 1),
        "runs": runs,
        "per_run": per_run,
    }


async def _run_once(
    node: LocalNode | None,
    workdir: Path,
    requests: int,
    channels: int,
    frame: int,
    window: int,
    block_time: float,
) -> dict[str, Any]:
    connection = (
        Connection.embedded() if node is None else Connection.from_url(node.url, node.private_keys)
    )
    keys = connection.dev_keys
    deployment = deploy(connection, Account.from_key(keys[0]), SETTLE_TIMEOUT)
    admin = Web3ChainClient.from_key(connection, deployment, keys[0])
    guarded_key, partner_key, tower_key = keys[1], keys[2], keys[3]
    partner_account = Account.from_key(partner_key)
    partner = admin.for_account(partner_account)
    guarded = Address(LocalSigner(guarded_key).address)
    admin.mint(partner.address, channels * DEPOSIT)
    partner.approve(channels * DEPOSIT)
    opened = send_in_one_block(
        connection,
        partner,
        [
            lambda: manager_call(
                partner, partner_account, "openChannel", guarded, DEPOSIT, gas=OPEN_GAS
            )
            for _ in range(channels)
        ],
        "ChannelOpened",
    )
    channel_ids = [ChannelId(e.args["channelId"]) for e in opened]

    lock = trio.Lock()
    tower_client = admin.for_account(Account.from_key(tower_key))
    store = TowerStore(
        workdir / "tower.sqlite",
        tower=tower_client.address,
        chain_id=deployment.chain_id,
        manager=deployment.manager,
        start_cursor=BlockNumber(deployment.block_number - 1),
    )
    tower = Watchtower(
        LocalSigner(tower_key),
        tower_client,
        store,
        confirmations=0,
        poll_interval=0.02,
        spacing=SETTLE_TIMEOUT,  # one slot: a lone tower answers every close at once
        chain_lock=lock,
    )
    try:
        async with trio.open_nursery() as nursery:
            port: int = await nursery.start(tower.serve)
            missing = [c for c in channel_ids if c not in tower.channels]
            if missing:
                raise BenchError(f"the tower does not know {len(missing)} opened channels")
            ingest = await _ingest(
                tower, port, deployment.chain_id, deployment.manager, guarded_key, partner_key,
                channel_ids, requests, frame, window,
            )  # fmt: skip
            commits = tower.stats.commits
            closes = await trio.to_thread.run_sync(
                _close_all, connection, partner, partner_account, guarded, channel_ids
            )
            close_block = closes[0].block_number
            connection.set_automine(False)
            try:
                nursery.start_soon(_mine_every, connection, lock, block_time)
                with trio.fail_after(SETTLE_TIMEOUT * block_time + 60):
                    while tower.stats.updates_mined + tower.stats.updates_failed < channels:  # noqa: ASYNC110
                        await trio.sleep(0.05)
            finally:
                connection.set_automine(True)
            nursery.cancel_scope.cancel()
    finally:
        store.close()
    head = connection.block_number()
    updates = [
        e
        for e in connection.get_logs(deployment.manager, close_block + 1, head, admin.manager_abi)
        if e.name == "ChannelBalanceProofUpdated"
    ]
    per_block = Counter(e.block_number for e in updates)
    last_nonces = _last_nonces(channel_ids, requests)
    wrong = [
        c
        for c in channel_ids
        if admin.get_balance_proof(c, partner.address, guarded).nonce != last_nonces[c]
    ]
    if len(updates) != channels or wrong or tower.stats.missed:
        raise BenchError(
            f"{len(updates)} of {channels} closes answered, {len(wrong)} with a wrong nonce, "
            f"{tower.stats.missed} missed"
        )
    best = max(per_block.values())
    stats = tower.statistics()
    return {
        "requests_per_s": requests / ingest["seconds"],
        "ingest_seconds": ingest["seconds"],
        "requests_per_commit": requests / max(1, commits),
        "build_seconds": ingest["build_seconds"],
        "closes_handled_per_block": best,
        "bounded_by_closes": best == channels,
        "blocks_to_answer_all": max(per_block) - close_block,
        "block_capacity": _block_capacity(
            connection, max(per_block, key=per_block.__getitem__), best
        ),
        "updates_per_block": [per_block[b] for b in sorted(per_block)],
        "updates_per_s": stats.updates_sent / max(stats.send_seconds, 1e-9),
    }


async def _ingest(
    tower: Watchtower,
    port: int,
    chain_id: int,
    manager: bytes,
    guarded_key: bytes,
    partner_key: bytes,
    channel_ids: list[ChannelId],
    requests: int,
    frame: int,
    window: int,
) -> dict[str, Any]:
    params = {
        "tower": tower.address.hex(),
        "port": port,
        "chain_id": chain_id,
        "manager": manager.hex(),
        "guarded_key": guarded_key.hex(),
        "partner_key": partner_key.hex(),
        "channels": channel_ids,
        "count": requests,
        "reward": REWARD,
        "frame": frame,
        "window": window,
    }
    with trio.fail_after(PEER_TIMEOUT):
        peer = await trio.run_process(
            [sys.executable, "-m", "watchtower.bench_peer", json.dumps(params)],
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    if peer.returncode != 0:
        raise BenchError(f"the client process failed: {peer.stderr.decode()[-2000:]}")
    result: dict[str, Any] = json.loads(peer.stdout.decode().strip().splitlines()[-1])
    if result["accepted"] != requests:
        raise BenchError(
            f"{result['accepted']} of {requests} requests accepted: {result['refused_codes']}"
        )
    return result


def _close_all(
    connection: Connection,
    partner: Web3ChainClient,
    account: LocalAccount,
    guarded: Address,
    channel_ids: list[ChannelId],
) -> list[DecodedEvent]:
    """The partner closes every channel in one block, none of its own proofs on chain."""

    def close(channel_id: ChannelId) -> Callable[[], SentTransaction]:
        return lambda: manager_call(
            partner, account, "closeChannel", channel_id, guarded, 0, 0, 0, b"\0" * 32, b"",
            gas=CLOSE_GAS,
        )  # fmt: skip

    return send_in_one_block(connection, partner, [close(c) for c in channel_ids], "ChannelClosed")


def _last_nonces(channel_ids: list[ChannelId], requests: int) -> dict[ChannelId, int]:
    """The highest nonce each channel got (requests go round-robin, nonces from 1)."""
    count = len(channel_ids)
    return {c: (requests - 1 - i) // count + 1 for i, c in enumerate(channel_ids)}


def _block_capacity(connection: Connection, block: int, updates: int) -> int:
    """How many updates a block holds: its gas limit / the gas each of `updates` in `block` used
    (the block holds nothing else)."""
    header = connection.w3.eth.get_block(block)
    return int(header["gasLimit"]) * updates // max(1, int(header["gasUsed"]))


async def _mine_every(connection: Connection, lock: trio.Lock, block_time: float) -> None:
    while True:
        await trio.sleep(block_time)
        async with lock:
            await trio.to_thread.run_sync(connection.mine, 1)


__all__ = [
    "BenchError",
    "manager_call",
    "run_watchtower_bench",
    "send_in_one_block",
]

"""The transaction manager on real anvil, behind a real `NodeService` (its outbox is the manager's
durable record): many transactions in flight land in a few blocks; a reorganisation that drops a
mined transaction sends it again (same nonce); a node that is down ~10 s delays but crashes
nothing; a restart sends a recorded transaction again with the same nonce and hash, never twice.
"""

from __future__ import annotations

import dataclasses
import os
import signal
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest
import trio

from channels.chain.connection import Connection, Receipt
from channels.chain.errors import ChainError
from channels.chain.executor import PreparedCall
from channels.chain.nodes import (
    DEV_MNEMONIC,
    HOST,
    LocalNode,
    dev_private_keys,
    free_port,
    node_binary,
    open_anvil,
    rpc_call,
    run_node,
)
from channels.chain.txmanager import PRIORITY_ROUTINE, TransactionManager
from channels.records import OutboxTransaction, core_record_codec
from channels.service import TRANSACTION_PREFIX, NodeService, restore_chain_node
from channels.store import SqliteStore
from tests.integration.chain_env import ChainEnv, make_env

pytestmark = pytest.mark.node
SINK = b"\x42" * 20


@contextmanager
def _anvil_with_history() -> Iterator[LocalNode]:
    """anvil keeping every block's state (`anvil_reorg` needs it; `open_anvil` prunes)."""
    port = free_port()
    argv = [str(node_binary("anvil")), "--host", HOST, "--port", str(port), "--silent",
            "--mnemonic", DEV_MNEMONIC, "--accounts", "10", "--chain-id", "31337"]  # fmt: skip
    with run_node("anvil", argv, port, 30.0, dev_private_keys(10)) as node:
        yield node


def _transfer(env: ChainEnv) -> PreparedCall:
    """A call to an account without code: the cheapest transaction there is."""
    return PreparedCall(SINK, b"", env.alice.client.manager_abi, "transfer")


class Run:
    """A NodeService (the durable outbox) and a TransactionManager for Alice's account."""

    def __init__(self, env: ChainEnv, path: Path, **options: object) -> None:
        alice = env.alice
        self.store = SqliteStore(path, core_record_codec())
        self.service = NodeService(
            alice.signer, self.store, restore_chain_node(alice.signer, alice.client, self.store)
        )
        self.outcomes: dict[str, Receipt | ChainError] = {}
        self.env = env

        def outcome(key: str, kind: str, result: Receipt | ChainError) -> None:
            self.outcomes[key] = result

        self.manager = TransactionManager(
            env.connection,
            alice.client.account,
            self.service,
            alice.client.manager_abi,
            outcome=outcome,
            poll_interval=0.1,
            **options,  # type: ignore[arg-type]
        )
        for key, record in self.service._signed_transactions:
            self.manager.restore(key, record)

    def submit(self, count: int, first: int = 0) -> list[str]:
        keys = [f"{TRANSACTION_PREFIX}{i:016x}:0000" for i in range(first, first + count)]
        for key in keys:
            self.manager.submit(key, "Transfer", _transfer(self.env), PRIORITY_ROUTINE, None)
        return keys


async def _until(predicate: Callable[[], bool], seconds: float) -> None:
    with trio.fail_after(seconds):
        while not predicate():  # noqa: ASYNC110
            await trio.sleep(0.05)


def _records(path: Path) -> list[OutboxTransaction]:
    store = SqliteStore(path, core_record_codec())
    try:
        return [i.item for i in store.unconfirmed() if isinstance(i.item, OutboxTransaction)]
    finally:
        store.close()


@pytest.mark.timeout(120)
async def test_many_transactions_in_flight_land_in_a_few_blocks(tmp_path: Path) -> None:
    with open_anvil(block_time=1) as node:
        env = make_env(Connection.from_url(node.url, node.private_keys), "anvil")
        sender = env.alice.client.account.address
        before = env.connection.account_nonce(sender)
        run = Run(env, tmp_path / "alice.sqlite", confirmations=1)
        keys = run.submit(60)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(run.service.run_commits)
            nursery.start_soon(run.manager.run)
            await _until(lambda: run.manager.pending == 0, 60)
            await run.service.commit_now()
            nursery.cancel_scope.cancel()
        run.store.close()
        receipts = [run.outcomes[k] for k in keys]
        assert all(isinstance(r, Receipt) for r in receipts)
        blocks = {r.block_number for r in receipts if isinstance(r, Receipt)}
        # one at a time, waiting for each receipt, this took 60 blocks (one per transaction)
        assert max(blocks) - min(blocks) <= 3, blocks
        assert env.connection.account_nonce(sender) == before + 60  # each exactly once
        assert _records(tmp_path / "alice.sqlite") == []  # confirmed: the outbox is empty


@pytest.mark.timeout(120)
async def test_a_reorganisation_dropping_a_mined_transaction_sends_it_again(
    tmp_path: Path,
) -> None:
    with _anvil_with_history() as node:
        env = make_env(Connection.from_url(node.url, node.private_keys), "anvil")
        sender = env.alice.client.account.address
        before = env.connection.account_nonce(sender)
        run = Run(env, tmp_path / "alice.sqlite", confirmations=3)
        (key,) = run.submit(1)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(run.service.run_commits)
            nursery.start_soon(run.manager.run)
            await _until(lambda: key in run.outcomes, 20)
            first = run.outcomes[key]
            assert isinstance(first, Receipt)
            env.connection.mine(1)
            depth = env.connection.block_number() - first.block_number + 1
            rpc_call(node.url, "anvil_reorg", [depth, []], timeout=10.0)
            assert env.connection.receipt(first.transaction_hash) is None  # gone from the chain
            assert env.connection.account_nonce(sender) == before

            async def mine_slowly() -> None:
                while True:
                    await trio.sleep(0.3)
                    await trio.to_thread.run_sync(env.connection.mine, 1)

            nursery.start_soon(mine_slowly)
            await _until(lambda: run.manager.pending == 0, 60)
            nursery.cancel_scope.cancel()
        run.store.close()
        assert run.manager.resent_after_reorg == 1
        again = env.connection.receipt(first.transaction_hash)  # the same signed bytes
        assert again is not None and int(again["blockNumber"]) > first.block_number
        assert env.connection.account_nonce(sender) == before + 1  # not a second transaction


@pytest.mark.timeout(150)
async def test_a_node_down_ten_seconds_delays_the_transactions_and_crashes_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with ExitStack() as stack:
        port = free_port()
        node = stack.enter_context(open_anvil(port=port))
        env = make_env(
            Connection.from_url(node.url, node.private_keys, request_timeout=2.0), "anvil"
        )
        sender = env.alice.client.account.address
        before = env.connection.account_nonce(sender)
        run = Run(env, tmp_path / "alice.sqlite")
        async with trio.open_nursery() as nursery:
            nursery.start_soon(run.service.run_commits)
            nursery.start_soon(run.manager.run)
            state = rpc_call(node.url, "anvil_dumpState", [], timeout=10.0)
            os.killpg(node.pid, signal.SIGKILL)
            keys = run.submit(5)
            await trio.sleep(10)  # the node is away: the manager retries, nothing is lost
            assert run.outcomes == {} and run.manager.pending == 5
            node = stack.enter_context(open_anvil(port=port))
            rpc_call(node.url, "anvil_loadState", [state], timeout=10.0)
            await _until(lambda: run.manager.pending == 0, 60)
            await run.service.commit_now()
            nursery.cancel_scope.cancel()
        run.store.close()
        assert all(isinstance(run.outcomes[k], Receipt) for k in keys)
        assert env.connection.account_nonce(sender) == before + 5
        assert any("trying again" in r.getMessage() for r in caplog.records)


@pytest.mark.timeout(120)
async def test_a_restart_sends_a_recorded_transaction_with_the_same_nonce_never_twice(
    tmp_path: Path,
) -> None:
    with open_anvil() as node:
        env = make_env(Connection.from_url(node.url, node.private_keys), "anvil")
        sender = env.alice.client.account.address
        before = env.connection.account_nonce(sender)
        path = tmp_path / "alice.sqlite"
        first = Run(env, path)
        first.submit(3)
        await first.manager.sign_queued()  # signed and recorded durably ...
        await first.service.flush()
        # ... and the first one sent, then the process dies before sending the others
        env.connection.broadcast(
            first.manager.scheduler.to_broadcast()[0].raws[-1], env.alice.client.manager_abi
        )
        first.store.close()
        recorded = sorted(_records(path), key=lambda r: r.nonce)
        assert [r.nonce for r in recorded] == [before, before + 1, before + 2]

        # a new connection: nothing of the dead process's nonce bookkeeping survives
        connection = Connection.from_url(node.url, node.private_keys)
        second = Run(dataclasses.replace(env, connection=connection), path)
        assert second.manager.pending == 3
        async with trio.open_nursery() as nursery:
            nursery.start_soon(second.service.run_commits)
            nursery.start_soon(second.manager.run)
            await _until(lambda: second.manager.pending == 0, 30)
            await second.service.commit_now()
            nursery.cancel_scope.cancel()
        second.store.close()
        for record in recorded:  # the very transactions recorded before the crash
            receipt = connection.receipt(record.hashes[-1])
            assert receipt is not None and int(receipt["status"]) == 1
        assert connection.account_nonce(sender) == before + 3  # three, not four or six
        assert _records(path) == []


@pytest.mark.timeout(120)
async def test_a_stalled_transaction_is_replaced_with_the_same_nonce_and_a_higher_fee(
    tmp_path: Path,
) -> None:
    with open_anvil(block_time=1) as node:
        env = make_env(Connection.from_url(node.url, node.private_keys), "anvil")
        sender = env.alice.client.account.address
        before = env.connection.account_nonce(sender)
        run = Run(env, tmp_path / "alice.sqlite", stall_blocks=2)
        head = env.connection.block_number()
        while env.connection.block_number() == head:  # noqa: ASYNC110  (right after a block)
            await trio.sleep(0.02)
        # the next block's base fee jumps 100-fold: a transaction priced on the head is stuck
        rpc_call(node.url, "anvil_setNextBlockBaseFeePerGas", [hex(100 * 10**9)], timeout=5.0)
        (key,) = run.submit(1)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(run.service.run_commits)
            nursery.start_soon(run.manager.run)
            await _until(lambda: run.manager.pending == 0, 60)
            await run.service.commit_now()
            nursery.cancel_scope.cancel()
        run.store.close()
        assert run.manager.replacements >= 1
        mined = run.outcomes[key]
        assert isinstance(mined, Receipt)
        first = env.connection.w3.eth.get_transaction(mined.transaction_hash)
        assert int(first["nonce"]) == before  # the replacement kept the nonce ...
        assert int(first["maxFeePerGas"]) > 100 * 10**9 * 7 // 8  # ... and paid what was due
        assert env.connection.account_nonce(sender) == before + 1  # one transaction, not two

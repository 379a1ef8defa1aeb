"""Issue 16: a payer gone with ~100 locks in flight costs the hub nothing, on 1-second blocks.

anvil mines a block a second and only then (interval mining: many transactions share a block, as
on a real chain). The hub is a `cise hub serve` process, the payee a `cise agent receive`
process; the payer is an `Agent` in this process. The payer pays twice (the payee sends it a book
of invoices), then the payee is stopped (SIGSTOP) and the payer locks 100 payments from the book;
once the hub has acknowledged every lock the payer is gone for good (its tasks cancelled, its log
closed: it never unlocks, as a payer SIGKILLed at that point). The payee is let go (SIGCONT): it
reveals every secret to the hub and the hub pays it. The hub, told nothing by the payer, must then
register every secret on chain at a block at or before its incoming lock's expiry, close the
channel, settle it and unlock every lock on chain: its tokens grow by exactly what the payer's
locks and transfers owed it, which covers what it paid the payee.

The old hub sent one transaction per block while holding its follower's lock: 37 of 41
registrations landed late and 27 were never sent (the hub paid 58 payments it never recovered).
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections import Counter
from pathlib import Path

import pytest
import trio
from eth_account import Account

from channels.agent import Agent
from channels.chain.client import Web3ChainClient
from channels.chain.connection import Connection
from channels.chain.deploy import deploy
from channels.chain.nodes import free_port, open_anvil, rpc_call
from channels.core.state import ChannelState, Lock
from channels.core.types import Address, SecretHash, to_checksum
from channels.service import NodeService, run_on_chain
from channels.signer import LocalSigner
from cise.hub_cmd import open_service
from cise.main import main
from cise.network import Network
from tests.integration.test_cli_agent_restarts import Process

# Timing-bound process test (SIGKILLs, 1-second blocks): under pytest-xdist it shares one group
# with the others like it, so no two of them compete for the two cores at once.
pytestmark = [pytest.mark.node, pytest.mark.xdist_group("timing-bound-processes")]

OPERATOR, HUB, PAYER, PAYEE = 0, 4, 5, 6
EURO = 1_000_000
AMOUNT = 1_000  # €0.001 a payment
IN_FLIGHT = 100
FIRST = 3  # ids 1 and 2 are paid in full first
SETTLE_TIMEOUT = 8  # blocks
LOCK_TIMEOUT = 30  # blocks: the payee reveals at least its reveal timeout (10) before expiry


def _argv(network_file: Path, data: Path, account: int, *args: str) -> list[str]:
    where = ["--network", str(network_file), "--account", str(account), "--data-dir", str(data)]
    head, op, *rest = args
    return [head, *where, op, *rest] if head == "channel" else [head, op, *where, *rest]


def _tokens(client: Web3ChainClient, account: Address) -> int:
    """What `account` holds in the token: its wallet and its internal balance on the manager."""
    return client.token_balance(account) + client.balance_of(account)


@pytest.mark.timeout(150)
def test_a_hub_registers_every_secret_in_time_and_recovers_what_it_paid(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    network_file = tmp_path / "network.json"
    started: list[Process] = []
    with open_anvil() as node:
        keys = node.private_keys
        connection = Connection.from_url(node.url, keys)
        deployer = Account.from_key(keys[OPERATOR])
        deployment = deploy(connection, deployer, settle_timeout=SETTLE_TIMEOUT)
        minter = Web3ChainClient(connection, deployment, deployer)
        hub, payer, payee = (Address(LocalSigner(keys[i]).address) for i in (HUB, PAYER, PAYEE))
        for account in (hub, payer, payee):
            minter.mint(account, 100 * EURO)
        network_file.write_text(Network(node.url, deployment, keys).to_json() + "\n")

        def cli(account: int, *args: str) -> None:
            assert main(_argv(network_file, data, account, *args)) == 0, capsys.readouterr()

        cli(PAYER, "channel", "open", to_checksum(hub), "--deposit", "10")
        cli(HUB, "channel", "open", to_checksum(payee), "--deposit", "10")
        capsys.readouterr()
        # from now on a block a second, and only then (many transactions a block)
        rpc_call(node.url, "evm_setAutomine", [False])
        rpc_call(node.url, "evm_setIntervalMining", [1])

        port = free_port()
        hub_args = ["--hub", to_checksum(hub), "--hub-port", str(port)]

        def spawn(name: str, account: int, *args: str) -> Process:
            process = Process(_argv(network_file, data, account, *args), tmp_path / f"{name}.err")
            started.append(process)
            return process

        try:
            hub_process = spawn(
                "hub", HUB, "hub", "serve", "--port", str(port),
                "--lock-timeout", str(LOCK_TIMEOUT), "--reveal-timeout", "5",
            )  # fmt: skip
            hub_process.wait_line("listening on 127.0.0.1:")
            payee_process = spawn("payee", PAYEE, "agent", "receive", *hub_args)
            payee_process.wait_line("connected")
            hub_client = Web3ChainClient.from_key(connection, deployment, keys[HUB])
            payer_client = Web3ChainClient.from_key(connection, deployment, keys[PAYER])
            service = open_service(
                keys[PAYER], payer_client, data / f"party-{to_checksum(payer)}.sqlite"
            )
            try:
                locks, before = trio.run(
                    _lock_and_vanish, service, payer_client, hub, payee, port, payee_process
                )
            finally:
                service.store.close()
            tokens_before = _tokens(hub_client, hub)
            # the payee reveals every secret; the hub pays it, then must act on chain alone
            received = _wait_received(payee_process, len(locks), within=20)
            assert sorted(received) == sorted(range(FIRST, FIRST + IN_FLIGHT)), (
                received, payee_process.lines[-5:], payee_process.stderr()[-3000:],
                hub_process.stderr()[-3000:],
            )  # fmt: skip
            registered = _wait_registrations(hub_client, locks, within=LOCK_TIMEOUT + 10)
            gained = _wait_gain(hub_client, hub, tokens_before, before, locks, within=60)
            assert hub_process.popen.poll() is None, hub_process.stderr()
        finally:
            for process in started:
                if process.popen.poll() is None:
                    os.kill(process.popen.pid, signal.SIGCONT)
                process.stop()

    late = {h.hex(): (block, locks[h].expiration) for h, block in registered.items()
            if not 0 < block <= locks[h].expiration}  # fmt: skip
    assert not late, f"registrations missing (0) or after expiry: {late}"
    owed = before + sum(lock.amount for lock in locks.values())
    paid_out = AMOUNT * len(locks)
    assert gained == owed, (gained, owed)
    assert gained - before >= paid_out  # every payment the hub paid out came back to it


async def _lock_and_vanish(
    service: NodeService,
    client: Web3ChainClient,
    hub: Address,
    payee: Address,
    port: int,
    payee_process: Process,
) -> tuple[dict[SecretHash, Lock], int]:
    """Pay once, stop the payee, lock IN_FLIGHT payments from the book, vanish once the hub has
    acknowledged them all. Returns the locks in flight and what the payer owed the hub before."""
    agent = Agent(service, hub)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_on_chain, service, client)
        agent.start(nursery, port)
        with trio.fail_after(30):
            await agent.wait_ready()
            await agent.pay(payee, AMOUNT, 1)  # a single invoice
            await agent.pay(payee, AMOUNT, 2)  # in order: asks the payee for a book of invoices
            await trio.sleep(1.0)  # the book arrives
            await agent.wait_delivered()

        def ours() -> ChannelState:
            channel = service.channel_with(hub)
            assert channel is not None
            return channel

        before = ours().our.balance_proof.transferred
        assert not ours().our.locks
        os.kill(payee_process.popen.pid, signal.SIGSTOP)

        async def pay(payment_id: int) -> None:
            await agent.pay(payee, AMOUNT, payment_id, give_up_after=60)  # cancelled before

        for payment_id in range(FIRST, FIRST + IN_FLIGHT):
            nursery.start_soon(pay, payment_id)
        with trio.move_on_after(20):
            while len(ours().our.locks) < IN_FLIGHT:  # noqa: ASYNC110  # the pay tasks' effect
                await trio.sleep(0.05)
            await service.wait_durable()  # the locks' group is durable: its messages are sent
            await agent.wait_delivered()  # and the hub acknowledged them (durable on its side)
        statuses = Counter(r.status for r in agent.payments.values())
        unacked = sum(len(v) for v in service.unacked.values())
        assert len(ours().our.locks) == IN_FLIGHT and not unacked, (statuses, unacked)
        locks = {lock.secrethash: lock for lock in ours().our.locks.values()}
        nursery.cancel_scope.cancel()  # the payer is gone: no unlock will ever come from it
    os.kill(payee_process.popen.pid, signal.SIGCONT)
    return locks, before


def _wait_received(payee: Process, count: int, within: float) -> list[int]:
    """The payment ids the payee reports received, once `count` of them arrived."""
    deadline = time.monotonic() + within
    while True:
        ids = [json.loads(line)["payment_id"] for line in payee.lines if '"payer"' in line]
        ids = [i for i in ids if i >= FIRST]
        if len(ids) >= count or time.monotonic() > deadline:
            return ids
        time.sleep(0.2)


def _wait_registrations(
    client: Web3ChainClient, locks: dict[SecretHash, Lock], within: float
) -> dict[SecretHash, int]:
    """Each lock's registration block (0: none), once all are registered or the last expired."""
    last = max(lock.expiration for lock in locks.values())
    deadline = time.monotonic() + within
    while True:
        blocks = {h: int(client.secret_reveal_block(h)) for h in locks}
        if all(blocks.values()) or client.block_number() > last + 1:
            return blocks
        assert time.monotonic() < deadline, "the chain stopped"
        time.sleep(0.5)


def _wait_gain(
    client: Web3ChainClient,
    hub: Address,
    tokens_before: int,
    before: int,
    locks: dict[SecretHash, Lock],
    within: float,
) -> int:
    """What the hub's tokens grew by once close, settle and unlocks are through (or time is up)."""
    owed = before + sum(lock.amount for lock in locks.values())
    deadline = time.monotonic() + within
    while True:
        gained = _tokens(client, hub) - tokens_before
        if gained >= owed or time.monotonic() > deadline:
            return gained
        time.sleep(0.5)

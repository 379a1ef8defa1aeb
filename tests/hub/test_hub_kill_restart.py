"""The hub is killed (SIGKILL) at random points of a payment stream and restarted on its log.

Agents run in this process; the hub is a `hub.synthetic_hub` process with a block clock, so
locks can expire. Every payment must end either completed (and received by its payee) or failed
(refunded: the payer's lock left its tree), money is conserved, and once the network is quiet
each agent's view of its channel equals the hub's durable one: nobody ends below what the
latest signed state it received gives it.
"""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import trio

from channels.agent import Agent, PaymentError
from channels.bench.synthetic import address_of, domain, hub_channels, open_service
from channels.chain.nodes import free_port
from channels.core.channel import get_balance
from channels.core.state import NodeState
from channels.core.types import BlockNumber
from channels.records import core_record_codec, replay
from channels.store import SqliteStore

PAYERS = ["alice", "bob"]
PAYEES = ["washer", "dryer"]
DEPOSIT = 10**9
PAYMENTS = 240
KILLS = 3


def start_hub(db: Path, port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hub.synthetic_hub",
            "--db",
            str(db),
            "--port",
            str(port),
            "--agents",
            ",".join(PAYERS + PAYEES),
            "--deposit",
            str(DEPOSIT),
            "--hub-deposit",
            str(DEPOSIT),
            "--block-interval",
            "0.2",
            "--group-target",
            "16",
        ],
        stdout=subprocess.PIPE,
    )
    assert process.stdout is not None
    line = process.stdout.readline().decode()  # bounded by the hub's start-up (pytest timeout)
    assert line.startswith("PORT "), line
    return process


def hub_state(db: Path) -> NodeState:
    store = SqliteStore(db, core_record_codec())
    try:
        initial = NodeState(address_of("hub"), domain(), BlockNumber(0))
        return store.restore(initial, replay).state
    finally:
        store.close()


async def test_every_payment_completes_or_is_refunded_across_hub_kills(tmp_path: Path) -> None:
    seed = random.randrange(2**32)
    print(f"kill-restart seed {seed}")
    rng = random.Random(seed)
    port = free_port()
    hub_db = tmp_path / "hub.sqlite"
    names = PAYERS + PAYEES
    opening = hub_channels(address_of("hub"), [address_of(n) for n in names], DEPOSIT, DEPOSIT)
    agents: dict[str, Agent] = {}
    outcomes: dict[tuple[str, int], str] = {}
    hub = start_hub(hub_db, port)
    try:
        async with trio.open_nursery() as nursery:
            for name in names:
                service = open_service(name, tmp_path / f"{name}.sqlite", opening, group_target=16)
                agent = Agent(service, address_of("hub"), blocks_from_hub=True)
                agents[name] = agent
                agent.start(nursery, port)
            with trio.fail_after(20):
                for agent in agents.values():
                    await agent.wait_ready()

            async def pay(payer: str, payee: str, payment_id: int) -> None:
                try:
                    await agents[payer].pay(
                        address_of(payee), 1_000 + payment_id, payment_id, give_up_after=60
                    )
                    outcomes[(payer, payment_id)] = "completed"
                except PaymentError as exc:
                    outcomes[(payer, payment_id)] = f"failed: {exc}"

            async def stream() -> None:
                async with trio.open_nursery() as payments:
                    for index in range(PAYMENTS):
                        payer = PAYERS[index % len(PAYERS)]
                        payee = PAYEES[(index // 2) % len(PAYEES)]
                        payments.start_soon(pay, payer, payee, index + 1)
                        await trio.sleep(0.01)

            async def killer() -> None:
                nonlocal hub
                for _ in range(KILLS):
                    await trio.sleep(rng.uniform(0.2, 0.9))
                    hub.kill()
                    hub.wait(timeout=10)
                    await trio.sleep(rng.uniform(0.0, 0.3))
                    hub = await trio.to_thread.run_sync(start_hub, hub_db, port)

            with trio.fail_after(150):
                async with trio.open_nursery() as work:
                    work.start_soon(stream)
                    work.start_soon(killer)

            # quiet: no lock pending, nothing unacknowledged, on every agent
            def busy() -> bool:
                return any(
                    channel.our.locks or channel.partner.locks
                    for agent in agents.values()
                    for channel in agent.service.channels.values()
                ) or any(any(v for v in a.service.unacked.values()) for a in agents.values())

            with trio.fail_after(60):
                while busy():  # noqa: ASYNC110  # polling the effects of another process
                    await trio.sleep(0.2)
                await trio.sleep(1.0)  # the hub commits the last acknowledgements
            nursery.cancel_scope.cancel()
    finally:
        hub.kill()
        hub.wait(timeout=10)
        for agent in agents.values():
            agent.service.store.close()

    assert len(outcomes) == PAYMENTS
    completed = {key for key, outcome in outcomes.items() if outcome == "completed"}
    assert completed, outcomes  # the stream was not all refunds
    received = {
        (name, record.payment_id, record.payer)
        for name in PAYEES
        for record in agents[name].invoices.values()
        if record.status == "received"
    }
    # completed at the payer <=> received at the payee
    completed_at_payees = {
        (payer, pid)
        for _, pid, payer_address in received
        for payer in PAYERS
        if address_of(payer) == payer_address
    }
    assert completed_at_payees == completed
    hub_node = hub_state(hub_db)
    total = 0
    for name in names:
        [agent_channel] = agents[name].service.channels.values()
        hub_channel = hub_node.channels[agent_channel.channel_id]
        # both sides hold the same latest proofs: each has what the other signed last
        assert agent_channel.our.balance_proof.nonce == hub_channel.partner.balance_proof.nonce
        assert agent_channel.partner.balance_proof.nonce == hub_channel.our.balance_proof.nonce
        assert (
            agent_channel.our.balance_proof.transferred
            == hub_channel.partner.balance_proof.transferred
        )
        assert (
            agent_channel.partner.balance_proof.transferred
            == hub_channel.our.balance_proof.transferred
        )
        total += get_balance(agent_channel.our, agent_channel.partner)
        total += get_balance(hub_channel.our, hub_channel.partner)
    assert total == 2 * DEPOSIT * len(names)  # nothing created, nothing lost

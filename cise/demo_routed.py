"""The routed part of `cise demo`: several users pay several machines through one hub.

On the demo's chain: each user opens a channel to the hub, the hub opens one to each machine
(its outgoing capacity); then the hub service and every agent run in one trio run, talking over
loopback TCP, each following the chain and persisting every step in its own sqlite log. Users
pay the machines per wash cycle (payee-generated secrets, hashlocked hop by hop, the hub's fee
announced first); at the end every channel closes cooperatively and the figures are returned
for the demo's report. Wiring and printing only: the protocol is `channels` and `hub`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import trio
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from channels.agent import Agent, PaymentOutcome
from channels.chain.client import Web3ChainClient
from channels.chain.connection import Connection
from channels.chain.deploy import Deployment
from channels.core import state_changes as sc
from channels.core.fees import FeeSchedule
from channels.core.state import ChannelStatus
from channels.core.types import Address
from channels.records import core_record_codec
from channels.service import NodeService, restore_chain_node, run_on_chain
from channels.signer import LocalSigner
from channels.store import SqliteStore
from hub.mediator import MediationTerms
from hub.service import Hub

UNITS_PER_EURO = 1_000_000
USER_DEPOSIT = 20 * UNITS_PER_EURO
HUB_DEPOSIT = 20 * UNITS_PER_EURO
DEMO_TERMS = MediationTerms(
    FeeSchedule(flat=50, ppm=2_000, cap=1_000), reveal_timeout=5, lock_timeout=40
)
IN_FLIGHT = 32  # payments under way at once (all users together)
STEP_TIMEOUT = 120.0  # seconds any phase of the demo may take


class RoutedDemoError(RuntimeError):
    """Something in the routed demo went wrong (a failed payment, a stuck close)."""


@dataclass
class RoutedResult:
    hub: Address
    users: list[Address]
    machines: list[Address]
    outcomes: list[tuple[Address, PaymentOutcome]] = field(default_factory=list)  # (payer, ...)
    payments_per_s: float = 0.0
    fees: int = 0


def price(cycle: int) -> int:
    """A sub-cent price per wash-cycle step: €0.002500 to €0.009999."""
    return 2_500 + (cycle * 7_919) % 7_500


def _open_channels(
    clients: dict[Address, Web3ChainClient],
    hub: Address,
    users: list[Address],
    machines: list[Address],
) -> None:
    for user in users:
        clients[user].approve(USER_DEPOSIT)
        clients[user].open_channel(hub, USER_DEPOSIT)
    hub_client = clients[hub]
    hub_client.approve(HUB_DEPOSIT * len(machines))
    for machine in machines:
        hub_client.open_channel(machine, HUB_DEPOSIT)


def run_routed(
    connection: Connection,
    deployment: Deployment,
    keys: dict[str, bytes],
    workdir: Path,
    cycles: int,
    progress: bool,
) -> RoutedResult:
    """Open the channels, route `cycles` payments, close everything cooperatively."""
    clients = {
        Address(LocalSigner(key).address): Web3ChainClient.from_key(connection, deployment, key)
        for key in keys.values()
    }
    address = {name: Address(LocalSigner(key).address) for name, key in keys.items()}
    hub = address["hub"]
    users = [address[n] for n in keys if n.startswith("user")]
    machines = [address[n] for n in keys if n.startswith("machine")]
    _open_channels(clients, hub, users, machines)
    result = RoutedResult(hub, users, machines)
    trio.run(_run, clients, keys, address, workdir, cycles, progress, result)
    return result


async def _run(
    clients: dict[Address, Web3ChainClient],
    keys: dict[str, bytes],
    address: dict[str, Address],
    workdir: Path,
    cycles: int,
    progress: bool,
    result: RoutedResult,
) -> None:
    chain_lock = trio.Lock()  # one in-process chain: one call at a time
    services: dict[str, NodeService] = {}
    try:
        for name, key in keys.items():
            signer = LocalSigner(key)
            store = SqliteStore(workdir / f"{name}.sqlite", core_record_codec())
            node = restore_chain_node(signer, clients[address[name]], store)
            services[name] = NodeService(signer, store, node, chain_lock=chain_lock)
        async with trio.open_nursery() as nursery:
            for name, service in services.items():
                nursery.start_soon(_follow, service, clients[address[name]])
            with trio.fail_after(STEP_TIMEOUT):
                while any(not s.channels for s in services.values()):  # noqa: ASYNC110
                    await trio.sleep(0.05)  # the followers see the channels open
            hub = Hub(services["hub"], DEMO_TERMS, low_water=2 * UNITS_PER_EURO)
            port = await nursery.start(hub.serve)
            agents = {
                name: Agent(service, result.hub)
                for name, service in services.items()
                if name != "hub"
            }
            for agent in agents.values():
                agent.start(nursery, port)
            with trio.fail_after(STEP_TIMEOUT):
                for agent in agents.values():
                    await agent.wait_ready()
            await _pay_all(agents, address, cycles, progress, result)
            result.fees = hub.stats.fees_earned
            await _close_all(services, agents)
            nursery.cancel_scope.cancel()
    finally:
        for service in services.values():
            service.store.close()


async def _follow(service: NodeService, client: Web3ChainClient) -> None:
    await run_on_chain(service, client, poll_interval=0.1)


async def _pay_all(
    agents: dict[str, Agent],
    address: dict[str, Address],
    cycles: int,
    progress: bool,
    result: RoutedResult,
) -> None:
    user_names = [n for n in agents if n.startswith("user")]
    machine_names = [n for n in agents if n.startswith("machine")]
    window = trio.Semaphore(IN_FLIGHT)
    failures: list[str] = []

    async def pay(cycle: int) -> None:
        user = agents[user_names[cycle % len(user_names)]]
        machine = address[machine_names[(cycle // len(user_names)) % len(machine_names)]]
        try:
            outcome = await user.pay(machine, price(cycle), payment_id=cycle + 1)
            result.outcomes.append((user.service.address, outcome))
        except Exception as exc:  # reported below, the demo fails
            failures.append(f"cycle {cycle}: {exc}")
        finally:
            window.release()
            bar.advance(task)

    started = trio.current_time()
    with Progress(
        TextColumn("[bold]routing payments"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        disable=not progress,
    ) as bar:
        task = bar.add_task("pay", total=cycles)
        with trio.fail_after(STEP_TIMEOUT):
            async with trio.open_nursery() as payments:
                for cycle in range(cycles):
                    await window.acquire()
                    payments.start_soon(pay, cycle)
    elapsed = trio.current_time() - started
    if failures:
        raise RoutedDemoError(f"{len(failures)} payments failed, first: {failures[0]}")
    result.payments_per_s = cycles / elapsed if elapsed > 0 else 0.0


async def _close_all(services: dict[str, NodeService], agents: dict[str, Agent]) -> None:
    """Every agent closes its channel with the hub cooperatively; wait until all are settled."""
    for agent in agents.values():
        channel = agent.service.channel_with(agent.hub)
        if channel is not None:
            agent.service.handle(sc.ActionCooperativeClose(channel.channel_id))
    with trio.fail_after(STEP_TIMEOUT):
        while any(  # noqa: ASYNC110  # the followers see the closes
            channel.status is not ChannelStatus.SETTLED
            for service in services.values()
            for channel in service.channels.values()
        ):
            await trio.sleep(0.05)
    failed = [f for s in services.values() for f in s.chain_failures]
    if failed:
        raise RoutedDemoError(f"transactions rejected: {failed}")

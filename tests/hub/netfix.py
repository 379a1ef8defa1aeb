"""A running synthetic hub network inside one trio run, for the hub tests: a hub and named
agents, each with its own sqlite store under a temporary directory, connected over loopback TCP.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import trio

from channels.agent import Agent, ChargePolicy
from channels.bench.synthetic import address_of, hub_channels, open_service
from channels.core import state_changes as sc
from channels.core.fees import FeeSchedule
from channels.core.types import Address
from hub.mediator import MediationTerms
from hub.service import Hub

DEPOSIT = 1_000_000_000  # €1,000 from each agent
HUB_DEPOSIT = 1_000_000_000
TERMS = MediationTerms(
    FeeSchedule(flat=10, ppm=1_000, cap=5_000), reveal_timeout=5, lock_timeout=30
)


@dataclass
class Net:
    hub: Hub
    port: int
    agents: dict[str, Agent]
    nursery: trio.Nursery
    opening: list[sc.StateChange]  # the synthetic chain events every node started from

    def address(self, name: str) -> Address:
        return address_of(name)


def _accept_all(payee: Address, amount: int, payment_id: int) -> bool:
    return True


@asynccontextmanager
async def running_net(
    tmp: Path,
    names: Sequence[str],
    *,
    terms: MediationTerms = TERMS,
    hub_deposit: int = HUB_DEPOSIT,
    accept_charge: ChargePolicy = _accept_all,
    without_agent: Sequence[str] = (),
) -> AsyncIterator[Net]:
    """A hub with a channel to every name in `names`, and an Agent for each name not in
    `without_agent` (those are for tests that speak to the hub themselves)."""
    hub_address = address_of("hub")
    opening = hub_channels(hub_address, [address_of(n) for n in names], DEPOSIT, hub_deposit)
    hub_service = open_service("hub", tmp / "hub.sqlite", opening)
    hub = Hub(hub_service, terms)
    agents: dict[str, Agent] = {}
    try:
        async with trio.open_nursery() as nursery:
            port = await nursery.start(hub.serve)
            for name in names:
                if name in without_agent:
                    continue
                service = open_service(name, tmp / f"{name}.sqlite", opening)
                agent = Agent(
                    service, hub_address, accept_charge=accept_charge, blocks_from_hub=True
                )
                agents[name] = agent
                agent.start(nursery, port)
            with trio.fail_after(10):
                for agent in agents.values():
                    await agent.wait_ready()
            yield Net(hub, port, agents, nursery, opening)
            nursery.cancel_scope.cancel()
    finally:
        hub_service.store.close()
        for agent in agents.values():
            agent.service.store.close()

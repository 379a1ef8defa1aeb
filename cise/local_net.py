"""A hub and its agents run in one trio run on one chain: the wiring the demo and the asset
benchmark share.

Each named key gets its own `NodeService` (its own sqlite log in `workdir`, following the chain);
the one named `hub` serves on a loopback port and every other one runs an `Agent` connected to it.
Wiring only: no decision about money is made here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import trio

from channels.agent import Agent, ChargePolicy
from channels.chain.client import Web3ChainClient
from channels.core import state_changes as sc
from channels.core.state import ChannelStatus
from channels.core.types import Address
from channels.records import core_record_codec
from channels.service import NodeService, restore_chain_node, run_on_chain
from channels.signer import LocalSigner
from channels.store import SqliteStore
from hub.mediator import MediationTerms
from hub.service import Hub

STEP_TIMEOUT = 300.0  # seconds any phase may take (against a node on a busy 2-core machine: 120 s was seen to pass)
POLL_INTERVAL = 0.5  # seconds between chain polls of each party (py-evm holds the GIL meanwhile)


class LocalNetError(RuntimeError):
    """A phase did not finish in time, or the chain refused a transaction."""


@dataclass
class LocalNet:
    """The running parties, by name."""

    hub: Hub
    services: dict[str, NodeService]
    agents: dict[str, Agent]
    clients: dict[str, Web3ChainClient]
    chain_lock: trio.Lock
    nursery: trio.Nursery

    def address(self, name: str) -> Address:
        return self.services[name].address


@asynccontextmanager
async def run_local_net(
    clients: Mapping[str, Web3ChainClient],
    keys: Mapping[str, bytes],
    workdir: Path,
    terms: MediationTerms,
    *,
    policies: Mapping[str, ChargePolicy] | None = None,
    low_water: int = 0,
) -> AsyncIterator[LocalNet]:
    """Start every party (channels must already be open on chain); stop them all on exit."""
    chain_lock = trio.Lock()  # one in-process chain: one call at a time
    services: dict[str, NodeService] = {}
    try:
        for name, key in keys.items():
            signer = LocalSigner(key)
            store = SqliteStore(workdir / f"{name}.sqlite", core_record_codec())
            node = restore_chain_node(signer, clients[name], store)
            services[name] = NodeService(signer, store, node, chain_lock=chain_lock)
        async with trio.open_nursery() as nursery:
            for name, service in services.items():
                nursery.start_soon(_follow, service, clients[name])
            with trio.fail_after(STEP_TIMEOUT):
                while any(not s.channels for s in services.values()):  # noqa: ASYNC110
                    await trio.sleep(0.05)  # the followers see the channels open
            hub = Hub(services["hub"], terms, low_water=low_water)
            port = await nursery.start(hub.serve)
            policies = policies or {}
            agents = {
                name: Agent(service, hub.service.address, accept_charge=policies[name])
                if name in policies
                else Agent(service, hub.service.address)
                for name, service in services.items()
                if name != "hub"
            }
            for agent in agents.values():
                agent.start(nursery, port)
            with trio.fail_after(STEP_TIMEOUT):
                for agent in agents.values():
                    await agent.wait_ready()
            yield LocalNet(hub, services, agents, dict(clients), chain_lock, nursery)
            nursery.cancel_scope.cancel()
    finally:
        for service in services.values():
            service.store.close()


async def _follow(service: NodeService, client: Web3ChainClient) -> None:
    await run_on_chain(service, client, poll_interval=POLL_INTERVAL)


async def close_all(net: LocalNet, names: Callable[[str], bool] = lambda _: True) -> None:
    """Every chosen agent closes its channel with the hub cooperatively; wait until settled."""
    for name, agent in net.agents.items():
        channel = agent.service.channel_with(agent.hub)
        if names(name) and channel is not None:
            agent.service.handle(sc.ActionCooperativeClose(channel.channel_id))
    with trio.fail_after(STEP_TIMEOUT):
        while any(  # noqa: ASYNC110  # the followers see the closes
            channel.status is not ChannelStatus.SETTLED
            for name, service in net.services.items()
            if name == "hub" or names(name)
            for channel in service.channels.values()
            if name != "hub" or names(_name_of(net, channel.partner.address))
        ):
            await trio.sleep(0.05)
    failed = [f for s in net.services.values() for f in s.chain_failures]
    if failed:
        raise LocalNetError(f"transactions rejected: {failed}")


def _name_of(net: LocalNet, address: Address) -> str:
    for name, service in net.services.items():
        if service.address == address:
            return name
    return ""


__all__ = ["STEP_TIMEOUT", "LocalNet", "LocalNetError", "close_all", "run_local_net"]

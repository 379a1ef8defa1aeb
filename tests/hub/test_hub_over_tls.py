"""A hub serving over TLS on 127.0.0.2 with a membership `admit`: member agents connect (TLS,
their hub's address checked) and pay through it; a non-member is refused with the reason; an agent
asked to reach a non-loopback hub without TLS is refused before it starts."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from channels import wire
from channels.agent import Agent
from channels.bench.synthetic import address_of, hub_channels, open_service
from channels.tls import PlainTransportRefusedError, TlsConfig
from channels.transport import PeerRefusedError, TcpTransport
from hub.service import Hub
from tests.hub.netfix import DEPOSIT, HUB_DEPOSIT, TERMS, _accept_all


async def test_member_agents_pay_through_a_tls_hub_and_a_non_member_is_refused(
    tmp_path: Path,
) -> None:
    hub_address = address_of("hub")
    names = ["alice", "bob"]
    opening = hub_channels(hub_address, [address_of(n) for n in names], DEPOSIT, HUB_DEPOSIT)
    hub = Hub(open_service("hub", tmp_path / "hub.sqlite", opening), TERMS)
    members = {address_of(n) for n in names}
    services = {n: open_service(n, tmp_path / f"{n}.sqlite", opening) for n in [*names, "carol"]}
    try:
        with trio.fail_after(20):
            async with trio.open_nursery() as nursery:
                port = await nursery.start(
                    lambda task_status: hub.serve(
                        host="127.0.0.2",
                        tls=TlsConfig.load(tmp_path / "hub", hub_address),
                        admit=members.__contains__,
                        task_status=task_status,
                    )
                )
                agents = {}
                for name in names:
                    service = services[name]
                    agents[name] = Agent(
                        service, hub_address, accept_charge=_accept_all, blocks_from_hub=True
                    )
                    agents[name].start(
                        nursery,
                        port,
                        host="127.0.0.2",
                        tls=TlsConfig.load(tmp_path / name, service.address),
                    )
                for agent in agents.values():
                    await agent.wait_ready()
                await agents["alice"].pay(address_of("bob"), 1_000, 1)

                carol = services["carol"]
                outsider = TcpTransport(
                    carol.signer,
                    wire,
                    carol.dispatch_table().lookup(),
                    tls=TlsConfig.load(tmp_path / "carol", carol.address),
                )
                with pytest.raises(PeerRefusedError, match="is not admitted here"):
                    async with outsider.open_connection(
                        "127.0.0.2", port, expected_peer=hub_address
                    ):
                        pass
                with pytest.raises(PlainTransportRefusedError, match=r"10\.1\.2\.3 without TLS"):
                    Agent(carol, hub_address).start(nursery, port, host="10.1.2.3")
                nursery.cancel_scope.cancel()
    finally:
        hub.service.store.close()
        for service in services.values():
            service.store.close()

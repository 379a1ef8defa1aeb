"""Two real `NodeService`s (sqlite stores, group commits) pay each other over the TLS transport,
one listening on 127.0.0.1 and one on 127.0.0.2, each authenticated as its channel partner."""

from __future__ import annotations

from pathlib import Path

import trio
from core_pair import CHANNEL_ID, Pair

from channels import wire
from channels.core import state_changes as sc
from channels.core.types import PaymentId, TokenAmount
from channels.service import NodeService
from channels.tls import TlsConfig
from channels.transport import TcpTransport
from tests.unit.test_node_refused_proof_heals import _service


async def test_two_node_services_pay_each_other_over_tls_on_two_loopback_addresses(
    tmp_path: Path,
) -> None:
    pair = Pair()
    alice = _service(tmp_path, pair, pair.a, "alice")
    bob = _service(tmp_path, pair, pair.b, "bob")
    transports = {
        service.address: TcpTransport(
            service.signer,
            wire,
            service.dispatch_table().lookup(),
            on_connection=service.attach,
            tls=TlsConfig.load(tmp_path / name, service.address),
        )
        for service, name in ((alice, "alice"), (bob, "bob"))
    }

    def transferred(receiver: NodeService) -> int:
        return receiver.channels[CHANNEL_ID].partner.balance_proof.transferred

    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(alice.run_commits)
            nursery.start_soon(bob.run_commits)
            bob_port = await nursery.start(
                lambda task_status: transports[bob.address].serve(
                    host="127.0.0.2", task_status=task_status
                )
            )
            async with transports[alice.address].open_connection(
                "127.0.0.2", bob_port, expected_peer=bob.address
            ) as connection:
                assert connection.peer == bob.address
                nursery.start_soon(alice.attach, connection)
                alice.handle(sc.ActionTransfer(CHANNEL_ID, TokenAmount(7), PaymentId(1)))
                bob.handle(sc.ActionTransfer(CHANNEL_ID, TokenAmount(3), PaymentId(2)))
                while (  # noqa: ASYNC110
                    transferred(bob) != 7
                    or transferred(alice) != 3
                    or alice.unacked.get(bob.address)
                    or bob.unacked.get(alice.address)
                ):
                    await trio.sleep(0.02)
            nursery.cancel_scope.cancel()

"""A balance proof the partner refuses from a passing view heals instead of splitting the channel.

The crash campaign saw a channel stop for good: the receiver refused one proof (its view of the
chain differed from the sender's for a moment) but acknowledged it, so the sender never sent it
again and the receiver refused every later proof, which builds on it. Now a refused new proof is
not acknowledged; the sender keeps it and sends it again after a growing delay, and once the
receiver's view has caught up it takes it and every proof after it.

Two real `NodeService`s (sqlite stores, group commits) over the real TCP transport on the
loopback; the chain is played by feeding blocks to each node, so the two heads can differ.
"""

from __future__ import annotations

from pathlib import Path

import trio
from core_pair import CHANNEL_ID, DOMAIN, Pair

from channels import wire
from channels.codec.eip712 import secrethash_of
from channels.core import state_changes as sc
from channels.core.state import NodeState
from channels.core.types import BlockNumber, PaymentId, Secret, SecretHash, TokenAmount
from channels.records import core_record_codec
from channels.service import NodeService
from channels.store import SqliteStore
from channels.transport import TcpTransport


def _service(tmp_path: Path, pair: Pair, who: bytes, name: str) -> NodeService:
    signer = pair.alice if who == pair.a else pair.bob
    node = NodeState(
        pair.a if who == pair.a else pair.b,
        DOMAIN,
        BlockNumber(pair.block),
        {CHANNEL_ID: pair.views[who]},
        5,
    )
    store = SqliteStore(tmp_path / f"{name}.sqlite", core_record_codec())
    store.write_snapshot(node)
    return NodeService(signer, store, node)


async def test_a_lock_expiry_refused_by_a_lagging_partner_goes_again_and_the_channel_heals(
    tmp_path: Path,
) -> None:
    pair = Pair()
    secret = Secret(b"\x05" * 32)
    # Alice has locked 10 for Bob (expiring at block 110); both views hold the lock
    pair.send(
        pair.a,
        sc.ActionLockedTransfer(
            CHANNEL_ID,
            TokenAmount(10),
            BlockNumber(110),
            SecretHash(secrethash_of(secret)),
            PaymentId(1),
            pair.b,
        ),
    )
    alice = _service(tmp_path, pair, pair.a, "alice")
    bob = _service(tmp_path, pair, pair.b, "bob")
    bob_transport = TcpTransport(
        bob.signer, wire, bob.dispatch_table().lookup(), on_connection=bob.attach
    )
    alice_transport = TcpTransport(alice.signer, wire, alice.dispatch_table().lookup())

    def nonces() -> tuple[int, int]:
        return (
            alice.channels[CHANNEL_ID].our.balance_proof.nonce,
            bob.channels[CHANNEL_ID].partner.balance_proof.nonce,
        )

    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(alice.run_commits)
            nursery.start_soon(bob.run_commits)
            port = await nursery.start(bob_transport.serve)
            async with alice_transport.open_connection(
                "127.0.0.1", port, expected_peer=bob.address
            ) as connection:
                nursery.start_soon(alice.attach, connection)
                # Alice's head passes the expiry (and its margin); Bob's still says block 100:
                # Bob refuses the LockExpired ("lock has not expired yet")
                alice.handle(sc.Block(BlockNumber(113)))
                while alice.stats.messages_sent < 1 or not _refused(alice, bob):  # noqa: ASYNC110
                    await trio.sleep(0.02)
                # Alice pays 7 behind it: Bob refuses that too (it builds on the refused proof)
                alice.handle(sc.ActionTransfer(CHANNEL_ID, TokenAmount(7), PaymentId(2)))
                await trio.sleep(0.3)
                assert nonces() == (3, 1)  # apart, for now
                assert len(alice.unacked.get(bob.address, {})) == 2  # both kept, not forgotten
                # Bob's head catches up; Alice's kept proofs go again and both are taken
                bob.handle(sc.Block(BlockNumber(113)))
                while nonces() != (3, 3) or alice.unacked.get(bob.address):  # noqa: ASYNC110
                    await trio.sleep(0.05)
                assert alice.stats.messages_resent >= 2
                bob_partner = bob.channels[CHANNEL_ID].partner
                assert bob_partner.balance_proof.transferred == 7
                assert bob_partner.balance_proof.locked == 0 and not bob_partner.locks
            nursery.cancel_scope.cancel()


def _refused(alice: NodeService, bob: NodeService) -> bool:
    """Bob has refused Alice's LockExpired (invalid counted) and Alice still keeps it."""
    return bob.stats.invalid_received >= 1 and bool(alice.unacked.get(bob.address))

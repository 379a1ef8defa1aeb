"""The trio node reports an unlock the chain refuses to its core (`ContractReceiveUnlockFailed`,
issue 16 point 2), as `channels.party` does: the lock stays pending with the chain's reason and
is tried again after the core's backoff, never forgotten. Through the real transaction manager
on the embedded chain, whose contract refuses the unlock (the channel was never settled there).
Before, the node only logged the refusal: the core never learnt why its unlock did not land."""

from __future__ import annotations

from pathlib import Path

import trio
from core_pair import CHANNEL_ID, Pair
from eth_account import Account

from channels.chain.client import Web3ChainClient
from channels.chain.connection import Connection
from channels.chain.deploy import deploy
from channels.codec.eip712 import secrethash_of
from channels.core import events as ev
from channels.core import state_changes as sc
from channels.core.state import NodeState
from channels.core.types import (
    BlockNumber,
    Nonce,
    PaymentId,
    Secret,
    SecretHash,
    TokenAmount,
)
from channels.records import core_record_codec
from channels.service import NodeService
from channels.signer import LocalSigner
from channels.store import SqliteStore

TX = b"\x01" * 32


async def test_an_unlock_the_chain_refuses_is_reported_to_the_core(tmp_path: Path) -> None:
    connection = Connection.embedded()
    keys = connection.dev_keys
    deployment = deploy(connection, Account.from_key(keys[0]), 50)
    client = Web3ChainClient.from_key(connection, deployment, keys[1])
    pair = Pair(alice=LocalSigner(keys[1]), bob=LocalSigner(keys[2]))
    # Alice locked 10 for Bob; Bob closed; settled with the lock unclaimed: Alice takes it back
    secret = Secret((1).to_bytes(32, "big"))
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
    pair.chain(
        sc.ContractReceiveChannelClosed(
            TX, BlockNumber(101), CHANNEL_ID, pair.b, Nonce(1), BlockNumber(106)
        )
    )
    pair.new_block(111)
    pair.chain(
        sc.ContractReceiveChannelSettled(
            TX, BlockNumber(111), CHANNEL_ID, TokenAmount(0), TokenAmount(0)
        )
    )
    assert pair.views[pair.a].unlocks_pending == {(pair.a, 0)}
    node = NodeState(pair.a, client.domain(), BlockNumber(111), {CHANNEL_ID: pair.views[pair.a]}, 5)
    store = SqliteStore(tmp_path / "alice.sqlite", core_record_codec())
    store.write_snapshot(node)
    service = NodeService(pair.alice, store, node)

    def reason() -> str:
        attempts = service.channels[CHANNEL_ID].unlock_attempts
        return attempts[0].reason if attempts else ""

    async with trio.open_nursery() as nursery:
        nursery.start_soon(service.run_commits)
        nursery.start_soon(lambda: service.run_transactions(client, poll_interval=0.05))
        sent: list[ev.ContractSendUnlock] = []
        with trio.fail_after(30):
            block = 112
            while not sent:  # the head moves until the core asks for its unlock ...
                events = service.handle(sc.Block(BlockNumber(block)))
                sent += [e for e in events if isinstance(e, ev.ContractSendUnlock)]
                block += 1
            while "NoPendingLocks" not in reason():  # noqa: ASYNC110  # then the chain says no
                await trio.sleep(0.05)
        nursery.cancel_scope.cancel()
    assert sent and sent[0].slot == 0
    assert reason().startswith("ChannelManager.unlock: ChannelManagerNoPendingLocks"), reason()
    assert service.chain_failures  # recorded too (a refusal at the estimate was lost before)
    assert all(isinstance(f, ev.ContractSendUnlock) for f, _ in service.chain_failures)
    channel = service.channels[CHANNEL_ID]
    assert channel.unlocks_pending == {(pair.a, 0)}  # kept, to be tried again
    assert not channel.unlock_attempts[0].gave_up  # tried again after the backoff
    store.close()

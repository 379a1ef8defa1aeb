"""Issue 16, "locked money stranded after a close with an older proof", on the embedded py-evm chain.

The payee (a hub, say) closes with the payer's proof at nonce N although the payer already sent
four unlocks after it. Before the fix the payer's unlocks were built from its newest tree and all
reverted (`ChannelManagerInvalidLockProof`), the core forgot them, and the payee never claimed the
locks it had been paid off chain: the pool stayed in the contract. Now both parties rebuild the
tree of the proof on chain: the payee registers the secrets it knows and claims those locks, the
payer takes the expired ones back, and nothing is left in the contract.
"""

from __future__ import annotations

from pathlib import Path

from eth_account import Account

from channels.chain.client import Web3ChainClient
from channels.chain.connection import Connection
from channels.chain.deploy import deploy
from channels.chain.executor import execute
from channels.codec.eip712 import secrethash_of
from channels.core import events as ev
from channels.core import state_changes as sc
from channels.core.types import (
    EMPTY_LOCKS_ROOT,
    BlockNumber,
    ChannelId,
    PaymentId,
    Secret,
    SecretHash,
    TokenAmount,
)
from channels.party import Party, deliver
from channels.signer import LocalSigner

DEPOSIT = 10_000
AMOUNTS = (101, 202, 303, 404, 505, 606)  # six locks; the first four are unlocked off chain later
PAID_OFF_CHAIN = sum(AMOUNTS[:4])


def test_close_with_an_older_proof_leaves_nothing_in_the_contract(tmp_path: Path) -> None:
    connection = Connection.embedded()
    keys = connection.dev_keys
    deployment = deploy(connection, Account.from_key(keys[0]), settle_timeout=10)
    operator = Web3ChainClient.from_key(connection, deployment, keys[0])

    def party(index: int) -> Party:
        client = Web3ChainClient.from_key(connection, deployment, keys[index])
        return Party.open(LocalSigner(keys[index]), client, tmp_path / f"p{index}.sqlite")

    payer, payee = party(1), party(2)
    operator.mint(payer.address, DEPOSIT)
    payer.client.approve(DEPOSIT)
    channel_id = ChannelId(payer.client.open_channel(payee.address, DEPOSIT)[0])
    payer.sync_chain()
    payee.sync_chain()

    expiration = BlockNumber(connection.block_number() + 40)
    secrets = [Secret(bytes([index + 1]) * 32) for index in range(len(AMOUNTS))]
    for index, (amount, secret) in enumerate(zip(AMOUNTS, secrets, strict=True)):
        payer.handle(
            sc.ActionLockedTransfer(
                channel_id,
                TokenAmount(amount),
                expiration,
                SecretHash(secrethash_of(secret)),
                PaymentId(index + 1),
                payee.address,
            )
        )
        deliver([payer, payee])
    stale = payee.state.channels[channel_id].partner.balance_proof  # nonce N = 6, six locks
    assert stale.nonce == 6 and stale.locked == sum(AMOUNTS)
    for secret in secrets[:4]:  # N+1 .. N+4: four unlocks, the payee is paid off chain
        payer.handle(sc.ActionUnlock(channel_id, secret))
        deliver([payer, payee])
    assert payee.state.channels[channel_id].partner.balance_proof.nonce == 10

    # the payee closes with the OLDER proof (any proof the payer signed may land on chain)
    execute(
        payee.client, payee.signer, ev.ContractSendChannelClose(channel_id, payer.address, stale)
    )
    for _ in range(3):
        payer.sync_chain()
        payee.sync_chain()
    connection.mine(12)  # past the challenge period: both settle (the second one reverts)
    for _ in range(3):
        payer.sync_chain()
        payee.sync_chain()
    connection.mine_until(expiration + 2)  # the two locks never paid return to the payer
    for _ in range(4):
        payer.sync_chain()
        payee.sync_chain()
        connection.mine(1)

    pool = operator.get_balance_proof(channel_id, payer.address, payee.address)
    assert (pool.locked, pool.locks_root) == (0, EMPTY_LOCKS_ROOT), (
        "locked money left in the contract"
    )
    assert operator.balance_of(payee.address) == PAID_OFF_CHAIN
    assert operator.balance_of(payer.address) == DEPOSIT - PAID_OFF_CHAIN
    for who in (payer, payee):
        assert not who.state.channels[channel_id].unlocks_pending
        refused = [
            str(error)
            for failed, error in who.failed_transactions
            if isinstance(failed, ev.ContractSendUnlock)
        ]
        assert refused == [], refused
    payer.close()
    payee.close()

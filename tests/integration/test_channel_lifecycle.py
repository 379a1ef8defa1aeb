"""The whole channel lifecycle on a real EVM, on each backend (embedded py-evm, anvil, ganache).

Messages are signed by `LocalSigner` over `channels.codec.eip712` digests, locks committed with
`channels.core.locktree`, so this also proves the Python encodings equal the contract's. Value is
checked to be conserved at every step: the manager's ERC20 holdings always equal the internal
balances plus the channels' totals plus the pending lock pools, and the token's total supply
equals the sum of all holders' balances.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from channels.chain.client import ChannelState, ordered
from channels.chain.errors import ChainError
from channels.chain.events import ChainFollower
from channels.chain.executor import execute
from channels.codec.eip712 import (
    balance_proof_digest,
    cooperative_close_digest,
    secrethash_of,
    withdraw_digest,
)
from channels.core import state_changes as sc
from channels.core.events import (
    ContractSendChannelCooperativeClose,
    ContractSendChannelSettle,
    ContractSendSecretRegister,
    ContractSendUnlock,
    ContractSendUpdateBalanceProof,
)
from channels.core.locktree import LockTree
from channels.core.state import BalanceProof, Lock
from channels.core.types import (
    EMPTY_LOCKS_ROOT,
    Address,
    BlockNumber,
    ChannelId,
    LocksRoot,
    Nonce,
    Secret,
    SecretHash,
    Signature,
    TokenAmount,
)
from tests.integration.chain_env import ChainEnv, Party

MINTED = 1_000_000


def signed_proof(
    env: ChainEnv,
    signer: Party,
    channel_id: int,
    nonce: int,
    transferred: int,
    locked: int = 0,
    root: bytes = EMPTY_LOCKS_ROOT,
) -> BalanceProof:
    digest = balance_proof_digest(env.admin.domain(), channel_id, nonce, transferred, locked, root)
    return BalanceProof(
        ChannelId(channel_id),
        Nonce(nonce),
        TokenAmount(transferred),
        TokenAmount(locked),
        LocksRoot(root),
        Signature(signer.signer.sign_digest(digest)),
    )


def assert_conserved(
    env: ChainEnv, open_channels: Sequence[tuple[ChannelId, Address, Address]]
) -> None:
    """Manager holdings = internal balances + channel totals + lock pools; supply = all holdings."""
    client = env.admin
    holders = [env.admin.address, env.alice.address, env.bob.address, env.carol.address]
    internal = sum(client.balance_of(Address(h)) for h in holders)
    in_channels = sum(client.get_channel(ChannelId(c), a, b).total for c, a, b in open_channels)
    pools = sum(
        client.get_balance_proof(ChannelId(c), s, r).locked
        for c, a, b in open_channels
        for s, r in ((a, b), (b, a))
        if client.get_channel(ChannelId(c), a, b).state is ChannelState.NONE
    )
    held = client.token_balance(env.deployment.manager)
    assert held == internal + in_channels + pools
    outside = sum(client.token_balance(Address(h)) for h in holders)
    assert client.token_total_supply() == outside + held


def test_full_lifecycle(chain: ChainEnv) -> None:
    env = chain
    alice, bob, admin = env.alice, env.bob, env.admin
    domain = admin.domain()
    assert admin.domain_separator() == domain.separator
    follower = ChainFollower(env.connection, env.deployment)

    for party in (alice, bob):
        receipt = admin.mint(Address(party.address), MINTED)
        assert receipt.gas_used > 0
        party.client.approve(MINTED)
    assert admin.token_total_supply() == 2 * MINTED
    a, b = Address(alice.address), Address(bob.address)
    p1, p2 = ordered(a, b)
    alice_is_1 = p1 == a

    # --- channel 1: open with deposit, top-up, withdraw while open, cooperative close
    cid, receipt = alice.client.open_channel(b, 100_000)
    assert cid == 1 and admin.channel_count() == 1
    assert receipt.event("ChannelOpened").args["deposit"] == 100_000
    bob.client.set_total_deposit(cid, a, 50_000)
    info = admin.get_channel(cid, a, b)
    assert info.state is ChannelState.OPENED
    assert (info.deposit1, info.deposit2) == (
        (100_000, 50_000) if alice_is_1 else (50_000, 100_000)
    )
    with pytest.raises(ChainError) as raised:
        bob.client.set_total_deposit(cid, a, 50_000)
    assert raised.value.name == "ChannelManagerDepositNotIncreasing"
    assert raised.value.error_args == (50_000, 50_000)
    assert_conserved(env, [(cid, a, b)])

    expiry = admin.block_number() + 20
    w_digest = withdraw_digest(domain, cid, a, 20_000, expiry)
    receipt = bob.client.withdraw(  # anyone may submit a co-signed withdraw
        cid,
        a,
        b,
        20_000,
        expiry,
        alice.signer.sign_digest(w_digest),
        bob.signer.sign_digest(w_digest),
    )
    assert receipt.event("ChannelWithdrawn").args["totalWithdraw"] == 20_000
    assert admin.balance_of(a) == 20_000
    assert admin.get_channel(cid, a, b).total == 130_000
    assert_conserved(env, [(cid, a, b)])

    # alice paid bob 30_000 off-chain: alice ends with 50_000, bob with 80_000
    b1, b2 = (50_000, 80_000) if alice_is_1 else (80_000, 50_000)
    cc_digest = cooperative_close_digest(domain, cid, b1, b2)
    event = ContractSendChannelCooperativeClose(
        cid, p1, p2, TokenAmount(b1), TokenAmount(b2),
        Signature(bob.signer.sign_digest(cc_digest)), alice_is_1, cc_digest,
    )  # fmt: skip
    receipt = execute(alice.client, alice.signer, event)
    assert receipt.event("ChannelCooperativelyClosed").args["balance1"] == b1
    assert admin.get_channel(cid, a, b).state is ChannelState.NONE
    assert admin.balance_of(a) == 70_000 and admin.balance_of(b) == 80_000
    assert_conserved(env, [])

    # --- channel 2: unilateral close with an older proof, update, settle, unlock
    cid2, _ = bob.client.open_channel_from_balance(a, 80_000)  # bob reuses his internal balance
    assert cid2 == 2
    alice.client.set_total_deposit(cid2, b, 100_000)
    channels = [(cid2, a, b)]
    assert_conserved(env, channels)

    # off-chain: bob paid alice 7_000 then 20_000; alice paid bob 10_000, then 30_000 + a lock
    secret = Secret(b"\x42" * 32)
    lock = Lock(
        TokenAmount(5_000),
        BlockNumber(admin.block_number() + 100),
        SecretHash(secrethash_of(secret)),
    )
    tree, slot = LockTree().insert(lock.leaf)
    tree, _ = tree.insert(Lock(TokenAmount(1), BlockNumber(10**6), SecretHash(b"\x01" * 32)).leaf)
    bob_old = signed_proof(env, bob, cid2, 1, 7_000)
    alice_old = signed_proof(env, alice, cid2, 1, 10_000)
    alice_new = signed_proof(env, alice, cid2, 2, 30_000, 5_001, tree.root)

    # alice closes with bob's OLDER proof (nonce 1 instead of 2)
    receipt = alice.client.close_channel(
        cid2, b, bob_old.nonce, bob_old.transferred, bob_old.locked, bob_old.locks_root,
        bob_old.signature,
    )  # fmt: skip
    settle_block = receipt.event("ChannelClosed").args["settleBlock"]
    assert settle_block == receipt.block_number + env.deployment.settle_timeout
    info = admin.get_channel(cid2, a, b)
    assert info.state is ChannelState.CLOSED and info.closer == a

    # bob updates with alice's proofs: nonce 1, then 2; going back fails with the exact error
    execute(bob.client, bob.signer, ContractSendUpdateBalanceProof(cid2, a, alice_old))
    execute(bob.client, bob.signer, ContractSendUpdateBalanceProof(cid2, a, alice_new))
    with pytest.raises(ChainError) as raised:
        execute(bob.client, bob.signer, ContractSendUpdateBalanceProof(cid2, a, alice_old))
    assert raised.value.name == "ChannelManagerNonceTooLow"
    assert raised.value.error_args == (1, 2)
    stored = admin.get_balance_proof(cid2, a, b)
    assert (stored.nonce, stored.transferred, stored.locks_root) == (2, 30_000, tree.root)

    with pytest.raises(ChainError) as raised:
        admin.settle_channel(cid2, p1, p2)
    assert raised.value.name == "ChannelManagerChallengePeriodNotOver"
    env.connection.mine_until(settle_block + 1)
    receipt = execute(admin, admin_signer_unused(), ContractSendChannelSettle(cid2, p1, p2))
    settled = receipt.event("ChannelSettled").args
    # b_alice = 100_000 + 7_000 - 30_000 = 77_000, minus her 5_001 locked -> 71_999
    alice_bal, bob_bal = 71_999, 180_000 - 77_000
    alice_locked = 5_001
    assert (settled["balance1"], settled["balance2"]) == (
        (alice_bal, bob_bal) if alice_is_1 else (bob_bal, alice_bal)
    )
    assert (settled["locked1"], settled["locked2"]) == (
        (alice_locked, 0) if alice_is_1 else (0, alice_locked)
    )
    assert admin.get_channel(cid2, a, b).state is ChannelState.NONE
    assert_conserved(env, channels)

    # bob registers the secret before the lock expires and unlocks it with a tree proof
    receipt = execute(bob.client, bob.signer, ContractSendSecretRegister(secret))
    assert admin.secret_reveal_block(lock.secrethash) == receipt.block_number
    before = admin.balance_of(b)
    unlock = ContractSendUnlock(cid2, a, b, lock, slot, tuple(tree.proof(slot)))
    receipt = execute(bob.client, bob.signer, unlock)
    assert receipt.event("LockUnlocked").args["amount"] == 5_000
    assert admin.balance_of(b) == before + 5_000
    assert admin.is_lock_resolved(cid2, a, b, slot)
    assert admin.get_balance_proof(cid2, a, b).locked == 1  # the other lock's pool remains
    with pytest.raises(ChainError) as raised:
        execute(bob.client, bob.signer, unlock)
    assert raised.value.name == "ChannelManagerLockAlreadyResolved"
    assert_conserved(env, channels)

    # everybody leaves the manager
    for party in (alice, bob):
        owned = admin.balance_of(Address(party.address))
        party.client.withdraw_from_balance(owned)
        assert admin.balance_of(Address(party.address)) == 0
    assert admin.token_balance(env.deployment.manager) == 1  # the unresolved 1-unit lock
    assert admin.token_balance(a) + admin.token_balance(b) == 2 * MINTED - 1
    assert_conserved(env, channels)

    # the follower saw all of it, in order, as ContractReceive* state changes
    changes = [c for batch in follower.poll_until_head() for c in batch.state_changes]
    kinds = [type(c).__name__ for c in changes if not isinstance(c, sc.Block)]
    assert kinds == [
        "ContractReceiveChannelOpened",
        "ContractReceiveChannelDeposited",
        "ContractReceiveChannelWithdrawn",
        "ContractReceiveChannelCooperativelyClosed",
        "ContractReceiveChannelOpened",
        "ContractReceiveChannelDeposited",
        "ContractReceiveChannelClosed",
        "ContractReceiveChannelBalanceProofUpdated",
        "ContractReceiveChannelBalanceProofUpdated",
        "ContractReceiveChannelSettled",
        "ContractReceiveSecretRegistered",
        "ContractReceiveLockUnlocked",
    ]
    assert isinstance(changes[-1], sc.Block) and changes[-1].block_number == follower.cursor
    unlocked = next(c for c in changes if isinstance(c, sc.ContractReceiveLockUnlocked))
    assert (unlocked.sender, unlocked.receiver, unlocked.claimed, unlocked.returned) == (
        a, b, 5_000, 0
    )  # fmt: skip
    opened = next(c for c in changes if isinstance(c, sc.ContractReceiveChannelOpened))
    assert (opened.participant1, opened.participant2, opened.deposit) == (p1, p2, 100_000)
    assert opened.settle_timeout == env.deployment.settle_timeout


def admin_signer_unused() -> _NoSigner:
    return _NoSigner()


class _NoSigner:
    """A signer for events that need no signature: signing with it is a test failure."""

    address = b"\x00" * 20

    def sign_digest(self, digest: bytes) -> bytes:
        raise AssertionError("this transaction needs no signature of ours")

"""Cooperative close, unilateral close, challenge, settle and unlock on chain."""

from __future__ import annotations

from core_pair import CHANNEL_ID, DOMAIN, Pair, invalid_reasons

from channels.codec.ecdsa import recover_signer
from channels.codec.eip712 import cooperative_close_digest, secrethash_of
from channels.core import events as ev
from channels.core import state_changes as sc
from channels.core.channel import cooperative_close_balances
from channels.core.locktree import root_from_proof
from channels.core.state import ChannelStatus
from channels.core.types import (
    Address,
    BlockNumber,
    Nonce,
    PaymentId,
    Secret,
    SecretHash,
    Signature,
    TokenAmount,
)

TX = b"\x00" * 32


def _ordered(pair: Pair, alice_amount: int, bob_amount: int) -> tuple[int, int]:
    return (alice_amount, bob_amount) if pair.a < pair.b else (bob_amount, alice_amount)


def test_cooperative_close_roundtrip() -> None:
    pair = Pair()
    pair.pay(pair.a, 100)
    events = pair.send(pair.a, sc.ActionCooperativeClose(CHANNEL_ID))
    tx = next(e for e in events if isinstance(e, ev.ContractSendChannelCooperativeClose))
    assert (tx.balance1, tx.balance2) == _ordered(pair, 900, 1100)
    assert tx.participant1 == min(pair.a, pair.b) and tx.we_are_participant1 == (pair.a < pair.b)
    digest = cooperative_close_digest(DOMAIN, CHANNEL_ID, tx.balance1, tx.balance2)
    assert tx.digest == digest and recover_signer(digest, tx.partner_signature) == pair.b
    # once signed, neither side takes payments (a stale co-signed close could be submitted)
    failed = pair.step(pair.a, sc.ActionTransfer(CHANNEL_ID, TokenAmount(1), PaymentId(1)))
    assert isinstance(failed[0], ev.EventPaymentSendFailed)
    pair.chain(
        sc.ContractReceiveChannelCooperativelyClosed(
            TX, BlockNumber(101), CHANNEL_ID, TokenAmount(tx.balance1), TokenAmount(tx.balance2)
        )
    )
    assert pair.views[pair.a].status is ChannelStatus.SETTLED


def test_cooperative_close_with_wrong_balances_is_rejected() -> None:
    pair = Pair()
    b1, b2 = cooperative_close_balances(pair.views[pair.a])
    digest = cooperative_close_digest(DOMAIN, CHANNEL_ID, b1 + 1, b2 - 1)
    bad = sc.ReceiveCooperativeCloseRequest(
        pair.a,
        CHANNEL_ID,
        TokenAmount(b1 + 1),
        TokenAmount(b2 - 1),
        Signature(pair.alice.sign_digest(digest)),
    )
    before = pair.views[pair.b]
    assert invalid_reasons(pair.step(pair.b, bad)) == ["balances do not match ours"]
    assert pair.views[pair.b] is before


def test_cooperative_close_refused_with_pending_locks() -> None:
    pair = Pair()
    secrethash = SecretHash(secrethash_of(b"\x01" * 32))
    pair.send(
        pair.a,
        sc.ActionLockedTransfer(
            CHANNEL_ID, TokenAmount(5), BlockNumber(130), secrethash, PaymentId(1), pair.b
        ),
    )
    events = pair.step(pair.a, sc.ActionCooperativeClose(CHANNEL_ID))
    assert isinstance(events[0], ev.EventActionFailed) and "locks are pending" in events[0].reason


def test_unilateral_close_update_settle_and_unlock() -> None:
    pair = Pair()
    secret = Secret(b"\x33" * 32)
    secrethash = SecretHash(secrethash_of(secret))
    pair.pay(pair.a, 50)
    pair.pay(pair.b, 20)
    pair.send(
        pair.a,
        sc.ActionLockedTransfer(
            CHANNEL_ID, TokenAmount(7), BlockNumber(180), secrethash, PaymentId(2), pair.b
        ),
    )
    # Alice closes with Bob's latest proof
    events = pair.step(pair.a, sc.ActionClose(CHANNEL_ID))
    close = events[0]
    assert isinstance(close, ev.ContractSendChannelClose)
    assert close.balance_proof == pair.views[pair.a].partner.balance_proof
    assert (
        recover_signer(close.balance_proof.digest(DOMAIN), close.balance_proof.signature) == pair.b
    )
    assert pair.views[pair.a].status is ChannelStatus.CLOSING
    closed = pair.chain(
        sc.ContractReceiveChannelClosed(
            TX, BlockNumber(101), CHANNEL_ID, pair.a, Nonce(1), BlockNumber(151)
        )
    )
    # Bob, the non-closer, submits the CLOSER's (Alice's) latest proof, lock included
    update = next(e for e in closed[pair.b] if isinstance(e, ev.ContractSendUpdateBalanceProof))
    assert update.closer == pair.a
    assert update.balance_proof.nonce == 2 and update.balance_proof.locked == 7
    assert (
        recover_signer(update.balance_proof.digest(DOMAIN), update.balance_proof.signature)
        == pair.a
    )
    assert not any(isinstance(e, ev.ContractSendUpdateBalanceProof) for e in closed[pair.a])
    pair.chain(
        sc.ContractReceiveChannelBalanceProofUpdated(
            TX, BlockNumber(102), CHANNEL_ID, pair.a, Nonce(2)
        )
    )
    # messages for a closed channel are refused
    late = pair.step(pair.a, sc.ActionTransfer(CHANNEL_ID, TokenAmount(1), PaymentId(3)))
    assert isinstance(late[0], ev.EventPaymentSendFailed) and "not open" in late[0].reason
    # the challenge period ends: both try to settle, once
    settle_events = pair.new_block(152)
    for who in (pair.a, pair.b):
        assert (
            ev.ContractSendChannelSettle(CHANNEL_ID, min(pair.a, pair.b), max(pair.a, pair.b))
            in settle_events[who]
        )
        assert pair.views[who].status is ChannelStatus.SETTLING
    assert pair.new_block(153) == {pair.a: [], pair.b: []}
    # Bob knows the secret and registers it near expiry (Alice cannot unlock off chain now)
    pair.step(pair.b, sc.ActionRevealSecret(CHANNEL_ID, secret))
    assert pair.new_block(174)[pair.b] == []
    assert pair.new_block(175)[pair.b] == [ev.ContractSendSecretRegister(secret)]
    pair.chain(sc.ContractReceiveSecretRegistered(TX, BlockNumber(176), secrethash, secret))
    settled = pair.chain(
        sc.ContractReceiveChannelSettled(
            TX, BlockNumber(178), CHANNEL_ID, TokenAmount(0), TokenAmount(0)
        )
    )
    unlock = next(e for e in settled[pair.b] if isinstance(e, ev.ContractSendUnlock))
    assert (unlock.sender, unlock.receiver, unlock.slot) == (pair.a, pair.b, 0)
    root = pair.views[pair.b].partner.balance_proof.locks_root
    assert root_from_proof(unlock.lock.leaf, unlock.slot, list(unlock.proof)) == root
    assert not any(isinstance(e, ev.ContractSendUnlock) for e in settled[pair.a])
    pair.chain(
        sc.ContractReceiveLockUnlocked(
            TX,
            BlockNumber(179),
            CHANNEL_ID,
            pair.a,
            pair.b,
            0,
            secrethash,
            TokenAmount(7),
            TokenAmount(0),
        )
    )
    assert not pair.views[pair.b].unlocks_pending


def test_expired_own_lock_is_unlocked_back_after_settle() -> None:
    pair = Pair()
    secrethash = SecretHash(secrethash_of(b"\x44" * 32))
    pair.send(
        pair.a,
        sc.ActionLockedTransfer(
            CHANNEL_ID, TokenAmount(7), BlockNumber(200), secrethash, PaymentId(2), pair.b
        ),
    )
    pair.pay(pair.b, 3)
    pair.step(pair.b, sc.ActionClose(CHANNEL_ID))
    closed = pair.chain(
        sc.ContractReceiveChannelClosed(
            TX, BlockNumber(101), CHANNEL_ID, pair.b, Nonce(1), BlockNumber(151)
        )
    )
    assert any(isinstance(e, ev.ContractSendUpdateBalanceProof) for e in closed[pair.a])
    pair.new_block(152)
    pair.chain(
        sc.ContractReceiveChannelSettled(
            TX, BlockNumber(153), CHANNEL_ID, TokenAmount(0), TokenAmount(0)
        )
    )
    assert pair.views[pair.a].unlocks_pending == {(pair.a, 0)}
    assert pair.new_block(200)[pair.a] == []
    events = pair.new_block(201)[pair.a]
    assert [type(e) for e in events] == [ev.ContractSendUnlock]
    # sent, not forgotten: pending until the chain shows it resolved
    assert pair.views[pair.a].unlocks_pending == {(pair.a, 0)}
    assert [a.attempts for a in pair.views[pair.a].unlock_attempts] == [1]


def test_chain_event_naming_a_stranger_is_flagged() -> None:
    pair = Pair()
    stranger = Address(b"\x09" * 20)
    events = pair.step(
        pair.a,
        sc.ContractReceiveChannelDeposited(
            TX, BlockNumber(101), CHANNEL_ID, stranger, TokenAmount(5)
        ),
    )
    assert isinstance(events[0], ev.EventInvalidContractEvent)


def test_deposit_action_and_event() -> None:
    pair = Pair()
    events = pair.step(pair.a, sc.ActionDeposit(CHANNEL_ID, TokenAmount(1500)))
    assert events == [ev.ContractSendChannelDeposit(CHANNEL_ID, pair.b, TokenAmount(1500))]
    pair.chain(
        sc.ContractReceiveChannelDeposited(
            TX, BlockNumber(101), CHANNEL_ID, pair.a, TokenAmount(1500)
        )
    )
    assert pair.views[pair.a].our.deposit == 1500 and pair.views[pair.b].partner.deposit == 1500


def _owed_lock(pair: Pair, secret: Secret, registered_at: int) -> None:
    """Alice pays, then locks 7 to Bob (expiration 120); only Bob sees the secret registered."""
    pair.pay(pair.a, 30)
    pair.send(
        pair.a,
        sc.ActionLockedTransfer(
            CHANNEL_ID,
            TokenAmount(7),
            BlockNumber(120),
            SecretHash(secrethash_of(secret)),
            PaymentId(2),
            pair.b,
        ),
    )
    registered = sc.ContractReceiveSecretRegistered(
        TX, BlockNumber(registered_at), SecretHash(secrethash_of(secret)), secret
    )
    assert isinstance(pair.step(pair.b, registered)[0], ev.EventSecretLearned)


def _bob_blocks(pair: Pair, blocks: range) -> list[ev.Event]:
    """Blocks seen by Bob alone (Alice is silent)."""
    events: list[ev.Event] = []
    for block in blocks:
        pair.block = block
        events.extend(pair.step(pair.b, sc.Block(BlockNumber(block))))
    return events


def test_silent_partner_with_a_registered_lock_is_closed_once_and_claimed() -> None:
    pair = Pair()
    secret = Secret(b"\x55" * 32)
    _owed_lock(pair, secret, registered_at=115)
    # expiration 120 + lock_expiry_margin 2 + reveal_timeout 5: Alice has had her chance
    assert _bob_blocks(pair, range(116, 128)) == []
    events = _bob_blocks(pair, range(128, 129))
    latest = pair.views[pair.b].partner.balance_proof
    assert events == [
        ev.ContractSendChannelClose(CHANNEL_ID, pair.a, latest),
        ev.EventChannelStatusChanged(CHANNEL_ID, ChannelStatus.CLOSING.value),
    ]
    assert (latest.nonce, latest.transferred, latest.locked) == (2, 30, 7)
    assert recover_signer(latest.digest(DOMAIN), latest.signature) == pair.a
    assert pair.views[pair.b].status is ChannelStatus.CLOSING
    assert _bob_blocks(pair, range(129, 135)) == []  # once
    # after settle the existing unlock machinery claims the lock
    pair.step(
        pair.b,
        sc.ContractReceiveChannelClosed(
            TX, BlockNumber(135), CHANNEL_ID, pair.b, Nonce(2), BlockNumber(185)
        ),
    )
    assert any(
        isinstance(e, ev.ContractSendChannelSettle) for e in _bob_blocks(pair, range(186, 187))
    )
    settled = pair.step(
        pair.b,
        sc.ContractReceiveChannelSettled(
            TX, BlockNumber(187), CHANNEL_ID, TokenAmount(0), TokenAmount(0)
        ),
    )
    unlock = next(e for e in settled if isinstance(e, ev.ContractSendUnlock))
    assert (unlock.sender, unlock.receiver, unlock.lock.amount) == (pair.a, pair.b, 7)


def test_no_close_for_a_lock_registered_after_its_expiration() -> None:
    pair = Pair()
    _owed_lock(pair, Secret(b"\x56" * 32), registered_at=121)
    assert _bob_blocks(pair, range(121, 160)) == []
    assert pair.views[pair.b].status is ChannelStatus.OPENED

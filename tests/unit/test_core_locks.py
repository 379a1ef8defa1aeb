"""Locked transfers, unlock by secret, lock expiry and secret registration in the pure core."""

from __future__ import annotations

import typing

import pytest
from core_pair import CHANNEL_ID, Pair, invalid_reasons
from msgspec.structs import replace

from channels.codec.eip712 import secrethash_of
from channels.core import events as ev
from channels.core import state_changes as sc
from channels.core.channel import get_balance, get_capacity
from channels.core.locktree import MAX_PENDING_LOCKS, LockTree
from channels.core.state import BalanceProof, Lock
from channels.core.types import (
    Address,
    BlockNumber,
    Nonce,
    PaymentId,
    Secret,
    SecretHash,
    TokenAmount,
)

SECRET = Secret(b"\x42" * 32)
SECRETHASH = SecretHash(secrethash_of(SECRET))


def _lock_action(
    pair: Pair, amount: int = 10, expiration: int = 120, secret: bytes = SECRET
) -> sc.ActionLockedTransfer:
    return sc.ActionLockedTransfer(
        CHANNEL_ID,
        TokenAmount(amount),
        BlockNumber(expiration),
        SecretHash(secrethash_of(secret)),
        PaymentId(5),
        pair.b,
    )


def _send_lock(pair: Pair, **kwargs: int) -> ev.SendLockedTransfer:
    events = pair.step(pair.a, _lock_action(pair, **kwargs))  # type: ignore[arg-type]
    assert isinstance(events[0], ev.SendLockedTransfer), events
    return events[0]


def test_locked_transfer_then_unlock_by_secret_reveal() -> None:
    pair = Pair()
    send = _send_lock(pair)
    received = pair.deliver(pair.a, send)
    assert isinstance(received[0], ev.EventLockedTransferReceived)
    assert received[0].slot == 0 and received[0].target == pair.b
    bob = pair.views[pair.b]
    assert bob.partner.balance_proof.locked == 10
    assert bob.partner.tree.root == bob.partner.balance_proof.locks_root != b"\x00" * 32
    # Bob (the payee) reveals; Alice unlocks in reply
    events = pair.send(pair.b, sc.ActionRevealSecret(CHANNEL_ID, SECRET))
    assert any(isinstance(e, ev.SendUnlock) for e in events)
    assert ev.EventUnlockReceived(CHANNEL_ID, pair.a, SECRETHASH, TokenAmount(10)) in events
    for who in (pair.a, pair.b):
        view = pair.views[who]
        end = view.our if who == pair.a else view.partner
        assert end.balance_proof.transferred == 10 and end.balance_proof.locked == 0
        assert end.balance_proof.locks_root == b"\x00" * 32 and not end.locks
        assert not view.secrets  # forgotten once no lock needs it
    assert get_balance(pair.views[pair.b].our, pair.views[pair.b].partner) == 1010


def test_locks_fill_the_lowest_free_slot() -> None:
    pair = Pair()
    secrets = [bytes([i]) * 32 for i in range(1, 4)]
    for secret in secrets:
        pair.deliver(pair.a, _send_lock(pair, secret=secret))  # type: ignore[arg-type]
    assert sorted(pair.views[pair.b].partner.locks) == [0, 1, 2]
    pair.send(pair.b, sc.ActionRevealSecret(CHANNEL_ID, Secret(secrets[1])))
    assert sorted(pair.views[pair.b].partner.locks) == [0, 2]
    send = _send_lock(pair, secret=b"\x09" * 32)  # type: ignore[arg-type]
    assert send.slot == 1
    pair.deliver(pair.a, send)
    bob = pair.views[pair.b].partner
    assert bob.balance_proof.locked == sum(lock.amount for lock in bob.locks.values()) == 30


def test_lock_expires_after_margin_and_both_views_drop_it() -> None:
    pair = Pair()
    pair.deliver(pair.a, _send_lock(pair, expiration=110))
    assert pair.new_block(112)[pair.a] == []  # within the expiry margin (2)
    events = pair.new_block(113)
    send = next(e for e in events[pair.a] if isinstance(e, ev.SendLockExpired))
    received = pair.deliver(pair.a, send)
    assert received == [ev.EventLockExpired(CHANNEL_ID, pair.a, SECRETHASH, TokenAmount(10))]
    assert pair.views[pair.b].partner.balance_proof.locked == 0
    assert get_balance(pair.views[pair.b].partner, pair.views[pair.b].our) == 1000


def test_receiver_registers_secret_near_expiry_then_sender_unlocks() -> None:
    pair = Pair()
    pair.deliver(pair.a, _send_lock(pair, expiration=120))
    bob_view = pair.views[pair.b]
    pair.views[pair.b] = replace(
        bob_view, secrets={SECRETHASH: SECRET}
    )  # Bob knows, Alice is silent
    assert pair.new_block(114)[pair.b] == []
    events = pair.new_block(115)[pair.b]  # 120 - reveal_timeout(5)
    assert events == [ev.ContractSendSecretRegister(SECRET)]
    assert pair.new_block(116)[pair.b] == []  # asked once
    chain = pair.chain(
        sc.ContractReceiveSecretRegistered(b"\x00" * 32, BlockNumber(117), SECRETHASH, SECRET)
    )
    unlock = next(e for e in chain[pair.a] if isinstance(e, ev.SendUnlock))
    received = pair.deliver(pair.a, unlock)
    assert ev.EventUnlockReceived(CHANNEL_ID, pair.a, SECRETHASH, TokenAmount(10)) in received


def _bob_rejects(pair: Pair, change: sc.StateChange, kind: type) -> str:
    before = pair.views[pair.b]
    events = pair.step(pair.b, change)
    assert pair.views[pair.b] is before
    assert len(events) == 1 and isinstance(events[0], kind), events
    return events[0].reason  # type: ignore[attr-defined,no-any-return]


@pytest.mark.parametrize(
    ("tamper", "expected"),
    [
        ({"locked": 11}, "not the pending locks' sum"),
        ({"slot": 3}, "lowest free slot"),
        ({"transferred": 1}, "must not change the transferred"),
        ({"amount": 11}, "not the pending locks' sum"),
        ({"expiration": 130}, "locksRoot does not match"),
        ({"locks_root": b"\x05" * 32}, "locksRoot does not match"),
    ],
)
def test_bad_locked_transfers(tamper: dict[str, object], expected: str) -> None:
    pair = Pair()
    change = pair.receive(pair.a, _send_lock(pair), **tamper)
    assert expected in _bob_rejects(pair, change, ev.EventInvalidReceivedLockedTransfer)


def test_a_lock_expired_by_the_receivers_head_is_taken_and_refused_not_rejected() -> None:
    """The receiver's head is past the lock's expiration, the sender's is not. Rejecting the
    signed proof would split the two views of the channel for good (every later proof of the
    sender builds on it): the receiver takes the proof, never claims the lock, and refuses it;
    the sender takes the lock out, and both views agree again."""
    pair = Pair()
    send = _send_lock(pair, expiration=110)  # sent at block 100
    pair.block = 111  # the receiver's head is already past the expiration
    received = pair.deliver(pair.a, send)
    refusal = next(e for e in received if isinstance(e, ev.SendLockRefused))
    assert "lock already expired at block 110" in refusal.reason
    assert not any(isinstance(e, ev.EventLockedTransferReceived) for e in received)
    assert not any(type(e) in typing.get_args(ev.EventInvalid) for e in received)
    bob = pair.views[pair.b]
    assert _unsigned(bob.partner.balance_proof) == _unsigned(pair.views[pair.a].our.balance_proof)
    assert SECRETHASH in bob.refused_locks
    # Bob's head passing the block changes nothing: he never asks to register a refused lock
    pair.views[pair.b] = replace(bob, secrets={SECRETHASH: SECRET})
    assert pair.step(pair.b, sc.Block(BlockNumber(112))) == []
    events = pair.deliver(pair.b, refusal)
    removal = next(e for e in events if isinstance(e, ev.SendLockExpired))
    assert pair.deliver(pair.a, removal) == [
        ev.EventLockExpired(CHANNEL_ID, pair.a, SECRETHASH, TokenAmount(10))
    ]
    alice, bob = pair.views[pair.a], pair.views[pair.b]
    assert _unsigned(alice.our.balance_proof) == _unsigned(bob.partner.balance_proof)
    assert alice.our.balance_proof.locked == 0 and not bob.partner.locks
    assert not bob.refused_locks
    # and the channel carries the next payment
    assert any(isinstance(e, ev.EventPaymentReceived) for e in pair.pay(pair.a, 7))


def _unsigned(proof: BalanceProof) -> BalanceProof:
    return replace(proof, signature=b"")


def test_locked_transfer_over_capacity_is_rejected() -> None:
    pair = Pair(deposit_a=5)
    view = pair.views[pair.a]
    pair.views[pair.a] = replace(view, our=replace(view.our, deposit=TokenAmount(1000)))
    change = pair.receive(pair.a, _send_lock(pair))
    assert "capacity" in _bob_rejects(pair, change, ev.EventInvalidReceivedLockedTransfer)


def test_duplicate_secrethash_is_refused_by_sender() -> None:
    pair = Pair()
    _send_lock(pair)
    events = pair.step(pair.a, _lock_action(pair))
    assert (
        isinstance(events[0], ev.EventPaymentSendFailed) and "already pending" in events[0].reason
    )


def test_max_pending_locks_cap() -> None:
    pair = Pair(deposit_a=10_000)
    view = pair.views[pair.a]
    tree = LockTree()
    locks = {}
    slot_of = {}
    for slot in range(MAX_PENDING_LOCKS):
        lock = Lock(TokenAmount(1), BlockNumber(500), SecretHash(slot.to_bytes(32, "big")))
        tree, used = tree.insert(lock.leaf)
        locks[used] = lock
        slot_of[lock.secrethash] = used
    proof = replace(
        view.our.balance_proof, locked=TokenAmount(MAX_PENDING_LOCKS), locks_root=tree.root
    )
    pair.views[pair.a] = replace(
        view, our=replace(view.our, locks=locks, slot_of=slot_of, tree=tree, balance_proof=proof)
    )
    events = pair.step(pair.a, _lock_action(pair))
    assert isinstance(events[0], ev.EventPaymentSendFailed) and "512" in events[0].reason


def test_unlock_with_wrong_secret_or_amount_is_rejected() -> None:
    pair = Pair()
    pair.deliver(pair.a, _send_lock(pair))
    alice_before = pair.views[pair.a]
    unlock = pair.step(pair.a, sc.ActionUnlock(CHANNEL_ID, SECRET))[0]
    assert isinstance(unlock, ev.SendUnlock)
    for tamper, expected in (
        ({"secret": b"\x01" * 32}, "does not open"),
        ({"slot": 1}, "no lock is pending"),
        ({"transferred": 9}, "exactly the lock amount"),
        ({"locked": 1}, "exactly the lock amount"),
        ({"locks_root": b"\x01" * 32}, "locksRoot does not match"),
    ):
        change = pair.receive(pair.a, unlock, **tamper)
        assert expected in _bob_rejects(pair, change, ev.EventInvalidReceivedUnlock)
    assert pair.deliver(pair.a, unlock)[0] == ev.EventUnlockReceived(
        CHANNEL_ID, pair.a, SECRETHASH, TokenAmount(10)
    )
    assert alice_before is not pair.views[pair.a]


def test_lock_expired_too_early_or_after_registration_is_rejected() -> None:
    pair = Pair()
    pair.deliver(pair.a, _send_lock(pair, expiration=110))
    # Alice's clock runs ahead of Bob's
    alice = pair.views[pair.a]
    from channels.core.channel import channel_transition

    ahead = replace(pair.ctx(pair.a), block_number=BlockNumber(113))
    result = channel_transition(alice, sc.Block(BlockNumber(113)), ahead)
    expired = next(e for e in result.events if isinstance(e, ev.SendLockExpired))
    pair.views[pair.a] = result.new_state
    change = pair.receive(pair.a, expired)
    assert "not expired yet" in _bob_rejects(pair, change, ev.EventInvalidReceivedLockExpired)
    # the secret was registered on chain in time: the lock is Bob's, no expiry
    pair.step(
        pair.b,
        sc.ContractReceiveSecretRegistered(b"\x00" * 32, BlockNumber(105), SECRETHASH, SECRET),
    )
    pair.block = 113
    assert "registered on chain" in _bob_rejects(pair, change, ev.EventInvalidReceivedLockExpired)


def test_secret_reveal_for_unknown_lock_is_invalid() -> None:
    pair = Pair()
    events = pair.step(pair.a, sc.ReceiveSecretReveal(pair.b, CHANNEL_ID, SECRET))
    assert invalid_reasons(events) == ["no lock of ours is pending with this secret"]
    events = pair.step(pair.a, sc.ReceiveSecretReveal(Address(b"\x09" * 20), CHANNEL_ID, SECRET))
    assert "not the channel partner" in invalid_reasons(events)[0]


def test_secret_request_passes_through() -> None:
    pair = Pair()
    events = pair.send(
        pair.b, sc.ActionRequestSecret(CHANNEL_ID, PaymentId(3), SECRETHASH, TokenAmount(10))
    )
    assert (
        ev.EventSecretRequested(CHANNEL_ID, pair.b, PaymentId(3), SECRETHASH, TokenAmount(10))
        in events
    )


# --------------------------------------------------------------------------- lock refusal


def _refuse(pair: Pair, reason: str = "no route") -> ev.SendLockRefused:
    events = pair.step(pair.b, sc.ActionRefuseLock(CHANNEL_ID, SECRETHASH, reason))
    assert events == [ev.SendLockRefused(pair.a, CHANNEL_ID, SECRETHASH, reason)], events
    return events[0]  # type: ignore[return-value]


def test_refused_lock_leaves_early_and_the_payer_gets_its_capacity_back() -> None:
    pair = Pair()
    pair.deliver(pair.a, _send_lock(pair, expiration=120))
    assert get_capacity(pair.views[pair.a].our, pair.views[pair.a].partner) == 990
    refusal = _refuse(pair)
    assert pair.views[pair.b].refused_locks == {SECRETHASH}
    # Alice removes the lock at once (block 100, expiration 120) and says why
    answer = pair.deliver(pair.b, refusal)
    assert len(answer) == 2 and isinstance(answer[0], ev.SendLockExpired), answer
    assert answer[1] == ev.EventLockRefused(CHANNEL_ID, SECRETHASH, TokenAmount(10), "no route")
    assert answer[0].secrethash == SECRETHASH and answer[0].balance_proof.locked == 0
    # Bob accepts the LockExpired before expiry because he refused the lock
    received = pair.deliver(pair.a, answer[0])
    assert received == [ev.EventLockExpired(CHANNEL_ID, pair.a, SECRETHASH, TokenAmount(10))]
    bob, alice = pair.views[pair.b], pair.views[pair.a]
    assert not bob.refused_locks and not bob.partner.locks and not alice.our.locks
    theirs, ours = bob.partner.balance_proof, alice.our.balance_proof
    assert (theirs.nonce, theirs.locked, theirs.locks_root) == (2, 0, ours.locks_root)
    assert ours.nonce == 2 and ours.locks_root == b"\x00" * 32
    assert get_capacity(alice.our, alice.partner) == 1000
    assert get_capacity(bob.partner, bob.our) == 1000
    # and the lock can be offered again (a new attempt under the same secrethash)
    assert isinstance(_send_lock(pair, expiration=130), ev.SendLockedTransfer)


def test_refusing_a_lock_we_do_not_have_or_whose_secret_we_know_fails() -> None:
    pair = Pair()

    def fails(who: bytes, expected: str) -> None:
        before = pair.views[who]
        events = pair.step(who, sc.ActionRefuseLock(CHANNEL_ID, SECRETHASH, "no"))
        assert pair.views[who] is before
        assert len(events) == 1 and isinstance(events[0], ev.EventActionFailed), events
        assert events[0].action == "ActionRefuseLock" and expected in events[0].reason

    fails(pair.b, "the partner has no lock pending")
    pair.deliver(pair.a, _send_lock(pair))
    fails(pair.a, "the partner has no lock pending")  # Alice's own lock is not hers to refuse
    bob = pair.views[pair.b]
    pair.views[pair.b] = replace(bob, secrets={SECRETHASH: SECRET})
    fails(pair.b, "we know the secret")
    pair.views[pair.b] = bob
    _refuse(pair)
    fails(pair.b, "already refused")


def test_early_lock_expired_for_a_lock_we_did_not_refuse_is_rejected() -> None:
    pair = Pair()
    other = Secret(b"\x43" * 32)
    pair.deliver(pair.a, _send_lock(pair, expiration=120))
    pair.deliver(pair.a, _send_lock(pair, expiration=120, secret=other))  # type: ignore[arg-type]
    _refuse(pair)  # Bob refuses the first lock only
    # Alice, wrongly believing the second lock refused, removes it early
    refusal = sc.ReceiveLockRefused(pair.b, CHANNEL_ID, SecretHash(secrethash_of(other)), "?")
    early = pair.step(pair.a, refusal)[0]
    assert isinstance(early, ev.SendLockExpired)
    change = pair.receive(pair.a, early)
    assert "not expired yet" in _bob_rejects(pair, change, ev.EventInvalidReceivedLockExpired)
    assert pair.views[pair.b].refused_locks == {SECRETHASH}


@pytest.mark.parametrize(
    ("with_lock", "sender", "channel_id", "secrethash", "expected"),
    [
        (False, None, CHANNEL_ID, SECRETHASH, "no lock of ours is pending"),
        (True, None, CHANNEL_ID, SecretHash(b"\x01" * 32), "no lock of ours is pending"),
        (True, Address(b"\x09" * 20), CHANNEL_ID, SECRETHASH, "not the channel partner"),
        (True, None, 7, SECRETHASH, "is for channel 7, not 1"),
    ],
)
def test_bad_lock_refusals_are_invalid_and_change_nothing(
    with_lock: bool, sender: Address | None, channel_id: int, secrethash: SecretHash, expected: str
) -> None:
    pair = Pair()
    if with_lock:
        pair.step(pair.a, _lock_action(pair))
    before = pair.views[pair.a]
    refusal = sc.ReceiveLockRefused(sender or pair.b, channel_id, secrethash, "no")  # type: ignore[arg-type]
    events = pair.step(pair.a, refusal)
    assert pair.views[pair.a] is before
    assert len(events) == 1 and isinstance(events[0], ev.EventInvalidReceivedLockRefused)
    assert expected in events[0].reason


def test_lock_refusal_on_a_closed_channel_is_invalid() -> None:
    pair = Pair()
    pair.deliver(pair.a, _send_lock(pair))
    pair.step(pair.a, sc.ActionClose(CHANNEL_ID))
    before = pair.views[pair.a]
    events = pair.step(pair.a, sc.ReceiveLockRefused(pair.b, CHANNEL_ID, SECRETHASH, "no"))
    assert pair.views[pair.a] is before
    assert invalid_reasons(events) == ["channel is closing, not open"]
    pair.step(pair.b, sc.ActionClose(CHANNEL_ID))
    events = pair.step(pair.b, sc.ActionRefuseLock(CHANNEL_ID, SECRETHASH, "no"))
    assert isinstance(events[0], ev.EventActionFailed) and "not open" in events[0].reason


def test_a_refused_lock_stays_refused_when_its_secret_becomes_known() -> None:
    pair = Pair()
    pair.deliver(pair.a, _send_lock(pair, expiration=120))
    refusal = _refuse(pair)  # not delivered yet: Alice is slow
    # a reveal from the partner only ever concerns our own locks: nothing to unlock here
    events = pair.step(pair.b, sc.ReceiveSecretReveal(pair.a, CHANNEL_ID, SECRET))
    assert invalid_reasons(events) == ["no lock of ours is pending with this secret"]
    # we do not reveal it (the partner would unlock to us)
    events = pair.step(pair.b, sc.ActionRevealSecret(CHANNEL_ID, SECRET))
    assert isinstance(events[0], ev.EventActionFailed) and "refused" in events[0].reason
    # knowing the secret, we never register it for a refused lock
    bob = pair.views[pair.b]
    pair.views[pair.b] = replace(bob, secrets={SECRETHASH: SECRET})
    for block in range(112, 121):
        pair.block = block
        assert pair.step(pair.b, sc.Block(BlockNumber(block))) == []
    pair.views[pair.b] = bob
    # someone registers it on chain in time: learned, but no close to claim the lock
    registered = sc.ContractReceiveSecretRegistered(
        b"\x00" * 32, BlockNumber(110), SECRETHASH, SECRET
    )
    assert pair.step(pair.b, registered) == [ev.EventSecretLearned(CHANNEL_ID, SECRETHASH, SECRET)]
    for block in range(121, 140):
        pair.block = block
        assert pair.step(pair.b, sc.Block(BlockNumber(block))) == []
    assert pair.views[pair.b].refused_locks == {SECRETHASH}
    # Alice finally takes her lock back, and Bob lets it go although the secret is registered
    answer = pair.deliver(pair.b, refusal)
    received = pair.deliver(pair.a, answer[0])  # type: ignore[arg-type]
    assert received == [ev.EventLockExpired(CHANNEL_ID, pair.a, SECRETHASH, TokenAmount(10))]
    bob = pair.views[pair.b]
    assert not bob.refused_locks and not bob.partner.locks and not bob.secrets


def test_partner_may_still_unlock_a_refused_lock() -> None:
    pair = Pair()
    pair.deliver(pair.a, _send_lock(pair))
    refusal = _refuse(pair)
    unlock = pair.step(pair.a, sc.ActionUnlock(CHANNEL_ID, SECRET))[0]  # crossed the refusal
    assert isinstance(unlock, ev.SendUnlock)
    received = pair.deliver(pair.a, unlock)
    assert received == [ev.EventUnlockReceived(CHANNEL_ID, pair.a, SECRETHASH, TokenAmount(10))]
    assert not pair.views[pair.b].refused_locks  # the refusal ended with the lock
    before = pair.views[pair.a]
    late = pair.deliver(pair.b, refusal)
    assert invalid_reasons(late) == ["no lock of ours is pending with this secrethash"]
    assert pair.views[pair.a] is before


def test_a_refused_lock_is_not_claimed_after_settle() -> None:
    pair = Pair()
    pair.deliver(pair.a, _send_lock(pair, expiration=200))
    _refuse(pair)  # Alice never answers
    tx = b"\x00" * 32
    pair.step(pair.b, sc.ActionClose(CHANNEL_ID))
    pair.chain(
        sc.ContractReceiveChannelClosed(
            tx, BlockNumber(101), CHANNEL_ID, pair.b, Nonce(1), BlockNumber(151)
        )
    )
    assert pair.views[pair.b].refused_locks == {SECRETHASH}  # still refused while closed
    pair.new_block(152)
    pair.chain(
        sc.ContractReceiveChannelSettled(
            tx, BlockNumber(153), CHANNEL_ID, TokenAmount(0), TokenAmount(0)
        )
    )
    bob = pair.views[pair.b]
    assert not bob.refused_locks and not bob.unlocks_pending  # not ours to resolve
    assert pair.views[pair.a].unlocks_pending == {(pair.a, 0)}
    # knowing the secret now, Bob still does not register it: no unlock of it is pending
    pair.views[pair.b] = replace(bob, secrets={SECRETHASH: SECRET})
    assert pair.new_block(195)[pair.b] == []
    # nor does a registration by someone else make Bob claim it
    chain = pair.chain(sc.ContractReceiveSecretRegistered(tx, BlockNumber(196), SECRETHASH, SECRET))
    assert not any(isinstance(e, ev.ContractSendUnlock) for e in chain[pair.b])

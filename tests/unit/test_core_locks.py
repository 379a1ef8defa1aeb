"""Locked transfers, unlock by secret, lock expiry and secret registration in the pure core."""

from __future__ import annotations

import pytest
from core_pair import CHANNEL_ID, Pair, invalid_reasons
from msgspec.structs import replace

from channels.codec.eip712 import secrethash_of
from channels.core import events as ev
from channels.core import state_changes as sc
from channels.core.channel import get_balance
from channels.core.locktree import MAX_PENDING_LOCKS, LockTree
from channels.core.state import Lock
from channels.core.types import (
    Address,
    BlockNumber,
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
        ({"expiration": 100}, "already expired"),
    ],
)
def test_bad_locked_transfers(tamper: dict[str, object], expected: str) -> None:
    pair = Pair()
    change = pair.receive(pair.a, _send_lock(pair), **tamper)
    assert expected in _bob_rejects(pair, change, ev.EventInvalidReceivedLockedTransfer)


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

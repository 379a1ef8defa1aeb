"""The transaction manager's pure scheduler: deadline order, nonces and gaps, replacement on a
stall, confirmations, and a reorganisation sending a mined transaction again."""

from __future__ import annotations

import pytest

from channels.chain.connection import Fees
from channels.chain.txmanager import (
    PRIORITY_DEADLINE,
    PRIORITY_ROUTINE,
    PRIORITY_SETTLE,
    Job,
    Scheduler,
    Stage,
    bumped,
)

ME = b"\x11" * 20
FEES = Fees(100, 10)


def job(key: str, priority: int = PRIORITY_ROUTINE, deadline: int | None = None) -> Job:
    return Job(key=key, kind="K", function="f", to=b"\x22" * 20, data=b"", priority=priority,
               deadline=deadline, gas=50_000)  # fmt: skip


def sign(s: Scheduler, j: Job, nonce: int, fees: Fees = FEES) -> None:
    s.signed(
        j, nonce, fees, raw=f"{j.key}:{nonce}:{fees.price}".encode(), tx_hash=bytes([nonce]) * 32
    )


def test_deadlines_go_first_then_priority_then_arrival() -> None:
    s = Scheduler()
    for j in [
        job("deposit", PRIORITY_ROUTINE),
        job("settle", PRIORITY_SETTLE),
        job("update-late", PRIORITY_DEADLINE, deadline=120),
        job("register-soon", PRIORITY_DEADLINE, deadline=105),
        job("withdraw-soon", PRIORITY_SETTLE, deadline=105),
        job("update-late-2", PRIORITY_DEADLINE, deadline=120),
    ]:
        s.add(j)
    order = [j.key for j in s.to_sign()]
    assert order == [
        "register-soon",
        "withdraw-soon",
        "update-late",
        "update-late-2",
        "settle",
        "deposit",
    ]


def test_the_same_key_twice_is_one_transaction_and_the_in_flight_limit_holds() -> None:
    s = Scheduler(max_in_flight=2)
    first = s.add(job("a"))
    assert s.add(job("a")) is first and len(s) == 1
    for key in "bcd":
        s.add(job(key))
    batch = s.to_sign()
    assert [j.key for j in batch] == ["a", "b"]
    for nonce, j in enumerate(batch):
        sign(s, j, nonce)
    assert s.to_sign() == []  # two in flight: the rest wait
    s.mined(batch[0], 10, batch[0].hashes[0], True)
    assert [j.key for j in s.to_sign()] == ["c"]


def test_nonces_come_after_every_live_one_and_look_ups_follow_the_mined_count() -> None:
    s = Scheduler()
    a, b, c = (s.add(job(k)) for k in "abc")
    sign(s, a, 7)
    sign(s, b, 8)
    assert s.nonce_floor() == 9
    for j in (a, b):
        s.accepted(j, head=100)
    assert s.to_look_up(mined_count=7) == []
    assert s.to_look_up(mined_count=8) == [a]
    assert s.to_look_up(mined_count=9) == [a, b]
    assert c.stage is Stage.QUEUED and c.nonce is None


def test_a_refused_transaction_leaves_no_gap() -> None:
    s = Scheduler()
    a, b = s.add(job("a")), s.add(job("b"))
    sign(s, a, 3)
    sign(s, b, 4)
    # the last nonce handed out: the connection takes it back, nothing fills it
    assert s.refused(b, nonce_released=True, our_address=ME) is None
    assert "b" not in s.jobs
    # a nonce with a later one out: a no-op self-transfer with the same nonce fills the gap
    s.accepted(a, 10)
    c = s.add(job("c"))
    sign(s, c, 5)
    a.stage = Stage.SIGNED
    filler = s.refused(a, nonce_released=False, our_address=ME)
    assert filler is not None
    assert (filler.nonce, filler.to, filler.data, filler.value) == (3, ME, b"", 0)
    assert filler.filler and "a" not in s.jobs and filler.key in s.jobs


def test_a_stalled_transaction_is_replaced_with_the_same_nonce_and_a_higher_fee() -> None:
    s = Scheduler(stall_blocks=3)
    a = s.add(job("a"))
    sign(s, a, 0, Fees(100, 10))
    s.accepted(a, head=50)
    assert s.stalled(52) == []
    assert s.stalled(53) == [a]
    fees = bumped(a.fees or Fees(0), current=Fees(90, 10))
    assert fees is not None and fees.price >= 110 and (fees.priority_fee or 0) >= 11  # >= +10 %
    sign(s, a, 0, fees)  # a replacement: same nonce, the newest version last
    assert a.nonce == 0 and len(a.raws) == 2 and a.stage is Stage.SIGNED
    with pytest.raises(ValueError, match="must keep nonce"):
        s.signed(a, 1, fees, b"x", b"y" * 32)
    # the current fees win when the market moved above 25 % more
    assert bumped(Fees(100, 10), Fees(500, 50)) == Fees(500, 50)
    assert bumped(Fees(100, None), Fees(80, None)) == Fees(126, None)  # legacy gas price
    assert bumped(Fees(0, 0), Fees(0, 0)) is None  # no fees: nothing to bump (same bytes again)


def test_confirmations_are_counted_and_a_reorg_sends_the_transaction_again() -> None:
    s = Scheduler(confirmations=3)
    a = s.add(job("a", PRIORITY_DEADLINE, deadline=40))
    sign(s, a, 0)
    s.accepted(a, head=20)
    s.mined(a, 21, a.hashes[-1], True)
    assert s.to_confirm(23) == []  # 2 blocks on top
    assert s.to_confirm(24) == [a]
    s.dropped(a)  # the block is gone: back to "signed", the newest version goes out again
    assert a.stage is Stage.SIGNED and s.to_broadcast() == [a] and a.nonce == 0
    s.accepted(a, head=24)
    s.mined(a, 25, a.hashes[-1], True)
    assert s.to_confirm(27) == [] and s.to_confirm(28) == [a]
    s.finish(a)
    assert len(s) == 0


def test_a_nonce_taken_by_another_transaction_gets_a_new_one() -> None:
    s = Scheduler()
    a = s.add(job("a"))
    sign(s, a, 2)
    s.nonce_lost(a)
    assert a.stage is Stage.QUEUED and a.nonce is None and a.raws == [] and s.to_sign() == [a]


def test_deadlines_at_risk_are_reported_once_per_head_until_mined() -> None:
    s = Scheduler(risk_blocks=3)
    a = s.add(job("update", PRIORITY_DEADLINE, deadline=100))
    s.add(job("deposit"))
    assert s.at_risk(96) == []
    assert s.at_risk(97) == [a]
    assert s.at_risk(97) == []  # once per head
    assert s.at_risk(98) == [a]
    sign(s, a, 0)
    s.mined(a, 99, a.hashes[0], True)
    assert s.at_risk(99) == []


def test_urgency_gives_updates_their_settle_block_and_registrations_their_lock_expiry() -> None:
    from channels.chain.txmanager import urgency
    from channels.codec.eip712 import secrethash_of
    from channels.core import events as ev
    from channels.core.state import BalanceProof, ChannelState, EndState, Lock
    from channels.core.types import (
        EMPTY_LOCKS_ROOT,
        Address,
        BlockNumber,
        ChannelId,
        Nonce,
        Secret,
        SecretHash,
        TokenAmount,
    )

    secret = Secret(b"\x07" * 32)
    secrethash = SecretHash(secrethash_of(secret))
    partner = EndState(
        Address(b"\x02" * 20),
        locks={3: Lock(TokenAmount(5), BlockNumber(140), secrethash)},
        slot_of={secrethash: 3},
    )
    channel = ChannelState(
        ChannelId(9), EndState(Address(b"\x01" * 20)), partner, settle_timeout=20,
        settle_block=BlockNumber(130),
    )  # fmt: skip
    channels = {ChannelId(9): channel}
    proof = BalanceProof(ChannelId(9), Nonce(1), TokenAmount(1), TokenAmount(0), EMPTY_LOCKS_ROOT)
    update = ev.ContractSendUpdateBalanceProof(ChannelId(9), partner.address, proof)
    assert urgency(update, channels) == (PRIORITY_DEADLINE, 130)
    # the contract counts a secret registered at a block <= the lock's expiration
    assert urgency(ev.ContractSendSecretRegister(secret), channels) == (PRIORITY_DEADLINE, 140)
    deposit = ev.ContractSendChannelDeposit(ChannelId(9), partner.address, TokenAmount(10))
    assert urgency(deposit, channels) == (PRIORITY_ROUTINE, None)

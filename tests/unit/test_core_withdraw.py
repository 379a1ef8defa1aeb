"""Withdraw while open: co-signed request/confirmation, capacity, expiry, bad inputs."""

from __future__ import annotations

from core_pair import CHANNEL_ID, DOMAIN, MALLORY_KEY, Pair, invalid_reasons
from msgspec.structs import replace

from channels.codec.ecdsa import recover_signer
from channels.codec.eip712 import withdraw_digest
from channels.core import events as ev
from channels.core import state_changes as sc
from channels.core.channel import get_capacity, get_earnings
from channels.core.state import BatchedBy
from channels.core.types import BlockNumber, Signature, TokenAmount
from channels.signer import LocalSigner


def _request(pair: Pair, total: int = 300, expiry: int = 150) -> ev.SendWithdrawRequest:
    events = pair.step(
        pair.a, sc.ActionWithdraw(CHANNEL_ID, TokenAmount(total), BlockNumber(expiry))
    )
    assert isinstance(events[0], ev.SendWithdrawRequest), events
    return events[0]


def test_withdraw_roundtrip_emits_cosigned_transaction() -> None:
    pair = Pair()
    events = pair.send(pair.a, sc.ActionWithdraw(CHANNEL_ID, TokenAmount(300), BlockNumber(150)))
    tx = next(e for e in events if isinstance(e, ev.ContractSendChannelWithdraw))
    assert (tx.participant, tx.partner, tx.total_withdraw, tx.expiry) == (pair.a, pair.b, 300, 150)
    digest = withdraw_digest(DOMAIN, CHANNEL_ID, pair.a, 300, 150)
    assert tx.digest == digest and recover_signer(digest, tx.partner_signature) == pair.b
    # both sides already count the pending withdraw against Alice's capacity
    for who in (pair.a, pair.b):
        view = pair.views[who]
        alice = view.our if who == pair.a else view.partner
        bob = view.partner if who == pair.a else view.our
        assert get_capacity(alice, bob) == 700
    pair.chain(
        sc.ContractReceiveChannelWithdrawn(
            b"\x00" * 32, BlockNumber(101), CHANNEL_ID, pair.a, TokenAmount(300)
        )
    )
    alice_view = pair.views[pair.a]
    assert alice_view.our.withdrawn == 300 and alice_view.our.pending_withdraw is None
    assert pair.views[pair.b].partner.withdrawn == 300


def test_withdraw_beyond_balance_refused_and_rejected() -> None:
    pair = Pair()
    events = pair.step(pair.a, sc.ActionWithdraw(CHANNEL_ID, TokenAmount(1001), BlockNumber(150)))
    assert isinstance(events[0], ev.EventActionFailed) and "balance" in events[0].reason
    # a partner that asks anyway (its own view inflated)
    view = pair.views[pair.a]
    pair.views[pair.a] = replace(view, our=replace(view.our, deposit=TokenAmount(5000)))
    request = _request(pair, total=1001)
    before = pair.views[pair.b]
    events = pair.deliver(pair.a, request)
    assert invalid_reasons(events) == ["withdraw exceeds the sender's balance"]
    assert pair.views[pair.b] is before


def test_expired_withdraw_request_is_rejected() -> None:
    pair = Pair()
    request = _request(pair, expiry=120)
    pair.block = 121
    events = pair.deliver(pair.a, request)
    assert "expired" in invalid_reasons(events)[0]


def test_withdraw_request_with_forged_signature_is_rejected() -> None:
    pair = Pair()
    request = _request(pair)
    message = pair.to_message(pair.a, request, signer=LocalSigner(MALLORY_KEY))
    from channels import wire

    events = pair.step(pair.b, wire.to_state_change(message, pair.a))
    assert "not the partner" in invalid_reasons(events)[0]


def test_withdraw_request_for_someone_else_is_rejected() -> None:
    pair = Pair()
    request = _request(pair)
    change = pair.receive(pair.a, request, participant=pair.b)
    assert invalid_reasons(pair.step(pair.b, change)) == [
        "a withdraw request must be for the sender's own funds"
    ]


def test_confirmation_must_match_our_request() -> None:
    pair = Pair()
    _request(pair, total=300)
    digest = withdraw_digest(DOMAIN, CHANNEL_ID, pair.a, 200, 150)
    bad = sc.ReceiveWithdrawConfirmation(
        pair.b,
        CHANNEL_ID,
        pair.a,
        TokenAmount(200),
        BlockNumber(150),
        Signature(pair.bob.sign_digest(digest)),
    )
    before = pair.views[pair.a]
    assert invalid_reasons(pair.step(pair.a, bad)) == [
        "confirmation does not match our withdraw request"
    ]
    assert pair.views[pair.a] is before


def test_unexecuted_withdraw_lapses_at_expiry() -> None:
    pair = Pair()
    pair.send(pair.a, sc.ActionWithdraw(CHANNEL_ID, TokenAmount(300), BlockNumber(120)))
    pair.new_block(121)
    assert pair.views[pair.a].our.pending_withdraw is None
    assert pair.views[pair.b].partner.pending_withdraw is None
    assert get_capacity(pair.views[pair.b].partner, pair.views[pair.b].our) == 1000


def test_second_withdraw_while_one_pending_is_refused() -> None:
    pair = Pair()
    _request(pair)
    events = pair.step(pair.a, sc.ActionWithdraw(CHANNEL_ID, TokenAmount(400), BlockNumber(150)))
    assert isinstance(events[0], ev.EventActionFailed) and "already pending" in events[0].reason


# --------------------------------------------------------------------------- settlement batches


def test_a_partners_batch_withdraw_is_signed_kept_and_never_confirmed() -> None:
    """Bob asks for his withdraw in Alice's (the hub's) batch: Alice keeps his signature, sends
    no confirmation, and both count the withdraw as pending until the chain shows it."""
    pair = Pair()
    action = sc.ActionWithdraw(
        CHANNEL_ID, TokenAmount(300), BlockNumber(150), batched_by=BatchedBy.PARTNER
    )
    events = pair.send(pair.b, action)
    signed = [e for e in events if isinstance(e, ev.EventBatchWithdrawSigned)]
    assert not any(isinstance(e, ev.SendWithdrawConfirmation | ev.ContractSendChannelWithdraw)
                   for e in events)  # fmt: skip
    assert len(signed) == 1 and (signed[0].participant, signed[0].partner) == (pair.b, pair.a)
    digest = withdraw_digest(DOMAIN, CHANNEL_ID, pair.b, 300, 150)
    assert recover_signer(digest, signed[0].signature) == pair.b
    assert pair.views[pair.a].partner.pending_withdraw.batched_by is BatchedBy.US
    assert pair.views[pair.b].our.pending_withdraw.batched_by is BatchedBy.PARTNER
    assert get_capacity(pair.views[pair.a].partner, pair.views[pair.a].our) == 700
    pair.chain(sc.ContractReceiveChannelWithdrawn(
        b"\x00" * 32, BlockNumber(101), CHANNEL_ID, pair.b, TokenAmount(300)))  # fmt: skip
    assert pair.views[pair.b].our.pending_withdraw is None
    assert pair.views[pair.a].partner.withdrawn == 300


def test_our_batch_withdraw_is_confirmed_by_the_partner_but_sent_by_no_transaction() -> None:
    pair = Pair()
    action = sc.ActionWithdraw(
        CHANNEL_ID, TokenAmount(250), BlockNumber(150), batched_by=BatchedBy.US
    )
    events = pair.send(pair.a, action)
    assert not any(isinstance(e, ev.ContractSendChannelWithdraw) for e in events)
    signed = next(e for e in events if isinstance(e, ev.EventBatchWithdrawSigned))
    assert (signed.participant, signed.partner, signed.total_withdraw) == (pair.a, pair.b, 250)
    digest = withdraw_digest(DOMAIN, CHANNEL_ID, pair.a, 250, 150)
    assert recover_signer(digest, signed.signature) == pair.b  # the partner's co-signature


def test_a_confirmation_of_a_withdraw_the_partner_batches_is_rejected() -> None:
    """A hub must not confirm a batch request (the party could then send it alone and make the
    batch revert): a party receiving one anyway ignores it."""
    pair = Pair()
    pair.step(pair.b, sc.ActionWithdraw(
        CHANNEL_ID, TokenAmount(300), BlockNumber(150), batched_by=BatchedBy.PARTNER))  # fmt: skip
    confirmation = ev.SendWithdrawConfirmation(
        pair.b, CHANNEL_ID, pair.b, TokenAmount(300), BlockNumber(150),
        withdraw_digest(DOMAIN, CHANNEL_ID, pair.b, 300, 150),
    )  # fmt: skip
    events = pair.deliver(pair.a, confirmation)
    assert invalid_reasons(events) == ["no withdraw request of ours awaits confirmation"]


def test_a_batch_request_above_the_senders_balance_is_rejected_like_any_other() -> None:
    pair = Pair()
    view = pair.views[pair.b]
    pair.views[pair.b] = replace(view, our=replace(view.our, deposit=TokenAmount(5000)))
    events = pair.send(pair.b, sc.ActionWithdraw(
        CHANNEL_ID, TokenAmount(1001), BlockNumber(150), batched_by=BatchedBy.PARTNER))  # fmt: skip
    assert invalid_reasons(events) == ["withdraw exceeds the sender's balance"]
    assert pair.views[pair.a].partner.pending_withdraw is None


def test_earnings_are_what_was_received_net_never_the_deposit() -> None:
    pair = Pair()
    pair.pay(pair.a, 400, payment_id=1)
    pair.pay(pair.b, 100, payment_id=2)
    view = pair.views[pair.a]
    assert get_earnings(view.partner, view.our) == 300  # Bob: received 400, sent 100
    assert get_earnings(view.our, view.partner) == 0  # Alice paid more than she received

"""The tower's decisions, pure: which requests it holds, what chain events do to its channel
records, when it answers a close, and how several towers spread their answers."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from channels.codec.eip712 import Domain
from channels.core import state_changes as sc
from channels.core.state import BalanceProof
from channels.core.types import (
    EMPTY_LOCKS_ROOT,
    Address,
    BlockNumber,
    ChannelId,
    Nonce,
    Signature,
    TokenAmount,
)
from channels.signer import LocalSigner
from watchtower.client import monitor_request
from watchtower.core import (
    ZERO_ADDRESS,
    GuardedProof,
    Refusal,
    RequestAccepted,
    RequestRefused,
    Step,
    TowerTerms,
    WatchedChannel,
    channel_after,
    check_request,
    duty_of,
    guard_state,
    next_step,
    response_block,
)
from watchtower.messages import MonitorRequest

DOMAIN = Domain(1337, b"\x11" * 20)
GUARDED = LocalSigner(b"\x01" * 32)  # the offline party
PARTNER = LocalSigner(b"\x02" * 32)  # who pays it, and may close on it
MALLORY = LocalSigner(b"\x03" * 32)
TOWER = Address(LocalSigner(b"\x04" * 32).address)
OTHER_TOWER = Address(LocalSigner(b"\x05" * 32).address)
CHANNEL = ChannelId(7)
TERMS = TowerTerms(TOWER, DOMAIN)
HEAD = BlockNumber(100)


def _open() -> WatchedChannel:
    a, b = sorted((Address(GUARDED.address), Address(PARTNER.address)))
    return WatchedChannel(CHANNEL, a, b)


def _proof(nonce: int, transferred: int, signer: LocalSigner = PARTNER) -> BalanceProof:
    bare = BalanceProof(
        CHANNEL, Nonce(nonce), TokenAmount(transferred), TokenAmount(0), EMPTY_LOCKS_ROOT
    )
    return msgspec.structs.replace(
        bare, signature=Signature(signer.sign_digest(bare.digest(DOMAIN)))
    )


def _request(
    nonce: int = 3,
    transferred: int = 300,
    *,
    reward: int = 5,
    tower: bytes = TOWER,
    guarded: LocalSigner = GUARDED,
    partner_signer: LocalSigner = PARTNER,
) -> MonitorRequest:
    return monitor_request(
        guarded,
        DOMAIN,
        _proof(nonce, transferred, partner_signer),
        Address(PARTNER.address),
        reward,
        Address(tower),
        request_id=nonce,
    )


def _held(nonce: int = 3) -> GuardedProof:
    result = check_request(_request(nonce), TERMS, _open(), None, HEAD)
    assert isinstance(result, RequestAccepted)
    return result.proof


def _refused(result: RequestAccepted | RequestRefused) -> RequestRefused:
    assert isinstance(result, RequestRefused), result
    return result


def test_a_valid_request_is_held_with_everything_the_contract_needs() -> None:
    result = check_request(_request(3, 300), TERMS, _open(), None, HEAD)
    assert isinstance(result, RequestAccepted) and not result.duplicate
    proof = result.proof
    assert proof.key == (CHANNEL, GUARDED.address)
    assert (proof.partner, proof.nonce, proof.transferred, proof.reward) == (
        PARTNER.address,
        3,
        300,
        5,
    )
    assert proof.watchtower == TOWER


def test_a_request_for_any_tower_is_held() -> None:
    assert isinstance(
        check_request(_request(tower=ZERO_ADDRESS), TERMS, _open(), None, HEAD), RequestAccepted
    )


def test_higher_nonces_replace_lower_ones_and_stale_ones_are_refused() -> None:
    held = _held(3)
    newer = check_request(_request(4, 400), TERMS, _open(), held, HEAD)
    assert isinstance(newer, RequestAccepted) and newer.proof.nonce == 4
    stale = _refused(check_request(_request(2, 200), TERMS, _open(), held, HEAD))
    assert stale.code is Refusal.STALE_NONCE and stale.held_nonce == 3
    assert "not above the nonce 3" in stale.reason


def test_the_same_request_again_is_answered_again_but_not_stored() -> None:
    held = _held(3)
    again = check_request(_request(3), TERMS, _open(), held, HEAD)
    assert isinstance(again, RequestAccepted) and again.duplicate and again.proof is held
    other_reward = _refused(check_request(_request(3, reward=9), TERMS, _open(), held, HEAD))
    assert other_reward.code is Refusal.STALE_NONCE


@pytest.mark.parametrize(
    ("request_", "code", "words"),
    [
        (lambda: _request(tower=OTHER_TOWER), Refusal.WRONG_WATCHTOWER, "names watchtower"),
        (lambda: _request(partner_signer=MALLORY), Refusal.WRONG_SIGNER, "not by the partner"),
        (lambda: _request(guarded=MALLORY), Refusal.NOT_PARTICIPANTS, "not the participants"),
        (lambda: _request(0, 0), Refusal.MALFORMED, "nonce 0"),
    ],
)
def test_bad_requests_are_refused_with_a_reason(
    request_: Callable[[], MonitorRequest], code: Refusal, words: str
) -> None:
    refused = _refused(check_request(request_(), TERMS, _open(), None, HEAD))
    assert refused.code is code and words in refused.reason


def test_a_monitor_signature_by_someone_else_is_refused() -> None:
    request = _request()
    forged = msgspec.structs.replace(request, monitor_signature=MALLORY.sign_digest(b"\x09" * 32))
    refused = _refused(check_request(forged, TERMS, _open(), None, HEAD))
    assert refused.code is Refusal.WRONG_SIGNER and "not by the guarded party" in refused.reason


def test_a_request_whose_proof_was_changed_after_signing_is_refused() -> None:
    request = msgspec.structs.replace(_request(3, 300), transferred=(3000).to_bytes(2, "big"))
    refused = _refused(check_request(request, TERMS, _open(), None, HEAD))
    assert refused.code is Refusal.WRONG_SIGNER


def test_malformed_signatures_are_refused() -> None:
    high_s = bytearray(_request().partner_signature)
    high_s[32:64] = (2**256 - 1).to_bytes(32, "big")
    refused = _refused(
        check_request(
            msgspec.structs.replace(_request(), partner_signature=bytes(high_s)),
            TERMS,
            _open(),
            None,
            HEAD,
        )
    )
    assert refused.code is Refusal.BAD_SIGNATURE and "high" in refused.reason


def test_unknown_channels_rewards_below_the_minimum_and_late_requests_are_refused() -> None:
    assert _refused(check_request(_request(), TERMS, None, None, HEAD)).code is (
        Refusal.UNKNOWN_CHANNEL
    )
    greedy = TowerTerms(TOWER, DOMAIN, min_reward=10)
    assert _refused(check_request(_request(reward=5), greedy, _open(), None, HEAD)).code is (
        Refusal.REWARD_TOO_LOW
    )
    closed = _closed(closer=PARTNER.address, closed_at=50, settle=60)
    assert _refused(check_request(_request(), TERMS, closed, None, HEAD)).code is (
        Refusal.CHALLENGE_OVER
    )
    by_guarded = _closed(closer=GUARDED.address, closed_at=95, settle=120)
    assert _refused(check_request(_request(), TERMS, by_guarded, None, HEAD)).code is (
        Refusal.GUARDED_CLOSED
    )


def test_a_request_arriving_during_the_challenge_period_is_still_held() -> None:
    closed = _closed(closer=PARTNER.address, closed_at=95, settle=120)
    assert isinstance(check_request(_request(), TERMS, closed, None, HEAD), RequestAccepted)


# --------------------------------------------------------------------------- chain events


def _closed(closer: bytes, closed_at: int, settle: int, closer_nonce: int = 0) -> WatchedChannel:
    return msgspec.structs.replace(
        _open(),
        closer=Address(closer),
        closed_block=BlockNumber(closed_at),
        settle_block=BlockNumber(settle),
        closer_nonce=Nonce(closer_nonce),
    )


def test_chain_events_build_and_delete_the_channel_record() -> None:
    a, b = _open().participant1, _open().participant2
    opened = channel_after(
        None, sc.ContractReceiveChannelOpened(b"", BlockNumber(10), CHANNEL, a, b, 20)
    )
    assert opened == _open()
    closed = channel_after(
        opened,
        sc.ContractReceiveChannelClosed(
            b"", BlockNumber(40), CHANNEL, Address(PARTNER.address), Nonce(2), BlockNumber(60)
        ),
    )
    assert closed == _closed(PARTNER.address, 40, 60)
    updated = channel_after(
        closed,
        sc.ContractReceiveChannelBalanceProofUpdated(
            b"", BlockNumber(41), CHANNEL, Address(PARTNER.address), Nonce(3)
        ),
    )
    assert updated is not None and updated.closer_nonce == 3
    assert (
        channel_after(
            updated, sc.ContractReceiveChannelSettled(b"", BlockNumber(61), CHANNEL, 0, 0)
        )
        is None
    )
    assert (
        channel_after(
            None,
            sc.ContractReceiveChannelClosed(
                b"", BlockNumber(40), CHANNEL, Address(PARTNER.address), Nonce(0), BlockNumber(60)
            ),
        )
        is None
    )


# --------------------------------------------------------------------------- answering


def test_a_close_by_the_partner_without_our_proof_is_a_duty_within_the_period() -> None:
    channel = _closed(PARTNER.address, closed_at=100, settle=120)
    duty = duty_of(channel, _held(3), TOWER)
    assert duty is not None
    assert duty.closer == PARTNER.address and duty.deadline == 120
    assert 100 <= duty.act_at <= 110  # within the first half of the period
    assert next_step(duty, BlockNumber(duty.act_at - 1), None) is Step.WAIT
    assert next_step(duty, duty.act_at, None) is Step.SUBMIT
    assert next_step(duty, BlockNumber(duty.act_at + 1), duty.act_at) is Step.WAIT  # in flight
    assert next_step(duty, BlockNumber(duty.act_at + 3), duty.act_at) is Step.SUBMIT  # again
    assert next_step(duty, BlockNumber(121), None) is Step.TOO_LATE


def test_nothing_to_do_while_open_when_the_guarded_party_closed_or_the_chain_has_the_proof() -> (
    None
):
    assert duty_of(_open(), _held(3), TOWER) is None
    assert duty_of(_closed(GUARDED.address, 100, 120), _held(3), TOWER) is None
    assert duty_of(_closed(PARTNER.address, 100, 120, closer_nonce=3), _held(3), TOWER) is None
    assert duty_of(_closed(PARTNER.address, 100, 120, closer_nonce=2), _held(3), TOWER) is not None


def test_response_blocks_spread_towers_over_the_first_half_of_the_period() -> None:
    towers = [Address(LocalSigner(bytes([i]) * 32).address) for i in range(1, 41)]
    for channel_id in range(1, 50):
        blocks = [response_block(t, channel_id, 1000, 1020) for t in towers]
        assert all(1000 <= b <= 1010 and (b - 1000) % 2 == 0 for b in blocks)
    firsts = Counter(
        min(towers[:2], key=lambda t: response_block(t, channel_id, 1000, 1020))
        for channel_id in range(1, 200)
    )
    assert len(firsts) == 2  # each of two towers answers first for some channels
    # a short period still leaves every tower a slot inside it
    assert response_block(TOWER, 1, 1000, 1005) == 1000


def test_guard_states_for_people() -> None:
    held = _held(3)
    assert guard_state(_open(), held, HEAD, None) == "open"
    assert guard_state(_closed(PARTNER.address, 95, 120), held, HEAD, None) == (
        "closed-awaiting-turn"
    )
    assert guard_state(_closed(PARTNER.address, 95, 120), held, HEAD, BlockNumber(99)) == (
        "submitted"
    )
    assert guard_state(_closed(PARTNER.address, 95, 120, 3), held, HEAD, None) == "on-chain"
    assert guard_state(_closed(PARTNER.address, 50, 60), held, HEAD, None) == "missed"
    assert guard_state(None, held, HEAD, None) == "unknown-channel"


SIGNED_FIELDS = (
    "channel_id",
    "guarded",
    "partner",
    "nonce",
    "transferred",
    "locked",
    "locks_root",
    "partner_signature",
    "reward",
    "watchtower",
    "monitor_signature",
)


@settings(max_examples=200, deadline=None)
@given(field=st.sampled_from(SIGNED_FIELDS), position=st.integers(0, 64), bit=st.integers(0, 7))
def test_no_changed_bit_of_a_signed_field_is_ever_held(field: str, position: int, bit: int) -> None:
    """Whatever bit of whatever field changes after signing, the request is refused (the
    request id alone is free: it only matches answers to requests)."""
    request = _request(3, 300)
    value = getattr(request, field)
    if isinstance(value, int):
        changed: object = value ^ (1 << (position % 16 + bit))
    else:
        raw = bytearray(value or b"\x00")
        raw[position % len(raw)] ^= 1 << bit
        changed = bytes(raw)
    mutated = msgspec.structs.replace(request, **{field: changed})
    result = check_request(mutated, TERMS, _open(), None, HEAD)
    assert isinstance(result, RequestRefused), (field, result)

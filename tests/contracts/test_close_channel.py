"""ChannelManager.closeChannel: unilateral close with the partner's latest balance proof."""

import pytest
from cm_support import (
    SETTLE_TIMEOUT,
    UINT64_MAX,
    UINT96_MAX,
    high_s,
    recover,
)

from channels.codec import eip712

ROOT = b"\x11" * 32
ZERO = b"\0" * 32


def close_fn(chain, channel_id, partner, nonce, transferred, locked, root, sig):
    return chain.cm.functions.closeChannel(
        channel_id, partner.address, nonce, transferred, locked, root, sig
    )


def test_close_with_partner_proof(chain, pair, channel):
    p1, p2 = pair
    receipt = chain.close(p1, p2, channel, nonce=3, transferred=200, locked=50, locks_root=ROOT)
    settle_block = receipt.blockNumber + SETTLE_TIMEOUT
    assert chain.events(receipt, "ChannelClosed") == [
        {"channelId": channel, "closer": p1.address, "nonce": 3, "settleBlock": settle_block}
    ]
    state = chain.channel(channel, p1, p2)
    assert (state["state"], state["settleBlock"], state["closer"]) == (2, settle_block, p1.address)
    assert (state["deposit1"], state["deposit2"]) == (1000, 500)
    assert chain.stored_proof(channel, p2, p1) == (3, 200, 50, ROOT)
    assert chain.stored_proof(channel, p1, p2) == (0, 0, 0, ZERO)


def test_close_by_participant2_without_proof_ignores_the_signature(chain, pair, channel):
    p1, p2 = pair
    fn = close_fn(chain, channel, p1, 0, 7, 7, ROOT, b"garbage")
    receipt = chain.tx(fn, p2)
    assert chain.events(receipt, "ChannelClosed")[0]["nonce"] == 0
    assert chain.channel(channel, p1, p2)["closer"] == p2.address
    assert chain.stored_proof(channel, p1, p2) == (0, 0, 0, ZERO)


def test_close_accepts_the_largest_values(chain, pair, channel):
    p1, p2 = pair
    chain.close(
        p1,
        p2,
        channel,
        nonce=UINT64_MAX,
        transferred=UINT96_MAX,
        locked=UINT96_MAX,
        locks_root=ROOT,
    )
    assert chain.stored_proof(channel, p2, p1) == (UINT64_MAX, UINT96_MAX, UINT96_MAX, ROOT)


def test_rejects_second_close(chain, pair, channel):
    p1, p2 = pair
    chain.close(p1, p2, channel)
    chain.assert_reverts(
        close_fn(chain, channel, p1, 0, 0, 0, ZERO, b""),
        p2,
        "ChannelManagerChannelNotOpen",
        channel,
    )


def test_rejects_non_participant(chain, pair, channel):
    _, p2 = pair
    outsider = chain.actors[2]
    chain.assert_reverts(
        close_fn(chain, channel, p2, 0, 0, 0, ZERO, b""),
        outsider,
        "ChannelManagerUnknownChannel",
        channel,
        outsider.address,
        p2.address,
    )


def test_rejects_settled_channel(chain, pair, channel):
    p1, p2 = pair
    chain.close(p1, p2, channel)
    chain.mine(SETTLE_TIMEOUT + 1)
    chain.settle(channel, p1, p2)
    chain.assert_reverts(
        close_fn(chain, channel, p2, 0, 0, 0, ZERO, b""),
        p1,
        "ChannelManagerUnknownChannel",
        channel,
        p1.address,
        p2.address,
    )


def test_rejects_proof_signed_by_closer_itself(chain, pair, channel):
    p1, p2 = pair
    sig = chain.sign_proof(p1, channel, 1, 10)
    chain.assert_reverts(
        close_fn(chain, channel, p2, 1, 10, 0, ZERO, sig),
        p1,
        "ChannelManagerWrongSigner",
        p2.address,
        p1.address,
    )


def test_rejects_forged_proof(chain, pair, channel):
    p1, p2 = pair
    forger = chain.actors[2]
    sig = chain.sign_proof(forger, channel, 1, 10)
    chain.assert_reverts(
        close_fn(chain, channel, p2, 1, 10, 0, ZERO, sig),
        p1,
        "ChannelManagerWrongSigner",
        p2.address,
        forger.address,
    )


@pytest.mark.parametrize("where", ["channel", "chain", "contract", "amount"])
def test_rejects_proof_for_other_channel_domain_or_values(chain, pair, channel, where):
    p1, p2 = pair
    domain = chain.other_domains().get(where, chain.domain)
    signed_channel = channel + 1 if where == "channel" else channel
    signed_amount = 11 if where == "amount" else 10
    sig = chain.sign_proof(p2, signed_channel, 1, signed_amount, domain=domain)
    real = eip712.balance_proof_digest(chain.domain, channel, 1, 10, 0, ZERO)
    chain.assert_reverts(
        close_fn(chain, channel, p2, 1, 10, 0, ZERO, sig),
        p1,
        "ChannelManagerWrongSigner",
        p2.address,
        recover(real, sig),
    )


def test_rejects_high_s(chain, pair, channel):
    p1, p2 = pair
    sig = high_s(chain.sign_proof(p2, channel, 1, 10))
    chain.assert_reverts(
        close_fn(chain, channel, p2, 1, 10, 0, ZERO, sig), p1, "ChannelManagerInvalidSignature"
    )


def test_rejects_nonce_too_large(chain, pair, channel):
    p1, p2 = pair
    sig = chain.sign_proof(p2, channel, UINT64_MAX + 1, 10)
    chain.assert_reverts(
        close_fn(chain, channel, p2, UINT64_MAX + 1, 10, 0, ZERO, sig),
        p1,
        "ChannelManagerNonceTooLarge",
        UINT64_MAX + 1,
    )


@pytest.mark.parametrize("field", ["transferred", "locked"])
def test_rejects_amount_too_large(chain, pair, channel, field):
    p1, p2 = pair
    transferred, locked = (UINT96_MAX + 1, 0) if field == "transferred" else (0, UINT96_MAX + 1)
    sig = chain.sign_proof(p2, channel, 1, transferred, locked, ROOT)
    chain.assert_reverts(
        close_fn(chain, channel, p2, 1, transferred, locked, ROOT, sig),
        p1,
        "ChannelManagerAmountTooLarge",
        UINT96_MAX + 1,
    )

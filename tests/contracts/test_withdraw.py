"""ChannelManager.withdraw: co-signed withdraw while the channel stays open."""

import pytest
from cm_support import UINT96_MAX, high_s, raw, recover, with_v

from channels.codec import eip712


def submit(chain, channel_id, participant, partner, total, expiry, sig_a=None, sig_b=None):
    sig_a = sig_a or chain.sign_withdraw(participant, channel_id, participant, total, expiry)
    sig_b = sig_b or chain.sign_withdraw(partner, channel_id, participant, total, expiry)
    return chain.cm.functions.withdraw(
        channel_id, participant.address, partner.address, total, expiry, sig_a, sig_b
    )


def test_withdraw_credits_internal_balance_and_keeps_channel_open(chain, pair, channel):
    p1, p2 = pair
    expiry = chain.block + 5
    receipt = chain.tx(submit(chain, channel, p2, p1, 300, expiry), chain.actors[3])
    assert chain.events(receipt, "ChannelWithdrawn") == [
        {"channelId": channel, "participant": p2.address, "totalWithdraw": 300}
    ]
    assert chain.internal(p2) == 300
    state = chain.channel(channel, p1, p2)
    assert state["state"] == 1 and state["withdrawn2"] == 300 and state["withdrawn1"] == 0
    # A higher total withdraws only the increase; a participant may take more than it deposited.
    chain.tx(submit(chain, channel, p2, p1, 800, expiry), p2)
    assert chain.internal(p2) == 800
    chain.tx(submit(chain, channel, p1, p2, 700, expiry), p1)
    assert chain.internal(p1) == 700
    assert chain.channel(channel, p1, p2)["withdrawn1"] == 700


def test_withdraw_at_expiry_block_is_valid(chain, pair, channel):
    p1, p2 = pair
    fn = submit(chain, channel, p1, p2, 10, chain.block + 1)  # mined in block + 1
    chain.tx(fn, p1)
    assert chain.internal(p1) == 10


def test_rejects_expired(chain, pair, channel):
    p1, p2 = pair
    expiry = chain.block
    chain.assert_reverts(
        submit(chain, channel, p1, p2, 10, expiry), p1, "ChannelManagerWithdrawExpired", expiry
    )


@pytest.mark.parametrize("total", [200, 199])
def test_rejects_non_increasing_total(chain, pair, channel, total):
    p1, p2 = pair
    expiry = chain.block + 10
    chain.tx(submit(chain, channel, p1, p2, 200, expiry), p1)
    chain.assert_reverts(
        submit(chain, channel, p1, p2, total, expiry),
        p1,
        "ChannelManagerWithdrawNotIncreasing",
        total,
        200,
    )


def test_rejects_zero_total(chain, pair, channel):
    p1, p2 = pair
    chain.assert_reverts(
        submit(chain, channel, p1, p2, 0, chain.block + 10),
        p1,
        "ChannelManagerWithdrawNotIncreasing",
        0,
        0,
    )


def test_rejects_beyond_channel_total(chain, pair, channel):
    p1, p2 = pair
    expiry = chain.block + 10
    chain.tx(submit(chain, channel, p2, p1, 1000, expiry), p1)
    chain.assert_reverts(
        submit(chain, channel, p1, p2, 501, expiry),
        p1,
        "ChannelManagerWithdrawExceedsChannel",
        501,
        500,
    )


def test_rejects_amount_too_large(chain, pair, channel):
    p1, p2 = pair
    chain.assert_reverts(
        submit(chain, channel, p1, p2, UINT96_MAX + 1, chain.block + 10),
        p1,
        "ChannelManagerAmountTooLarge",
        UINT96_MAX + 1,
    )


def test_rejects_forged_partner_signature(chain, pair, channel):
    p1, p2 = pair
    expiry = chain.block + 10
    forger = chain.actors[2]
    forged = chain.sign_withdraw(forger, channel, p1, 10, expiry)
    chain.assert_reverts(
        submit(chain, channel, p1, p2, 10, expiry, sig_b=forged),
        p1,
        "ChannelManagerWrongSigner",
        p2.address,
        forger.address,
    )


def test_rejects_participant_signature_only(chain, pair, channel):
    p1, p2 = pair
    expiry = chain.block + 10
    own = chain.sign_withdraw(p1, channel, p1, 10, expiry)
    chain.assert_reverts(
        submit(chain, channel, p1, p2, 10, expiry, sig_a=own, sig_b=own),
        p1,
        "ChannelManagerWrongSigner",
        p2.address,
        p1.address,
    )


def test_rejects_high_s(chain, pair, channel):
    p1, p2 = pair
    expiry = chain.block + 10
    sig = high_s(chain.sign_withdraw(p2, channel, p1, 10, expiry))
    chain.assert_reverts(
        submit(chain, channel, p1, p2, 10, expiry, sig_b=sig), p1, "ChannelManagerInvalidSignature"
    )


@pytest.mark.parametrize("bad", ["v29", "v0", "short", "long"])
def test_rejects_malformed_signature(chain, pair, channel, bad):
    p1, p2 = pair
    expiry = chain.block + 10
    sig = chain.sign_withdraw(p1, channel, p1, 10, expiry)
    sig = {"v29": with_v(sig, 29), "v0": with_v(sig, 0), "short": sig[:64], "long": sig + b"\0"}[
        bad
    ]
    chain.assert_reverts(
        submit(chain, channel, p1, p2, 10, expiry, sig_a=sig), p1, "ChannelManagerInvalidSignature"
    )


@pytest.mark.parametrize("where", ["channel", "chain", "contract"])
def test_rejects_signature_for_another_domain_or_channel(chain, pair, channel, where):
    p1, p2 = pair
    expiry = chain.block + 10
    domain = chain.other_domains().get(where, chain.domain)
    signed_channel = channel + 1 if where == "channel" else channel
    sig = chain.sign_withdraw(p2, signed_channel, p1, 10, expiry, domain=domain)
    real = eip712.withdraw_digest(chain.domain, channel, raw(p1.address), 10, expiry)
    chain.assert_reverts(
        submit(chain, channel, p1, p2, 10, expiry, sig_b=sig),
        p1,
        "ChannelManagerWrongSigner",
        p2.address,
        recover(real, sig),
    )


def test_rejects_closed_channel(chain, pair, channel):
    p1, p2 = pair
    expiry = chain.block + 10
    chain.close(p1, p2, channel)
    chain.assert_reverts(
        submit(chain, channel, p1, p2, 10, expiry), p1, "ChannelManagerChannelNotOpen", channel
    )


def test_rejects_non_participant(chain, pair, channel):
    p1, _ = pair
    outsider = chain.actors[2]
    expiry = chain.block + 10
    chain.assert_reverts(
        submit(chain, channel, p1, outsider, 10, expiry),
        p1,
        "ChannelManagerUnknownChannel",
        channel,
        p1.address,
        outsider.address,
    )

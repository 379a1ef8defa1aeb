"""ChannelManager.cooperativeClose: instant close with both participants' signatures."""

import pytest
from cm_support import high_s, recover

from channels.codec import eip712


def coop(chain, channel_id, p1, p2, b1, b2, sig1=None, sig2=None):
    sig1 = sig1 or chain.sign_coop(p1, channel_id, b1, b2)
    sig2 = sig2 or chain.sign_coop(p2, channel_id, b1, b2)
    return chain.cm.functions.cooperativeClose(
        channel_id, p1.address, p2.address, b1, b2, sig1, sig2
    )


def test_close_credits_both_and_deletes_the_channel(chain, pair, channel):
    p1, p2 = pair
    receipt = chain.tx(coop(chain, channel, p1, p2, 900, 600), chain.actors[4])
    assert chain.events(receipt, "ChannelCooperativelyClosed") == [
        {"channelId": channel, "balance1": 900, "balance2": 600}
    ]
    assert (chain.internal(p1), chain.internal(p2)) == (900, 600)
    assert chain.channel(channel, p1, p2)["state"] == 0
    assert chain.channel(channel, p1, p2)["deposit1"] == 0


def test_close_with_a_zero_balance(chain, pair, channel):
    p1, p2 = pair
    chain.tx(coop(chain, channel, p1, p2, 0, 1500), p1)
    assert (chain.internal(p1), chain.internal(p2)) == (0, 1500)


def test_close_after_withdraw_uses_the_remaining_total(chain, pair, channel):
    p1, p2 = pair
    expiry = chain.block + 10
    sig_a = chain.sign_withdraw(p1, channel, p1, 400, expiry)
    sig_b = chain.sign_withdraw(p2, channel, p1, 400, expiry)
    chain.tx(
        chain.cm.functions.withdraw(channel, p1.address, p2.address, 400, expiry, sig_a, sig_b), p1
    )
    chain.assert_reverts(
        coop(chain, channel, p1, p2, 1000, 500),
        p1,
        "ChannelManagerBalancesMismatch",
        1000,
        500,
        1100,
    )
    chain.tx(coop(chain, channel, p1, p2, 600, 500), p1)
    assert (chain.internal(p1), chain.internal(p2)) == (1000, 500)
    assert chain.channel(channel, p1, p2)["withdrawn1"] == 0  # withdrawn slot deleted too


@pytest.mark.parametrize(("b1", "b2"), [(900, 599), (900, 601), (1501, 0), (2**256 - 1, 1502)])
def test_rejects_balances_not_summing_to_total(chain, pair, channel, b1, b2):
    p1, p2 = pair
    chain.assert_reverts(
        coop(chain, channel, p1, p2, b1, b2), p1, "ChannelManagerBalancesMismatch", b1, b2, 1500
    )


def test_rejects_unordered_participants(chain, pair, channel):
    p1, p2 = pair
    sig1, sig2 = chain.sign_coop(p1, channel, 900, 600), chain.sign_coop(p2, channel, 900, 600)
    fn = chain.cm.functions.cooperativeClose(channel, p2.address, p1.address, 600, 900, sig2, sig1)
    chain.assert_reverts(fn, p1, "ChannelManagerInvalidParticipants", p2.address, p1.address)


def test_rejects_signatures_swapped(chain, pair, channel):
    p1, p2 = pair
    sig1, sig2 = chain.sign_coop(p1, channel, 900, 600), chain.sign_coop(p2, channel, 900, 600)
    chain.assert_reverts(
        coop(chain, channel, p1, p2, 900, 600, sig1=sig2, sig2=sig1),
        p1,
        "ChannelManagerWrongSigner",
        p1.address,
        p2.address,
    )


def test_rejects_forged_signature(chain, pair, channel):
    p1, p2 = pair
    forger = chain.actors[2]
    forged = chain.sign_coop(forger, channel, 900, 600)
    chain.assert_reverts(
        coop(chain, channel, p1, p2, 900, 600, sig2=forged),
        p1,
        "ChannelManagerWrongSigner",
        p2.address,
        forger.address,
    )


def test_rejects_signature_of_other_balances(chain, pair, channel):
    p1, p2 = pair
    other = chain.sign_coop(p2, channel, 1500, 0)
    real = eip712.cooperative_close_digest(chain.domain, channel, 900, 600)
    chain.assert_reverts(
        coop(chain, channel, p1, p2, 900, 600, sig2=other),
        p1,
        "ChannelManagerWrongSigner",
        p2.address,
        recover(real, other),
    )


@pytest.mark.parametrize("where", ["channel", "chain", "contract"])
def test_rejects_signature_for_another_domain_or_channel(chain, pair, channel, where):
    p1, p2 = pair
    domain = chain.other_domains().get(where, chain.domain)
    signed_channel = channel + 1 if where == "channel" else channel
    sig = chain.sign_coop(p1, signed_channel, 900, 600, domain=domain)
    real = eip712.cooperative_close_digest(chain.domain, channel, 900, 600)
    chain.assert_reverts(
        coop(chain, channel, p1, p2, 900, 600, sig1=sig),
        p1,
        "ChannelManagerWrongSigner",
        p1.address,
        recover(real, sig),
    )


def test_rejects_high_s(chain, pair, channel):
    p1, p2 = pair
    sig = high_s(chain.sign_coop(p1, channel, 900, 600))
    chain.assert_reverts(
        coop(chain, channel, p1, p2, 900, 600, sig1=sig), p1, "ChannelManagerInvalidSignature"
    )


def test_rejects_second_close(chain, pair, channel):
    p1, p2 = pair
    chain.tx(coop(chain, channel, p1, p2, 900, 600), p1)
    chain.assert_reverts(
        coop(chain, channel, p1, p2, 900, 600),
        p1,
        "ChannelManagerUnknownChannel",
        channel,
        p1.address,
        p2.address,
    )


def test_rejects_closed_channel(chain, pair, channel):
    p1, p2 = pair
    chain.close(p1, p2, channel)
    chain.assert_reverts(
        coop(chain, channel, p1, p2, 900, 600), p1, "ChannelManagerChannelNotOpen", channel
    )


def test_rejects_non_participants(chain, pair, channel):
    p1, _ = pair
    outsider = chain.actors[2]
    a, b = sorted([p1, outsider], key=lambda x: int(x.address, 16))
    chain.assert_reverts(
        coop(chain, channel, a, b, 900, 600),
        p1,
        "ChannelManagerUnknownChannel",
        channel,
        a.address,
        b.address,
    )

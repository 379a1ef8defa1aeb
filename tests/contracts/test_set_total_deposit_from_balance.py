"""ChannelManager.setTotalDepositFromBalance: top up an open channel from the internal balance."""

from cm_support import UINT96_MAX


def test_top_up_from_internal_balance(chain, pair, channel):
    p1, p2 = pair
    chain.tx(chain.cm.functions.depositToBalance(600), p2)
    receipt = chain.tx(chain.cm.functions.setTotalDepositFromBalance(channel, p1.address, 900), p2)
    assert chain.events(receipt, "ChannelDeposited") == [
        {"channelId": channel, "participant": p2.address, "totalDeposit": 900}
    ]
    assert chain.internal(p2) == 200
    assert chain.channel(channel, p1, p2)["deposit2"] == 900


def test_rejects_insufficient_balance(chain, pair, channel):
    p1, p2 = pair
    chain.tx(chain.cm.functions.depositToBalance(100), p2)
    chain.assert_reverts(
        chain.cm.functions.setTotalDepositFromBalance(channel, p1.address, 601),
        p2,
        "ChannelManagerInsufficientBalance",
        p2.address,
        100,
        101,
    )


def test_rejects_not_increasing(chain, pair, channel):
    p1, p2 = pair
    chain.assert_reverts(
        chain.cm.functions.setTotalDepositFromBalance(channel, p1.address, 500),
        p2,
        "ChannelManagerDepositNotIncreasing",
        500,
        500,
    )


def test_rejects_closed_channel(chain, pair, channel):
    p1, p2 = pair
    chain.close(p2, p1, channel)
    chain.assert_reverts(
        chain.cm.functions.setTotalDepositFromBalance(channel, p1.address, 600),
        p2,
        "ChannelManagerChannelNotOpen",
        channel,
    )


def test_rejects_non_participant(chain, pair, channel):
    _, p2 = pair
    outsider = chain.actors[2]
    chain.assert_reverts(
        chain.cm.functions.setTotalDepositFromBalance(channel, p2.address, 600),
        outsider,
        "ChannelManagerUnknownChannel",
        channel,
        outsider.address,
        p2.address,
    )


def test_rejects_amount_too_large(chain, pair, channel):
    p1, p2 = pair
    chain.assert_reverts(
        chain.cm.functions.setTotalDepositFromBalance(channel, p1.address, UINT96_MAX + 1),
        p2,
        "ChannelManagerAmountTooLarge",
        UINT96_MAX + 1,
    )

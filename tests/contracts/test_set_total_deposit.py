"""ChannelManager.setTotalDeposit: top up an open channel from ERC20."""

from cm_support import ALLOWANCE, UINT96_MAX


def test_top_up_by_each_participant(chain, pair):
    p1, p2 = pair
    channel_id = chain.open(p1, p2, 100)
    before = chain.tokens(p1)
    receipt = chain.tx(chain.cm.functions.setTotalDeposit(channel_id, p2.address, 250), p1)
    assert chain.events(receipt, "ChannelDeposited") == [
        {"channelId": channel_id, "participant": p1.address, "totalDeposit": 250}
    ]
    assert chain.tokens(p1) == before - 150
    chain.tx(chain.cm.functions.setTotalDeposit(channel_id, p1.address, 70), p2)
    state = chain.channel(channel_id, p1, p2)
    assert (state["deposit1"], state["deposit2"]) == (250, 70)


def test_repeating_the_same_total_deposits_nothing_twice(chain, pair, channel):
    p1, p2 = pair
    chain.assert_reverts(
        chain.cm.functions.setTotalDeposit(channel, p2.address, 1000),
        p1,
        "ChannelManagerDepositNotIncreasing",
        1000,
        1000,
    )


def test_rejects_lower_total(chain, pair, channel):
    p1, p2 = pair
    chain.assert_reverts(
        chain.cm.functions.setTotalDeposit(channel, p1.address, 499),
        p2,
        "ChannelManagerDepositNotIncreasing",
        499,
        500,
    )


def test_rejects_non_participant(chain, pair, channel):
    _, p2 = pair
    outsider = chain.actors[2]
    chain.assert_reverts(
        chain.cm.functions.setTotalDeposit(channel, p2.address, 5000),
        outsider,
        "ChannelManagerUnknownChannel",
        channel,
        outsider.address,
        p2.address,
    )


def test_rejects_unknown_channel(chain, pair, channel):
    p1, p2 = pair
    chain.assert_reverts(
        chain.cm.functions.setTotalDeposit(channel + 100, p2.address, 5000),
        p1,
        "ChannelManagerUnknownChannel",
        channel + 100,
        p1.address,
        p2.address,
    )


def test_rejects_closed_channel(chain, pair, channel):
    p1, p2 = pair
    chain.close(p1, p2, channel)
    chain.assert_reverts(
        chain.cm.functions.setTotalDeposit(channel, p2.address, 5000),
        p1,
        "ChannelManagerChannelNotOpen",
        channel,
    )


def test_rejects_amount_too_large(chain, pair, channel):
    p1, p2 = pair
    chain.assert_reverts(
        chain.cm.functions.setTotalDeposit(channel, p2.address, UINT96_MAX + 1),
        p1,
        "ChannelManagerAmountTooLarge",
        UINT96_MAX + 1,
    )


def test_rejects_beyond_allowance(chain, pair, channel):
    p1, p2 = pair
    chain.assert_reverts(
        chain.cm.functions.setTotalDeposit(channel, p2.address, 1000 + ALLOWANCE),
        p1,
        "ERC20InsufficientAllowance",
        chain.cm.address,
        ALLOWANCE - 1000,
        ALLOWANCE,
        contract=chain.token,
    )

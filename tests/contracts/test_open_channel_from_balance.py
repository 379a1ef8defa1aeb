"""ChannelManager.openChannelFromBalance: open with a deposit from the internal balance."""

from cm_support import UINT96_MAX


def test_open_from_balance_debits_internal_balance(chain, pair):
    p1, p2 = pair
    chain.tx(chain.cm.functions.depositToBalance(1000), p2)
    tokens = chain.tokens(p2)
    receipt = chain.tx(chain.cm.functions.openChannelFromBalance(p1.address, 400), p2)
    [event] = chain.events(receipt, "ChannelOpened")
    assert event["deposit"] == 400 and event["opener"] == p2.address
    assert chain.internal(p2) == 600
    assert chain.tokens(p2) == tokens
    assert chain.channel(event["channelId"], p1, p2)["deposit2"] == 400


def test_open_from_balance_with_zero_deposit(chain, pair):
    p1, p2 = pair
    receipt = chain.tx(chain.cm.functions.openChannelFromBalance(p2.address, 0), p1)
    [event] = chain.events(receipt, "ChannelOpened")
    assert chain.channel(event["channelId"], p1, p2)["state"] == 1


def test_rejects_insufficient_balance(chain, pair):
    p1, p2 = pair
    chain.tx(chain.cm.functions.depositToBalance(10), p1)
    chain.assert_reverts(
        chain.cm.functions.openChannelFromBalance(p2.address, 11),
        p1,
        "ChannelManagerInsufficientBalance",
        p1.address,
        10,
        11,
    )


def test_rejects_self_channel(chain, pair):
    p1, _ = pair
    chain.assert_reverts(
        chain.cm.functions.openChannelFromBalance(p1.address, 0),
        p1,
        "ChannelManagerInvalidParticipants",
        p1.address,
        p1.address,
    )


def test_rejects_amount_too_large(chain, pair):
    p1, p2 = pair
    chain.assert_reverts(
        chain.cm.functions.openChannelFromBalance(p2.address, UINT96_MAX + 1),
        p1,
        "ChannelManagerInsufficientBalance",
        p1.address,
        0,
        UINT96_MAX + 1,
    )

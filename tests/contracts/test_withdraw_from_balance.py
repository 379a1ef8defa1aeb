"""ChannelManager.withdrawFromBalance: internal balance out to ERC20."""

ZERO_ADDRESS = "0x" + "00" * 20


def test_withdraw_to_another_address(chain, pair):
    p1, p2 = pair
    chain.tx(chain.cm.functions.depositToBalance(300), p1)
    before = chain.tokens(p2)
    receipt = chain.tx(chain.cm.functions.withdrawFromBalance(120, p2.address), p1)
    assert chain.events(receipt, "BalanceWithdrawn") == [
        {"account": p1.address, "to": p2.address, "amount": 120}
    ]
    assert chain.internal(p1) == 180
    assert chain.tokens(p2) == before + 120


def test_withdraw_everything(chain, pair):
    p1, _ = pair
    chain.tx(chain.cm.functions.depositToBalance(300), p1)
    chain.tx(chain.cm.functions.withdrawFromBalance(300, p1.address), p1)
    assert chain.internal(p1) == 0


def test_rejects_more_than_balance(chain, pair):
    p1, _ = pair
    chain.tx(chain.cm.functions.depositToBalance(300), p1)
    chain.assert_reverts(
        chain.cm.functions.withdrawFromBalance(301, p1.address),
        p1,
        "ChannelManagerInsufficientBalance",
        p1.address,
        300,
        301,
    )


def test_rejects_zero_amount(chain, pair):
    p1, _ = pair
    chain.assert_reverts(
        chain.cm.functions.withdrawFromBalance(0, p1.address), p1, "ChannelManagerZeroAmount"
    )


def test_rejects_zero_recipient(chain, pair):
    p1, _ = pair
    chain.tx(chain.cm.functions.depositToBalance(300), p1)
    chain.assert_reverts(
        chain.cm.functions.withdrawFromBalance(1, ZERO_ADDRESS), p1, "ChannelManagerZeroAddress"
    )

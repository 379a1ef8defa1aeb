"""ChannelManager.depositToBalance: ERC20 into the internal balance."""

from cm_support import ALLOWANCE


def test_deposit_credits_internal_balance(chain, pair):
    p1, _ = pair
    before = chain.tokens(p1)
    receipt = chain.tx(chain.cm.functions.depositToBalance(250), p1)
    assert chain.events(receipt, "BalanceDeposited") == [{"account": p1.address, "amount": 250}]
    assert chain.internal(p1) == 250
    assert chain.tokens(p1) == before - 250
    chain.tx(chain.cm.functions.depositToBalance(50), p1)
    assert chain.internal(p1) == 300


def test_rejects_zero_amount(chain, pair):
    p1, _ = pair
    chain.assert_reverts(chain.cm.functions.depositToBalance(0), p1, "ChannelManagerZeroAmount")


def test_rejects_beyond_allowance(chain, pair):
    p1, _ = pair
    chain.assert_reverts(
        chain.cm.functions.depositToBalance(ALLOWANCE + 1),
        p1,
        "ERC20InsufficientAllowance",
        chain.cm.address,
        ALLOWANCE,
        ALLOWANCE + 1,
        contract=chain.token,
    )

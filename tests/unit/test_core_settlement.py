"""The settlement arithmetic (docs/protocol.md) and the cooperative-close balances built on it."""

from __future__ import annotations

from core_pair import Pair
from hypothesis import given, settings
from hypothesis import strategies as st

from channels.core.channel import cooperative_close_balances
from channels.core.settlement import Settlement, settle_amounts

amounts = st.integers(min_value=0, max_value=10**9)


def test_worked_examples() -> None:
    # plain: 100 + 50 deposited, 1 sent 30 to 2, 2 sent 10 to 1
    assert settle_amounts(100, 0, 30, 0, 50, 0, 10, 0) == Settlement(80, 70, 0, 0)
    # withdrawals come off the total and the withdrawer's share
    assert settle_amounts(100, 20, 30, 0, 50, 5, 10, 0) == Settlement(60, 65, 0, 0)
    # an over-claiming proof is clamped to the total, never below zero
    assert settle_amounts(10, 0, 0, 0, 10, 0, 50, 0) == Settlement(20, 0, 0, 0)
    assert settle_amounts(10, 0, 50, 0, 10, 0, 0, 0) == Settlement(0, 20, 0, 0)
    # outgoing locks are held back from the sender's share, capped by it
    assert settle_amounts(100, 0, 30, 25, 50, 0, 10, 0) == Settlement(55, 70, 25, 0)
    assert settle_amounts(10, 0, 0, 0, 10, 0, 15, 9) == Settlement(20, 0, 0, 0)
    assert settle_amounts(10, 0, 0, 0, 10, 0, 5, 9) == Settlement(15, 0, 0, 5)


@settings(max_examples=300, deadline=None)
@given(amounts, amounts, amounts, amounts, amounts, amounts, amounts, amounts)
def test_nothing_is_created_or_lost(
    d1: int, w1: int, t1: int, l1: int, d2: int, w2: int, t2: int, l2: int
) -> None:
    w1, w2 = min(w1, d1), min(w2, d2)
    result = settle_amounts(d1, w1, t1, l1, d2, w2, t2, l2)
    assert min(result) >= 0
    assert sum(result) == d1 + d2 - w1 - w2
    assert result.locked1 <= l1 and result.locked2 <= l2


def test_cooperative_close_balances_follow_address_order() -> None:
    pair = Pair(deposit_a=100, deposit_b=50)
    pair.pay(pair.a, 30)
    alice_first = pair.a < pair.b
    expected = (70, 80) if alice_first else (80, 70)
    assert cooperative_close_balances(pair.views[pair.a]) == expected
    assert cooperative_close_balances(pair.views[pair.b]) == expected

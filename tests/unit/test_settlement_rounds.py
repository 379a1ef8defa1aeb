"""The pure decisions of a settlement round: transactions, affordable re-deposits, recovery after
a crash, the non-signer deadline and the round's outcome."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from settlement.batch import DepositItem, WithdrawItem
from settlement.planner import Redeposit
from settlement.rounds import (
    ITEM_GAS,
    Recovery,
    SignedItem,
    affordable,
    hub_funds,
    items_per_transaction,
    outcome,
    overdue,
    recover,
    transaction_gas,
    transactions,
)

HUB = b"\x01" * 20
SIG = b"\x02" * 65


def signed(channel_id: int, recipient: bytes, amount: int = 10) -> SignedItem:
    partner = HUB if recipient != HUB else b"\x09" * 20
    return SignedItem(WithdrawItem(channel_id, recipient, partner, amount), amount, SIG)


def test_items_go_by_recipient_in_chunks_that_fit_a_block_and_deposits_go_last() -> None:
    per_tx = items_per_transaction(30_000_000)
    assert transaction_gas(per_tx, 0) <= 30_000_000 * 0.8
    items = [signed(n, bytes([n % 7 + 2]) * 20) for n in range(1, per_tx + 6)]
    deposits = [DepositItem(1, b"\x03" * 20, 50)]
    txs = transactions(items, deposits, 30_000_000)
    assert [len(t.items) for t in txs] == [per_tx, 5]
    assert txs[0].deposits == () and txs[1].deposits == tuple(deposits)
    flat = [s.item.participant for t in txs for s in t.items]
    assert flat == sorted(flat)  # each recipient's balance is written once per transaction
    assert {s.item.channel_id for t in txs for s in t.items} == set(range(1, per_tx + 6))


def test_deposits_alone_and_a_duplicate_item_and_a_tiny_block() -> None:
    [only] = transactions([], [DepositItem(1, b"\x03" * 20, 50)], 30_000_000)
    assert only.items == () and len(only.deposits) == 1
    with pytest.raises(ValueError, match="twice"):
        transactions([signed(1, HUB), signed(1, HUB)], [], 30_000_000)
    with pytest.raises(ValueError, match="fits no settlement item"):
        items_per_transaction(ITEM_GAS)


def test_only_whole_redeposits_the_hub_can_afford_in_order() -> None:
    planned = [Redeposit(1, 100, 100), Redeposit(2, 60, 60), Redeposit(3, 10, 10)]
    assert affordable(planned, 159) == (planned[0],)  # the second does not fit: stop there
    assert affordable(planned, 170) == tuple(planned)
    with pytest.raises(ValueError):
        affordable(planned, -1)
    assert hub_funds(5, [signed(1, HUB, 7), signed(2, b"\x05" * 20, 9)], HUB) == 12


def test_recovery_never_resends_what_the_chain_shows() -> None:
    assert recover([10, 20], [10, 20], expiry=5, block_number=9) is Recovery.APPLIED
    assert recover([0, 20], [10, 20], expiry=50, block_number=9) is Recovery.STALE
    assert recover([0, 0], [10, 20], expiry=50, block_number=9) is Recovery.RESEND
    assert recover([0, 0], [10, 20], expiry=8, block_number=9) is Recovery.EXPIRED
    with pytest.raises(ValueError):
        recover([0], [1, 2], expiry=1, block_number=1)


@given(st.lists(st.tuples(st.integers(0, 100), st.integers(1, 100)), min_size=1, max_size=8),
       st.integers(0, 100), st.integers(0, 100))  # fmt: skip
def test_recovery_resends_only_when_nothing_landed(
    rows: list[tuple[int, int]], expiry: int, block: int
) -> None:
    on_chain, totals = zip(*rows, strict=True)
    decision = recover(on_chain, totals, expiry=expiry, block_number=block)
    landed = [c >= t for c, t in rows]
    assert (decision is Recovery.RESEND) == (not any(landed) and block <= expiry)
    assert (decision is Recovery.APPLIED) == all(landed)


def test_deadline_and_outcome() -> None:
    assert overdue(100.0, 200.0, 100.0) and not overdue(100.0, 199.0, 100.0)
    assert not overdue(0.0, 1e9, 0.0)  # 0: never close
    assert outcome(0, 0, 0, []) == "empty"
    assert outcome(3, 0, 0, []) == "unsigned"
    assert outcome(3, 3, 1, ["applied", "applied"]) == "settled"
    assert outcome(3, 2, 0, ["applied"]) == "partial"
    assert outcome(3, 3, 0, ["applied", "reverted"]) == "partial"
    assert outcome(3, 3, 0, ["reverted"]) == "failed"

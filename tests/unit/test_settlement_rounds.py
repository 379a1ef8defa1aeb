"""The pure decisions of a settlement round: transactions, affordable re-deposits, recovery after
a crash, the non-signer deadline and the round's outcome."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from settlement.batch import DepositItem, WithdrawItem
from settlement.planner import Redeposit
from settlement.rounds import (
    BatchTransaction,
    Recovery,
    SignedItem,
    Verdict,
    affordable,
    after_failure,
    expired,
    gas_budget,
    hub_funds,
    judge,
    outcome,
    overdue,
    recover,
    split,
    transactions,
    with_margin,
)

HUB = b"\x01" * 20
SIG = b"\x02" * 65


def signed(channel_id: int, recipient: bytes, amount: int = 10) -> SignedItem:
    partner = HUB if recipient != HUB else b"\x09" * 20
    return SignedItem(WithdrawItem(channel_id, recipient, partner, amount), amount, SIG)


def test_the_first_attempt_is_one_transaction_by_recipient_with_deposits_last() -> None:
    items = [signed(n, bytes([n % 7 + 2]) * 20) for n in range(1, 60)]
    deposits = [DepositItem(1, b"\x03" * 20, 50)]
    [tx] = transactions(items, deposits)
    flat = [s.item.participant for s in tx.items]
    assert flat == sorted(flat)  # each recipient's balance is written once per transaction
    assert {s.item.channel_id for s in tx.items} == set(range(1, 60))
    assert tx.deposits == tuple(deposits) and tx.size == 60
    [only] = transactions([], deposits)
    assert only.items == () and len(only.deposits) == 1
    assert transactions([], []) == ()
    with pytest.raises(ValueError, match="twice"):
        transactions([signed(1, HUB), signed(1, HUB)], [])


def test_gas_is_the_estimate_plus_a_fifth_within_a_share_of_the_block() -> None:
    assert with_margin(100_000) == 120_000 and with_margin(1) == 2  # never below the estimate
    budget = gas_budget(30_000_000)
    assert budget == 24_000_000
    many = BatchTransaction(tuple(signed(n, HUB) for n in range(1, 5)), ())
    one = BatchTransaction((signed(1, HUB),), ())
    assert judge(many, budget * 5 // 6, budget) is Verdict.SEND
    assert judge(many, budget * 5 // 6 + 1, budget) is Verdict.SPLIT  # too big with the margin
    assert judge(many, None, budget) is Verdict.SPLIT  # it reverts (or needs more than a block)
    assert judge(one, None, budget) is Verdict.EXCLUDE
    assert judge(one, budget, budget) is Verdict.EXCLUDE
    # a transaction that failed on chain is never sent again as it was
    assert after_failure(many) is Verdict.SPLIT and after_failure(one) is Verdict.EXCLUDE


def _flat(txs: tuple[BatchTransaction, ...]) -> tuple[list[SignedItem], list[DepositItem]]:
    return [s for t in txs for s in t.items], [d for t in txs for d in t.deposits]


@given(st.integers(0, 9), st.integers(0, 4))
def test_a_split_keeps_every_item_once_in_order_with_deposits_after_the_withdraws(
    n_items: int, n_deposits: int
) -> None:
    items = tuple(signed(n, bytes([n + 2]) * 20) for n in range(1, n_items + 1))
    deposits = tuple(DepositItem(n, b"\x03" * 20, 50) for n in range(1, n_deposits + 1))
    tx = BatchTransaction(items, deposits)
    if tx.size < 2:
        with pytest.raises(ValueError):
            split(tx)
        return
    first, second = split(tx)
    assert first.size >= 1 and second.size >= 1
    assert _flat((first, second)) == (list(items), list(deposits))
    assert not first.deposits or not second.items  # re-deposits never before a withdraw


def test_a_batch_past_its_expiry_is_not_sent() -> None:
    assert not expired(10, 9) and expired(10, 10) and expired(10, 11)


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

    def status(planned: int, deposits: int, sent: bool, landed: int, dep_landed: int) -> str:
        return outcome(planned=planned, deposits=deposits, sent=sent, landed=landed,
                       deposits_landed=dep_landed)  # fmt: skip

    assert status(0, 0, False, 0, 0) == "empty"
    assert status(3, 0, False, 0, 0) == "unsigned"
    assert status(3, 1, True, 3, 1) == "settled"  # a failed then split transaction is no matter
    assert status(3, 0, True, 2, 0) == "partial"
    assert status(3, 1, True, 3, 0) == "partial"
    assert status(3, 0, True, 0, 0) == "failed"

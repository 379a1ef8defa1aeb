"""The fees a transaction is sent with (`pick_fees`): legacy, EIP-1559, and free gas."""

from __future__ import annotations

from channels.chain.connection import DEFAULT_PRIORITY_FEE, Fees, pick_fees
from channels.chain.txmanager import bumped

GWEI = 10**9


def test_a_legacy_chain_pays_the_nodes_gas_price() -> None:
    assert pick_fees(None, 3 * GWEI, DEFAULT_PRIORITY_FEE) == Fees(3 * GWEI, None)


def test_an_eip1559_chain_pays_up_to_twice_the_base_fee_plus_the_tip() -> None:
    assert pick_fees(5 * GWEI, 7 * GWEI, GWEI) == Fees(11 * GWEI, GWEI)


def test_free_gas_sends_zero_fees_legacy_or_eip1559() -> None:
    # Besu QBFT / GoQuorum: base fee 0 and gas price 0 (or no base fee and gas price 0)
    assert pick_fees(0, 0, DEFAULT_PRIORITY_FEE) == Fees(0, 0)
    assert pick_fees(None, 0, DEFAULT_PRIORITY_FEE) == Fees(0, None)
    # a zero base fee but a node asking a small tip: that tip, no more than ours
    assert pick_fees(0, 5, DEFAULT_PRIORITY_FEE) == Fees(5, 5)
    assert pick_fees(0, 50 * GWEI, GWEI) == Fees(GWEI, GWEI)


def test_a_zero_fee_transaction_is_never_replaced_by_a_same_fee_one() -> None:
    # nodes refuse a same-fee replacement as underpriced: the manager re-sends the same bytes
    assert bumped(Fees(0, 0), pick_fees(0, 0, GWEI)) is None
    assert bumped(Fees(0, None), pick_fees(None, 0, GWEI)) is None
    # the chain started charging: a real replacement, at least the current fees
    assert bumped(Fees(0, 0), pick_fees(GWEI, GWEI, GWEI)) == Fees(3 * GWEI, GWEI)

"""`assets.pool_payments` (pure core) and `assets.audit.check_pool_payments`: what the ledger says
the agent kept for each financing pool, what is due given what the chain shows paid and what the
internal balance holds, and the financier's check of kept against paid."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from assets.audit import check_pool_payments
from assets.ledger import (
    GENESIS_PREV_HASH,
    AdmissionBody,
    LedgerError,
    SignedEntry,
    make_entry,
    make_use_entry,
    use_body,
)
from assets.payment_ids import charge_payment_id, share_payment_id
from assets.pool_payments import amounts_due, kept_totals, pool_shares
from channels.codec.eip712 import Domain
from channels.codec.keccak import keccak
from channels.core.splits import Split, split_fee
from channels.core.types import Address
from channels.signer import LocalSigner

AGENT = LocalSigner(keccak(b"pool payments agent"))
DOMAIN = Domain(1337, b"\x5f" * 20)
ASSET = keccak(b"financed washer")
OTHER_ASSET = keccak(b"another washer")
POOL_A, SERVICER, POOL_B = (Address(bytes([n]) * 20) for n in (0x10, 0x30, 0x50))
SPLIT = Split(1, (POOL_A, SERVICER, POOL_B), (200_000, 500_000, 300_000))
KEPT = frozenset({POOL_A, POOL_B})
FEES = (1_000_003, 2_500_001, 777_777, 10, 1)


def ledger(
    fees: tuple[int, ...] = FEES,
    *,
    kept: frozenset[bytes] = KEPT,
    asset_id: bytes = ASSET,
    admission_at: int | None = None,
) -> list[SignedEntry]:
    """Uses of `fees` as the asset agent writes them: kept beneficiaries' shares with payment id 0,
    the others' with a share payment id; an admission after seq `admission_at` when given."""
    entries: list[SignedEntry] = []
    routed = 0

    def append(body: Any) -> None:
        seq = len(entries) + 1
        maker = make_entry if isinstance(body, AdmissionBody) else make_use_entry
        entries.append(
            maker(
                AGENT.sign_digest,
                DOMAIN,
                asset_id=asset_id,
                seq=seq,
                prev_hash=entries[-1].entry_hash if entries else GENESIS_PREV_HASH,
                time=1_767_225_600 + seq,
                body=body,
            )
        )

    for n, fee in enumerate(fees, start=1):
        ids = []
        for beneficiary, amount in zip(SPLIT.beneficiaries, split_fee(fee, SPLIT), strict=True):
            if amount == 0 or beneficiary in kept:
                ids.append(0)
            else:
                routed += 1
                ids.append(share_payment_id(1 + SPLIT.beneficiaries.index(beneficiary), routed))
        append(
            use_body(
                event_id=f"use-{n}",
                user=b"\x01" * 32,
                units=1,
                fee=fee,
                split=SPLIT,
                payment_ids=ids,
                charge_payment_id=charge_payment_id(asset_id, f"use-{n}"),
            )
        )
        if admission_at == n:
            append(AdmissionBody(f"admission-{n}", b"\x77" * 20, True, "a new servicer"))
    return entries


def share_of(pool: bytes, fees: tuple[int, ...] = FEES) -> int:
    index = SPLIT.beneficiaries.index(Address(pool))
    return sum(split_fee(fee, SPLIT)[index] for fee in fees)


# ---------------------------------------------------------------------------------------------
# kept_totals


def test_kept_totals_are_the_kept_pools_shares() -> None:
    totals = kept_totals(ledger(), KEPT)
    assert totals == {POOL_A: share_of(POOL_A), POOL_B: share_of(POOL_B)}
    assert list(totals) == sorted(KEPT)  # address order


def test_kept_totals_stop_at_up_to_seq_and_skip_events_without_shares() -> None:
    entries = ledger(admission_at=2)  # seq 3 is an admission
    assert kept_totals(entries, KEPT, up_to_seq=3) == {
        POOL_A: share_of(POOL_A, FEES[:2]),
        POOL_B: share_of(POOL_B, FEES[:2]),
    }
    assert kept_totals(entries, KEPT, up_to_seq=0) == {POOL_A: 0, POOL_B: 0}
    assert kept_totals(entries, KEPT, up_to_seq=99) == kept_totals(entries, KEPT)


def test_nothing_kept_means_nothing_due() -> None:
    entries = ledger(kept=frozenset())  # every share routed: the split has no contract
    assert kept_totals(entries, frozenset()) == {}
    assert kept_totals([], KEPT) == {POOL_A: 0, POOL_B: 0}
    assert amounts_due(kept_totals([], KEPT), {}, 10**9) == []
    assert amounts_due({}, {}, 10**9) == []


def test_a_routed_share_of_a_kept_beneficiary_is_not_kept() -> None:
    """The ledger of an agent that did not know POOL_B was a contract routes its shares: they
    are not kept (never paid on chain here), but `pool_shares` shows them."""
    entries = ledger(kept=frozenset({POOL_A}))
    assert kept_totals(entries, KEPT) == {POOL_A: share_of(POOL_A), POOL_B: 0}
    routed = [s for s in pool_shares(entries, KEPT) if not s.kept]
    assert {s.pool for s in routed} == {POOL_B} and all(s.payment_id for s in routed)


def test_the_agents_own_share_is_not_kept_for_a_pool() -> None:
    """Shares with payment id 0 of a beneficiary not in the kept set (the agent's own share)
    count for nobody."""
    assert kept_totals(ledger(), {POOL_A}) == {POOL_A: share_of(POOL_A)}


@pytest.mark.parametrize(
    ("entries", "problem"),
    [
        (ledger()[:2] + ledger()[1:], "out of order"),  # an entry given twice
        (list(reversed(ledger())), "out of order"),
        (ledger()[:2] + ledger(asset_id=OTHER_ASSET)[2:], "an entry of asset"),
    ],
)
def test_entries_counted_twice_or_of_another_asset_are_refused(
    entries: list[SignedEntry], problem: str
) -> None:
    with pytest.raises(LedgerError, match=problem):
        kept_totals(entries, KEPT)


@pytest.mark.parametrize(
    ("kept", "up_to_seq", "problem"),
    [
        (KEPT, -1, "up_to_seq must be"),
        (KEPT, True, "up_to_seq must be"),
        (KEPT, 2.0, "up_to_seq must be"),
        ({b"\x10" * 19}, None, "20-byte address"),
        ({"0x" + "10" * 20}, None, "20-byte address"),
        (bytes(POOL_A), None, "not one value"),
    ],
)
def test_odd_arguments_are_refused(kept: Any, up_to_seq: Any, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        kept_totals(ledger(), kept, up_to_seq)


# ---------------------------------------------------------------------------------------------
# amounts_due


def test_everything_owed_is_due_when_the_balance_holds_it() -> None:
    totals = {POOL_B: 300, POOL_A: 200}
    assert amounts_due(totals, {}, 10_000) == [(POOL_A, 200), (POOL_B, 300)]
    assert amounts_due(totals, {POOL_A: 50}, 10_000) == [(POOL_A, 150), (POOL_B, 300)]


def test_a_short_balance_pays_in_address_order_and_the_last_one_partly() -> None:
    totals = {POOL_B: 300, POOL_A: 200}
    assert amounts_due(totals, {}, 350) == [(POOL_A, 200), (POOL_B, 150)]
    assert amounts_due(totals, {}, 120) == [(POOL_A, 120)]
    assert amounts_due(totals, {POOL_A: 200}, 120) == [(POOL_B, 120)]
    assert amounts_due(totals, {}, 0) == []


def test_already_paid_pools_get_nothing() -> None:
    totals = {POOL_A: 200, POOL_B: 300}
    assert amounts_due(totals, {POOL_A: 200, POOL_B: 300}, 10_000) == []
    assert amounts_due(totals, {POOL_A: 999, POOL_B: 300}, 10_000) == []  # overpaid: owed 0
    # a payment to an address that is not kept is no credit for anyone
    assert amounts_due({POOL_A: 200}, {SERVICER: 500}, 10_000) == [(POOL_A, 200)]


@pytest.mark.parametrize(
    ("totals", "paid", "available", "problem"),
    [
        ({POOL_A: -1}, {}, 10, "kept for"),
        ({POOL_A: 1.5}, {}, 10, "kept for"),
        ({POOL_A: 10}, {POOL_A: -3}, 10, "paid to"),
        ({POOL_A: 10}, {POOL_A: True}, 10, "paid to"),
        ({POOL_A: 10}, {}, -1, "available"),
        ({POOL_A: 10}, {}, 10.0, "available"),
        ({POOL_A: 10}, {}, None, "available"),
        ({b"\x10": 10}, {}, 10, "20-byte address"),
        ({POOL_A: 10}, {b"pool": 1}, 10, "20-byte address"),
    ],
)
def test_negative_or_odd_amounts_are_refused(
    totals: Any, paid: Any, available: Any, problem: str
) -> None:
    with pytest.raises(ValueError, match=problem):
        amounts_due(totals, paid, available)


addresses = st.binary(min_size=20, max_size=20)
units = st.integers(min_value=0, max_value=10**15)


@given(
    st.dictionaries(addresses, units, max_size=6),
    st.dictionaries(addresses, units, max_size=6),
    units,
)
def test_never_more_than_owed_nor_than_available(
    totals: dict[bytes, int], paid: dict[bytes, int], available: int
) -> None:
    due = amounts_due(totals, paid, available)
    owed = {pool: max(0, kept - paid.get(pool, 0)) for pool, kept in totals.items()}
    assert sum(amount for _, amount in due) == min(available, sum(owed.values()))
    assert all(0 < amount <= owed[pool] for pool, amount in due)
    assert [pool for pool, _ in due] == sorted(pool for pool, _ in due)
    reordered = dict(reversed(list(totals.items())))
    assert amounts_due(reordered, paid, available) == due  # deterministic
    # paying what is due and asking again leaves nothing due but what the balance could not pay
    after = {pool: paid.get(pool, 0) + dict(due).get(pool, 0) for pool in totals}
    again = amounts_due(totals, after, available - sum(a for _, a in due))
    assert again == []


# ---------------------------------------------------------------------------------------------
# the financier's check


def test_pools_paid_their_kept_shares_pass() -> None:
    entries = ledger()
    paid = {POOL_A: share_of(POOL_A), POOL_B: share_of(POOL_B) + 5}  # more is fine
    check = check_pool_payments(entries, KEPT, paid)
    assert check.ok and check.problems() == []
    line = {p.pool: p for p in check.pools}[POOL_A]
    assert (line.kept, line.paid, line.short, line.kept_shares) == (
        share_of(POOL_A),
        share_of(POOL_A),
        0,
        sum(1 for fee in FEES if split_fee(fee, SPLIT)[0]),  # a zero share is no share
    )
    assert line.first_unpaid_seq is None


def test_a_pool_paid_less_than_its_kept_shares_is_flagged_from_the_first_unpaid_share() -> None:
    entries = ledger()
    shares_a = [split_fee(fee, SPLIT)[0] for fee in FEES]
    paid = {POOL_A: sum(shares_a[:2]), POOL_B: share_of(POOL_B)}  # seq 1..2 covered
    check = check_pool_payments(entries, KEPT, paid)
    assert not check.ok
    line = {p.pool: p for p in check.pools}[POOL_A]
    assert line.short == sum(shares_a[2:]) and line.first_unpaid_seq == 3
    (problem,) = check.problems()
    assert f"pool 0x{POOL_A.hex()}" in problem and "from the share at seq 3 on" in problem
    # up to seq 2 (the last settled one) the same payments are enough
    assert check_pool_payments(entries, KEPT, paid, up_to_seq=2).ok
    # nothing paid at all
    unpaid = check_pool_payments(entries, KEPT, {})
    assert {p.first_unpaid_seq for p in unpaid.pools} == {1}


def test_shares_routed_to_a_pool_are_flagged() -> None:
    entries = ledger(kept=frozenset({POOL_A}))  # POOL_B's shares were routed
    check = check_pool_payments(entries, KEPT, {POOL_A: share_of(POOL_A)})
    line = {p.pool: p for p in check.pools}[POOL_B]
    assert line.routed == share_of(POOL_B) and line.first_routed_seq == 1 and line.short == 0
    assert not check.ok and "recorded as routed payments" in check.problems()[0]


def test_the_check_refuses_negative_payments_and_disordered_entries() -> None:
    with pytest.raises(ValueError, match="paid to"):
        check_pool_payments(ledger(), KEPT, {POOL_A: -1})
    with pytest.raises(LedgerError, match="out of order"):
        check_pool_payments(list(reversed(ledger())), KEPT, {})

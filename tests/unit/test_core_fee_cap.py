"""The pure fee-cap decisions (`channels.core.fee_cap`): what a payer refuses, what a hub may
announce under the governed hub fee cap."""

from __future__ import annotations

import pytest

from channels.core.fee_cap import capped_schedule, hub_standing_problem, route_fee_problem
from channels.core.fees import FeeSchedule

OWN = FeeSchedule(flat=10, ppm=1_000, cap=10_000)  # the hub's configured fee (token units)
HUB = bytes.fromhex("11" * 20)


def test_a_fee_above_the_governed_cap_is_refused_naming_the_fee_and_the_cap() -> None:
    problem = route_fee_problem(6_010, 5_000)
    assert problem is not None
    assert "6010" in problem and "5000" in problem and "hub fee cap" in problem


@pytest.mark.parametrize(("fee", "cap"), [(5_000, 5_000), (0, 0), (4_999, 5_000), (10**9, None)])
def test_a_fee_at_or_below_the_cap_or_with_no_governed_cap_passes(
    fee: int, cap: int | None
) -> None:
    assert route_fee_problem(fee, cap) is None


def test_one_unit_above_the_cap_is_refused() -> None:
    assert route_fee_problem(5_001, 5_000) is not None


def test_only_an_active_member_with_the_hub_role_may_route() -> None:
    assert hub_standing_problem(HUB, active_member=True, hub_role=True) is None
    inactive = hub_standing_problem(HUB, active_member=False, hub_role=True)
    assert inactive is not None and "not an active member" in inactive and HUB.hex() in inactive
    no_role = hub_standing_problem(HUB, active_member=True, hub_role=False)
    assert no_role is not None and "hub role" in no_role


def test_a_lower_governed_cap_lowers_the_hubs_cap_and_keeps_its_fee_below_it() -> None:
    capped = capped_schedule(OWN, 5_000)
    assert capped == FeeSchedule(flat=10, ppm=1_000, cap=5_000)
    assert capped.fee(6_000_000) == 5_000  # was 6_010 under the hub's own cap
    assert capped.fee(1_000_000) == OWN.fee(1_000_000) == 1_010  # small payments: unchanged


def test_a_cap_below_the_flat_fee_lowers_the_flat_fee_too() -> None:
    capped = capped_schedule(OWN, 5)
    assert capped == FeeSchedule(flat=5, ppm=1_000, cap=5)
    assert all(capped.fee(amount) <= 5 for amount in (0, 1, 10**6, 10**12))


@pytest.mark.parametrize("cap", [10_000, 20_000, 10**18, None])
def test_a_cap_at_or_above_the_hubs_own_never_raises_its_fee(cap: int | None) -> None:
    assert capped_schedule(OWN, cap) is OWN


@pytest.mark.parametrize("cap", [0, 1, 9, 10, 11, 4_999, 5_000, 9_999])
@pytest.mark.parametrize("amount", [0, 1, 999, 10**6, 6 * 10**6, 10**15])
def test_the_capped_fee_never_exceeds_the_governed_cap_nor_the_hubs_own(
    cap: int, amount: int
) -> None:
    fee = capped_schedule(OWN, cap).fee(amount)
    assert fee <= cap and fee <= OWN.fee(amount)

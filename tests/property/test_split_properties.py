"""Property tests of `split_fee` (DESIGN §2: the sum of shares equals the fee, always)."""

import itertools
from fractions import Fraction

from hypothesis import given
from hypothesis import strategies as st

from channels.core.splits import MAX_BENEFICIARIES, PPM_TOTAL, Split, split_fee
from channels.core.types import Address

fees = st.integers(min_value=0, max_value=10**15)


@st.composite
def splits(draw: st.DrawFn) -> Split:
    """Any valid split: 1..32 distinct ascending addresses, ppm > 0 summing to 1e6."""
    count = draw(st.integers(1, MAX_BENEFICIARIES))
    cuts = draw(
        st.lists(st.integers(1, PPM_TOTAL - 1), min_size=count - 1, max_size=count - 1, unique=True)
    )
    bounds = [0, *sorted(cuts), PPM_TOTAL]
    ppm = tuple(b - a for a, b in itertools.pairwise(bounds))
    addresses = draw(
        st.lists(st.binary(min_size=20, max_size=20), min_size=count, max_size=count, unique=True)
    )
    return Split(draw(st.integers(1, 1000)), tuple(Address(a) for a in sorted(addresses)), ppm)


@given(fees, splits())
def test_shares_sum_to_the_fee(fee: int, split: Split) -> None:
    assert sum(split_fee(fee, split)) == fee


@given(fees, splits())
def test_each_share_is_within_one_unit_of_exact(fee: int, split: Split) -> None:
    for share, ppm in zip(split_fee(fee, split), split.ppm, strict=True):
        assert abs(share - Fraction(fee * ppm, PPM_TOTAL)) < 1


@given(fees, splits())
def test_deterministic_and_never_negative(fee: int, split: Split) -> None:
    shares = split_fee(fee, split)
    assert shares == split_fee(fee, Split(split.version, split.beneficiaries, split.ppm))
    assert all(share >= 0 for share in shares)
    assert len(shares) == len(split.beneficiaries)


@given(fees, splits())
def test_larger_ppm_never_gets_less(fee: int, split: Split) -> None:
    shares = split_fee(fee, split)
    for i, ppm_i in enumerate(split.ppm):
        for j, ppm_j in enumerate(split.ppm):
            if ppm_i > ppm_j:
                assert shares[i] >= shares[j]


@given(fees, fees, splits())
def test_splitting_a_sum_differs_by_at_most_one(a: int, b: int, split: Split) -> None:
    together = split_fee(a + b, split)
    apart = [x + y for x, y in zip(split_fee(a, split), split_fee(b, split), strict=True)]
    assert all(abs(x - y) <= 1 for x, y in zip(together, apart, strict=True))


@given(st.integers(0, 200), splits())
def test_small_fees_stay_within_one_unit_of_additive(fee: int, split: Split) -> None:
    # small fees make remainders dominate: the case where largest-remainder is least additive
    one = split_fee(1, split)
    previous = split_fee(fee, split)
    following = split_fee(fee + 1, split)
    assert all(abs(f - p - o) <= 1 for f, p, o in zip(following, previous, one, strict=True))

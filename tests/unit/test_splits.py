"""Splits (DESIGN §2): the registry's rules, and largest-remainder division of a fee."""

import pytest

from channels.core.splits import MAX_BENEFICIARIES, Split, SplitError, check_split, split_fee
from channels.core.types import Address


def addr(n: int) -> Address:
    return Address(n.to_bytes(20, "big"))


def even_split(count: int) -> Split:
    ppm = [1_000_000 // count] * count
    ppm[0] += 1_000_000 - sum(ppm)
    return Split(1, tuple(addr(i + 1) for i in range(count)), tuple(ppm))


def test_a_valid_split_is_accepted() -> None:
    split = Split(3, (addr(1), addr(2)), (250_000, 750_000))
    assert split.version == 3
    check_split([addr(1)], [1_000_000])


@pytest.mark.parametrize(
    ("beneficiaries", "ppm", "message"),
    [
        ((), (), "1 to 32 beneficiaries, got 0"),
        (
            tuple(addr(i + 1) for i in range(MAX_BENEFICIARIES + 1)),
            (30_303,) * 32 + (30_304,),
            "1 to 32 beneficiaries, got 33",
        ),
        ((addr(1), addr(2)), (1_000_000,), "2 beneficiaries, 1 ppm"),
        ((addr(1), addr(2)), (1_000_000, 0), "ppm 1 must be an int > 0, got 0"),
        ((addr(1), addr(2)), (1_000_001, -1), "ppm 1 must be an int > 0, got -1"),
        ((addr(1), addr(2)), (500_000, 499_999), "sum to 1,000,000, got 999,999"),
        ((addr(1), addr(2)), (600_000, 500_000), "got 1,100,000"),
        ((addr(2), addr(1)), (500_000, 500_000), "beneficiary 1 .* is not above beneficiary 0"),
        ((addr(1), addr(1)), (500_000, 500_000), "no duplicates.*beneficiary 1"),
        ((addr(1), addr(2), addr(2)), (1, 1, 999_998), "beneficiary 2 .*not above beneficiary 1"),
        ((addr(1), b"\x01" * 19), (500_000, 500_000), "beneficiary 1 is not a 20-byte address"),
        ((b"\x01" * 21,), (1_000_000,), "beneficiary 0 is not a 20-byte address"),
    ],
)
def test_every_broken_rule_is_named(
    beneficiaries: tuple[bytes, ...], ppm: tuple[int, ...], message: str
) -> None:
    with pytest.raises(SplitError, match=message):
        check_split(beneficiaries, ppm)
    with pytest.raises(SplitError, match=message):
        Split(1, tuple(Address(b) for b in beneficiaries), ppm)


def test_thirty_two_beneficiaries_are_allowed() -> None:
    split = even_split(MAX_BENEFICIARIES)
    assert sum(split_fee(1_000_003, split)) == 1_000_003


@pytest.mark.parametrize("version", [-1, 0])
def test_versions_start_at_one(version: int) -> None:
    with pytest.raises(SplitError, match="version must be an int >= 1"):
        Split(version, (addr(1),), (1_000_000,))


def test_split_error_is_a_value_error() -> None:
    assert issubclass(SplitError, ValueError)


def test_exact_division_has_no_remainder() -> None:
    split = Split(1, (addr(1), addr(2), addr(3)), (500_000, 300_000, 200_000))
    assert split_fee(1_000, split) == (500, 300, 200)


def test_remainder_goes_to_the_largest_fractions() -> None:
    # 10 * (0.55, 0.30, 0.15) = (5.5, 3.0, 1.5): floors sum to 9; .5 ties go by address.
    split = Split(1, (addr(1), addr(2), addr(3)), (550_000, 300_000, 150_000))
    assert split_fee(10, split) == (6, 3, 1)
    # 7 * (0.55, 0.30, 0.15) = (3.85, 2.10, 1.05): one unit left, to 0.85.
    assert split_fee(7, split) == (4, 2, 1)


def test_ties_go_to_the_lower_address() -> None:
    split = Split(1, (addr(1), addr(2), addr(3)), (333_334, 333_333, 333_333))
    assert split_fee(1, split) == (1, 0, 0)
    assert split_fee(2, split) == (1, 1, 0)
    # equal fractions of equal ppm: the lower address of the two wins
    split = Split(1, (addr(5), addr(9)), (500_000, 500_000))
    assert split_fee(3, split) == (2, 1)


def test_one_beneficiary_takes_everything() -> None:
    assert split_fee(12_345, Split(1, (addr(7),), (1_000_000,))) == (12_345,)


def test_zero_fee_gives_zero_shares() -> None:
    assert split_fee(0, even_split(5)) == (0, 0, 0, 0, 0)


def test_a_negative_fee_is_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        split_fee(-1, even_split(2))


def test_a_huge_fee_stays_exact() -> None:
    split = Split(1, (addr(1), addr(2)), (1, 999_999))
    fee = 10**30 + 7
    shares = split_fee(fee, split)
    assert sum(shares) == fee
    assert shares[0] == fee // 1_000_000 or shares[0] == fee // 1_000_000 + 1

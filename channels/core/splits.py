"""Revenue splits: who receives which part of every use fee (DESIGN §2, normative).

A split names up to 32 beneficiaries, strictly ascending by address, each with a share in
parts-per-million (ppm) > 0, the shares summing to exactly 1,000,000: the same rules the on-chain
asset registry enforces, so a split valid here is valid there. `split_fee` divides a fee by
largest remainder: everyone gets floor(fee * ppm / 1e6), then the units left over go one each to
the largest fractional remainders, ties broken by beneficiary address ascending. The shares always
sum to the fee: no sub-unit is ever lost or created.

Pure: ints and bytes in, ints out. This module must never do I/O, read a clock, or touch a float.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from channels.core.types import Address

PPM_TOTAL = 1_000_000
MAX_BENEFICIARIES = 32
ADDRESS_LENGTH = 20


class SplitError(ValueError):
    """A split the asset registry would refuse; the message says which rule and where."""


def _check_shape(beneficiaries: Sequence[bytes], ppm: Sequence[int]) -> None:
    if not 1 <= len(beneficiaries) <= MAX_BENEFICIARIES:
        raise SplitError(
            f"a split has 1 to {MAX_BENEFICIARIES} beneficiaries, got {len(beneficiaries)}"
        )
    if len(ppm) != len(beneficiaries):
        raise SplitError(
            f"a split needs one ppm per beneficiary: {len(beneficiaries)} beneficiaries, "
            f"{len(ppm)} ppm"
        )


def _check_addresses(beneficiaries: Sequence[bytes]) -> None:
    for index, beneficiary in enumerate(beneficiaries):
        if not isinstance(beneficiary, bytes) or len(beneficiary) != ADDRESS_LENGTH:
            raise SplitError(
                f"beneficiary {index} is not a {ADDRESS_LENGTH}-byte address: {beneficiary!r}"
            )
    for index in range(1, len(beneficiaries)):
        if beneficiaries[index] <= beneficiaries[index - 1]:
            raise SplitError(
                f"beneficiaries must be strictly ascending by address (no duplicates): "
                f"beneficiary {index} (0x{beneficiaries[index].hex()}) is not above "
                f"beneficiary {index - 1} (0x{beneficiaries[index - 1].hex()})"
            )


def _check_ppm(ppm: Sequence[int]) -> None:
    for index, part in enumerate(ppm):
        if isinstance(part, bool) or not isinstance(part, int) or part <= 0:
            raise SplitError(f"ppm {index} must be an int > 0, got {part!r}")
    total = sum(ppm)
    if total != PPM_TOTAL:
        raise SplitError(f"ppm must sum to {PPM_TOTAL:,}, got {total:,}")


def check_split(beneficiaries: Sequence[bytes], ppm: Sequence[int]) -> None:
    """Raise `SplitError` unless (beneficiaries, ppm) is a split the asset registry accepts."""
    _check_shape(beneficiaries, ppm)
    _check_addresses(beneficiaries)
    _check_ppm(ppm)


@dataclass(frozen=True, slots=True)
class Split:
    """Version `version` of an asset's split; checked on construction, so always valid."""

    version: int
    beneficiaries: tuple[Address, ...]
    ppm: tuple[int, ...]

    def __post_init__(self) -> None:
        if isinstance(self.version, bool) or not isinstance(self.version, int) or self.version < 1:
            # the registry numbers an asset's split versions 1, 2, ...
            raise SplitError(f"split version must be an int >= 1, got {self.version!r}")
        check_split(self.beneficiaries, self.ppm)


def split_fee(fee: int, split: Split) -> tuple[int, ...]:
    """Each beneficiary's share of `fee`, in the split's order; the shares sum to `fee`."""
    if fee < 0:
        raise ValueError(f"a fee cannot be negative, got {fee}")
    exact = [fee * part for part in split.ppm]  # each share times 1e6, exactly
    shares = [value // PPM_TOTAL for value in exact]
    left_over = fee - sum(shares)  # < number of beneficiaries: each remainder is under one unit
    by_remainder = sorted(
        range(len(shares)),
        key=lambda i: (-(exact[i] % PPM_TOTAL), split.beneficiaries[i]),
    )
    for index in by_remainder[:left_over]:
        shares[index] += 1
    return tuple(shares)


__all__ = [
    "MAX_BENEFICIARIES",
    "PPM_TOTAL",
    "Split",
    "SplitError",
    "check_split",
    "split_fee",
]

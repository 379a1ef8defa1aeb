"""Tariffs: how one use of an asset is priced (per cycle, or per metered unit, by time of use).

A `Tariff` is a frozen msgspec Struct, checked on construction and on decoding, so a tariff held
anywhere is valid. `price_use` turns a meter reading and the time of the use into a fee:

    base = price                                  (kind "cycle")
    base = floor(units * price / unit_scale)      (kind "unit": price per `unit_scale` units)
    fee  = max(floor(base * multiplier_ppm / 1e6), minimum)

where `multiplier_ppm` is that of the time-of-use band holding the UTC minute of the day of the
use (1,000,000 outside every band). A band is [start_minute, end_minute) in UTC minutes of the
day (0..1440); bands never overlap and may leave any part of the day uncovered. A band over
midnight is written as two bands.

Pure: ints in, ints out. This module must never do I/O, read a clock (the time of the use is an
argument), or let a float touch money.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

import msgspec

CYCLE = "cycle"
UNIT = "unit"
KINDS = (CYCLE, UNIT)
PPM = 1_000_000
MINUTES_PER_DAY = 1440


class TariffError(ValueError):
    """A tariff that cannot be used; the message names the field and the rule."""


class ReadingError(ValueError):
    """A meter reading no tariff should price: negative, or above the tariff's `max_units`."""


class Band(msgspec.Struct, frozen=True, array_like=True, forbid_unknown_fields=True):
    """A time-of-use band: uses in [start_minute, end_minute) UTC cost `multiplier_ppm` / 1e6."""

    start_minute: int
    end_minute: int
    multiplier_ppm: int

    def __post_init__(self) -> None:
        if not 0 <= self.start_minute < self.end_minute <= MINUTES_PER_DAY:
            raise TariffError(
                f"bad band minutes [{self.start_minute}, {self.end_minute}): want "
                f"0 <= start_minute < end_minute <= {MINUTES_PER_DAY} (UTC minutes of the day)"
            )
        if self.multiplier_ppm < 0:
            raise TariffError(f"band multiplier_ppm must be >= 0, got {self.multiplier_ppm}")

    def holds(self, minute: int) -> bool:
        """Whether `minute` (of the day) falls in this band."""
        return self.start_minute <= minute < self.end_minute


def _check_bands(bands: tuple[Band, ...]) -> None:
    ordered = sorted(bands, key=lambda band: band.start_minute)
    for before, after in itertools.pairwise(ordered):
        if after.start_minute < before.end_minute:
            raise TariffError(
                f"overlapping bands: [{before.start_minute}, {before.end_minute}) and "
                f"[{after.start_minute}, {after.end_minute})"
            )


class Tariff(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How one use is priced; see the module docstring for the formula."""

    kind: str  # "cycle" or "unit"
    price: int  # money units per use ("cycle") or per `unit_scale` units ("unit")
    max_units: int  # the largest believable reading for one use; above it a reading is absurd
    minimum: int = 0  # the least a use costs
    unit_scale: int = 1  # "unit": `price` buys this many units (1000 ml = 1 litre)
    unit_name: str = ""  # "unit": what the meter counts ("ml", "m", "Wh")
    bands: tuple[Band, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise TariffError(f"unknown tariff kind {self.kind!r} (want 'cycle' or 'unit')")
        for name in ("price", "minimum"):
            if getattr(self, name) < 0:
                raise TariffError(f"tariff {name} must be >= 0, got {getattr(self, name)}")
        if self.unit_scale <= 0:
            raise TariffError(f"tariff unit_scale must be > 0, got {self.unit_scale}")
        if self.max_units <= 0:
            raise TariffError(f"tariff max_units must be > 0, got {self.max_units}")
        if self.kind == UNIT and not self.unit_name:
            raise TariffError("a 'unit' tariff needs a unit_name (what the meter counts)")
        _check_bands(self.bands)


def multiplier_at(tariff: Tariff, at: int) -> int:
    """The time-of-use multiplier (ppm) at unix time `at` (seconds, UTC)."""
    minute = (at // 60) % MINUTES_PER_DAY
    for band in tariff.bands:
        if band.holds(minute):
            return band.multiplier_ppm
    return PPM


def price_use(tariff: Tariff, units: int, at: int) -> int:
    """The fee (money units) of one use that metered `units` at unix time `at`."""
    if not 0 <= units <= tariff.max_units:
        raise ReadingError(
            f"reading of {units} {tariff.unit_name or 'units'} is outside 0..{tariff.max_units}"
        )
    base = tariff.price if tariff.kind == CYCLE else units * tariff.price // tariff.unit_scale
    return max(base * multiplier_at(tariff, at) // PPM, tariff.minimum)


def parse_tariff(data: bytes | str | Mapping[str, Any]) -> Tariff:
    """A `Tariff` from JSON text or an already decoded object; `TariffError` says what is wrong."""
    try:
        if isinstance(data, bytes | str):
            return msgspec.json.decode(data, type=Tariff)
        return msgspec.convert(data, Tariff)
    except msgspec.ValidationError as exc:
        raise TariffError(f"invalid tariff: {exc}") from None
    except msgspec.DecodeError as exc:
        raise TariffError(f"tariff is not valid JSON: {exc}") from None


__all__ = [
    "CYCLE",
    "UNIT",
    "Band",
    "ReadingError",
    "Tariff",
    "TariffError",
    "multiplier_at",
    "parse_tariff",
    "price_use",
]

"""Tariffs: pricing a use per cycle or per unit, with time-of-use bands, and parsing them."""

import msgspec
import pytest

from assets.tariff import (
    Band,
    ReadingError,
    Tariff,
    TariffError,
    multiplier_at,
    parse_tariff,
    price_use,
)

DAY = 86_400
MIDNIGHT = 1_767_225_600  # 2026-01-01 00:00 UTC


def at(hour: int, minute: int = 0) -> int:
    return MIDNIGHT + hour * 3600 + minute * 60


def test_a_cycle_costs_its_price_whatever_the_reading() -> None:
    tariff = Tariff(kind="cycle", price=1_500_000, max_units=10)
    assert price_use(tariff, 1, at(12)) == 1_500_000
    assert price_use(tariff, 0, at(12)) == 1_500_000


def test_a_unit_tariff_prices_per_scale_rounding_down() -> None:
    # 0.80 EUR per litre, metered in ml
    tariff = Tariff(kind="unit", price=800_000, unit_scale=1000, unit_name="ml", max_units=50_000)
    assert price_use(tariff, 1000, at(0)) == 800_000
    assert price_use(tariff, 1, at(0)) == 800
    assert price_use(tariff, 1234, at(0)) == 987_200
    # 3 units of a price of 1 per 7: floor(3/7) = 0
    assert (
        price_use(Tariff(kind="unit", price=1, unit_scale=7, unit_name="Wh", max_units=9), 3, 0)
        == 0
    )


def test_the_minimum_applies_after_the_multiplier() -> None:
    tariff = Tariff(
        kind="unit",
        price=1000,
        unit_scale=1,
        unit_name="m",
        minimum=2500,
        max_units=100,
        bands=(Band(0, 360, 500_000),),
    )
    assert price_use(tariff, 1, at(3)) == 2500  # 1000 * 0.5 = 500 -> minimum
    assert price_use(tariff, 4, at(3)) == 2500  # 4000 * 0.5 = 2000 -> minimum
    assert price_use(tariff, 6, at(3)) == 3000
    assert price_use(tariff, 3, at(12)) == 3000  # outside the band: x1


def test_bands_by_utc_minute_of_day_half_open() -> None:
    tariff = Tariff(
        kind="cycle",
        price=1_000_000,
        max_units=1,
        bands=(Band(1320, 1440, 700_000), Band(0, 360, 700_000), Band(1020, 1200, 1_333_333)),
    )
    assert price_use(tariff, 1, at(22)) == 700_000
    assert price_use(tariff, 1, at(23, 59)) == 700_000
    assert price_use(tariff, 1, at(0)) == 700_000
    assert price_use(tariff, 1, at(5, 59)) == 700_000
    assert price_use(tariff, 1, at(6)) == 1_000_000  # end minute is outside the band
    assert price_use(tariff, 1, at(17)) == 1_333_333
    assert price_use(tariff, 1, at(17) + 59) == 1_333_333  # seconds are floored to the minute
    assert price_use(tariff, 1, at(20)) == 1_000_000
    assert multiplier_at(tariff, at(17) + 5 * DAY) == 1_333_333  # any day
    assert multiplier_at(tariff, 0) == 700_000  # 1970-01-01 00:00


def test_a_free_band_is_allowed() -> None:
    tariff = Tariff(kind="cycle", price=500, max_units=1, bands=(Band(0, 60, 0),))
    assert price_use(tariff, 1, at(0, 30)) == 0


@pytest.mark.parametrize("units", [-1, 11])
def test_an_absurd_reading_is_refused(units: int) -> None:
    tariff = Tariff(kind="unit", price=1, unit_name="ml", max_units=10)
    with pytest.raises(ReadingError, match=f"reading of {units} ml is outside 0..10"):
        price_use(tariff, units, 0)
    assert price_use(tariff, 10, 0) == 10


def test_parse_from_json_bytes_str_and_objects() -> None:
    text = (
        '{"kind": "unit", "price": 800000, "unit_scale": 1000, "unit_name": "ml",'
        ' "max_units": 50000, "minimum": 100, "bands": [[0, 360, 500000]]}'
    )
    expected = Tariff(
        kind="unit",
        price=800_000,
        unit_scale=1000,
        unit_name="ml",
        max_units=50_000,
        minimum=100,
        bands=(Band(0, 360, 500_000),),
    )
    assert parse_tariff(text) == expected
    assert parse_tariff(text.encode()) == expected
    assert parse_tariff(msgspec.json.decode(text)) == expected
    assert parse_tariff(msgspec.json.encode(expected)) == expected
    assert parse_tariff({"kind": "cycle", "price": 5, "max_units": 1}) == Tariff(
        kind="cycle", price=5, max_units=1
    )


CYCLE = {"kind": "cycle", "price": 5, "max_units": 1}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"kind": "weekly"}, "unknown tariff kind 'weekly'"),
        ({"price": -1}, "price must be >= 0, got -1"),
        ({"minimum": -5}, "minimum must be >= 0, got -5"),
        ({"unit_scale": 0}, "unit_scale must be > 0, got 0"),
        ({"unit_scale": -1000}, "unit_scale must be > 0"),
        ({"max_units": 0}, "max_units must be > 0, got 0"),
        ({"colour": "red"}, "unknown field `colour`"),
        ({"kind": "unit"}, "needs a unit_name"),
        (
            {"bands": [[0, 600, 1], [540, 700, 2]]},
            r"overlapping bands: \[0, 600\) and \[540, 700\)",
        ),
        ({"bands": [[540, 700, 2], [0, 600, 1]]}, "overlapping bands"),
        ({"bands": [[0, 1441, 1]]}, r"bad band minutes \[0, 1441\)"),
        ({"bands": [[-1, 60, 1]]}, "bad band minutes"),
        ({"bands": [[600, 600, 1]]}, "bad band minutes"),
        ({"bands": [[1320, 360, 1]]}, "bad band minutes"),
        ({"bands": [[0, 60, -1]]}, "multiplier_ppm must be >= 0"),
        ({"bands": [[0, 60]]}, r"length 3, got 2 - at `\$.bands\[0\]`"),
        ({"price": 1.5}, r"Expected `int`, got `float` - at `\$.price`"),
    ],
)
def test_bad_tariffs_are_refused_clearly(changes: dict[str, object], message: str) -> None:
    with pytest.raises(TariffError, match=message):
        parse_tariff({**CYCLE, **changes})
    with pytest.raises(TariffError, match=message):
        parse_tariff(msgspec.json.encode({**CYCLE, **changes}))


def test_a_missing_field_and_bad_json_are_refused() -> None:
    with pytest.raises(TariffError, match="missing required field `max_units`"):
        parse_tariff({"kind": "cycle", "price": 5})
    with pytest.raises(TariffError, match="not valid JSON"):
        parse_tariff(b"{kind: cycle")


def test_direct_construction_checks_too() -> None:
    with pytest.raises(TariffError, match="unknown tariff kind"):
        Tariff(kind="hourly", price=1, max_units=1)
    with pytest.raises(TariffError, match="bad band minutes"):
        Band(10, 5, 1)


def test_errors_are_value_errors_and_tariffs_are_frozen() -> None:
    assert issubclass(TariffError, ValueError)
    tariff = Tariff(kind="cycle", price=1, max_units=1)
    with pytest.raises(AttributeError):
        tariff.price = 2  # type: ignore[misc]

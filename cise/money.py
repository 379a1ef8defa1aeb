"""How the command line shows money: token units (DESIGN §2: 1 unit = €0.000001) as euros.

Display only, through `decimal.Decimal`: a float never touches an amount here.
"""

from __future__ import annotations

from decimal import Decimal

UNITS_PER_EURO = 1_000_000


def euro(units: int) -> str:
    """Token units as euros with all six decimals, e.g. €1,234.000001."""
    return f"€{Decimal(units) / UNITS_PER_EURO:,.6f}"


__all__ = ["UNITS_PER_EURO", "euro"]

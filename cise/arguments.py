"""Argument types shared by the `cise` subcommands: each names the bad input in its error."""

from __future__ import annotations

import argparse

from channels.core.types import Address, parse_address
from cise.errors import CliError


def positive_int(text: str) -> int:
    """An integer >= 1 (counts, ids)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
    return value


def address_argument(text: str, what: str) -> Address:
    """A 0x address given on the command line; `CliError` naming `what` when it is not one."""
    try:
        return Address(parse_address(text.strip()))
    except ValueError as exc:
        raise CliError(f"{what}: {exc}") from None

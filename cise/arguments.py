"""Argument types shared by the `cise` subcommands: each names the bad input in its error."""

from __future__ import annotations

import argparse


def positive_int(text: str) -> int:
    """An integer >= 1 (counts, ids)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
    return value

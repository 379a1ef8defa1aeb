"""`cise meter`: (being written)."""

from __future__ import annotations

import argparse
from typing import Any


def add_parsers(sub: Any) -> None:
    """Register `cise meter ...`."""
    parser = sub.add_parser("meter", help="(being written)")
    parser.add_subparsers(dest="meter_command", required=True, metavar="COMMAND")


def run(args: argparse.Namespace) -> int:
    """Run a `cise meter` subcommand; its exit code."""
    raise NotImplementedError(args.meter_command)

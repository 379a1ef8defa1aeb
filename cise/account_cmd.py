"""`cise account`: (being written)."""

from __future__ import annotations

import argparse
from typing import Any


def add_parsers(sub: Any) -> None:
    """Register `cise account ...`."""
    parser = sub.add_parser("account", help="(being written)")
    parser.add_subparsers(dest="account_command", required=True, metavar="COMMAND")


def run(args: argparse.Namespace) -> int:
    """Run a `cise account` subcommand; its exit code."""
    raise NotImplementedError(args.account_command)

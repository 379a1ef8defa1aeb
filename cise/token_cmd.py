"""`cise token`: (being written)."""

from __future__ import annotations

import argparse
from typing import Any


def add_parsers(sub: Any) -> None:
    """Register `cise token ...`."""
    parser = sub.add_parser("token", help="(being written)")
    parser.add_subparsers(dest="token_command", required=True, metavar="COMMAND")


def run(args: argparse.Namespace) -> int:
    """Run a `cise token` subcommand; its exit code."""
    raise NotImplementedError(args.token_command)

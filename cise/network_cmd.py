"""`cise network`: (being written)."""

from __future__ import annotations

import argparse
from typing import Any


def add_parsers(sub: Any) -> None:
    """Register `cise network ...`."""
    parser = sub.add_parser("network", help="(being written)")
    parser.add_subparsers(dest="network_command", required=True, metavar="COMMAND")


def run(args: argparse.Namespace) -> int:
    """Run a `cise network` subcommand; its exit code."""
    raise NotImplementedError(args.network_command)

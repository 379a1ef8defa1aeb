"""`cise channel ...` (placeholder until wired)."""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(sub: Any) -> None:
    sub.add_parser("channel", help="channel operations")


def run(args: argparse.Namespace) -> int:
    raise NotImplementedError

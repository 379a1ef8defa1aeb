"""Compiled contract artifacts (`channels/contracts/<Name>.json`: abi, bytecode, deployedBytecode,
immutableReferences).

The JSON files are produced by `scripts/compile_contracts.mjs` and shipped inside the package, so
using the chain client needs no node or solc. This module only reads them; it must never compile.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from channels.chain.abi import ContractAbi

ARTIFACTS_DIR = Path(__file__).resolve().parent.parent / "contracts"


@dataclass(frozen=True, slots=True)
class Artifact:
    """One compiled contract: its ABI codec and creation/runtime bytecode.

    `immutable_ranges` are the (start, length) byte ranges of the runtime code that the constructor
    fills with immutables: a deployed contract's code equals `deployed_bytecode` outside them.
    """

    name: str
    abi: ContractAbi
    bytecode: bytes
    deployed_bytecode: bytes
    immutable_ranges: tuple[tuple[int, int], ...] = ()


def _hex(text: str) -> bytes:
    return bytes.fromhex(text[2:] if text.startswith("0x") else text)


def artifacts_dir() -> Path:
    """`$CISE_CONTRACTS_DIR` when set (to try unreleased builds), else the packaged folder."""
    override = os.environ.get("CISE_CONTRACTS_DIR")
    return Path(override) if override else ARTIFACTS_DIR


@cache
def load_artifact(name: str, directory: Path | None = None) -> Artifact:
    """Read `<directory>/<name>.json`; FileNotFoundError naming the path when it is missing."""
    path = (directory or artifacts_dir()) / f"{name}.json"
    if not path.exists():
        raise FileNotFoundError(
            f"no compiled artifact {path}; run `node scripts/compile_contracts.mjs`"
        )
    raw = json.loads(path.read_text())
    return Artifact(
        name,
        ContractAbi(raw["abi"]),
        _hex(raw["bytecode"]),
        _hex(raw.get("deployedBytecode", "")),
        tuple(
            (int(ref["start"]), int(ref["length"])) for ref in raw.get("immutableReferences", ())
        ),
    )

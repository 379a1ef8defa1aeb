"""The network file: where a CISE network's node and contracts are, written by `cise chain`.

JSON with the RPC URL, chain id, contract addresses, deployment block and challenge period, plus the
dev accounts' keys on a dev network (those keys are public test keys, never real ones). Reading
validates every field and names the bad one; it must never guess a missing value. The optional
fields are `asset_registry` and the governance contracts `membership`, `governor`, `timelock` and
`network_parameters` (files written before they existed lack them; null = none).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from channels.chain.deploy import Deployment
from channels.core.types import Address, BlockNumber, parse_address, to_checksum
from channels.input_limits import read_json_file


class NetworkFileError(ValueError):
    """The network file is missing, unreadable or has a bad field."""


@dataclass(frozen=True, slots=True)
class Network:
    rpc_url: str
    deployment: Deployment
    dev_keys: tuple[bytes, ...]

    @property
    def dev(self) -> bool:
        """A dev network (written by `cise chain`): its accounts' keys are the public test keys in
        the file, and commands may name an account by its index (`--account 3`)."""
        return bool(self.dev_keys)

    def to_json(self) -> str:
        d = self.deployment
        return json.dumps(
            {
                "rpc_url": self.rpc_url,
                "chain_id": d.chain_id,
                "token": to_checksum(d.token),
                "channel_manager": to_checksum(d.manager),
                "deployment_block": d.block_number,
                "settle_timeout": d.settle_timeout,
                "asset_registry": _optional(d.asset_registry),
                "membership": _optional(d.membership),
                "governor": _optional(d.governor),
                "timelock": _optional(d.timelock),
                "network_parameters": _optional(d.parameters),
                "financing_factory": _optional(d.financing_factory),
                "treasury": _optional(d.treasury),
                "dev_private_keys": ["0x" + key.hex() for key in self.dev_keys],
            },
            indent=2,
        )


def _optional(address: Address | None) -> str | None:
    return None if address is None else to_checksum(address)


def _optional_address(raw: dict[str, Any], name: str) -> Address | None:
    """An address field that older network files lack (absent or null = none)."""
    if raw.get(name) is None:
        return None
    return Address(parse_address(_field(raw, name, str)))


def _field(raw: dict[str, Any], name: str, kind: type) -> Any:
    if name not in raw:
        raise NetworkFileError(f"network file has no {name!r}")
    value = raw[name]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise NetworkFileError(f"network file field {name!r} must be a {kind.__name__}")
    return value


def _key(text: object, index: int) -> bytes:
    if not isinstance(text, str) or not text.startswith("0x") or len(text) != 66:
        raise NetworkFileError(f"dev_private_keys[{index}] is not a 32-byte 0x-hex key")
    try:
        return bytes.fromhex(text[2:])
    except ValueError:
        raise NetworkFileError(f"dev_private_keys[{index}] is not hex") from None


def load_network(path: Path) -> Network:
    """Read and validate a network file."""
    try:
        raw = json.loads(read_json_file(path, what=f"network file {path}"))
    except FileNotFoundError:
        raise NetworkFileError(f"no network file at {path} (start one with `cise chain`)") from None
    except (OSError, ValueError) as exc:
        raise NetworkFileError(f"cannot read network file {path}: {exc}") from None
    if not isinstance(raw, dict):
        raise NetworkFileError(f"network file {path} is not a JSON object")
    try:
        token = parse_address(_field(raw, "token", str))
        manager = parse_address(_field(raw, "channel_manager", str))
        asset_registry = _optional_address(raw, "asset_registry")
        membership = _optional_address(raw, "membership")
        governor = _optional_address(raw, "governor")
        timelock = _optional_address(raw, "timelock")
        parameters = _optional_address(raw, "network_parameters")
        financing_factory = _optional_address(raw, "financing_factory")
        treasury = _optional_address(raw, "treasury")
    except ValueError as exc:
        raise NetworkFileError(f"network file: {exc}") from None
    rpc_url = _field(raw, "rpc_url", str)
    if not rpc_url.startswith(("http://", "https://")):
        raise NetworkFileError(f"rpc_url must be an http(s) URL, got {rpc_url!r}")
    keys = raw.get("dev_private_keys", [])
    if not isinstance(keys, list):
        raise NetworkFileError("dev_private_keys must be a list")
    deployment = Deployment(
        _field(raw, "chain_id", int),
        Address(token),
        Address(manager),
        BlockNumber(_field(raw, "deployment_block", int)),
        _field(raw, "settle_timeout", int),
        asset_registry,
        membership,
        governor,
        timelock,
        parameters,
        financing_factory,
        treasury,
    )
    return Network(rpc_url, deployment, tuple(_key(k, i) for i, k in enumerate(keys)))


def open_network(path: Path) -> Network:
    """The network file a command runs on, read and validated (every command that uses the chain
    starts here; the check that its chain and code are CISE's belongs here too)."""
    return load_network(path)

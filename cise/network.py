"""The network file: where a CISE network's node and contracts are, written by `cise chain` (a dev
network) or `cise network deploy` (a real one), and `connect`, the checked way onto its chain.

JSON with the RPC URL, chain id, contract addresses, deployment block and challenge period, `dev`
(true for a file of `cise chain`) with the dev accounts' keys on a dev network (those keys are
public test keys, never real ones; a file with `dev: false` holds no key), and `code_hashes`
{field: keccak256 of the contract's runtime code} as deployed. Reading validates every field and
names the bad one; it must never guess a missing value. The optional fields are `asset_registry`,
the governance contracts `membership`, `governor`, `timelock` and `network_parameters`, the
`financing_factory` and `treasury` (files written before they existed lack them; null = none),
`dev` (absent: true when the file holds keys) and `code_hashes` (absent: the code is checked
against the artifacts only).

`connect` must never hand out a connection to a node it has not checked: one JSON-RPC batch, bounded
in time, reads the chain id and the code at every address (`channels.chain.code_check`).
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from channels.chain.code_check import NodeError, mismatches, read_node
from channels.chain.connection import Connection
from channels.chain.deploy import Deployment
from channels.core.types import Address, BlockNumber, parse_address, to_checksum
from channels.input_limits import read_json_file
from cise.errors import CliError

NODE_TIMEOUT = 5.0  # seconds the node has to answer the check a command starts with
CODE_HASH_FIELDS = (
    "token",
    "channel_manager",
    "asset_registry",
    "membership",
    "governor",
    "timelock",
    "network_parameters",
    "financing_factory",
    "treasury",
)


class NetworkFileError(ValueError):
    """The network file is missing, unreadable or has a bad field."""


@dataclass(frozen=True, slots=True)
class Network:
    rpc_url: str
    deployment: Deployment
    dev_keys: tuple[bytes, ...]
    # field name (as in the file: "channel_manager", ...) -> keccak256 of its runtime code
    code_hashes: dict[str, bytes] = field(default_factory=dict)
    path: Path | None = field(default=None, compare=False)  # the file it was read from

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
                "dev": self.dev,
                "dev_private_keys": ["0x" + key.hex() for key in self.dev_keys],
                "code_hashes": {
                    name: "0x" + digest.hex() for name, digest in sorted(self.code_hashes.items())
                },
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


def _code_hashes(raw: dict[str, Any]) -> dict[str, bytes]:
    hashes = raw.get("code_hashes", {})
    if hashes is None:
        return {}
    if not isinstance(hashes, dict):
        raise NetworkFileError("code_hashes must be an object {field: 0x keccak256}")
    out: dict[str, bytes] = {}
    for name, text in hashes.items():
        if name not in CODE_HASH_FIELDS:
            raise NetworkFileError(f"code_hashes names {name!r}, which is not a contract field")
        if not isinstance(text, str) or not text.startswith("0x") or len(text) != 66:
            raise NetworkFileError(f"code_hashes[{name!r}] is not a 32-byte 0x-hex hash")
        try:
            out[name] = bytes.fromhex(text[2:])
        except ValueError:
            raise NetworkFileError(f"code_hashes[{name!r}] is not hex") from None
    return out


def _dev(raw: dict[str, Any], keys: list[object]) -> None:
    """`dev` must agree with the keys: a dev file holds its keys, a real one none."""
    dev = raw.get("dev")
    if dev is None:
        return
    if not isinstance(dev, bool):
        raise NetworkFileError("network file field 'dev' must be true or false")
    if dev and not keys:
        raise NetworkFileError("network file says dev: true but holds no dev_private_keys")
    if not dev and keys:
        raise NetworkFileError(
            "network file says dev: false but holds dev_private_keys (a real network's file "
            "must hold no key: remove them, or set dev: true for a dev chain)"
        )


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
    _dev(raw, keys)
    code_hashes = _code_hashes(raw)
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
    return Network(
        rpc_url, deployment, tuple(_key(k, i) for i, k in enumerate(keys)), code_hashes, path
    )


def open_network(path: Path) -> Network:
    """The network file a command runs on, read and validated (every command that uses the chain
    starts here, then reaches the chain with `connect`)."""
    return load_network(path)


def check_network(network: Network, timeout: float = NODE_TIMEOUT) -> list[str]:
    """Every way the chain at the file's node differs from the file (empty: it is the network),
    in one bounded JSON-RPC batch; `CliError` naming the URL when the node does not answer or
    answers garbage."""
    url = network.rpc_url
    try:
        found = read_node(url, network.deployment, timeout)
    except NodeError as exc:
        raise CliError(f"cannot reach the node at {url}: {exc}") from None
    problems = mismatches(network.deployment, found, network.code_hashes)
    if problems and problems[0].field == "chain_id":
        return [
            f"the node at {url} runs chain {found.chain_id}, the network file says "
            f"{network.deployment.chain_id}"
        ]
    return [str(problem) for problem in problems]


def connect(network: Network, timeout: float = NODE_TIMEOUT) -> Connection:
    """A connection to the network file's node, once checked to run the file's chain with CISE's
    contracts at its addresses (`check_network`); `CliError` naming each mismatch otherwise."""
    problems = check_network(network, timeout)
    if problems:
        where = f"the network file {network.path}" if network.path else "the network file"
        raise CliError(
            f"{where} does not match the chain at {network.rpc_url}:\n  " + "\n  ".join(problems)
        )
    try:
        return Connection.from_url(network.rpc_url, network.dev_keys)
    except Exception as exc:  # web3/requests raise many kinds; all mean "no usable node"
        raise CliError(f"cannot reach the node at {network.rpc_url}: {exc}") from None


def write_network_file(path: Path, text: str, force: bool) -> None:
    """`text` into `path` all at once (a synced temporary file renamed: a reader never sees half a
    network file); never over an existing file unless `force`."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, 0o644)  # a network file holds no secret: every member reads it
        with os.fdopen(fd, "w") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        if force:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)
            except FileExistsError:
                raise CliError(f"--out {path} appeared meanwhile (use --force)") from None
    except OSError as exc:
        raise CliError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)

"""`cise network deploy` and `cise network check`: put a CISE network onto an existing chain with a
keystore account, and check a network file against its chain.

`deploy` sends the contract creations (`channels.chain.deploy`), checks the code it left at every
address, waits for `--confirmations` blocks on top when asked, and only then writes the network
file (atomically, never over an existing file without `--force`): rpc_url, chain_id, addresses,
deployment block, challenge period, `code_hashes` and `dev: false`, and no key. `check` reads a
network file and names every way its chain differs from it (`cise.network.check_network`).

It must never write a key or a password into the network file, never replace a file it was not
told to, and never wait without a bound.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path
from typing import Any

from eth_account import Account

from channels.chain.code_check import (
    MONEY_DECIMALS,
    NodeError,
    code_hash,
    contracts,
    mismatches,
    post_batch,
    read_node,
)
from channels.chain.connection import Connection
from channels.chain.deploy import (
    ALL_ROLES,
    DEFAULT_SETTLE_TIMEOUT,
    TOKEN_NAME,
    Deployment,
    GovernanceSettings,
    deploy,
)
from channels.core.types import Address, to_checksum
from cise.accounts import add_password_argument, keystore_key
from cise.arguments import address_argument, positive_int
from cise.errors import CliError
from cise.keystore import KeystoreError
from cise.network import (
    NODE_TIMEOUT,
    Network,
    NetworkFileError,
    check_network,
    open_network,
    write_network_file,
)

MIN_SETTLE_TIMEOUT, MAX_SETTLE_TIMEOUT = 5, 1_000_000  # the manager's hard bounds
CONFIRMATION_POLL = 0.5  # seconds between looks at the head while waiting for confirmations
DEFAULT_CONFIRMATIONS_TIMEOUT = 300.0


def add_parsers(sub: Any) -> None:
    """Register `cise network ...`."""
    parser = sub.add_parser("network", help="deploy a network onto a chain, check a network file")
    ops = parser.add_subparsers(dest="network_command", required=True, metavar="COMMAND")

    dep = ops.add_parser(
        "deploy", help="deploy the CISE contracts onto a running chain and write a network file"
    )
    dep.add_argument("--rpc", required=True, metavar="URL", help="the node's JSON-RPC URL")
    dep.add_argument(
        "--account",
        required=True,
        metavar="NAME|ADDRESS",
        help="the deployer: a keystore account (cise account list); it becomes a founder",
    )
    add_password_argument(dep)
    dep.add_argument(
        "--keystore-dir", default=None, metavar="DIR", help="keystore folder (else the default)"
    )
    dep.add_argument(
        "--founders",
        default="",
        metavar="ADDR,...",
        help="more founding members (every role), besides the deployer",
    )
    token = dep.add_mutually_exclusive_group(required=True)
    token.add_argument("--token", metavar="ADDR", help="an existing ERC20 with 6 decimals")
    token.add_argument(
        "--new-token", metavar="NAME", help="deploy the CISE Token called NAME (deployer mints)"
    )
    dep.add_argument(
        "--confirmations",
        type=int,
        default=0,
        metavar="N",
        help="wait until the last creation has N blocks on top before writing the file",
    )
    dep.add_argument(
        "--confirmations-timeout",
        type=float,
        default=DEFAULT_CONFIRMATIONS_TIMEOUT,
        metavar="S",
        help=f"give up waiting for confirmations after S seconds "
        f"(default {DEFAULT_CONFIRMATIONS_TIMEOUT:g})",
    )
    dep.add_argument(
        "--settle-timeout",
        type=int,
        default=DEFAULT_SETTLE_TIMEOUT,
        metavar="N",
        help=f"challenge period in blocks ({MIN_SETTLE_TIMEOUT}..{MAX_SETTLE_TIMEOUT:,})",
    )
    dep.add_argument("--voting-delay", type=positive_int, metavar="N", help="blocks")
    dep.add_argument("--voting-period", type=positive_int, metavar="N", help="blocks")
    dep.add_argument("--timelock-delay", type=positive_int, metavar="S", help="seconds")
    dep.add_argument("--constitutional-delay", type=positive_int, metavar="S", help="seconds")
    dep.add_argument("--out", required=True, metavar="FILE", help="the network file to write")
    dep.add_argument("--force", action="store_true", help="replace --out if it exists")

    check = ops.add_parser("check", help="check a network file against its chain")
    check.add_argument("file", help="the network file")


def run(args: argparse.Namespace) -> int:
    """Run a `cise network` subcommand; its exit code."""
    if args.network_command == "deploy":
        return network_deploy(args)
    if args.network_command == "check":
        return network_check(Path(args.file))
    raise CliError(f"unknown network command {args.network_command!r}")


# ----------------------------------------------------------------------------------- check


def network_check(path: Path) -> int:
    """Exit 0 printing what was checked, 1 naming each mismatch."""
    try:
        network = open_network(path)
    except NetworkFileError as exc:
        raise CliError(str(exc)) from None
    problems = check_network(network)
    if problems:
        print(f"{path}: the chain at {network.rpc_url} does not match:")
        for problem in problems:
            print(f"  {problem}")
        return 1
    hashes = "and its code hash" if network.code_hashes else "(no code hashes in the file)"
    print(f"{path}: chain {network.deployment.chain_id} at {network.rpc_url}")
    for contract in contracts(network.deployment):
        with_hash = " + code hash" if contract.field in network.code_hashes else ""
        print(
            f"  {contract.field:<20} {to_checksum(contract.address)}  ok "
            f"({contract.artifacts[0]}{with_hash})"
        )
    print(f"every contract has the expected code {hashes}")
    return 0


# ---------------------------------------------------------------------------------- deploy


def network_deploy(args: argparse.Namespace) -> int:
    """Deploy, check, wait for confirmations, write the file (see the module docstring)."""
    out = Path(args.out)
    _check_out(out, args.force)
    if not MIN_SETTLE_TIMEOUT <= args.settle_timeout <= MAX_SETTLE_TIMEOUT:
        raise CliError(
            f"--settle-timeout must be in [{MIN_SETTLE_TIMEOUT}, {MAX_SETTLE_TIMEOUT}] blocks, "
            f"got {args.settle_timeout}"
        )
    if args.confirmations < 0:
        raise CliError(f"--confirmations must be >= 0, got {args.confirmations}")
    if args.new_token is not None and not args.new_token.strip():
        raise CliError("--new-token: the token's name is empty")
    founders = _founders(args.founders)
    settings = _settings(args)
    url = args.rpc
    if not url.startswith(("http://", "https://")):
        raise CliError(f"--rpc must be an http(s) URL, got {url!r}")
    deployer = Account.from_key(deployer_key(args))
    founders = {Address(bytes.fromhex(deployer.address[2:])): ALL_ROLES, **founders}
    connection = _reach(url)
    token = None if args.token is None else _external_token(url, args.token)
    print(f"deploying onto chain {connection.chain_id} at {url} from {deployer.address} ...")
    try:
        deployment = deploy(
            connection,
            deployer,
            args.settle_timeout,
            token,
            founders,
            settings,
            (args.new_token or TOKEN_NAME).strip(),
        )
    except Exception as exc:  # a revert, a node gone, a receipt timeout: all stop the deployment
        raise CliError(
            f"the deployment failed ({type(exc).__name__}: {exc}); no file written"
        ) from None
    last_block = connection.block_number()
    hashes = _checked_hashes(url, deployment)
    network = Network(url, deployment, (), hashes)
    text = network.to_json() + "\n"
    if args.confirmations:
        try:
            _wait_confirmations(
                connection, last_block, args.confirmations, args.confirmations_timeout
            )
        except CliError as exc:
            pending = out.with_name(out.name + ".unconfirmed")
            write_network_file(pending, text, force=True)
            raise CliError(f"{exc}; the deployment is recorded in {pending}") from None
    write_network_file(out, text, args.force)
    print(f"wrote {out}")
    for contract in contracts(deployment):
        print(f"  {contract.field:<20} {to_checksum(contract.address)}")
    return 0


def deployer_key(args: argparse.Namespace) -> bytes:
    """The deployer's private key from the keystore (there is no network file yet, so no dev
    index)."""
    text = str(args.account).strip()
    if text.isdigit():
        raise CliError(
            f"--account {text}: a deployment signs with a keystore account, not a dev index "
            "(cise account list)"
        )
    try:
        return keystore_key(args, text)
    except KeystoreError as exc:
        raise CliError(f"--account {text}: {exc}") from None


def _founders(text: str) -> dict[Address, int]:
    found: dict[Address, int] = {}
    for part in (p.strip() for p in text.split(",")):
        if part:
            found[address_argument(part, "--founders")] = ALL_ROLES
    return found


def _settings(args: argparse.Namespace) -> GovernanceSettings:
    changes = {
        name: getattr(args, name)
        for name in ("voting_delay", "voting_period", "timelock_delay", "constitutional_delay")
        if getattr(args, name) is not None
    }
    return dataclasses.replace(GovernanceSettings(), **changes)


def _reach(url: str) -> Connection:
    """A connection to `url` once it answered a chain id (bounded, clear error otherwise)."""
    try:
        answers = post_batch(url, [("eth_chainId", [])], NODE_TIMEOUT)
    except NodeError as exc:
        raise CliError(f"cannot reach the node at {url}: {exc}") from None
    chain_id = answers[0]
    if not isinstance(chain_id, str) or not chain_id.startswith("0x"):
        raise CliError(f"cannot reach the node at {url}: its chain id is {chain_id!r}")
    try:
        return Connection.from_url(url)
    except Exception as exc:  # web3/requests raise many kinds; all mean "no usable node"
        raise CliError(f"cannot reach the node at {url}: {exc}") from None


def _external_token(url: str, text: str) -> Address:
    """`--token`: an address with code answering decimals() == 6 and totalSupply()."""
    token = address_argument(text, "--token")
    hexed = to_checksum(token)
    try:
        code, decimals, supply = post_batch(
            url,
            [
                ("eth_getCode", [hexed, "latest"]),
                ("eth_call", [{"to": hexed, "data": "0x313ce567"}, "latest"]),
                ("eth_call", [{"to": hexed, "data": "0x18160ddd"}, "latest"]),
            ],
            NODE_TIMEOUT,
        )
    except NodeError as exc:
        raise CliError(f"cannot reach the node at {url}: {exc}") from None
    if not isinstance(code, str) or code in ("0x", "0x0"):
        raise CliError(f"--token {hexed}: no code at the address (not a token)")
    places = _uint(decimals)
    if places is None or _uint(supply) is None:
        raise CliError(f"--token {hexed}: not an ERC20 token (no decimals() or totalSupply())")
    if places != MONEY_DECIMALS:
        raise CliError(
            f"--token {hexed}: has {places} decimals; CISE money is in millionths of a euro "
            f"(a token with {MONEY_DECIMALS} decimals)"
        )
    return token


def _uint(answer: object) -> int | None:
    if not isinstance(answer, str) or not answer.startswith("0x") or len(answer) != 66:
        return None
    try:
        return int(answer, 16)
    except ValueError:
        return None


def _checked_hashes(url: str, deployment: Deployment) -> dict[str, bytes]:
    """The code hash of every deployed contract, once its code is checked against the artifacts."""
    try:
        found = read_node(url, deployment, NODE_TIMEOUT)
    except NodeError as exc:
        raise CliError(f"the node at {url} stopped answering after the deployment: {exc}") from None
    problems = mismatches(deployment, found)
    if problems:
        raise CliError(
            "the deployed code does not match the artifacts:\n  "
            + "\n  ".join(str(p) for p in problems)
        )
    return {name: code_hash(code) for name, code in found.codes.items()}


def _wait_confirmations(
    connection: Connection, last_block: int, confirmations: int, timeout: float
) -> None:
    """Until the head is `confirmations` blocks past `last_block`; `CliError` after `timeout`."""
    target = last_block + confirmations
    deadline = time.monotonic() + timeout
    head = last_block
    print(f"waiting for block {target} ({confirmations} confirmations) ...", flush=True)
    while True:
        try:
            head = connection.block_number()
        except Exception as exc:  # a node that stops answering: keep trying until the deadline
            if time.monotonic() > deadline:
                raise CliError(f"the node stopped answering while waiting: {exc}") from None
        if head >= target:
            return
        if time.monotonic() > deadline:
            raise CliError(
                f"no {confirmations} confirmations within {timeout:g} s: the chain is at block "
                f"{head}, the deployment's last block is {last_block} (does the node mine blocks?)"
            )
        time.sleep(CONFIRMATION_POLL)


def _check_out(path: Path, force: bool) -> None:
    if path.is_dir():
        raise CliError(f"--out {path} is a folder")
    if path.exists() and not force:
        raise CliError(f"--out {path} exists (use --force to replace it)")
    if not path.parent.is_dir():
        raise CliError(f"--out {path}: no folder {path.parent}")

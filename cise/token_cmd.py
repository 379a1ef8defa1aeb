"""`cise token balance|mint|transfer`: the network's euro token (ERC20, 1 unit = €0.000001).

`balance` reads a wallet's tokens (and its ether, which a free-gas chain does not need);
`mint` is the CISE Token's minter issuing tokens (refused, before anything is sent, when the
account lacks MINTER_ROLE or when the network's token is an external ERC20 that CISE did not
deploy); `transfer` pays tokens from one wallet to another (refused before sending when the
balance is short). Each command checks the network file against its chain first
(`cise.network.connect`).

Parsing, checks and printing only: it must never send a transaction its checks refused, and never
print a key or a password.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from web3 import Web3

from channels.chain.artifacts import load_artifact
from channels.chain.client import Web3ChainClient
from channels.chain.code_check import same_code
from channels.chain.connection import Connection
from channels.chain.errors import ChainError
from channels.core.types import Address, to_checksum
from cise.accounts import account_address, account_key, add_account_arguments
from cise.arguments import address_argument
from cise.channel_cmd import connect, parse_amount
from cise.errors import CliError
from cise.money import euro
from cise.network import Network, NetworkFileError, open_network


def add_parsers(sub: Any) -> None:
    """Register `cise token ...`."""
    parser = sub.add_parser("token", help="the network's euro token: balance, mint, transfer")
    ops = parser.add_subparsers(dest="token_command", required=True, metavar="COMMAND")
    op = ops.add_parser("balance", help="a wallet's tokens (default: the --account's)")
    op.add_argument("address", nargs="?", help="0x address (default: the --account's)")
    _common(op, default_index=1)
    op = ops.add_parser("mint", help="issue tokens to ADDR (the token's minter only)")
    op.add_argument("address", help="0x address to mint to")
    op.add_argument("amount", help="euros, e.g. 100 or 0.25")
    _common(op, default_index=0)
    op = ops.add_parser("transfer", help="send tokens from the --account's wallet to ADDR")
    op.add_argument("address", help="0x address to send to")
    op.add_argument("amount", help="euros, e.g. 100 or 0.25")
    _common(op, default_index=1)


def _common(parser: argparse.ArgumentParser, default_index: int) -> None:
    parser.add_argument("--network", default=".cise/network.json", help="network file")
    add_account_arguments(parser, default_index)


def run(args: argparse.Namespace) -> int:
    """Run a `cise token` subcommand; its exit code."""
    if args.token_command == "balance":
        return _balance(args)
    if args.token_command == "mint":
        return _mint(args)
    return _transfer(args)


def _network(args: argparse.Namespace) -> Network:
    try:
        return open_network(Path(args.network))
    except NetworkFileError as exc:
        raise CliError(str(exc)) from None


def _positive_amount(text: str) -> int:
    units = parse_amount(text)
    if units == 0:
        raise CliError(f"amount must be more than €0: {text!r}")
    return units


def _balance(args: argparse.Namespace) -> int:
    network = _network(args)
    if args.address is not None:
        owner = address_argument(args.address, "address")
    else:
        owner = account_address(network, args)
    connection = connect(network)
    units = int(_token_view(connection, network.deployment.token, "balanceOf", owner))
    ether = connection.eth_balance(owner)
    print(f"{to_checksum(owner)}: {euro(units)} ({units} units); ether {ether} wei")
    return 0


def _mint(args: argparse.Namespace) -> int:
    network = _network(args)
    to = address_argument(args.address, "address")
    units = _positive_amount(args.amount)
    key = account_key(network, args)
    connection = connect(network)
    client = Web3ChainClient.from_key(connection, network.deployment, key)
    token = network.deployment.token
    code = bytes(connection.w3.eth.get_code(Web3.to_checksum_address(to_checksum(token))))
    if not same_code(load_artifact("Token"), code):
        raise CliError(
            f"the network's token {to_checksum(token)} is not the CISE Token (an external ERC20): "
            "mint it with its issuer's tools; nothing was sent"
        )
    if not _is_minter(connection, token, client.address):
        raise CliError(
            f"account {to_checksum(client.address)} does not hold MINTER_ROLE on the token "
            f"{to_checksum(token)}: only its minter (the account that deployed the network) can "
            "mint; nothing was sent"
        )
    receipt = _sent(lambda: client.mint(to, units))
    balance = int(client.token_balance(to))
    print(
        f"minted {euro(units)} to {to_checksum(to)} (tx 0x{receipt.transaction_hash.hex()}); "
        f"its balance {euro(balance)}"
    )
    return 0


def _transfer(args: argparse.Namespace) -> int:
    network = _network(args)
    to = address_argument(args.address, "address")
    units = _positive_amount(args.amount)
    key = account_key(network, args)
    connection = connect(network)
    client = Web3ChainClient.from_key(connection, network.deployment, key)
    held = int(client.token_balance(client.address))
    if held < units:
        raise CliError(
            f"account {to_checksum(client.address)} holds {euro(held)}, less than the "
            f"{euro(units)} to send; nothing was sent"
        )
    receipt = _sent(lambda: client.transfer_token(to, units))
    left = int(client.token_balance(client.address))
    print(
        f"sent {euro(units)} to {to_checksum(to)} (tx 0x{receipt.transaction_hash.hex()}); "
        f"{euro(left)} left"
    )
    return 0


def _token_view(connection: Connection, token: Address, function: str, *args: Any) -> Any:
    """The first result of a view of the CISE Token's ABI (ERC20 views fit any token)."""
    abi = load_artifact("Token").abi
    spec = abi.function(function)
    raw = connection.call(token, spec.encode_call(args), abi, f"Token.{function}")
    return spec.decode_result(raw)[0]


def _is_minter(connection: Connection, token: Address, account: Address) -> bool:
    role = _token_view(connection, token, "MINTER_ROLE")
    return bool(_token_view(connection, token, "hasRole", role, account))


def _sent(send: Any) -> Any:
    """The receipt of `send()`; a revert or a node that stops answering as a `CliError`."""
    try:
        return send()
    except ChainError as exc:
        raise CliError(f"the chain rejected it: {exc}") from None
    except TimeoutError as exc:
        raise CliError(f"{exc}: the transaction may still be mined; check the balance") from None

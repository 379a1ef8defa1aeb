"""`cise channel open|deposit|pay|receive|withdraw|close|settle|status`: one party, one command.

Each invocation acts as one account of a network file (`cise chain` writes one), restores that
account's durable log from `--data-dir`, catches up with the chain, does one thing, and prints what
the partner must receive as a *message envelope* (one JSON line: from, to, payload hex). The partner
feeds it to `cise channel receive`; replies come back the same way. This is the off-line transport
for people at a terminal; agents use the TCP transport. Parsing and printing only: the core decides.

Every operation but `status` owns the account's log while it runs, so it is refused (naming the
running process) while `cise hub serve`, `cise agent ...` or another command has it; each catches
up with the chain and acts on it (`sync` does only that: dispute a stale close, settle when due).
`status` only reads: it opens the log read-only and catches up with the chain in memory, so it works
beside them, and it says what transactions the account would send if one is due.
"""

from __future__ import annotations

import argparse
import json
import sys
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from channels.chain.client import Web3ChainClient
from channels.chain.connection import Connection
from channels.chain.errors import ChainError
from channels.core import events as ev
from channels.core import state_changes as sc
from channels.core.channel import get_balance
from channels.core.state import ChannelState
from channels.core.types import (
    BlockNumber,
    ChannelId,
    PaymentId,
    TokenAmount,
    parse_address,
    to_checksum,
)
from channels.input_limits import InputError, check_utf8, load_json
from channels.party import Outgoing, Party, read_party_state
from channels.signer import LocalSigner
from channels.store import StoreError
from channels.wire import WireError
from cise import network as network_file
from cise.accounts import account_key, add_account_arguments
from cise.arguments import positive_int
from cise.errors import CliError
from cise.money import UNITS_PER_EURO
from cise.network import Network, NetworkFileError, load_network


def parse_amount(text: str) -> int:
    """Euros with at most 6 decimals ("0.004321") -> token units; CliError naming the input."""
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise CliError(f"not an amount in euros: {text!r}") from None
    if not value.is_finite() or value < 0:
        raise CliError(f"amount must be a non-negative number of euros: {text!r}")
    units = value * UNITS_PER_EURO
    if units != units.to_integral_value():
        raise CliError(f"amount has more than 6 decimals (1 unit = €0.000001): {text!r}")
    return int(units)


def add_parser(sub: Any) -> None:
    channel = sub.add_parser("channel", help="channel operations of one party")
    channel.add_argument("--network", default=".cise/network.json", help="network file")
    add_account_arguments(channel, 1)
    channel.add_argument("--data-dir", default=".cise", help="where this party's log lives")
    ops = channel.add_subparsers(dest="op", required=True, metavar="OP")
    op = ops.add_parser("open", help="open a channel with a deposit (ERC20 from your wallet)")
    op.add_argument("partner", help="partner address 0x...")
    op.add_argument("--deposit", default="0", help="euros, e.g. 10 or 0.25")
    op = ops.add_parser("deposit", help="raise your total deposit in a channel")
    op.add_argument("channel", type=positive_int)
    op.add_argument("total", help="new total deposit in euros")
    op = ops.add_parser("pay", help="pay the partner; prints the message envelope to deliver")
    op.add_argument("channel", type=positive_int)
    op.add_argument("amount", help="euros, e.g. 0.004321")
    op.add_argument("--payment-id", type=int, default=None, help="uint64; default: next nonce")
    op = ops.add_parser("receive", help="take message envelopes (JSON lines) from a file or -")
    op.add_argument("source", help="file with envelopes, or - for stdin")
    op = ops.add_parser("withdraw", help="ask the partner to co-sign a withdraw while open")
    op.add_argument("channel", type=positive_int)
    op.add_argument("total", help="new total withdrawn, in euros")
    op = ops.add_parser("close", help="close a channel")
    op.add_argument("channel", type=positive_int)
    op.add_argument("--cooperative", action="store_true", help="propose a cooperative close")
    op = ops.add_parser("settle", help="settle a closed channel once its challenge period ended")
    op.add_argument("channel", type=positive_int)
    ops.add_parser("status", help="your channels and balances (read-only: works beside a service)")
    ops.add_parser("sync", help="catch up with the chain and act on it (dispute, settle when due)")


def connect(network: Network) -> Connection:
    """A connection to the network file's node, checked to run the file's chain and contracts
    (`cise.network.connect`; kept here because other commands import it from here)."""
    return network_file.connect(network)


def open_account(
    args: argparse.Namespace, *, create: bool = True
) -> tuple[bytes, Web3ChainClient, Path]:
    """The account `--account` of `--network`: its key, its chain client (node checked) and the
    path of its log under `--data-dir` (one log per account, whichever command uses it).
    `create=False` (a command that only reads) leaves a missing `--data-dir` missing."""
    try:
        network = load_network(Path(args.network))
    except NetworkFileError as exc:
        raise CliError(str(exc)) from None
    key = account_key(network, args)
    connection = connect(network)
    client = Web3ChainClient.from_key(connection, network.deployment, key)
    data_dir = Path(args.data_dir)
    try:
        if create:
            data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CliError(f"--data-dir {data_dir}: {exc.strerror}") from None
    return key, client, data_dir / f"party-{to_checksum(client.address)}.sqlite"


def _open_party(args: argparse.Namespace) -> Party:
    key, client, store = open_account(args)
    try:
        party = Party.open(LocalSigner(key), client, store)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    party.sync_chain()
    return party


def _require_funds(party: Party, amount: int) -> None:
    """Refuse before any transaction (an approval included) when the wallet cannot pay."""
    held = party.client.token_balance(party.address)
    if held < amount:
        raise CliError(
            f"your wallet holds {Decimal(held) / UNITS_PER_EURO:.6f} €, "
            f"{Decimal(amount) / UNITS_PER_EURO:.6f} € needed"
        )


def _channel(party: Party, channel_id: int) -> ChannelState:
    channel = party.state.channels.get(ChannelId(channel_id))
    if channel is None:
        known = ", ".join(str(c) for c in party.state.channels) or "none"
        raise CliError(f"no channel {channel_id} of {to_checksum(party.address)} (yours: {known})")
    return channel


def _envelope(party: Party, item: Outgoing) -> str:
    return json.dumps(
        {
            "from": to_checksum(party.address),
            "to": to_checksum(item.recipient),
            "payload": item.payload.hex(),
        }
    )


def _finish(party: Party, events: list[ev.Event]) -> int:
    """Print rejections, failed transactions and outgoing envelopes; exit 1 on any failure."""
    status = 0
    for event in events:
        if isinstance(event, ev.EventFailure):
            print(f"cise: rejected: {event}", file=sys.stderr)
            status = 1
    for event_failed, error in party.failed_transactions:
        print(f"cise: transaction {type(event_failed).__name__} rejected: {error}", file=sys.stderr)
        status = 1
    for item in party.take_outbox():
        print(_envelope(party, item))
    return status


def _receive(party: Party, source: str) -> list[ev.Event]:
    try:
        data = sys.stdin.buffer.read() if source == "-" else Path(source).read_bytes()
        text = check_utf8(data, what=source)
    except OSError as exc:
        raise CliError(f"cannot read {source}: {exc.strerror}") from None
    except InputError as exc:
        raise CliError(str(exc)) from None
    lines = text.splitlines()
    events: list[ev.Event] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            envelope = load_json(line.encode(), what="the line")  # InputError is a ValueError
            sender = parse_address(envelope["from"])
            recipient = parse_address(envelope["to"])
            payload = bytes.fromhex(envelope["payload"])
        except (ValueError, KeyError, TypeError) as exc:
            raise CliError(f"{source}:{number}: not a message envelope ({exc})") from None
        if recipient != party.address:
            raise CliError(f"{source}:{number}: addressed to {to_checksum(recipient)}, not to you")
        try:
            events.extend(party.receive(payload, sender))
        except WireError as exc:
            raise CliError(f"{source}:{number}: {exc}") from None
    party.sync_chain()  # transactions the messages caused
    return events


def _status(args: argparse.Namespace) -> int:
    """Print the account's channels from its log read-only (see the module docstring)."""
    _, client, path = open_account(args, create=False)
    try:
        state, due = read_party_state(client, path)
    except (StoreError, ValueError) as exc:
        raise CliError(str(exc)) from None
    address = client.address
    print(f"account {to_checksum(address)}  block {state.block_number}")
    print(
        f"  wallet {Decimal(client.token_balance(address)) / UNITS_PER_EURO:.6f} €"
        f"  internal balance {Decimal(client.balance_of(address)) / UNITS_PER_EURO:.6f} €"
    )
    for channel in state.channels.values():
        ours = get_balance(channel.our, channel.partner)
        theirs = get_balance(channel.partner, channel.our)
        settle = f" settle after block {channel.settle_block}" if channel.settle_block else ""
        print(
            f"  channel {channel.channel_id} with {to_checksum(channel.partner_address)}: "
            f"{channel.status.value}{settle}; yours {Decimal(ours) / UNITS_PER_EURO:.6f} €, "
            f"partner's {Decimal(theirs) / UNITS_PER_EURO:.6f} €, "
            f"nonces sent {channel.our.balance_proof.nonce} / received {channel.partner.balance_proof.nonce}"
        )
    if due:
        print(
            f"  due on chain: {', '.join(due)} (`cise channel sync` sends it, or the running "
            "service of this account does)"
        )
    return 0


def run(args: argparse.Namespace) -> int:
    if args.op == "status":
        try:
            return _status(args)
        except ChainError as exc:
            raise CliError(f"the chain: {exc}") from None
    party = _open_party(args)
    try:
        return _run(party, args)
    except ChainError as exc:
        raise CliError(f"the chain rejected it: {exc}") from None
    finally:
        party.close()


def _run(party: Party, args: argparse.Namespace) -> int:
    op = args.op
    if op == "receive":
        return _finish(party, _receive(party, args.source))
    if op == "sync":  # opening the party caught up with the chain and acted
        print(f"synced to block {party.state.block_number}")
        return _finish(party, [])
    if op == "open":
        try:
            partner = parse_address(args.partner)
        except ValueError as exc:
            raise CliError(str(exc)) from None
        if partner == party.address:
            raise CliError("cannot open a channel with yourself")
        deposit = parse_amount(args.deposit)
        if deposit:
            _require_funds(party, deposit)
            party.client.check_open(partner)  # refused here, before the approve is sent
            party.client.approve(deposit)
        channel_id, _ = party.client.open_channel(partner, deposit)
        party.sync_chain()
        print(f"opened channel {channel_id}")
        return 0
    channel = _channel(party, args.channel)
    cid = channel.channel_id
    if op == "deposit":
        total = parse_amount(args.total)
        increase = total - channel.our.deposit
        if increase <= 0:
            raise CliError(f"total deposit must exceed the current {channel.our.deposit} units")
        if not channel.is_open:
            raise CliError(f"channel {cid} is {channel.status.value}, not open")
        _require_funds(party, increase)
        party.client.approve(increase)
        events = party.handle(sc.ActionDeposit(cid, TokenAmount(total)))
    elif op == "pay":
        payment_id = args.payment_id
        if payment_id is None:
            payment_id = channel.our.balance_proof.nonce + 1
        if not 0 <= payment_id < 2**64:
            raise CliError(f"--payment-id must be a uint64: {payment_id}")
        events = party.handle(
            sc.ActionTransfer(cid, TokenAmount(parse_amount(args.amount)), PaymentId(payment_id))
        )
    elif op == "withdraw":
        expiry = BlockNumber(party.state.block_number + 100)
        events = party.handle(sc.ActionWithdraw(cid, TokenAmount(parse_amount(args.total)), expiry))
    elif op == "close":
        change = sc.ActionCooperativeClose(cid) if args.cooperative else sc.ActionClose(cid)
        events = party.handle(change)
    elif op == "settle":
        if channel.settle_block is None:
            raise CliError(f"channel {cid} is {channel.status.value}, not closed")
        if party.state.block_number <= channel.settle_block:
            raise CliError(
                f"channel {cid}: challenge period runs until block {channel.settle_block} "
                f"(now {party.state.block_number})"
            )
        events = []  # catching up with the chain (done on open) already sent the settlement
    else:
        raise CliError(f"unknown operation {op}")
    party.sync_chain()
    return _finish(party, events)


__all__ = ["add_parser", "parse_amount", "run"]

"""`cise ledger show|export|verify|statement|check-statement` and `cise user statement`.

Reading an asset's revenue ledger (the asset agent's sqlite file, or a `.jsonl` export), checking
it against the chain (`assets.audit`), signing and checking revenue statements, and checking a
user's receipts. The `print_*` functions and the command functions (`ledger_show`,
`ledger_verify`, ...) take resolved inputs (entries, a `ChainView`, a key), so `cise demo` and
tests call them in-process on any chain; `run` only parses, validates and connects.

What it must never do: decide whether a ledger is sound (`assets.audit` and `assets.ledger` do),
write to a ledger or an agent's store (both are opened read-only: the agent may be running), or
write anything at all when an argument is bad (`CliError`, exit status 2). A check that fails
prints the problem and exits with status 1.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
from eth_account import Account
from rich.console import Console
from rich.markup import escape

from assets.audit import (
    anchors_from_history,
    audit_ledger,
    check_beneficiary,
    check_statement,
    check_unpaid_shares,
    check_user_receipts,
    receipt_uses,
    received_shares,
)
from assets.history import ChainFact, lifecycle
from assets.ledger import (
    LedgerError,
    RevenueStatement,
    SignedEntry,
    UseBody,
    entry_to_json,
    make_statement,
    statement_from_json,
    statement_to_json,
)
from channels.chain.assets import (
    AgentChanged,
    AssetHistory,
    AssetRegistered,
    AssetRegistryClient,
    AssetTransferred,
    LedgerAnchored,
    SplitChanged,
)
from channels.chain.connection import Connection
from channels.chain.deploy import Deployment
from channels.chain.financing import FinancingPoolClient, PoolContributed, PoolFunded, PoolRepaid
from channels.codec.eip712 import Domain
from channels.codec.keccak import keccak
from channels.core.types import Address, to_checksum
from channels.input_limits import InputError, read_json_file
from channels.records import InvoiceRecord, ReceiptRecord
from channels.signer import LocalSigner
from cise.accounts import ACCOUNT_HELP, account_key, add_account_arguments
from cise.arguments import address_argument
from cise.errors import CliError
from cise.ledger_files import LedgerFile, read_invoices, read_ledger, read_receipts_checked
from cise.ledger_print import (
    print_beneficiary_check,
    print_entries,
    print_ledger_audit,
    print_lifecycle,
    print_statement_check,
    print_unpaid_shares,
    print_user_check,
    print_user_uses,
    short,
    utc,
)
from cise.money import euro
from cise.network import NetworkFileError, load_network
from cise.network import connect as checked_connection

DEFAULT_NETWORK_FILE = ".cise/network.json"
# Reads need an account on the client but never send anything: a fixed throwaway key.
_READ_ONLY_KEY = keccak(b"cise ledger: read-only registry client")


# ---------------------------------------------------------------------------------------------
# Parsing


def parse_asset_id(text: str, what: str = "ASSET") -> bytes:
    """A 0x-prefixed 32-byte asset id, or an asset's name (its keccak256 is the id, as
    `cise asset register` makes it); `CliError` naming `what` otherwise."""
    if not text.startswith("0x"):
        if not text.strip():
            raise CliError(f"{what}: the asset name is empty")
        return keccak(text.encode())
    if len(text) != 66:
        raise CliError(f"{what} must be a 32-byte asset id (0x + 64 hex digits), got {text!r}")
    try:
        return bytes.fromhex(text[2:])
    except ValueError:
        raise CliError(f"{what} is not hex: {text!r}") from None


def parse_time(text: str, what: str) -> int:
    """Unix seconds, or an ISO 8601 date/time (UTC when it names no zone)."""
    if text.isdigit():
        return int(text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise CliError(
            f"{what} must be unix seconds or an ISO 8601 time (2026-01-31T12:00:00Z), got {text!r}"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    seconds = int(moment.timestamp())
    if seconds < 0:
        raise CliError(f"{what} is before 1970: {text!r}")
    return seconds


def read_key_file(path: Path) -> bytes:
    """A private key stored as 64 hex digits (0x optional) in a file."""
    try:
        text = path.read_text().strip()
    except OSError as exc:
        raise CliError(f"--key-file {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise CliError(f"--key-file {path}: not a text file") from None
    digits = text[2:] if text.startswith("0x") else text
    try:
        key = bytes.fromhex(digits)
    except ValueError:
        key = b""
    if len(key) != 32:
        raise CliError(f"--key-file {path}: want a 32-byte private key as 64 hex digits")
    return key


# ---------------------------------------------------------------------------------------------
# The chain


@dataclass(frozen=True, slots=True)
class ChainView:
    """What the ledger commands read from the chain: the asset registry and its EIP-712 domain."""

    registry: AssetRegistryClient
    domain: Domain
    financing: FinancingPoolClient | None = None  # the network's pool factory, if it has one

    @classmethod
    def of(cls, connection: Connection, deployment: Deployment) -> ChainView:
        """A read-only view of `deployment`'s registry (e.g. on the embedded chain)."""
        if deployment.asset_registry is None:
            raise CliError("this network has no asset registry (deployed before it existed)")
        reader = Account.from_key(_READ_ONLY_KEY)
        registry = AssetRegistryClient(connection, deployment, reader)
        financing = (
            None
            if deployment.financing_factory is None
            else FinancingPoolClient(connection, deployment.financing_factory, reader)
        )
        return cls(registry, Domain(deployment.chain_id, deployment.asset_registry), financing)

    def history(self, asset_id: bytes) -> AssetHistory:
        """The asset's history from the chain's logs; `CliError` for an unregistered asset."""
        try:
            history = self.registry.asset_history(asset_id)
        except Exception as exc:  # web3/requests raise many kinds; all mean "no usable node"
            raise CliError(f"cannot read asset 0x{asset_id.hex()}'s events: {exc}") from None
        if not any(isinstance(e, AssetRegistered) for e in history.events):
            raise CliError(
                f"asset 0x{asset_id.hex()} is not registered in the asset registry "
                f"{to_checksum(self.registry.registry)} (chain {self.domain.chain_id})"
            )
        return history


def chain_facts(view: ChainView, history: AssetHistory) -> list[ChainFact]:
    """What the chain recorded about the asset, dated by block time (for `cise asset history`)."""
    w3 = view.registry.connection.w3
    times: dict[int, int] = {}

    def at(block: int) -> int:
        if block not in times:
            times[block] = int(w3.eth.get_block(block)["timestamp"])
        return times[block]

    facts = []
    for event in history.events:
        what = _describe(event)
        if what:
            facts.append(ChainFact(at(event.block_number), what))
    if view.financing is not None:
        for created in view.financing.created_events():
            if created.asset_id == history.asset_id:
                facts.append(
                    ChainFact(
                        at(created.block_number),
                        f"financing pool {short(created.pool)} opened: target "
                        f"{euro(created.target)}, repaid up to {created.return_ppm / 10**6:g}x, "
                        f"open until block {created.deadline}",
                    )
                )
        for pool in view.financing.asset_pools(history.asset_id):
            for pool_event in view.financing.pool_events(pool):
                what = _describe_pool(pool, pool_event)
                if what:
                    facts.append(ChainFact(at(pool_event.block_number), what))
    return facts


def _describe_pool(pool: Address, event: object) -> str:
    name = f"financing pool {short(pool)}"
    if isinstance(event, PoolContributed):
        return f"{name}: {euro(event.amount)} contributed by {short(event.contributor)}"
    if isinstance(event, PoolFunded):
        return f"{name} funded: {euro(event.amount)} paid to {to_checksum(event.recipient)}"
    if isinstance(event, PoolRepaid):
        return f"{name}: contributors repaid in full ({euro(event.cap)})"
    return ""


def _describe(event: object) -> str:
    if isinstance(event, AssetRegistered):
        return f"registered by operator {to_checksum(event.operator)}, agent {to_checksum(event.agent)}"
    if isinstance(event, SplitChanged):
        parts = ", ".join(
            f"{short(b)} {p / 10_000:g}%"
            for b, p in zip(event.beneficiaries, event.ppm, strict=True)
        )
        return f"split version {event.version}: {parts}"
    if isinstance(event, AgentChanged):
        return f"agent key changed to {to_checksum(event.agent)}"
    if isinstance(event, AssetTransferred):
        return (
            f"transferred from operator {to_checksum(event.from_operator)} "
            f"to {to_checksum(event.to_operator)}"
        )
    if isinstance(event, LedgerAnchored):
        return f"ledger anchored on chain: seq {event.from_seq}..{event.to_seq}"
    return ""


def _network(path: Path) -> tuple[str, Deployment, tuple[bytes, ...]]:
    try:
        network = load_network(path)
    except NetworkFileError as exc:
        raise CliError(str(exc)) from None
    return network.rpc_url, network.deployment, network.dev_keys


def connect(network_file: Path) -> ChainView:
    """The chain of a network file (as `cise channel` connects: node reachable, same chain id)."""
    try:
        network = load_network(network_file)
    except NetworkFileError as exc:
        raise CliError(str(exc)) from None
    deployment = network.deployment
    if deployment.asset_registry is None:
        raise CliError(f"the network file {network_file} names no asset registry")
    return ChainView.of(checked_connection(network), deployment)


# ---------------------------------------------------------------------------------------------
# Writing


def _check_out(path: Path, force: bool) -> None:
    if path.is_dir():
        raise CliError(f"--out {path} is a folder")
    if path.exists() and not force:
        raise CliError(f"--out {path} exists (use --force to replace it)")
    if not path.parent.is_dir():
        raise CliError(f"--out {path}: no folder {path.parent}")


def _write(path: Path, data: bytes) -> None:
    """Write whole or not at all (a temporary file renamed over `path`)."""
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def export_jsonl(entries: Iterable[SignedEntry]) -> bytes:
    """Entries as JSON lines (bytes as 0x hex), read back by `read_ledger`."""
    return b"".join(msgspec.json.encode(entry_to_json(entry)) + b"\n" for entry in entries)


# ---------------------------------------------------------------------------------------------
# The commands, on resolved inputs


def _select(ledger: LedgerFile, from_seq: int | None, to_seq: int | None) -> list[SignedEntry]:
    return [
        entry
        for entry in ledger.entries
        if (from_seq is None or entry.seq >= from_seq) and (to_seq is None or entry.seq <= to_seq)
    ]


def _entry_json(entry: SignedEntry) -> dict[str, Any]:
    body = entry.decode_body()
    if not isinstance(body, UseBody):  # a service event or an admission: its own fields
        fields = msgspec.to_builtins(body, builtin_types=(bytes,))
        return {
            "asset_id": "0x" + entry.asset_id.hex(),
            "seq": entry.seq,
            "kind": entry.kind,
            "time": entry.time,
            "entry_hash": "0x" + entry.entry_hash.hex(),
            "body": [("0x" + v.hex()) if isinstance(v, bytes) else v for v in fields],
        }
    return {
        "asset_id": "0x" + entry.asset_id.hex(),
        "seq": entry.seq,
        "time": entry.time,
        "time_utc": datetime.fromtimestamp(entry.time, UTC).isoformat(),
        "entry_hash": "0x" + entry.entry_hash.hex(),
        "prev_hash": "0x" + entry.prev_hash.hex(),
        "event_id": body.event_id,
        "user": "0x" + body.user.hex(),
        "units": body.units,
        "fee": body.fee,
        "split_version": body.split_version,
        "shares": [
            {
                "beneficiary": to_checksum(share.beneficiary),
                "amount": share.amount,
                "payment_id": share.payment_id,
            }
            for share in body.shares
        ],
        "charge_payment_id": body.charge_payment_id,
        "signature": "0x" + entry.signature.hex(),
    }


def ledger_show(
    console: Console,
    ledger: LedgerFile,
    *,
    from_seq: int | None = None,
    to_seq: int | None = None,
    as_json: bool = False,
) -> int:
    """Print the entries from_seq..to_seq as a table, or as JSON lines."""
    entries = _select(ledger, from_seq, to_seq)
    try:
        if as_json:
            for entry in entries:
                console.out(json.dumps(_entry_json(entry)), highlight=False)
            return 0
        print_entries(console, entries, title=escape(f"{ledger.path}: {len(entries)} entries"))
    except LedgerError as exc:
        console.print(f"[bold red]broken entry:[/] {escape(str(exc))}")
        return 1
    return 0


def ledger_verify(
    console: Console,
    asset_id: bytes,
    ledger: LedgerFile,
    chain: ChainView,
    *,
    beneficiary: Address | None = None,
    invoices: Sequence[InvoiceRecord] = (),
) -> int:
    """Audit the ledger against the chain (and, with `beneficiary`, its payments); 0 when sound."""
    history = chain.history(asset_id)
    audit = audit_ledger(
        ledger.entries,
        asset_id=asset_id,
        domain=chain.domain,
        history=history,
        local_anchors=ledger.anchors,
    )
    print_ledger_audit(console, audit)
    status = 0 if audit.ok else 1
    if ledger.book is not None:
        unpaid, problems = check_unpaid_shares(ledger.entries, ledger.book.failures)
        print_unpaid_shares(console, unpaid, problems, ledger.book.ledgered_seqs)
        status = status or (1 if unpaid or problems else 0)
    if beneficiary is not None:
        try:
            check = check_beneficiary(
                ledger.entries, beneficiary, received_shares(invoices, set(audit.agents))
            )
        except LedgerError as exc:
            console.print(f"[bold red]beneficiary check FAILED:[/] {escape(str(exc))}")
            return 1
        print_beneficiary_check(console, check)
        status = status or (0 if check.ok else 1)
    return status


def ledger_statement(
    console: Console,
    asset_id: bytes,
    ledger: LedgerFile,
    chain: ChainView,
    *,
    key: bytes,
    from_time: int,
    to_time: int,
) -> RevenueStatement | None:
    """The statement of [from_time, to_time) signed with the agent's `key`, once the ledger is
    audited sound (None, with the audit printed, when it is not)."""
    signer = LocalSigner(key)
    history = chain.history(asset_id)
    agents = [bytes(agent) for agent in history.agents()]
    if signer.address not in agents:
        raise CliError(
            f"the key's address {to_checksum(signer.address)} is no agent of asset "
            f"0x{asset_id.hex()} (agents on chain: "
            f"{', '.join(to_checksum(a) for a in agents)})"
        )
    audit = audit_ledger(
        ledger.entries,
        asset_id=asset_id,
        domain=chain.domain,
        history=history,
        local_anchors=ledger.anchors,
    )
    if not audit.ok:
        print_ledger_audit(console, audit)
        console.print("[bold red]no statement signed:[/] the ledger does not verify")
        return None
    try:
        return make_statement(
            ledger.entries,
            anchors_from_history(history),
            from_time=from_time,
            to_time=to_time,
            sign_digest=signer.sign_digest,
            domain=chain.domain,
        )
    except LedgerError as exc:
        raise CliError(f"no statement: {exc}") from None


def ledger_check_statement(console: Console, statement: RevenueStatement, chain: ChainView) -> int:
    """Check a statement against the chain; print its totals and anchoring. 0 when it holds."""
    history = chain.history(statement.asset_id)
    try:
        check = check_statement(statement, domain=chain.domain, history=history)
    except LedgerError as exc:
        console.print(f"[bold red]statement check FAILED:[/] {escape(str(exc))}")
        return 1
    print_statement_check(console, statement, check)
    return 0


def asset_history(
    console: Console, asset_id: bytes, name: str, ledger: LedgerFile, chain: ChainView | None
) -> int:
    """Print the asset's lifecycle: ledger entries, and the chain's facts when `chain` is given."""
    facts: list[ChainFact] = []
    if chain is not None:
        facts = chain_facts(chain, chain.history(asset_id))
    print_lifecycle(console, name, lifecycle(ledger.entries, facts))
    return 0


def user_statement(
    console: Console,
    receipts: Sequence[ReceiptRecord],
    domain: Domain,
    ledgers: Sequence[tuple[bytes, LedgerFile]] = (),
) -> int:
    """A user's receipts and totals per asset; each ledger given is checked against the
    receipts of its asset (signed by the agent the user paid). 0 when everything checks out."""
    lines = receipt_uses(receipts, domain)
    print_user_uses(console, lines)
    status = 0 if all(line.status == "signed" for line in lines) else 1
    for asset_id, ledger in ledgers:
        mine = [
            receipt
            for receipt, line in zip(receipts, lines, strict=True)
            if line.asset_id == asset_id
        ]
        agents = {bytes(receipt.asset) for receipt in mine}
        check = check_user_receipts(mine, ledger.entries, asset_id, domain, agents)
        print_user_check(console, check)
        if not check.ok:
            status = 1
    return status


# ---------------------------------------------------------------------------------------------
# Arguments and wiring


def add_parsers(sub: Any) -> None:
    """`cise ledger ...` and `cise user ...`."""
    ledger = sub.add_parser("ledger", help="an asset's revenue ledger: show, export, verify")
    ops = ledger.add_subparsers(dest="op", required=True, metavar="OP")

    show = ops.add_parser("show", help="print the entries as a table (or JSON lines)")
    _asset_and_ledger(show)
    show.add_argument("--from-seq", type=_positive, default=None, metavar="N")
    show.add_argument("--to-seq", type=_positive, default=None, metavar="N")
    show.add_argument("--json", action="store_true", help="one JSON object per entry")

    export = ops.add_parser("export", help="write the entries as JSON lines")
    _asset_and_ledger(export)
    export.add_argument("--out", required=True, type=Path, metavar="FILE")
    export.add_argument("--force", action="store_true", help="replace an existing --out")

    verify = ops.add_parser("verify", help="check the ledger against the chain")
    _asset_and_ledger(verify)
    _network_file(verify)
    verify.add_argument("--beneficiary", metavar="ADDR", help="also check this one's payments")
    verify.add_argument("--store", type=Path, metavar="PATH", help="the beneficiary's agent store")

    statement = ops.add_parser("statement", help="a signed revenue statement of a period")
    _asset_and_ledger(statement)
    _network_file(statement)
    statement.add_argument("--from", dest="from_time", required=True, help="ISO 8601 or unix")
    statement.add_argument("--to", dest="to_time", required=True, help="ISO 8601 or unix (excl.)")
    signer = statement.add_mutually_exclusive_group(required=True)
    add_account_arguments(
        statement, None, group=signer, help="the agent's account: " + ACCOUNT_HELP
    )
    signer.add_argument("--key-file", type=Path, help="a file with the agent's private key (hex)")
    statement.add_argument("--out", required=True, type=Path, metavar="FILE")
    statement.add_argument("--force", action="store_true", help="replace an existing --out")

    check = ops.add_parser("check-statement", help="check a revenue statement against the chain")
    check.add_argument("file", type=Path, metavar="FILE")
    _network_file(check)

    user = sub.add_parser("user", help="a user's view: its receipts")
    user_ops = user.add_subparsers(dest="op", required=True, metavar="OP")
    uses = user_ops.add_parser("statement", help="the user's uses, fees and assets, checked")
    uses.add_argument("--store", required=True, type=Path, help="the user's agent store")
    uses.add_argument(
        "--ledger",
        action="append",
        default=[],
        metavar="ASSET=PATH",
        help="check the receipts of ASSET against this ledger (repeatable)",
    )
    _network_file(uses, "the network file (for the chain id and the registry's address)")


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a seq >= 1: {text!r}")
    return value


def _asset_and_ledger(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("asset", metavar="ASSET", help="the asset id, 0x + 64 hex digits")
    parser.add_argument(
        "--ledger", required=True, type=Path, metavar="PATH", help="ledger sqlite file or .jsonl"
    )


def _network_file(parser: argparse.ArgumentParser, help: str = "network file") -> None:
    parser.add_argument(
        "--network-file",
        "--network",
        dest="network",
        metavar="FILE",
        type=Path,
        default=DEFAULT_NETWORK_FILE,
        help=f"{help} (default {DEFAULT_NETWORK_FILE})",
    )


def _console() -> Console:
    return Console(highlight=False, soft_wrap=False, width=None if os.isatty(1) else 160)


def run(args: argparse.Namespace) -> int:
    """`cise ledger OP` or `cise user statement`: every argument is checked before anything."""
    console = _console()
    if args.command == "user":
        return _run_user(console, args)
    if args.op == "check-statement":
        return _run_check_statement(console, args)
    asset_id = parse_asset_id(args.asset)
    try:
        ledger = read_ledger(args.ledger, asset_id)
    except LedgerError as exc:
        console.print(f"[bold red]ledger file is broken:[/] {escape(str(exc))}")
        return 1
    if args.op == "show":
        if args.from_seq and args.to_seq and args.from_seq > args.to_seq:
            raise CliError(f"--from-seq {args.from_seq} is after --to-seq {args.to_seq}")
        return ledger_show(
            console, ledger, from_seq=args.from_seq, to_seq=args.to_seq, as_json=args.json
        )
    if args.op == "export":
        _check_out(args.out, args.force)
        _write(args.out, export_jsonl(ledger.entries))
        console.print(escape(f"exported {len(ledger.entries):,} entries to {args.out}"))
        return 0
    if args.op == "verify":
        return _run_verify(console, args, asset_id, ledger)
    if args.op == "statement":
        return _run_statement(console, args, asset_id, ledger)
    raise CliError(f"unknown operation {args.op}")


def _run_verify(
    console: Console, args: argparse.Namespace, asset_id: bytes, ledger: LedgerFile
) -> int:
    if (args.beneficiary is None) != (args.store is None):
        raise CliError("--beneficiary and --store go together")
    beneficiary = None
    invoices: list[InvoiceRecord] = []
    if args.beneficiary is not None:
        beneficiary = address_argument(args.beneficiary, "--beneficiary")
        invoices = read_invoices(args.store)
    chain = connect(args.network)
    return ledger_verify(
        console, asset_id, ledger, chain, beneficiary=beneficiary, invoices=invoices
    )


def _run_statement(
    console: Console, args: argparse.Namespace, asset_id: bytes, ledger: LedgerFile
) -> int:
    from_time = parse_time(args.from_time, "--from")
    to_time = parse_time(args.to_time, "--to")
    if from_time >= to_time:
        raise CliError(f"--from ({utc(from_time)}) must be before --to ({utc(to_time)})")
    _check_out(args.out, args.force)
    if args.key_file is not None:
        key = read_key_file(args.key_file)
    else:
        try:
            network = load_network(args.network)
        except NetworkFileError as exc:
            raise CliError(str(exc)) from None
        key = account_key(network, args)
    try:
        LocalSigner(key)
    except ValueError as exc:
        raise CliError(f"not a usable private key: {exc}") from None
    chain = connect(args.network)
    statement = ledger_statement(
        console, asset_id, ledger, chain, key=key, from_time=from_time, to_time=to_time
    )
    if statement is None:
        return 1
    _write(args.out, statement_to_json(statement))
    console.print(
        f"statement of seq {statement.first_seq}..{statement.last_seq} "
        f"({statement.totals.uses:,} uses, {euro(statement.totals.fee_total)}) "
        f"signed by {to_checksum(LocalSigner(key).address)}, written to {escape(str(args.out))}"
    )
    return 0


MAX_STATEMENT_BYTES = 64 * 1024 * 1024  # a statement lists a period's entries: far below this


def _run_check_statement(console: Console, args: argparse.Namespace) -> int:
    try:
        data = read_json_file(args.file, max_bytes=MAX_STATEMENT_BYTES)
    except OSError as exc:
        raise CliError(f"{args.file}: {exc.strerror or exc}") from None
    except InputError as exc:
        raise CliError(f"not a revenue statement: {exc}") from None
    try:
        statement = statement_from_json(data)
    except LedgerError as exc:
        raise CliError(f"{args.file}: not a revenue statement: {exc}") from None
    chain = connect(args.network)
    return ledger_check_statement(console, statement, chain)


def _run_user(console: Console, args: argparse.Namespace) -> int:
    ledgers: list[tuple[bytes, LedgerFile]] = []
    for spec in args.ledger:
        asset_text, sep, path = spec.partition("=")
        if not sep or not path:
            raise CliError(f"--ledger wants ASSET=PATH, got {spec!r}")
        asset_id = parse_asset_id(asset_text, "--ledger ASSET")
        try:
            ledgers.append((asset_id, read_ledger(Path(path), asset_id)))
        except LedgerError as exc:
            console.print(f"[bold red]ledger file {escape(path)} is broken:[/] {escape(str(exc))}")
            return 1
    receipts, broken = read_receipts_checked(args.store)
    _, deployment, _ = _network(args.network)
    if deployment.asset_registry is None:
        raise CliError(f"the network file {args.network} names no asset registry")
    domain = Domain(deployment.chain_id, deployment.asset_registry)
    status = user_statement(console, receipts, domain, ledgers)
    for problem in broken:  # a stored receipt that does not decode is a finding, not a crash
        console.print(f"[bold red]broken receipt:[/] {escape(problem)}")
    return 1 if broken else status


__all__ = [
    "ChainView",
    "add_parsers",
    "asset_history",
    "chain_facts",
    "connect",
    "export_jsonl",
    "ledger_check_statement",
    "ledger_show",
    "ledger_statement",
    "ledger_verify",
    "parse_asset_id",
    "parse_time",
    "read_key_file",
    "run",
    "user_statement",
]

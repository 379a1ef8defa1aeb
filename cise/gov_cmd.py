"""`cise gov propose|vote|queue|execute|status`: the members govern the network from a terminal.

`code-of-conduct` prints the code of conduct the network records (its hash and URI) and, with
`--check FILE`, whether a copy of the text is that version (exit 0), another one (exit 1, both
hashes named) or cannot be read (exit 2).

`propose` turns flags (`--settle-timeout 40 --admit 0x...`) into the calls of one proposal and a
readable description (a title, then one sentence per call); the governor classes it ordinary or
constitutional. `vote`, `queue` and `execute` take a proposal by its number in `status` (1, 2, ...)
or by its full id. `status` shows the network's parameters and every proposal with its state,
votes and quorum (or one proposal in detail). Parsing, wiring and printing only: the contracts
decide (who may propose or vote, a proposal's class, quorum and delay).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from eth_account import Account

from channels.chain.deploy import Document
from channels.chain.documents import CODE_OF_CONDUCT_HASH, document_hash, read_document
from channels.chain.errors import ChainError
from channels.chain.governance import (
    Call,
    GovernanceClient,
    NetworkParams,
    ProposalRecord,
    ProposalState,
    ProposalStatus,
    Support,
    TreasuryStatus,
    describe_proposal,
    duration_text,
    latest_timestamp,
    parse_roles,
)
from channels.core.types import to_checksum
from channels.input_limits import InputError
from cise.accounts import account_key, add_account_arguments
from cise.arguments import address_argument, positive_int
from cise.channel_cmd import parse_amount
from cise.errors import CliError
from cise.money import euro
from cise.network import NetworkFileError, connect, load_network

WAIT_POLL = 1.0  # seconds between looks at the chain while --wait runs


# ----------------------------------------------------------------------------- parsers


def add_common(parser: argparse.ArgumentParser, default_account: int = 0) -> None:
    """--network and --account, as the other commands take them."""
    parser.add_argument("--network", default=".cise/network.json", help="network file")
    add_account_arguments(parser, default_account)


def add_parsers(sub: Any) -> None:
    gov = sub.add_parser("gov", help="governance: proposals, votes, the network's parameters")
    ops = gov.add_subparsers(dest="op", required=True, metavar="OP")

    propose = ops.add_parser(
        "propose", help="propose changes (one proposal; every flag adds a call)"
    )
    add_common(propose)
    propose.add_argument("--title", help="the proposal's first line (default: from its calls)")
    propose.add_argument("--body", default="", help="text after the list of calls")
    propose.add_argument(
        "--settle-timeout",
        type=positive_int,
        metavar="BLOCKS",
        help="the challenge period of future closes",
    )
    propose.add_argument("--hub-fee-cap", metavar="EUR", help="most a hub may charge a payment")
    propose.add_argument(
        "--settlement-period",
        type=positive_int,
        metavar="SECONDS",
        help="seconds between periodic settlements",
    )
    for flag, what in (
        ("--admit", "admit an applicant"),
        ("--reject", "reject an application"),
        ("--suspend", "suspend a member"),
        ("--reinstate", "lift a suspension"),
        ("--expel", "expel a member (constitutional)"),
    ):
        propose.add_argument(flag, action="append", default=[], metavar="ADDR", help=what)
    propose.add_argument(
        "--roles",
        action="append",
        default=[],
        metavar="ADDR=ROLES",
        help="set a member's roles, e.g. 0x...=hub,user",
    )
    propose.add_argument(
        "--code-of-conduct",
        metavar="FILE",
        help="new code of conduct (its text's keccak); constitutional",
    )
    propose.add_argument("--code-of-conduct-uri", metavar="URI", help="where that text is")
    propose.add_argument(
        "--admission-rules",
        metavar="FILE",
        help="new admission rules (its text's keccak); constitutional",
    )
    propose.add_argument("--admission-rules-uri", metavar="URI", help="where that text is")
    propose.add_argument("--quorum", type=int, metavar="PERCENT", help="ordinary quorum")
    propose.add_argument("--constitutional-quorum", type=int, metavar="PERCENT")
    propose.add_argument("--voting-delay", type=int, metavar="BLOCKS")
    propose.add_argument("--voting-period", type=positive_int, metavar="BLOCKS")
    propose.add_argument(
        "--timelock-delay", type=int, metavar="SECONDS", help="delay of ordinary proposals"
    )
    propose.add_argument("--constitutional-delay", type=int, metavar="SECONDS")
    propose.add_argument(
        "--treasury-fee-ppm",
        type=int,
        metavar="PPM",
        help="millionths of every hub's fee income paid to the treasury each round",
    )
    propose.add_argument(
        "--pay-out",
        action="append",
        default=[],
        metavar="ADDR=EUR",
        help="pay from the community treasury (reason: --pay-out-reason)",
    )
    propose.add_argument(
        "--pay-out-reason", default="", metavar="TEXT", help="why (recorded with each payout)"
    )

    vote = ops.add_parser("vote", help="vote on a proposal (one member, one vote)")
    add_common(vote)
    vote.add_argument("proposal", help="its number in `cise gov status`, or its id")
    vote.add_argument("support", choices=("for", "against", "abstain"))
    vote.add_argument("--reason", default="", help="why (recorded on chain)")

    for name, what in (
        ("queue", "queue a passed proposal on the timelock"),
        ("execute", "execute a queued proposal once its delay passed"),
    ):
        op = ops.add_parser(name, help=what)
        add_common(op)
        op.add_argument("proposal", help="its number in `cise gov status`, or its id")
        op.add_argument(
            "--wait",
            type=float,
            default=0.0,
            metavar="SECONDS",
            help="wait up to this long until it can be done (a dev chain mines on)",
        )

    code = ops.add_parser(
        "code-of-conduct",
        help="the code of conduct the network records; --check FILE compares a copy with it",
    )
    add_common(code)
    code.add_argument(
        "--check",
        metavar="FILE",
        help="exit 0 if FILE is the text the chain records (keccak256 of its bytes), 1 if not",
    )
    code.add_argument("--json", action="store_true", help="one JSON object")

    treasury = ops.add_parser(
        "treasury", help="the community treasury: balance, governed part, payouts"
    )
    add_common(treasury)
    treasury.add_argument("--json", action="store_true", help="one JSON object")

    status = ops.add_parser("status", help="the network's parameters and proposals")
    add_common(status)
    status.add_argument("proposal", nargs="?", help="show this proposal in detail")
    status.add_argument("--json", action="store_true", help="one JSON object")


# ----------------------------------------------------------------------------- wiring


def open_governance(args: argparse.Namespace, acting: bool) -> GovernanceClient:
    """The governance client of `--network`, acting as `--account` (`acting`) or read-only."""
    try:
        network = load_network(Path(args.network))
    except NetworkFileError as exc:
        raise CliError(str(exc)) from None
    deployment = network.deployment
    if not deployment.governed:
        raise CliError(
            f"the network in {args.network} has no governance contracts "
            "(it was deployed before them: start a new one with `cise chain`)"
        )
    account = Account.from_key(account_key(network, args)) if acting else None
    return GovernanceClient(connect(network), deployment, account)


def resolve_proposal(client: GovernanceClient, reference: str) -> ProposalRecord:
    """A proposal by its number in `status` (1, 2, ... or #1) or by its id (decimal or 0x hex)."""
    text = reference.strip().lstrip("#")
    try:
        number = int(text, 0)
    except ValueError:
        raise CliError(f"proposal {reference!r}: give its number or its id") from None
    records = client.proposals()
    if 1 <= number <= len(records):
        return records[number - 1]
    for record in records:
        if record.proposal_id == number:
            return record
    raise CliError(f"no proposal {reference} on this network ({len(records)} proposals)")


def _refused(what: str, exc: ChainError, hint: str = "") -> CliError:
    return CliError(f"the governor refused to {what}: {exc}" + (f"; {hint}" if hint else ""))


# ----------------------------------------------------------------------------- commands


def run(args: argparse.Namespace) -> int:
    handlers: dict[str, Callable[[argparse.Namespace], int]] = {
        "propose": _propose,
        "vote": _vote,
        "queue": _queue,
        "execute": _execute,
        "status": _status,
        "code-of-conduct": _code_of_conduct,
        "treasury": _treasury,
    }
    return handlers[args.op](args)


def build_calls(client: GovernanceClient, args: argparse.Namespace) -> list[Call]:
    """The calls the flags of `cise gov propose` ask for, in a fixed order."""
    calls = client.calls
    out: list[Call] = []
    if args.settle_timeout is not None:
        out.append(calls.set_settle_timeout(args.settle_timeout))
    if args.hub_fee_cap is not None:
        out.append(calls.set_hub_fee_cap(parse_amount(args.hub_fee_cap)))
    if args.settlement_period is not None:
        out.append(calls.set_settlement_period(args.settlement_period))
    for flag, build in (
        ("admit", calls.admit),
        ("reject", calls.reject_application),
        ("suspend", calls.suspend),
        ("reinstate", calls.reinstate),
        ("expel", calls.expel),
    ):
        out.extend(build(address_argument(a, f"--{flag}")) for a in getattr(args, flag))
    for item in args.roles:
        address, sep, names = item.partition("=")
        if not sep:
            raise CliError(f"--roles: {item!r} is not ADDRESS=ROLE,ROLE")
        try:
            roles = parse_roles(names)
        except ValueError as exc:
            raise CliError(f"--roles: {exc}") from None
        out.append(calls.set_roles(address_argument(address, "--roles"), roles))
    for name, build_doc in (
        ("code_of_conduct", calls.set_code_of_conduct),
        ("admission_rules", calls.set_admission_rules),
    ):
        document = _document(args, name)
        if document is not None:
            out.append(build_doc(document))
    for name, build_number in (
        ("quorum", calls.set_quorum),
        ("constitutional_quorum", calls.set_constitutional_quorum),
        ("voting_delay", calls.set_voting_delay),
        ("voting_period", calls.set_voting_period),
        ("timelock_delay", calls.set_timelock_delay),
        ("constitutional_delay", calls.set_constitutional_delay),
    ):
        value = getattr(args, name)
        if value is not None:
            if value < 0:
                raise CliError(f"--{name.replace('_', '-')} must not be negative")
            out.append(build_number(value))
    if args.treasury_fee_ppm is not None:
        if args.treasury_fee_ppm < 0:
            raise CliError("--treasury-fee-ppm must not be negative")
        out.append(calls.set_treasury_fee_ppm(args.treasury_fee_ppm))
    for item in args.pay_out:
        address, sep, amount = item.partition("=")
        if not sep:
            raise CliError(f"--pay-out: {item!r} is not ADDRESS=EUR")
        reason = args.pay_out_reason.strip() or "payout by proposal"
        try:
            out.append(
                calls.pay_out(address_argument(address, "--pay-out"), parse_amount(amount), reason)
            )
        except ValueError as exc:
            raise CliError(f"--pay-out: {exc}") from None
    return out


def _document(args: argparse.Namespace, name: str) -> Document | None:
    flag = "--" + name.replace("_", "-")
    path, uri = getattr(args, name), getattr(args, f"{name}_uri")
    if path is None:
        if uri is not None:
            raise CliError(f"{flag}-uri goes with {flag} FILE")
        return None
    if not uri:
        raise CliError(f"{flag} needs {flag}-uri (where members read the text)")
    return Document(document_hash(_read(path, flag)), uri)


def _read(path: str, flag: str) -> bytes:
    """The exact bytes of a document file, or a `CliError` naming `flag`, the file and why."""
    try:
        return read_document(Path(path))
    except InputError as exc:
        raise CliError(f"{flag}: {exc}") from None
    except OSError as exc:
        raise CliError(f"{flag} {path}: {exc.strerror or exc}") from None


def _propose(args: argparse.Namespace) -> int:
    client = open_governance(args, acting=True)
    calls = build_calls(client, args)
    if not calls:
        raise CliError("nothing to propose: give at least one change (see --help)")
    sentences = [client.describe_call(call) for call in calls]
    title = args.title or _default_title(sentences)
    description = describe_proposal(sentences, title, args.body)
    try:
        record, receipt = client.propose(calls, description)
    except ChainError as exc:
        raise _refused("take the proposal", exc) from None
    number = len(client.proposals())
    print(
        json.dumps(
            {
                "proposal": number,
                "id": str(record.proposal_id),
                "class": _class(bool(receipt.event("ProposalClassified").args["constitutional"])),
                "title": record.title,
                "calls": sentences,
                "vote_start_block": record.vote_start,
                "vote_end_block": record.vote_end,
                "transaction": "0x" + receipt.transaction_hash.hex(),
            }
        )
    )
    return 0


def _class(constitutional: bool) -> str:
    return "constitutional" if constitutional else "ordinary"


def _default_title(sentences: list[str]) -> str:
    first = sentences[0][0].upper() + sentences[0][1:]
    return first if len(sentences) == 1 else f"{first} (and {len(sentences) - 1} more)"


def _vote(args: argparse.Namespace) -> int:
    client = open_governance(args, acting=True)
    record = resolve_proposal(client, args.proposal)
    support = {"for": Support.FOR, "against": Support.AGAINST, "abstain": Support.ABSTAIN}
    try:
        receipt = client.cast_vote(record.proposal_id, support[args.support], args.reason)
    except ChainError as exc:
        raise _refused("take the vote", exc, _hint(client, record, exc)) from None
    weight = int(receipt.event("VoteCast").args["weight"])
    print(
        json.dumps(
            {
                "proposal": record.title,
                "voter": to_checksum(client.address),
                "support": args.support,
                "weight": weight,
                "transaction": "0x" + receipt.transaction_hash.hex(),
            }
        )
    )
    return 0


def _hint(client: GovernanceClient, record: ProposalRecord, exc: ChainError) -> str:
    """What the member needs to know about a refusal for the proposal's state (too early, ...)."""
    if exc.name != "GovernorUnexpectedProposalState":
        return ""
    state = client.state(record.proposal_id)
    block = client.connection.block_number()
    when = {
        ProposalState.PENDING: f": voting opens after block {record.vote_start} (now {block})",
        ProposalState.ACTIVE: f": voting ends with block {record.vote_end} (now {block})",
    }.get(state, "")
    return f"the proposal is {state.name.lower()}{when}"


def _queue(args: argparse.Namespace) -> int:
    client = open_governance(args, acting=True)
    record = resolve_proposal(client, args.proposal)
    voting = (ProposalState.PENDING, ProposalState.ACTIVE)
    _wait_for(client, record, args.wait, lambda s: s.state not in voting)
    try:
        receipt = client.queue(record.proposal_id)
    except ChainError as exc:
        raise _refused("queue the proposal", exc, _hint(client, record, exc)) from None
    status = client.status(record)
    print(
        json.dumps(
            {
                "proposal": record.title,
                "state": status.state.name.lower(),
                "executable_from": _when(status.eta),
                "transaction": "0x" + receipt.transaction_hash.hex(),
            }
        )
    )
    return 0


def _execute(args: argparse.Namespace) -> int:
    client = open_governance(args, acting=True)
    record = resolve_proposal(client, args.proposal)
    _wait_for(
        client,
        record,
        args.wait,
        lambda s: (
            s.state is not ProposalState.QUEUED or latest_timestamp(client.connection) >= s.eta
        ),
    )
    try:
        receipt = client.execute(record.proposal_id)
    except ChainError as exc:
        if exc.name == "CiseGovernorProposalNotReady":
            eta = int(exc.error_args[1])
            wait = eta - latest_timestamp(client.connection)
            raise CliError(
                f"proposal not executable before {_when(eta)} (in {max(wait, 0)} s; "
                "--wait waits for it)"
            ) from None
        raise _refused("execute the proposal", exc, _hint(client, record, exc)) from None
    print(
        json.dumps(
            {
                "proposal": record.title,
                "state": client.state(record.proposal_id).name.lower(),
                "calls": [client.describe_call(c) for c in record.calls],
                "transaction": "0x" + receipt.transaction_hash.hex(),
            }
        )
    )
    return 0


def _wait_for(
    client: GovernanceClient,
    record: ProposalRecord,
    seconds: float,
    ready: Callable[[ProposalStatus], bool],
) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not ready(client.status(record)):
        time.sleep(WAIT_POLL)


def _when(timestamp: int) -> str:
    if timestamp == 0:
        return "-"
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


# ----------------------------------------------------------------------------- code of conduct


def _code_of_conduct(args: argparse.Namespace) -> int:
    """Print the recorded code of conduct; with --check, compare a file's keccak256 with it."""
    copy = None if args.check is None else _read(args.check, "--check")
    client = open_governance(args, acting=False)
    params = client.parameters()
    recorded = params.code_of_conduct
    shipped = recorded.hash == CODE_OF_CONDUCT_HASH
    matches = None if copy is None else document_hash(copy) == recorded.hash
    if args.json:
        out: dict[str, Any] = {
            "block": params.block_number,
            "hash": "0x" + recorded.hash.hex(),
            "uri": recorded.uri,
            "shipped_with_this_cise": shipped,
        }
        if copy is not None:
            out |= {"file": args.check, "file_hash": "0x" + document_hash(copy).hex()}
            out["matches"] = matches
        print(json.dumps(out))
    else:
        print(f"code of conduct on chain (block {params.block_number})")
        print(f"  hash  0x{recorded.hash.hex()}")
        print(f"  uri   {recorded.uri}")
        print(
            "  this version of cise ships it (docs/code-of-conduct.md)"
            if shipped
            else "  not the text this version of cise ships: the members adopted another one"
        )
    if copy is None:
        return 0
    if matches:
        if not args.json:
            print(
                f"{args.check} is the code of conduct on chain (keccak256 0x{recorded.hash.hex()})"
            )
        return 0
    print(
        f"cise: {args.check} is not the code of conduct on chain: its keccak256 is "
        f"0x{document_hash(copy).hex()}, the chain records 0x{recorded.hash.hex()} "
        f"({recorded.uri})",
        file=sys.stderr,
    )
    return 1


# ----------------------------------------------------------------------------- treasury


def _treasury(args: argparse.Namespace) -> int:
    """The community treasury: address, balance, the governed part, every payout."""
    client = open_governance(args, acting=False)
    if client.deployment.treasury is None:
        raise CliError(
            f"the network in {args.network} has no treasury (it was deployed before it existed)"
        )
    status = client.treasury()
    if args.json:
        print(json.dumps(treasury_json(status)))
        return 0
    print(f"community treasury {to_checksum(status.address)}")
    print(f"  balance       {euro(status.balance)}")
    print(f"  governed part {status.fee_ppm:,} ppm of every hub's fee income per settlement round")
    print(f"payouts ({len(status.payouts)})")
    for payout in status.payouts:
        print(f"  block {payout.block_number:<8} {euro(payout.amount):>16} to "
              f"{to_checksum(payout.to)}  {payout.reason}")  # fmt: skip
    return 0


def treasury_json(status: TreasuryStatus) -> dict[str, Any]:
    """The treasury as JSON values (amounts in token units)."""
    return {
        "address": to_checksum(status.address),
        "balance": status.balance,
        "fee_ppm": status.fee_ppm,
        "payouts": [
            {
                "block": p.block_number,
                "to": to_checksum(p.to),
                "amount": p.amount,
                "reason": p.reason,
            }
            for p in status.payouts
        ],
    }


# ----------------------------------------------------------------------------- status


def _status(args: argparse.Namespace) -> int:
    client = open_governance(args, acting=False)
    records = client.proposals()
    if args.proposal is not None:
        record = resolve_proposal(client, args.proposal)
        status = client.status(record)
        number = records.index(record) + 1
        if args.json:
            print(json.dumps(proposal_json(client, number, status)))
        else:
            _print_proposal(client, number, status)
        return 0
    params = client.parameters()
    statuses = [client.status(r) for r in records]
    members = client.members()
    if args.json:
        print(
            json.dumps(
                {
                    "parameters": parameters_json(params),
                    "members": {
                        s: sum(1 for m in members if m.status.name.lower() == s)
                        for s in ("applied", "active", "suspended", "expelled")
                    },
                    "proposals": [proposal_json(client, n, s) for n, s in enumerate(statuses, 1)],
                }
            )
        )
        return 0
    _print_parameters(params, members_text(members))
    print(f"proposals ({len(statuses)})")
    for number, status in enumerate(statuses, 1):
        print(f"  #{number:<3} {_summary(status)}")
    return 0


def members_text(members: Any) -> str:
    counts = {
        name: sum(1 for m in members if m.status.name.lower() == name)
        for name in ("active", "suspended", "applied", "expelled")
    }
    return ", ".join(f"{n} {name}" for name, n in counts.items() if n) or "none"


def parameters_json(p: NetworkParams) -> dict[str, Any]:
    """The parameters as JSON values (hashes as 0x hex)."""
    return {
        "block": p.block_number,
        "challenge_period_blocks": p.settle_timeout,
        "challenge_period_bounds": list(p.settle_timeout_bounds),
        "hub_fee_cap_units": p.hub_fee_cap,
        "hub_fee_cap_max_units": p.max_hub_fee_cap,
        "settlement_period_seconds": p.settlement_period,
        "settlement_period_bounds": list(p.settlement_period_bounds),
        "code_of_conduct": {
            "hash": "0x" + p.code_of_conduct.hash.hex(),
            "uri": p.code_of_conduct.uri,
        },
        "admission_rules": {
            "hash": "0x" + p.admission_rules.hash.hex(),
            "uri": p.admission_rules.uri,
        },
        "voting_delay_blocks": p.voting_delay,
        "voting_period_blocks": p.voting_period,
        "proposal_threshold_votes": p.proposal_threshold,
        "quorum_percent": p.quorum_percent,
        "constitutional_quorum_percent": p.constitutional_quorum_percent,
        "timelock_delay_seconds": p.timelock_delay,
        "constitutional_delay_seconds": p.constitutional_delay,
        "active_members": p.active_members,
    }


def proposal_json(client: GovernanceClient, number: int, s: ProposalStatus) -> dict[str, Any]:
    """One proposal as JSON values."""
    r = s.record
    return {
        "proposal": number,
        "id": str(r.proposal_id),
        "title": r.title,
        "description": r.description,
        "calls": [client.describe_call(c) for c in r.calls],
        "class": _class(s.constitutional),
        "state": s.state.name.lower(),
        "proposer": to_checksum(r.proposer),
        "votes": {"for": s.for_, "against": s.against, "abstain": s.abstain},
        "quorum": s.quorum,
        "vote_start_block": r.vote_start,
        "vote_end_block": r.vote_end,
        "eta": s.eta,
    }


def _print_parameters(p: NetworkParams, members: str) -> None:
    low, high = p.settle_timeout_bounds
    period_low, period_high = p.settlement_period_bounds
    rows = [
        ("challenge period", f"{p.settle_timeout} blocks (hard bounds {low:,}..{high:,})"),
        (
            "hub fee cap",
            f"{euro(p.hub_fee_cap)} per routed payment (at most {euro(p.max_hub_fee_cap)})",
        ),
        (
            "settlement period",
            f"{duration_text(p.settlement_period)} (bounds {duration_text(period_low)}.."
            f"{duration_text(period_high)})",
        ),
        ("code of conduct", f"0x{p.code_of_conduct.hash.hex()} {p.code_of_conduct.uri}"),
        ("admission rules", f"0x{p.admission_rules.hash.hex()} {p.admission_rules.uri}"),
        ("members", members),
        (
            "voting",
            f"opens {p.voting_delay} block(s) after a proposal, lasts {p.voting_period} blocks; "
            f"proposing takes {p.proposal_threshold} vote",
        ),
        (
            "quorum",
            f"ordinary {p.quorum_percent}%, constitutional {p.constitutional_quorum_percent}% "
            f"of the {p.active_members} active members",
        ),
        (
            "delay after a vote",
            f"ordinary {duration_text(p.timelock_delay)}, "
            f"constitutional {duration_text(max(p.constitutional_delay, p.timelock_delay))}",
        ),
    ]
    print(f"network parameters (block {p.block_number})")
    for name, value in rows:
        print(f"  {name:<20} {value}")


def _summary(s: ProposalStatus) -> str:
    kind = _class(s.constitutional)
    votes = f"for {s.for_} against {s.against} abstain {s.abstain}, quorum {_quorum(s)}"
    return f"{s.state.name.lower():<9} {kind:<14} {s.record.title}  [{votes}]"


def _quorum(s: ProposalStatus) -> str:
    return "not yet set" if s.quorum is None else str(s.quorum)


def _print_proposal(client: GovernanceClient, number: int, s: ProposalStatus) -> None:
    r = s.record
    print(f"proposal #{number}: {r.title}")
    print(f"  id        {r.proposal_id}")
    print(f"  class     {_class(s.constitutional)}")
    print(f"  state     {s.state.name.lower()}")
    print(f"  proposer  {to_checksum(r.proposer)}")
    print(
        f"  vote      blocks {r.vote_start + 1}..{r.vote_end} (now {client.connection.block_number()})"
    )
    print(
        f"  votes     for {s.for_}, against {s.against}, abstain {s.abstain}; quorum {_quorum(s)}"
    )
    if s.eta:
        print(f"  executable from {_when(s.eta)}")
    print("  calls")
    for call in r.calls:
        print(f"    - {client.describe_call(call)}")
    print("  description")
    for line in r.description.splitlines():
        print(f"    {line}")


__all__ = [
    "add_common",
    "add_parsers",
    "build_calls",
    "open_governance",
    "parameters_json",
    "proposal_json",
    "resolve_proposal",
    "run",
]

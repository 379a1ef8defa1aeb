"""`cise member apply|list|show`: apply for membership, and see who belongs to the network.

`apply` needs the applicant's explicit acceptance of the code of conduct: the hash of the text it
accepts (`--accept-code-of-conduct`), which must be the network's current one; without it the
command prints where that text is and its hash, and changes nothing. Admission is then the members'
decision (`cise gov propose --admit ADDR`). `list` and `show` read the membership contract.
Parsing, wiring and printing only: the membership contract decides.
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from typing import Any

from channels.chain.errors import ChainError
from channels.chain.governance import MemberInfo, MemberStatus, parse_roles, roles_text
from channels.core.types import to_checksum
from cise.arguments import address_argument
from cise.errors import CliError
from cise.gov_cmd import add_common, open_governance


def add_parsers(sub: Any) -> None:
    member = sub.add_parser("member", help="membership: apply, list the members, show one")
    ops = member.add_subparsers(dest="op", required=True, metavar="OP")
    apply = ops.add_parser("apply", help="apply for membership (then the members vote)")
    add_common(apply)
    apply.add_argument(
        "--roles",
        required=True,
        help="roles applied for: user, asset-operator, servicer, hub, watchtower, financier "
        "(comma separated) or all",
    )
    apply.add_argument(
        "--accept-code-of-conduct",
        metavar="HASH",
        help="the hash of the code of conduct you accept (shown when missing)",
    )
    listing = ops.add_parser("list", help="every applicant and member, and where each stands")
    add_common(listing)
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    show = ops.add_parser("show", help="one account's membership (default: --account's)")
    add_common(show)
    show.add_argument("address", nargs="?", help="0x address (default: the --account's)")
    show.add_argument("--json", action="store_true", help="one JSON object")


def run(args: argparse.Namespace) -> int:
    if args.op == "apply":
        return _apply(args)
    if args.op == "list":
        return _list(args)
    return _show(args)


def member_json(member: MemberInfo) -> dict[str, Any]:
    """One account's membership as JSON values."""
    return {
        "address": to_checksum(member.address),
        "status": member.status.name.lower(),
        "roles": roles_text(member.roles).split(", ") if member.roles else [],
        "token": member.token_id,
        "since": member.since,
    }


def _apply(args: argparse.Namespace) -> int:
    try:
        roles = parse_roles(args.roles)
    except ValueError as exc:
        raise CliError(f"--roles: {exc}") from None
    client = open_governance(args, acting=True)
    current = client.parameters().code_of_conduct
    if args.accept_code_of_conduct is None:
        raise CliError(
            f"read the code of conduct at {current.uri} and accept it by its hash: "
            f"--accept-code-of-conduct 0x{current.hash.hex()}"
        )
    try:
        accepted = bytes.fromhex(args.accept_code_of_conduct.removeprefix("0x"))
    except ValueError:
        raise CliError("--accept-code-of-conduct: not a hex hash") from None
    if len(accepted) != 32:
        raise CliError("--accept-code-of-conduct: a hash is 32 bytes (64 hex digits)")
    try:
        receipt = client.apply_for_membership(roles, accepted)
    except ChainError as exc:
        raise CliError(f"the membership contract refused the application: {exc}") from None
    print(
        json.dumps(
            {
                "applicant": to_checksum(client.address),
                "roles": roles_text(roles).split(", "),
                "code_of_conduct": "0x" + accepted.hex(),
                "next": f"a member proposes: cise gov propose --admit {to_checksum(client.address)}",
                "transaction": "0x" + receipt.transaction_hash.hex(),
            }
        )
    )
    return 0


def _list(args: argparse.Namespace) -> int:
    client = open_governance(args, acting=False)
    members = client.members()
    if args.json:
        for member in members:
            print(json.dumps(member_json(member)))
        return 0
    print(f"{'address':<42}  {'status':<9}  {'token':>5}  {'since (UTC)':<19}  roles")
    for member in members:
        print(_row(member))
    return 0


def _row(member: MemberInfo) -> str:
    since = datetime.fromtimestamp(member.since, UTC).strftime("%Y-%m-%d %H:%M:%S")
    token = str(member.token_id) if member.token_id else "-"
    return (
        f"{to_checksum(member.address):<42}  {member.status.name.lower():<9}  {token:>5}  "
        f"{since:<19}  {roles_text(member.roles)}"
    )


def _show(args: argparse.Namespace) -> int:
    client = open_governance(args, acting=args.address is None)
    address = client.address if args.address is None else address_argument(args.address, "address")
    member = client.member_of(address)
    if args.json:
        print(json.dumps(member_json(member) | {"votes": client.votes(address)}))
        return 0
    print(f"{to_checksum(address)}: {member.status.name.lower()}")
    if member.status is MemberStatus.NONE:
        return 0
    print(f"  roles   {roles_text(member.roles)}")
    if member.token_id:
        print(f"  token   {member.token_id}")
    print(f"  votes   {client.votes(address)}")
    print(f"  since   {datetime.fromtimestamp(member.since, UTC):%Y-%m-%d %H:%M:%S} UTC")
    print(f"  may open channels: {'yes' if client.may_open_channels(address) else 'no'}")
    return 0


__all__ = ["add_parsers", "member_json", "run"]

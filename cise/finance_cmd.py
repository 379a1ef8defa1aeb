"""`cise finance create|contribute|bind|status|sync|claim|refund`: co-financing an asset.

A financier opens a financing pool (a target, a deadline in blocks, the agreed return). Without
`--share` (the asset's operator, a registered asset) the funds go to the supplier (or the operator)
as soon as the target is reached, and the operator then puts the pool in the split. With `--share
PPM` the pool has an agreed share of the asset's split and may finance an asset not registered yet
(a planned asset): what it raises is held until the named operator registers the asset with the
pool in its split and runs `cise finance bind` (then the supplier is paid); not bound by the
deadline, every contributor takes its contribution back with `refund`. The pool is repaid from use
fees and its contributors claim pro rata up to principal times return. Every command acts for one
account of a network file and prints one JSON object. Parsing, wiring and printing only: the rules
are the pool contract's (`contracts_solidity/FinancingPool.sol`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from eth_account import Account

from channels.chain.assets import AssetRegistryClient
from channels.chain.errors import ChainError
from channels.chain.financing import FinancingPoolClient, PoolTerms
from channels.core.types import Address, to_checksum
from cise.accounts import add_account_arguments
from cise.arguments import address_argument, positive_int
from cise.asset_split_cmd import Proposal, write_proposal
from cise.channel_cmd import open_account, parse_amount
from cise.errors import CliError
from cise.ledger_cmd import parse_asset_id
from cise.money import euro

STATUS_NAMES = {0: "open", 1: "funded", 2: "failed", 3: "raised"}
PPM_TOTAL = 1_000_000


def add_parsers(sub: Any) -> None:
    finance = sub.add_parser("finance", help="co-financing: pools repaid from an asset's use fees")
    ops = finance.add_subparsers(dest="op", required=True, metavar="OP")
    create = ops.add_parser("create", help="open a pool for an asset, registered or planned")
    _common(create, default_account=0)
    create.add_argument("asset", help="asset id: 0x + 64 hex, or its name")
    create.add_argument("--target", required=True, help="euros to raise")
    create.add_argument("--blocks", type=positive_int, required=True, help="open this many blocks")
    create.add_argument("--return", dest="return_ppm", type=int, default=1_050_000,
                        help="repaid up to principal x this/1,000,000 (default 1,050,000)")  # fmt: skip
    create.add_argument("--supplier", help="who receives the funds (default: the operator)")
    create.add_argument("--share", type=positive_int, metavar="PPM",
                        help="the pool's share of the asset's split (ppm): paid out only once the "
                             "asset is registered with the pool in its split and bound")  # fmt: skip
    create.add_argument("--operator", help="with --share: who will operate the asset and bind it "
                        "(default: the asset's operator, or this account for a planned asset)")  # fmt: skip
    create.add_argument("--from", dest="taken_from", metavar="BENEFICIARY",
                        help="with --share, a registered asset: whose share the pool's is taken "
                             "from (default: the operator's)")  # fmt: skip
    create.add_argument("--proposal", type=Path, metavar="FILE",
                        help="with --share, a registered asset: write the split change here for "
                             "`cise asset split sign|apply` (needed unless this account is the "
                             "operator and the share is its own: then it is applied at once)")  # fmt: skip
    bind = ops.add_parser("bind", help="bind a registered asset to its pool (its operator)")
    _common(bind, default_account=0)
    bind.add_argument("pool", help="the pool's address 0x...")
    contribute = ops.add_parser("contribute", help="put money into a pool (a member's account)")
    _common(contribute, default_account=1)
    contribute.add_argument("pool", help="the pool's address 0x...")
    contribute.add_argument("amount", help="euros")
    for name, what in (
        ("status", "a pool's terms, state and (with --account) your position"),
        ("sync", "account the repayments that arrived (anyone)"),
        ("claim", "take what you are entitled to"),
        ("refund", "take your contribution back from a pool that missed its target"),
    ):
        op = ops.add_parser(name, help=what)
        _common(op, default_account=1)
        op.add_argument("pool", help="the pool's address 0x...")


def _common(parser: argparse.ArgumentParser, default_account: int) -> None:
    parser.add_argument("--network", default=".cise/network.json", help="network file")
    add_account_arguments(parser, default_account)
    parser.add_argument("--data-dir", default=".cise", help="this account's data folder")


def _client(args: argparse.Namespace) -> tuple[FinancingPoolClient, Address]:
    """The account's pool client and the network's token."""
    key, client, _ = open_account(args)
    factory = client.deployment.financing_factory
    if factory is None:
        raise CliError("this network has no financing pool factory (deployed before it existed)")
    finance = FinancingPoolClient(client.connection, factory, Account.from_key(key))
    return finance, client.deployment.token


def run(args: argparse.Namespace) -> int:
    if args.op == "create":
        return _create(args)
    pool = address_argument(args.pool, "pool")
    if args.op == "contribute":
        amount = parse_amount(args.amount)
        if amount <= 0:
            raise CliError("the amount must be positive")
        finance, token = _client(args)

        def contribute() -> tuple[int, Any]:
            finance.approve(pool, amount, token)
            return finance.contribute(pool, amount)

        return _chain(contribute, lambda result: {"contributed": result[0]})
    finance, _ = _client(args)
    if args.op == "bind":
        return _bind(args, finance, pool)
    if args.op == "sync":
        return _chain(
            lambda: finance.sync(pool),
            lambda result: {"to_contributors": result[0], "to_operator": result[1]},
        )
    if args.op == "claim":
        return _chain(lambda: finance.claim(pool), lambda result: {"claimed": result[0]})
    if args.op == "refund":
        return _chain(lambda: finance.refund(pool), lambda result: {"refunded": result[0]})
    return _status(finance, pool)


def _create(args: argparse.Namespace) -> int:
    asset_id = parse_asset_id(args.asset)
    target = parse_amount(args.target)
    supplier = address_argument(args.supplier, "--supplier") if args.supplier else None
    if target <= 0:
        raise CliError("--target must be positive")
    if args.share is None:
        if args.operator:
            raise CliError("--operator goes with --share (a pool bound to the asset)")
        finance, _ = _client(args)
        deadline = finance.connection.block_number() + args.blocks
        return _chain(
            lambda: finance.create_pool(asset_id, target, deadline, args.return_ppm, supplier),
            lambda result: {"pool": to_checksum(result[0]), "deadline_block": deadline},
        )
    if args.share > PPM_TOTAL:
        raise CliError(f"--share {args.share}: at most {PPM_TOTAL} ppm")
    taken_from = address_argument(args.taken_from, "--from") if args.taken_from else None
    finance, _ = _client(args)
    registry = _registry(args, finance)
    operator = address_argument(args.operator, "--operator") if args.operator else None
    registered = _operator_of(registry, asset_id)
    if registered is None and (taken_from or args.proposal):
        raise CliError("--from and --proposal are for a registered asset: a planned asset is "
                       "registered with the pool in its first split")  # fmt: skip
    operator = operator or registered or finance.address
    applies_now = registered == finance.address and taken_from in (None, registered)
    if registered is not None and not applies_now and args.proposal is None:
        raise CliError("--proposal FILE: the split change needs the operator's apply (and the "
                       "consent of the beneficiary it lowers)")  # fmt: skip
    if registered is not None:
        _check_share(registry, asset_id, taken_from or registered, args.share)
    deadline = finance.connection.block_number() + args.blocks
    try:
        pool, _ = finance.create_planned_pool(
            asset_id, operator, target, deadline, args.return_ppm, args.share, supplier
        )
    except ChainError as exc:
        print(json.dumps({"error": str(exc)}))
        return 1
    out: dict[str, object] = {
        "pool": to_checksum(pool),
        "deadline_block": deadline,
        "share_ppm": args.share,
        "operator": to_checksum(operator),
        "asset_registered": registered is not None,
    }
    if registered is not None:
        out.update(_split_change(args, registry, asset_id, pool, taken_from, applies_now))
    print(json.dumps(out))
    return 0


def _check_share(
    registry: AssetRegistryClient, asset_id: bytes, taken_from: Address, share: int
) -> None:
    """Refuse before creating anything a split change that cannot be made."""
    try:
        parts = registry.current_split(asset_id).parts()
    except (ChainError, LookupError) as exc:
        raise CliError(f"the asset's split: {exc}") from None
    if parts.get(taken_from, 0) < share:
        raise CliError(
            f"--from {to_checksum(taken_from)} has {parts.get(taken_from, 0)} ppm of the split, "
            f"fewer than --share {share}"
        )


def _split_change(
    args: argparse.Namespace,
    registry: AssetRegistryClient,
    asset_id: bytes,
    pool: Address,
    taken_from: Address | None,
    applies_now: bool,
) -> dict[str, object]:
    """Put the new pool in the registered asset's split: at once (the operator's own share), or
    as a proposal file for `cise asset split sign|apply`."""
    try:
        if applies_now:
            version, _ = registry.put_pool_in_split(asset_id, pool, args.share)
            return {"split_version": version, "next": "contribute; once raised: cise finance bind"}
        beneficiaries, ppm = registry.pool_split(asset_id, pool, args.share, taken_from)
        current = registry.current_split(asset_id)
    except (ChainError, LookupError, ValueError) as exc:
        return {"split_error": str(exc)}
    proposal = Proposal.opened(registry, asset_id, current, (beneficiaries, ppm), args.blocks)
    write_proposal(args.proposal, proposal)
    return {
        "split_proposal": str(args.proposal),
        "next": f"cise asset split sign {args.proposal} (the beneficiary lowered), then "
        f"cise asset split apply {args.proposal} (the operator); once raised: cise finance bind",
    }


def _registry(args: argparse.Namespace, finance: FinancingPoolClient) -> AssetRegistryClient:
    key, client, _ = open_account(args, create=False)
    if client.deployment.asset_registry is None:
        raise CliError("this network has no asset registry")
    return AssetRegistryClient(finance.connection, client.deployment, Account.from_key(key))


def _operator_of(registry: AssetRegistryClient, asset_id: bytes) -> Address | None:
    """The asset's operator; None when it is not registered (a planned asset)."""
    try:
        return registry.asset_of(asset_id).operator
    except ChainError as exc:
        if "AssetRegistryUnknownAsset" in str(exc):
            return None
        raise CliError(f"the asset registry: {exc}") from None


def _bind(args: argparse.Namespace, finance: FinancingPoolClient, pool: Address) -> int:
    """Bind the pool's asset with its current split, read from the registry's logs."""
    terms = _terms(finance, pool)
    if terms.share_ppm == 0:
        raise CliError(f"{to_checksum(pool)} has no agreed share: it was paid out at its target")
    registry = _registry(args, finance)
    try:
        split = registry.current_split(terms.asset_id)
        version = split.version
    except ChainError as exc:
        print(json.dumps({"error": str(exc)}))
        return 1
    except LookupError as exc:
        raise CliError(str(exc)) from None
    return _chain(
        lambda: finance.bind(pool, terms.asset_id, split.beneficiaries, split.ppm),
        lambda _: {
            "bound": "0x" + terms.asset_id.hex(),
            "split_version": version,
            "share_ppm": split.parts().get(pool, 0),
            "paid": euro(terms.target),
        },
    )


def _terms(finance: FinancingPoolClient, pool: Address) -> PoolTerms:
    try:
        return finance.terms(pool)
    except ChainError as exc:
        raise CliError(f"{to_checksum(pool)} is not a pool of this network: {exc}") from None


def _chain(action: Any, shape: Any) -> int:
    """Run one chain action; print its result as JSON, or the contract's refusal (exit 1)."""
    try:
        result = action()
    except ChainError as exc:
        print(json.dumps({"error": str(exc)}))
        return 1
    print(json.dumps(shape(result)))
    return 0


def _status(finance: FinancingPoolClient, pool: Address) -> int:
    try:
        terms, state = finance.terms(pool), finance.state(pool)
        position = finance.position(pool, finance.address)
        owed = finance.outstanding(pool)
    except ChainError as exc:
        raise CliError(f"{to_checksum(pool)} is not a pool of this network: {exc}") from None
    bound = {}
    if terms.share_ppm:
        bound = {"share_ppm": terms.share_ppm, "operator": to_checksum(terms.planned_operator)}
    print(
        json.dumps(
            {
                "pool": to_checksum(pool),
                "asset": "0x" + terms.asset_id.hex(),
                "status": STATUS_NAMES.get(state.status, str(state.status)),
                **bound,
                "target": euro(terms.target),
                "raised": euro(state.raised),
                "deadline_block": terms.deadline,
                "return": terms.return_ppm / 1_000_000,
                "cap": euro(terms.cap),
                "repaid": euro(state.repaid),
                "owed": euro(owed),  # what the asset still owes the contributors
                "to_operator": euro(state.to_operator),
                "contributors": state.contributors,
                "you": {
                    "contributed": euro(position.contributed),
                    "claimed": euro(position.claimed),
                    "claimable": euro(finance.claimable(pool, finance.address)),
                    "cap": euro(position.cap),
                },
            }
        )
    )
    return 0


__all__ = ["add_parsers", "run"]

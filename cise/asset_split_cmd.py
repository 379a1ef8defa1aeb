"""`cise asset split propose|sign|show|apply`, `cise asset set-agent`, `cise asset transfer`.

A split change that lowers or removes a beneficiary's share takes effect only with that
beneficiary's signed consent (issue 19; `channels.chain.split_changes`). The organisations meet
through a proposal file: the operator writes it (`propose`: the asset, the current and the new
split, the new split version, the consents' expiry block), each beneficiary whose share goes down
adds its signature (`sign`, with its own account), anyone reads it (`show`: the new split, who
must sign, who has), and the operator sends it (`apply`). A beneficiary that is a contract or does
not answer is lowered by an ordinary proposal instead, a financing pool not yet repaid its cap by a
constitutional one (`show` says so). `set-agent` and `transfer` are the operator's other acts.

Exit status: 0 done; 2 for a bad argument or a refusal (nothing sent, nothing written). Parsing,
wiring and printing only: the rules are the contract's, which has the last word.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from eth_account import Account

from channels.chain.assets import (
    AssetRegistryClient,
    LoweredBy,
    LoweredShare,
    SplitChanged,
    SplitConsent,
    canonical_split,
)
from channels.chain.errors import ChainError
from channels.chain.split_changes import consent_digest
from channels.codec.ecdsa import InvalidSignature, recover_signer
from channels.core.types import Address, to_checksum
from channels.input_limits import InputError, load_json
from cise.arguments import address_argument, positive_int
from cise.channel_cmd import open_account
from cise.errors import CliError
from cise.ledger_cmd import parse_asset_id

KIND = "cise-split-change"
DEFAULT_EXPIRY_BLOCKS = 1_000  # blocks the consents stay valid after `propose`


def add_parsers(ops: Any, common: Any) -> None:
    """The `split`, `set-agent` and `transfer` ops of `cise asset`; `common(parser, account)` adds
    --network, --account and --data-dir."""
    split = ops.add_parser("split", help="change an asset's split with the consents it needs")
    split_ops = split.add_subparsers(dest="split_op", required=True, metavar="STEP")
    propose = split_ops.add_parser("propose", help="write a split change to sign (operator)")
    common(propose, 0)
    propose.add_argument("asset", help="asset id: 0x + 64 hex, or its name")
    propose.add_argument("--split", required=True, help="the new split: 0xADDR=PPM,0xADDR=PPM")
    propose.add_argument("--out", required=True, type=Path, help="the proposal file to write")
    propose.add_argument(
        "--expiry-blocks",
        type=positive_int,
        default=DEFAULT_EXPIRY_BLOCKS,
        help=f"blocks the consents stay valid (default {DEFAULT_EXPIRY_BLOCKS})",
    )
    for step, text, account in (
        ("sign", "add this account's consent to the proposal file", 7),
        ("show", "the new split, who must sign and who has", 0),
        ("apply", "send the change with its consents (operator)", 0),
    ):
        parser = split_ops.add_parser(step, help=text)
        common(parser, account)
        parser.add_argument("proposal", type=Path, help="the proposal file")
    set_agent = ops.add_parser("set-agent", help="replace the asset's agent key (operator)")
    common(set_agent, 0)
    set_agent.add_argument("asset", help="asset id: 0x + 64 hex, or its name")
    set_agent.add_argument("--agent", required=True, help="the new agent's address 0x...")
    transfer = ops.add_parser("transfer", help="hand the asset to another operator (operator)")
    common(transfer, 0)
    transfer.add_argument("asset", help="asset id: 0x + 64 hex, or its name")
    transfer.add_argument("--to", required=True, help="the new operator's address 0x...")


# ----------------------------------------------------------------------------- the proposal file


@dataclass(frozen=True, slots=True)
class Proposal:
    """A split change on its way: what `propose` wrote plus the consents signed so far."""

    chain_id: int
    registry: Address
    asset_id: bytes
    version: int  # the new split version
    expiry: int  # the consents' last valid block
    current: dict[Address, int]
    split: dict[Address, int]
    consents: dict[Address, bytes]

    def to_json(self) -> dict[str, Any]:
        def parts(split: dict[Address, int]) -> dict[str, int]:
            beneficiaries, ppm = canonical_split(split)
            return {to_checksum(b): p for b, p in zip(beneficiaries, ppm, strict=True)}

        return {
            "kind": KIND,
            "chain_id": self.chain_id,
            "registry": to_checksum(self.registry),
            "asset": "0x" + self.asset_id.hex(),
            "version": self.version,
            "expiry": self.expiry,
            "current": parts(self.current),
            "split": parts(self.split),
            "consents": {
                to_checksum(b): "0x" + s.hex()
                for b, s in sorted(self.consents.items(), key=lambda i: int.from_bytes(i[0]))
            },
        }

    def new_split(self) -> tuple[tuple[Address, ...], tuple[int, ...]]:
        return canonical_split(self.split)

    @classmethod
    def opened(
        cls,
        registry: AssetRegistryClient,
        asset_id: bytes,
        current: SplitChanged,
        split: tuple[Sequence[Address], Sequence[int]],
        expiry_blocks: int,
    ) -> Proposal:
        """A new proposal to change `current` (the split in force) to `split`, its consents valid
        for `expiry_blocks` from the chain's head; no consent yet."""
        beneficiaries, ppm = split
        return cls(
            chain_id=registry.connection.chain_id,
            registry=registry.registry,
            asset_id=asset_id,
            version=current.version + 1,
            expiry=registry.connection.block_number() + expiry_blocks,
            current=current.parts(),
            split=dict(zip(beneficiaries, ppm, strict=True)),
            consents={},
        )


def read_proposal(path: Path) -> Proposal:
    """The proposal file at `path`; `CliError` naming the file and what is wrong."""
    what = f"proposal {path}"
    try:
        raw = load_json(path.read_bytes(), what=what)
    except OSError as exc:
        raise CliError(f"{what}: {exc.strerror}") from None
    except InputError as exc:
        raise CliError(str(exc)) from None
    try:
        if not isinstance(raw, dict) or raw.get("kind") != KIND:
            raise ValueError(f"not a split change (kind must be {KIND!r})")
        return Proposal(
            chain_id=_int(raw["chain_id"], "chain_id"),
            registry=address_argument(str(raw["registry"]), f"{what}: registry"),
            asset_id=parse_asset_id(str(raw["asset"]), f"{what}: asset"),
            version=_int(raw["version"], "version"),
            expiry=_int(raw["expiry"], "expiry"),
            current=_parts(raw["current"], f"{what}: current"),
            split=_parts(raw["split"], f"{what}: split"),
            consents={
                address_argument(b, f"{what}: consents"): _hex(s, f"consent of {b}")
                for b, s in dict(raw["consents"]).items()
            },
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise CliError(f"{what}: {exc}") from None


def write_proposal(path: Path, proposal: Proposal) -> None:
    """Write `proposal` to `path` atomically (a reader sees the old file or the new one)."""
    text = json.dumps(proposal.to_json(), indent=2) + "\n"
    directory = path.parent if str(path.parent) else Path(".")
    try:
        fd, temporary = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.")
        with os.fdopen(fd, "w") as out:
            out.write(text)
        os.replace(temporary, path)
    except OSError as exc:
        raise CliError(f"cannot write {path}: {exc.strerror}") from None


def _int(value: object, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{what} must be a non-negative integer, got {value!r}")
    return value


def _hex(value: object, what: str) -> bytes:
    if not isinstance(value, str) or not value.startswith("0x"):
        raise ValueError(f"{what} must be 0x-prefixed hex")
    return bytes.fromhex(value[2:])


def _parts(value: object, what: str) -> dict[Address, int]:
    if not isinstance(value, dict) or not value:
        raise ValueError(f"{what} must be an object of address: ppm")
    return {address_argument(str(b), what): _int(p, f"{what} ppm") for b, p in value.items()}


# ----------------------------------------------------------------------------- commands


def run(args: argparse.Namespace) -> int:
    """Dispatch `cise asset split ...`, `set-agent` and `transfer`."""
    if args.op == "set-agent":
        return _set_agent(args)
    if args.op == "transfer":
        return _transfer(args)
    steps = {"propose": _propose, "sign": _sign, "show": _show, "apply": _apply}
    return steps[args.split_op](args)


def _registry(args: argparse.Namespace) -> AssetRegistryClient:
    key, client, _ = open_account(args)
    try:
        return AssetRegistryClient(client.connection, client.deployment, Account.from_key(key))
    except ValueError as exc:
        raise CliError(f"the network has no asset registry: {exc}") from None


def _current(registry: AssetRegistryClient, asset_id: bytes) -> SplitChanged:
    try:
        return registry.current_split(asset_id)
    except ChainError as exc:
        raise CliError(f"asset 0x{asset_id.hex()}: {exc}") from None
    except LookupError as exc:
        raise CliError(str(exc)) from None


def _propose(args: argparse.Namespace) -> int:
    from cise.asset_cmd import parse_split

    asset_id = parse_asset_id(args.asset)
    beneficiaries, ppm = parse_split(args.split)
    registry = _registry(args)
    current = _current(registry, asset_id)
    info = registry.asset_of(asset_id)
    if info.operator != registry.address:
        raise CliError(
            f"this account ({to_checksum(registry.address)}) is not the asset's operator "
            f"({to_checksum(info.operator)})"
        )
    proposal = Proposal.opened(
        registry, asset_id, current, (beneficiaries, ppm), args.expiry_blocks
    )
    write_proposal(args.out, proposal)
    _print(registry, proposal, _plan(registry, proposal))
    print(f"written to {args.out}")
    return 0


def _sign(args: argparse.Namespace) -> int:
    proposal = read_proposal(args.proposal)
    registry = _registry(args)
    _check_on_this_chain(registry, proposal)
    me = registry.address
    lowered = {s.beneficiary: s for s in _plan(registry, proposal)}
    if me not in lowered:
        raise CliError(
            f"this account ({to_checksum(me)}) keeps or gains its share in this change: "
            "there is nothing for it to consent to"
        )
    if lowered[me].needs is not LoweredBy.CONSENT:
        raise CliError(f"{to_checksum(me)}: {lowered[me].needs.value}; no signature is taken")
    if registry.connection.block_number() > proposal.expiry:
        raise CliError(f"the proposal expired at block {proposal.expiry}: propose it again")
    beneficiaries, ppm = proposal.new_split()
    consent = registry.sign_split_consent(
        proposal.asset_id, beneficiaries, ppm, proposal.expiry, proposal.version
    )
    signed = replace(proposal, consents={**proposal.consents, me: consent.signature})
    write_proposal(args.proposal, signed)
    before, after = lowered[me].before, lowered[me].after
    print(f"{to_checksum(me)} consents: {before} -> {after} ppm in split version "
          f"{proposal.version} (valid to block {proposal.expiry})")  # fmt: skip
    return 0


def _show(args: argparse.Namespace) -> int:
    proposal = read_proposal(args.proposal)
    registry = _registry(args)
    _check_on_this_chain(registry, proposal)
    _print(registry, proposal, _plan(registry, proposal))
    return 0


def _apply(args: argparse.Namespace) -> int:
    proposal = read_proposal(args.proposal)
    registry = _registry(args)
    _check_on_this_chain(registry, proposal)
    plan = _plan(registry, proposal)
    valid = _valid_consents(registry, proposal)
    missing = [s for s in plan if s.needs is LoweredBy.CONSENT and s.beneficiary not in valid]
    if missing:
        names = ", ".join(f"{to_checksum(s.beneficiary)} ({s.before} -> {s.after} ppm)"
                          for s in missing)  # fmt: skip
        raise CliError(
            f"not applied: the change lowers {names} without a valid consent; each must run "
            f"`cise asset split sign {args.proposal}` (or the members decide by an ordinary "
            "proposal)"
        )
    pools = [s for s in plan if s.needs is LoweredBy.UNREPAID_POOL]
    if pools:
        raise CliError(
            "not applied: the change lowers financing pool(s) not yet repaid their cap ("
            + ", ".join(to_checksum(s.beneficiary) for s in pools)
            + "): only a constitutional proposal may"
        )
    needed = {s.beneficiary for s in plan if s.needs is LoweredBy.CONSENT}
    consents = [
        SplitConsent(b, proposal.expiry, signature)
        for b, signature in proposal.consents.items()
        if b in needed
    ]
    beneficiaries, ppm = proposal.new_split()
    try:
        version, receipt = registry.change_split(proposal.asset_id, beneficiaries, ppm, consents)
    except ChainError as exc:
        raise CliError(f"the registry refused the split change: {exc}") from None
    print(
        json.dumps(
            {
                "asset": "0x" + proposal.asset_id.hex(),
                "split_version": version,
                "consents": [to_checksum(c.beneficiary) for c in consents],
                "gas_used": receipt.gas_used,
                "transaction": "0x" + receipt.transaction_hash.hex(),
            }
        )
    )
    return 0


def _set_agent(args: argparse.Namespace) -> int:
    asset_id = parse_asset_id(args.asset)
    agent = address_argument(args.agent, "--agent")
    registry = _registry(args)
    try:
        receipt = registry.set_agent(asset_id, agent)
    except ChainError as exc:
        raise CliError(f"the registry refused the new agent: {exc}") from None
    print(json.dumps({"asset": "0x" + asset_id.hex(), "agent": to_checksum(agent),
                      "transaction": "0x" + receipt.transaction_hash.hex()}))  # fmt: skip
    return 0


def _transfer(args: argparse.Namespace) -> int:
    asset_id = parse_asset_id(args.asset)
    to = address_argument(args.to, "--to")
    registry = _registry(args)
    try:
        receipt = registry.transfer_asset(asset_id, to)
    except ChainError as exc:
        raise CliError(f"the registry refused the transfer: {exc}") from None
    print(json.dumps({"asset": "0x" + asset_id.hex(), "operator": to_checksum(to),
                      "transaction": "0x" + receipt.transaction_hash.hex()}))  # fmt: skip
    return 0


# ----------------------------------------------------------------------------- helpers


def _check_on_this_chain(registry: AssetRegistryClient, proposal: Proposal) -> None:
    if (proposal.chain_id, proposal.registry) != (registry.connection.chain_id, registry.registry):
        raise CliError(
            f"the proposal is for the registry {to_checksum(proposal.registry)} on chain "
            f"{proposal.chain_id}, not this network's"
        )
    current = _current(registry, proposal.asset_id)
    if current.version + 1 != proposal.version or current.parts() != proposal.current:
        raise CliError(
            f"the asset's split changed since the proposal (now version {current.version}): "
            "propose it again"
        )


def _plan(registry: AssetRegistryClient, proposal: Proposal) -> tuple[LoweredShare, ...]:
    beneficiaries, ppm = proposal.new_split()
    try:
        return registry.split_change_plan(proposal.asset_id, beneficiaries, ppm)
    except ChainError as exc:
        raise CliError(f"asset 0x{proposal.asset_id.hex()}: {exc}") from None


def _valid_consents(registry: AssetRegistryClient, proposal: Proposal) -> set[Address]:
    """The beneficiaries whose signature in the file is theirs, for this very change."""
    beneficiaries, ppm = proposal.new_split()
    digest = consent_digest(
        registry.consent_domain(),
        proposal.asset_id,
        beneficiaries,
        ppm,
        proposal.version,
        proposal.expiry,
    )
    valid: set[Address] = set()
    for beneficiary, signature in proposal.consents.items():
        try:
            if recover_signer(digest, signature) == beneficiary:
                valid.add(beneficiary)
        except InvalidSignature:
            continue
    return valid


def _print(
    registry: AssetRegistryClient, proposal: Proposal, plan: tuple[LoweredShare, ...]
) -> None:
    valid = _valid_consents(registry, proposal)
    print(f"asset 0x{proposal.asset_id.hex()}: split version {proposal.version - 1} -> "
          f"{proposal.version}, consents valid to block {proposal.expiry}")  # fmt: skip
    names = sorted(set(proposal.current) | set(proposal.split), key=lambda a: int.from_bytes(a))
    for beneficiary in names:
        before, after = proposal.current.get(beneficiary, 0), proposal.split.get(beneficiary, 0)
        print(f"  {to_checksum(beneficiary)}  {before:>7} -> {after:>7} ppm")
    must = [s for s in plan if s.needs is LoweredBy.CONSENT]
    print("must sign: " + (", ".join(to_checksum(s.beneficiary) for s in must) or "nobody"))
    print("signed: " + (", ".join(to_checksum(s.beneficiary) for s in must
                                  if s.beneficiary in valid) or "nobody"))  # fmt: skip
    for share in plan:
        if share.needs is not LoweredBy.CONSENT:
            print(f"  {to_checksum(share.beneficiary)}: {share.needs.value}")
    if any(s.needs is LoweredBy.UNREPAID_POOL for s in plan):
        print("ready: no (a constitutional proposal only)")
    else:
        ready = all(s.beneficiary in valid for s in must)
        print(f"ready: {'yes' if ready else 'no'}")


__all__ = ["Proposal", "add_parsers", "read_proposal", "run", "write_proposal"]

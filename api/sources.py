"""What the HTTP API reads, and the read functions that shape it into the JSON of docs/api.md.

`ApiSources` names the sources: the chain (a `Connection` and the network's `Deployment`), each
asset's ledger file, the hub's settlement file, the watchtowers' files and, optionally, a live
view of a hub running in this process. Each `read_*` function is blocking (chain calls, sqlite
reads) and returns JSON-ready values (dicts, lists, ints, strings, None); `api.app` runs them in
a worker thread, one at a time per `ApiSources` (`ApiSources.lock`: the embedded chain is not
safe for concurrent use). A read function raises `NotFoundError` for an unknown asset.

What it must never do: write anything. Every sqlite file is opened read-only (its owner may be
running), the chain is only called (`eth_call`, logs), never sent a transaction. It keeps no
state of its own beyond the lock and the start time.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio
from eth_account import Account

from assets.audit import LedgerAudit, audit_ledger
from assets.ledger import (
    KIND_ADMISSION,
    KIND_SERVICE,
    KIND_USE,
    Anchor,
    LedgerError,
    SignedEntry,
    decode_entry,
)
from channels.chain.abi import DecodedEvent
from channels.chain.assets import AssetHistory, AssetRegistered, AssetRegistryClient
from channels.chain.client import ChannelState, Web3ChainClient
from channels.chain.connection import Connection
from channels.chain.deploy import Deployment
from channels.chain.financing import FAILED, FUNDED, OPEN, RAISED, FinancingPoolClient
from channels.chain.governance import GovernanceClient, roles_text
from channels.codec.eip712 import Domain
from channels.codec.keccak import keccak
from channels.core.channel import get_capacity
from channels.core.types import Address, ChannelId, to_checksum
from channels.ownership import connect_read_only
from hub.service import Hub
from settlement.store import SettlementStore, SettlementStoreError
from settlement.summary import round_summary, status_summary
from watchtower.store import TowerStoreError, read_snapshot

# Reads need an account on a client but never send anything: a fixed throwaway key.
_READ_ONLY_KEY = keccak(b"cise api: read-only chain client")
ROUNDS_SHOWN = 50
LOG_RANGE = 2_000  # blocks per eth_getLogs call
KIND_NAMES = {KIND_USE: "use", KIND_SERVICE: "service", KIND_ADMISSION: "admission"}
POOL_STATUS = {OPEN: "open", FUNDED: "funded", FAILED: "failed", RAISED: "raised"}


class NotFoundError(LookupError):
    """The request names something the sources do not have (an asset, a ledger)."""


@dataclass(frozen=True, slots=True)
class LiveView:
    """What a hub running in this process knows now and the chain does not.

    `capacities`: channel id -> (what participant1 can send, what participant2 can send) in
    token units; `payments` and `uses`: counters since the hub started."""

    capacities: Mapping[int, tuple[int, int]]
    payments: int
    uses: int


def hub_live_view(hub: Hub) -> LiveView:
    """What a hub running in this process knows now: each open channel's capacities in
    participant order, and the payments it forwarded (a hub does not see uses)."""
    capacities = {}
    for channel_id, channel in hub.service.channels.items():
        if not channel.is_open:
            continue
        ours = get_capacity(channel.our, channel.partner)
        theirs = get_capacity(channel.partner, channel.our)
        first = channel.our.address < channel.partner.address
        capacities[int(channel_id)] = (ours, theirs) if first else (theirs, ours)
    return LiveView(capacities=capacities, payments=hub.stats.forwarded, uses=0)


@dataclass(slots=True)
class ApiSources:
    """Everything the API reads (see the module docstring)."""

    connection: Connection
    deployment: Deployment
    ledgers: dict[bytes, Path] = field(default_factory=dict)  # asset id -> ledger sqlite file
    names: dict[bytes, str] = field(default_factory=dict)  # asset id -> display name
    settlement: Path | None = None  # the hub's settlement file
    towers: list[Path] = field(default_factory=list)  # watchtower store files
    live: Callable[[], LiveView] | None = None
    lock: trio.Lock = field(default_factory=trio.Lock, repr=False)
    started_at: float = field(default_factory=time.time)
    # asset id -> ((chain head, ledger file state), its audited read): one audit per block and file
    asset_reads: dict[bytes, tuple[tuple[object, ...], Any]] = field(
        default_factory=dict, repr=False
    )

    @property
    def domain(self) -> Domain:
        """The network's EIP-712 domain (the channel manager's)."""
        return Domain(self.deployment.chain_id, self.deployment.manager)


def _checksum(address: bytes | None) -> str | None:
    return None if address is None else to_checksum(Address(address))


def _reader() -> Any:
    return Account.from_key(_READ_ONLY_KEY)


# ---------------------------------------------------------------------------------------------
# Network and members


def read_network(sources: ApiSources) -> dict[str, Any]:
    """`GET /api/network`."""
    d = sources.deployment
    parameters: dict[str, Any] | None = None
    settle_timeout = d.settle_timeout
    if d.governed:
        governance = GovernanceClient(sources.connection, d, None)
        p = governance.parameters()
        settle_timeout = p.settle_timeout
        parameters = {
            "hub_fee_cap_units": p.hub_fee_cap,
            "max_hub_fee_cap_units": p.max_hub_fee_cap,
            "settlement_period_s": p.settlement_period,
            "settle_timeout_blocks": p.settle_timeout,
            "voting_delay_blocks": p.voting_delay,
            "voting_period_blocks": p.voting_period,
            "proposal_threshold": p.proposal_threshold,
            "quorum_percent": p.quorum_percent,
            "constitutional_quorum_percent": p.constitutional_quorum_percent,
            "timelock_delay_s": p.timelock_delay,
            "constitutional_delay_s": p.constitutional_delay,
            "active_members": p.active_members,
            "code_of_conduct": {
                "hash": "0x" + p.code_of_conduct.hash.hex(),
                "uri": p.code_of_conduct.uri,
            },
        }
        if d.treasury is not None:  # the community treasury (issue 19.5)
            parameters["treasury_fee_ppm"] = governance.treasury_fee_ppm()
            parameters["treasury_balance_units"] = governance.treasury_balance()
    return {
        "chain_id": d.chain_id,
        "manager": _checksum(d.manager),
        "token": _checksum(d.token),
        "registry": _checksum(d.asset_registry),
        "membership": _checksum(d.membership),
        "governor": _checksum(d.governor),
        "financing_factory": _checksum(d.financing_factory),
        "treasury": _checksum(d.treasury),
        "block_number": int(sources.connection.block_number()),
        "settle_timeout": settle_timeout,
        "parameters": parameters,
    }


def read_members(sources: ApiSources) -> dict[str, Any]:
    """`GET /api/members`: every account the membership contract knows (as `cise member list`)."""
    if not sources.deployment.governed:
        return {"members": [], "count": 0}
    members = GovernanceClient(sources.connection, sources.deployment, None).members()
    out = [
        {
            "address": to_checksum(m.address),
            "roles": roles_text(m.roles).split(", ") if m.roles else [],
            "status": m.status.name.lower(),
            "token": m.token_id,
            "since": m.since,
        }
        for m in members
    ]
    return {"members": out, "count": len(out)}


def is_active_member(sources: ApiSources, account: Address) -> bool:
    """Whether `account` is an active member on chain (False on a network without governance)."""
    if not sources.deployment.governed:
        return False
    client = GovernanceClient(sources.connection, sources.deployment, None)
    return client.is_active_member(account)


# ---------------------------------------------------------------------------------------------
# Channels


def read_channels(sources: ApiSources) -> dict[str, Any]:
    """`GET /api/channels`: every channel the manager opened, as the chain holds it now."""
    client = Web3ChainClient(sources.connection, sources.deployment, _reader())
    head = int(sources.connection.block_number())
    events: list[DecodedEvent] = []
    for start in range(sources.deployment.block_number, head + 1, LOG_RANGE):
        end = min(head, start + LOG_RANGE - 1)  # nodes cap eth_getLogs ranges
        events += sources.connection.get_logs(
            sources.deployment.manager, start, end, client.manager_abi
        )
    capacities: Mapping[int, tuple[int, int]] = {}
    if sources.live is not None:
        capacities = sources.live().capacities
    out = []
    for event in events:
        if event.name != "ChannelOpened":
            continue
        channel_id = int(event.args["channelId"])
        p1, p2 = Address(event.args["participant1"]), Address(event.args["participant2"])
        info = client.get_channel(ChannelId(channel_id), p1, p2)
        capacity = capacities.get(channel_id)
        out.append(
            {
                "channel_id": channel_id,
                "participant1": to_checksum(p1),
                "participant2": to_checksum(p2),
                "state": "settled" if info.state is ChannelState.NONE else info.state.name.lower(),
                "deposit1_units": int(info.deposit1),
                "deposit2_units": int(info.deposit2),
                "withdrawn1_units": int(info.withdrawn1),
                "withdrawn2_units": int(info.withdrawn2),
                "total_units": int(info.total),
                "capacity1_units": None if capacity is None else capacity[0],
                "capacity2_units": None if capacity is None else capacity[1],
            }
        )
    return {"channels": out}


# ---------------------------------------------------------------------------------------------
# Assets


def _read_only(path: Path) -> sqlite3.Connection:
    """A read-only connection that leaves no file behind (`channels.ownership.connect_read_only`)."""
    return connect_read_only(path)


def read_ledger_file(path: Path) -> tuple[tuple[SignedEntry, ...], tuple[Anchor, ...]]:
    """The entries (by seq) and the locally recorded anchors of an asset agent's ledger file.

    `LedgerError` for a broken stored entry or an unreadable file."""
    if not path.is_file():
        raise LedgerError(f"no ledger file at {path}")
    try:
        db = _read_only(path)
        try:
            rows = db.execute("SELECT seq, entry FROM entries ORDER BY seq").fetchall()
            anchor_rows = db.execute(
                'SELECT from_seq, to_seq, root, head_hash FROM anchors ORDER BY "index"'
            ).fetchall()
        finally:
            db.close()
    except sqlite3.Error as exc:
        raise LedgerError(f"{path}: not a readable ledger file: {exc}") from None
    entries = []
    for seq, raw in rows:
        entry = decode_entry(bytes(raw))
        if entry.seq != seq:
            raise LedgerError(f"the stored entry says seq {entry.seq}", seq)
        entries.append(entry)
    anchors = tuple(
        Anchor(int(a), int(b), bytes(root), bytes(head)) for a, b, root, head in anchor_rows
    )
    return tuple(entries), anchors


@dataclass(frozen=True, slots=True)
class _AssetRead:
    asset_id: bytes
    entries: tuple[SignedEntry, ...]
    history: AssetHistory
    audit: LedgerAudit
    problem: str | None  # the ledger file could not be read


def _registry(sources: ApiSources) -> AssetRegistryClient:
    return AssetRegistryClient(sources.connection, sources.deployment, _reader())


def _read_asset(sources: ApiSources, asset_id: bytes) -> _AssetRead:
    path = sources.ledgers.get(asset_id)
    if path is None:
        raise NotFoundError(f"unknown asset 0x{asset_id.hex()}")
    if sources.deployment.asset_registry is None:
        raise NotFoundError("this network has no asset registry")
    key = (int(sources.connection.block_number()), *_file_state(path))
    cached = sources.asset_reads.get(asset_id)
    if cached is not None and cached[0] == key:
        read: _AssetRead = cached[1]
        return read
    read = _audited_read(sources, asset_id, path)
    sources.asset_reads[asset_id] = (key, read)
    return read


def _file_state(path: Path) -> tuple[object, ...]:
    """What changes when an sqlite file (or its write-ahead log) is written."""
    state: list[object] = []
    for file in (path, path.with_name(path.name + "-wal")):
        try:
            stat = file.stat()
        except FileNotFoundError:
            state.append(None)
            continue
        state.append((stat.st_mtime_ns, stat.st_size))
    return tuple(state)


def _audited_read(sources: ApiSources, asset_id: bytes, path: Path) -> _AssetRead:
    """The asset's ledger audited against the chain's history (what `cise ledger verify` does)."""
    history = _registry(sources).asset_history(asset_id)
    problem = None
    entries: tuple[SignedEntry, ...] = ()
    local: tuple[Anchor, ...] | None = None
    try:
        entries, local = read_ledger_file(path)
    except LedgerError as exc:
        problem = f"the ledger file cannot be read: {exc}"
    registry = sources.deployment.asset_registry
    assert registry is not None  # checked by `_read_asset`
    domain = Domain(sources.deployment.chain_id, registry)
    audit = audit_ledger(
        entries, asset_id=asset_id, domain=domain, history=history, local_anchors=local
    )
    return _AssetRead(asset_id, entries, history, audit, problem)


def _asset_json(sources: ApiSources, read: _AssetRead) -> dict[str, Any]:
    history = read.history
    registered = any(isinstance(e, AssetRegistered) for e in history.events)
    operators, agents = history.operators(), history.agents()
    splits = history.splits()
    version = max(splits) if splits else 0
    beneficiaries = (
        [
            {"address": to_checksum(b), "ppm": p}
            for b, p in zip(splits[version].beneficiaries, splits[version].ppm, strict=True)
        ]
        if splits
        else []
    )
    totals = read.audit.totals
    problem = read.problem or read.audit.problem
    return {
        "asset_id": "0x" + read.asset_id.hex(),
        "name": sources.names.get(read.asset_id, "0x" + read.asset_id.hex()[:8]),
        "registered": registered,
        "operator": to_checksum(operators[-1]) if operators else None,
        "agent": to_checksum(agents[-1]) if agents else None,
        "split_version": version,
        "beneficiaries": beneficiaries,
        "uses": 0 if totals is None else totals.uses,
        "revenue_units": 0 if totals is None else totals.fee_total,
        "entries": len(read.entries),
        "anchored_to_seq": read.audit.anchored_seq,
        "verified": problem is None,
    }


def read_assets(sources: ApiSources) -> dict[str, Any]:
    """`GET /api/assets`: each asset with a ledger file, its split and totals, audited."""
    return {
        "assets": [_asset_json(sources, _read_asset(sources, a)) for a in sorted(sources.ledgers)]
    }


def read_asset(sources: ApiSources, asset_id: bytes) -> dict[str, Any]:
    """`GET /api/assets/{asset_id}`: as in the list, plus revenue per hour and each income."""
    read = _read_asset(sources, asset_id)
    out = _asset_json(sources, read)
    hours: dict[int, list[int]] = {}
    for entry in read.entries:
        if entry.kind != KIND_USE:
            continue
        slot = hours.setdefault(entry.time - entry.time % 3600, [0, 0])
        slot[0] += 1
        slot[1] += entry.decode_use_body().fee
    out["revenue_by_hour"] = [
        {"t": t, "uses": uses, "revenue_units": units} for t, (uses, units) in sorted(hours.items())
    ]
    totals = read.audit.totals
    out["income"] = (
        []
        if totals is None
        else [
            {"beneficiary": to_checksum(Address(b)), "units": units}
            for b, units in totals.by_beneficiary
        ]
    )
    return out


def _entry_json(entry: SignedEntry) -> dict[str, Any]:
    body = entry.decode_body()
    out: dict[str, Any] = {
        "seq": entry.seq,
        "kind": KIND_NAMES.get(entry.kind, str(entry.kind)),
        "time": entry.time,
        "event_id": body.event_id,
        "user": None,
        "fee_units": 0,
        "shares": [],
    }
    if entry.kind == KIND_USE:
        use = entry.decode_use_body()
        out["user"] = "0x" + use.user.hex()
        out["fee_units"] = use.fee
        out["shares"] = [
            {
                "beneficiary": to_checksum(Address(s.beneficiary)),
                "units": s.amount,
                "payment_id": s.payment_id,
            }
            for s in use.shares
        ]
    return out


def read_ledger_page(
    sources: ApiSources, asset_id: bytes, from_seq: int, limit: int
) -> dict[str, Any]:
    """`GET /api/assets/{asset_id}/ledger`: up to `limit` entries from `from_seq` on."""
    path = sources.ledgers.get(asset_id)
    if path is None:
        raise NotFoundError(f"unknown asset 0x{asset_id.hex()}")
    try:
        entries, _ = read_ledger_file(path)
    except LedgerError as exc:
        raise NotFoundError(f"the ledger of 0x{asset_id.hex()} cannot be read: {exc}") from None
    page = [e for e in entries if e.seq >= from_seq][: limit + 1]
    more = len(page) > limit
    page = page[:limit]
    return {
        "entries": [_entry_json(e) for e in page],
        "next_seq": page[-1].seq + 1 if more and page else None,
    }


def read_verification(sources: ApiSources, asset_id: bytes) -> dict[str, Any]:
    """`GET /api/assets/{asset_id}/verification`: what `cise ledger verify` checks."""
    read = _read_asset(sources, asset_id)
    problem = read.problem or read.audit.problem
    return {
        "ok": problem is None,
        "problem": problem,
        "problem_seq": read.audit.problem_seq,
        "anchored_to_seq": read.audit.anchored_seq,
        "entries": read.audit.entries,
        "unanchored": read.audit.unanchored,
        "anchors": len(read.audit.chain_anchors),
        "notes": list(read.audit.notes),
    }


# ---------------------------------------------------------------------------------------------
# Settlement, pools, watchtowers, stats


def read_settlement(sources: ApiSources, now: float | None = None) -> dict[str, Any]:
    """`GET /api/settlement`: past rounds (as `cise settle history --json`) and the hub's status."""
    path = sources.settlement
    if path is None or not path.is_file():
        return {"rounds": [], "status": None}
    try:
        store = SettlementStore(path, read_only=True)
    except SettlementStoreError:
        return {"rounds": [], "status": None}
    try:
        rounds = [round_summary(store, r.id) for r in store.rounds(ROUNDS_SHOWN)]
        status = status_summary(store, time.time() if now is None else now)
    except (sqlite3.Error, SettlementStoreError):
        return {"rounds": [], "status": None}
    finally:
        store.close()
    return {"rounds": rounds, "status": status}


def read_pools(sources: ApiSources) -> dict[str, Any]:
    """`GET /api/pools`: every financing pool of the network's factory, read now."""
    factory = sources.deployment.financing_factory
    if factory is None:
        return {"pools": []}
    client = FinancingPoolClient(sources.connection, factory, _reader())
    out = []
    for created in client.created_events(sources.deployment.block_number):
        terms, state = client.terms(created.pool), client.state(created.pool)
        out.append(
            {
                "pool": to_checksum(created.pool),
                "asset_id": "0x" + terms.asset_id.hex(),
                "status": POOL_STATUS.get(state.status, str(state.status)),
                "supplier": to_checksum(terms.supplier),
                "target_units": terms.target,
                "raised_units": state.raised,
                "repaid_units": state.repaid,
                "pending_units": state.pending,
                "cap_units": terms.cap,
                "return_ppm": terms.return_ppm,
                "deadline_block": terms.deadline,
                "to_operator_units": state.to_operator,
                "contributors": state.contributors,
            }
        )
    return {"pools": out}


def read_watchtowers(sources: ApiSources) -> dict[str, Any]:
    """`GET /api/watchtowers`: what each tower's file says it guards (unreadable files skipped)."""
    out = []
    for path in sources.towers:
        try:
            snapshot = read_snapshot(path)
        except (TowerStoreError, sqlite3.Error, OSError):
            continue
        out.append(
            {
                "tower": to_checksum(snapshot.tower),
                "channels": len(snapshot.channels),
                "guards": len(snapshot.guards),
                "submitted": len(snapshot.submitted),
                "cursor": int(snapshot.cursor),
            }
        )
    return {"towers": out}


def read_stats(sources: ApiSources) -> dict[str, Any]:
    """`GET /api/stats`: payment and use counters (from the live hub; else from the ledgers:
    each use is one charge plus one payment per paid share) and the server's time."""
    now = time.time()
    if sources.live is not None:
        view = sources.live()
        return {"payments": view.payments, "uses": view.uses, "time": now, "live": True}
    payments = uses = 0
    for path in sources.ledgers.values():
        try:
            entries, _ = read_ledger_file(path)
        except LedgerError:
            continue
        for entry in entries:
            if entry.kind == KIND_USE:
                body = entry.decode_use_body()
                uses += 1
                payments += 1 + sum(1 for s in body.shares if s.payment_id)
    return {"payments": payments, "uses": uses, "time": now, "live": False}


__all__ = [
    "ApiSources",
    "LiveView",
    "NotFoundError",
    "is_active_member",
    "read_asset",
    "read_assets",
    "read_channels",
    "read_ledger_file",
    "read_ledger_page",
    "read_members",
    "read_network",
    "read_pools",
    "read_settlement",
    "read_stats",
    "read_verification",
    "read_watchtowers",
]

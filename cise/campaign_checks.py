"""The crash campaign's invariants, checked once every process has stopped.

What it is for: `cise.campaign` ends with these. Each reads only what an operator could read: the
chain (token balances, internal balances, each channel's deposits and withdrawals), each party's
log read-only (`channels.party.read_party_state`: its channels as its latest signed states leave
them; its payment and invoice records), and the `cise ledger verify`, `cise asset status` and
`cise watchtower status` commands run as processes. Each invariant is {"ok": bool, "findings":
[...]} where a finding names the party, the ids or the channel, and the numbers that disagree.

What it must never do: write to a party's files, act on the chain, or pass an invariant it could
not check (a file it cannot read is a finding).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from channels.bench.processes import child_env
from channels.chain.client import Web3ChainClient, ordered
from channels.chain.connection import Connection
from channels.core.channel import get_balance
from channels.core.state import ChannelState, NodeState
from channels.core.types import Address, to_checksum
from channels.party import read_party_state
from channels.records import InvoiceRecord, PaymentRecord, core_record_codec
from channels.signer import LocalSigner
from channels.store import SqliteStore
from cise.network import load_network

FINAL = ("completed", "failed")
COMMAND_S = 120.0  # a read-only check command


@dataclass(frozen=True)
class Parties:
    network_file: Path
    data: Path
    keys: tuple[bytes, ...]
    hub: int
    payer: int
    payee: int
    beneficiary: int
    user: int
    asset: int
    tower: int
    asset_name: str

    def address(self, account: int) -> Address:
        return Address(LocalSigner(self.keys[account]).address)

    def store(self, account: int) -> Path:
        return self.data / f"party-{to_checksum(self.address(account))}.sqlite"


@dataclass
class _Party:
    name: str
    account: int
    address: Address
    state: NodeState
    payments: dict[int, PaymentRecord]
    invoices: list[InvoiceRecord]


class _Result:
    def __init__(self) -> None:
        self.invariants: dict[str, dict[str, Any]] = {}

    def add(self, name: str, findings: list[Any], **figures: Any) -> None:
        self.invariants[name] = {"ok": not findings, "findings": findings[:50], **figures}
        if len(findings) > 50:
            self.invariants[name]["more_findings"] = len(findings) - 50


def check_all(parties: Parties, outcomes: Mapping[int, str]) -> dict[str, dict[str, Any]]:
    """Every invariant of the campaign (see the module docstring)."""
    network = load_network(parties.network_file)
    connection = Connection.from_url(network.rpc_url, network.dev_keys)
    result = _Result()
    named = {
        "hub": parties.hub,
        "payer": parties.payer,
        "payee": parties.payee,
        "beneficiary": parties.beneficiary,
        "user": parties.user,
        "asset": parties.asset,
    }
    clients = {
        name: Web3ChainClient.from_key(connection, network.deployment, parties.keys[account])
        for name, account in named.items()
    }
    read: dict[str, _Party] = {}
    unreadable: list[str] = []
    for name, account in named.items():
        try:
            read[name] = _read(name, account, clients[name], parties.store(account))
        except Exception as exc:  # an unreadable log is a finding, not a crash
            unreadable.append(f"{name}: {parties.store(account)}: {exc}")
    result.add("logs_readable", unreadable)
    if unreadable:
        return result.invariants
    _payments_final(result, read, outcomes, parties)
    _no_locks_left(result, read)
    _proofs_agree(result, read, clients["hub"])
    _records_equal_channels(result, read)
    _wallets_reconciled(result, read, clients, parties)
    _shares_paid_once(result, parties, read)
    _tower_guards(result, parties, read)
    return result.invariants


def wait_quiet(parties: Parties, timeout: float) -> float | None:
    """Poll (read-only) until no party has a lock, an unlock or a withdraw pending and the asset
    has no use whose shares are being paid; the seconds it took, or None after `timeout` (then
    the invariants report what is still pending)."""
    network = load_network(parties.network_file)
    connection = Connection.from_url(network.rpc_url, network.dev_keys)
    started = time.monotonic()
    ledgers = sorted(parties.data.glob("asset-*-ledger.sqlite"))
    while time.monotonic() - started < timeout:
        busy = False
        for account in (parties.hub, parties.payer, parties.payee, parties.beneficiary,
                        parties.user, parties.asset):  # fmt: skip
            client = Web3ChainClient.from_key(connection, network.deployment, parties.keys[account])
            state, _ = read_party_state(client, parties.store(account))
            busy = busy or any(
                c.our.locks or c.partner.locks or c.unlocks_pending
                or c.our.pending_withdraw or c.partner.pending_withdraw
                for c in state.channels.values()
            )  # fmt: skip
        if not busy and len(ledgers) == 1:
            code, out, _ = _command(["asset", "status", parties.asset_name, "--ledger",
                                     str(ledgers[0]), "--json"])  # fmt: skip
            busy = code != 0 or json.loads(out)["uses_being_paid"] > 0
        if not busy:
            return round(time.monotonic() - started, 1)
        time.sleep(2.0)
    return None


def _read(name: str, account: int, client: Web3ChainClient, path: Path) -> _Party:
    state, _ = read_party_state(client, path)
    store = SqliteStore(path, core_record_codec(), read_only=True)
    try:
        payments = {
            r.payment_id: r for _, r in store.facts("payment:") if isinstance(r, PaymentRecord)
        }
        invoices = [r for _, r in store.facts("invoice:") if isinstance(r, InvoiceRecord)]
    finally:
        store.close()
    return _Party(name, account, client.address, state, payments, invoices)


def _channel_with(party: _Party, partner: Address) -> ChannelState | None:
    found = [c for c in party.state.channels.values() if c.partner.address == partner]
    return found[-1] if found else None


def _payments_final(
    result: _Result, read: Mapping[str, _Party], outcomes: Mapping[int, str], parties: Parties
) -> None:
    """Every payer id ended completed or failed (its last outcome line and its record agree), and
    the payee received exactly the completed ones, each in full."""
    payer, payee = read["payer"], read["payee"]
    findings: list[Any] = []
    for payment_id, outcome in sorted(outcomes.items()):
        record = payer.payments.get(payment_id)
        status = None if record is None else record.status
        if outcome not in FINAL or status != outcome:
            findings.append({"payment_id": payment_id, "outcome": outcome, "record": status})
    received = {
        r.payment_id: r.received
        for r in payee.invoices
        if r.payer == payer.address and r.status == "received"
    }
    completed = {
        i for i, r in payer.payments.items() if r.status == "completed" and r.payee == payee.address
    }
    for payment_id in sorted(completed ^ set(received)):
        findings.append(
            {
                "payment_id": payment_id,
                "payer": payer.payments[payment_id].status
                if payment_id in payer.payments
                else None,
                "payee_received": received.get(payment_id),
            }
        )
    for payment_id in sorted(completed & set(received)):
        if received[payment_id] != payer.payments[payment_id].amount:
            findings.append(
                {
                    "payment_id": payment_id,
                    "paid": payer.payments[payment_id].amount,
                    "received": received[payment_id],
                }
            )
    result.add(
        "payments_completed_or_failed",
        findings,
        completed=len(completed),
        failed=sum(1 for r in payer.payments.values() if r.status == "failed"),
    )


def _no_locks_left(result: _Result, read: Mapping[str, _Party]) -> None:
    """Nothing pending anywhere: no lock in any channel, no unlock owed, no payment record still
    requested or locked, no invoice revealed but never received."""
    findings: list[Any] = []
    for party in read.values():
        for channel in party.state.channels.values():
            for side, end in (("ours", channel.our), ("partner's", channel.partner)):
                if end.locks:
                    findings.append(
                        {
                            "party": party.name,
                            "channel": channel.channel_id,
                            "side": side,
                            "locks": len(end.locks),
                            "locked": sum(lock.amount for lock in end.locks.values()),
                        }
                    )
            if channel.unlocks_pending:
                findings.append(
                    {
                        "party": party.name,
                        "channel": channel.channel_id,
                        "unlocks_pending": len(channel.unlocks_pending),
                    }
                )
        stuck = sorted(i for i, r in party.payments.items() if r.status not in FINAL)
        if stuck:
            findings.append({"party": party.name, "payments_not_final": stuck})
        revealed = sorted(r.payment_id for r in party.invoices if r.status == "revealed")
        if revealed:
            findings.append({"party": party.name, "invoices_revealed_not_received": revealed})
    result.add("no_lock_or_record_left_pending", findings)


def _proofs_agree(result: _Result, read: Mapping[str, _Party], hub_client: Web3ChainClient) -> None:
    """Each agent and the hub hold the same latest proofs of their channel, and both hold the
    chain's deposits and withdrawals."""
    hub = read["hub"]
    findings: list[Any] = []
    for party in read.values():
        if party is hub:
            continue
        mine, theirs = _channel_with(party, hub.address), _channel_with(hub, party.address)
        if mine is None or theirs is None:
            findings.append({"party": party.name, "channel": "missing",
                             "at_party": mine is not None, "at_hub": theirs is not None})  # fmt: skip
            continue
        for what, a, b in (
            ("nonce sent", mine.our.balance_proof.nonce, theirs.partner.balance_proof.nonce),
            ("nonce received", mine.partner.balance_proof.nonce, theirs.our.balance_proof.nonce),
            ("transferred sent", mine.our.balance_proof.transferred,
             theirs.partner.balance_proof.transferred),
            ("transferred received", mine.partner.balance_proof.transferred,
             theirs.our.balance_proof.transferred),
        ):  # fmt: skip
            if a != b:
                findings.append({"party": party.name, "channel": mine.channel_id, "what": what,
                                 "party_has": a, "hub_has": b})  # fmt: skip
        info = hub_client.get_channel(mine.channel_id, party.address, hub.address)
        first, _ = ordered(party.address, hub.address)
        chain = {
            party.address: (info.deposit1, info.withdrawn1),
            hub.address: (info.deposit2, info.withdrawn2),
        }
        if first != party.address:
            chain = {
                party.address: (info.deposit2, info.withdrawn2),
                hub.address: (info.deposit1, info.withdrawn1),
            }
        for holder, channel in ((party.name, mine), ("hub", theirs)):
            for end in (channel.our, channel.partner):
                if (end.deposit, end.withdrawn) != chain[end.address]:
                    findings.append(
                        {
                            "party": holder,
                            "channel": channel.channel_id,
                            "of": to_checksum(end.address),
                            "deposit_withdrawn": [end.deposit, end.withdrawn],
                            "chain": list(chain[end.address]),
                        }
                    )
    result.add("both_sides_hold_the_same_proofs_and_the_chain", findings)


def _paid(party: _Party) -> int:
    return sum(r.amount + r.fee for r in party.payments.values() if r.status == "completed")


def _received(party: _Party) -> int:
    return sum(r.received for r in party.invoices if r.status == "received")


def _records_equal_channels(result: _Result, read: Mapping[str, _Party]) -> None:
    """Each agent's records account for its channel: what its completed payments cost is what it
    sent, what its received invoices carried is what it received."""
    hub = read["hub"]
    findings: list[Any] = []
    for party in read.values():
        if party is hub:
            continue
        channel = _channel_with(party, hub.address)
        if channel is None:
            continue
        sent, got = channel.our.balance_proof.transferred, channel.partner.balance_proof.transferred
        if _paid(party) != sent:
            findings.append(
                {"party": party.name, "records_paid": _paid(party), "channel_sent": sent}
            )
        if _received(party) != got:
            findings.append(
                {"party": party.name, "records_received": _received(party), "channel_received": got}
            )
    result.add("records_equal_channels", findings)


def _wallets_reconciled(
    result: _Result,
    read: Mapping[str, _Party],
    clients: Mapping[str, Web3ChainClient],
    parties: Parties,
) -> None:
    """From the chain: each wallet (tokens + internal balance + its side of each channel as its
    latest signed states leave it) is what it started with plus what its records say it earned;
    nobody's own view is below the hub's view of it; the manager holds exactly the internal
    balances and channel totals; and the total is conserved."""
    hub = read["hub"]
    client = clients["hub"]
    findings: list[Any] = []
    minted = _minted(client, parties)
    fees = sum(
        r.fee for p in read.values() if p is not hub for r in p.payments.values()
        if r.status == "completed"
    )  # fmt: skip
    wallets: dict[str, int] = {}
    for party in read.values():
        on_chain = client.token_balance(party.address) + client.balance_of(party.address)
        in_channels = sum(get_balance(c.our, c.partner) for c in party.state.channels.values())
        wallets[party.name] = on_chain + in_channels
        earned = fees if party is hub else _received(party) - _paid(party)
        if wallets[party.name] != minted[party.name] + earned:
            findings.append(
                {
                    "party": party.name,
                    "wallet": wallets[party.name],
                    "started_with": minted[party.name],
                    "records_earned": earned,
                    "difference": wallets[party.name] - minted[party.name] - earned,
                }
            )
        if party is not hub:
            mine, theirs = _channel_with(party, hub.address), _channel_with(hub, party.address)
            if mine is not None and theirs is not None:
                own = get_balance(mine.our, mine.partner)
                hubs_view = get_balance(theirs.partner, theirs.our)
                if own < hubs_view:
                    findings.append({"party": party.name, "below_latest_signed_state": True,
                                     "own_view": own, "hub_view": hubs_view})  # fmt: skip
                hub_own = get_balance(theirs.our, theirs.partner)
                party_view_of_hub = get_balance(mine.partner, mine.our)
                if hub_own < party_view_of_hub:
                    findings.append({"party": "hub", "channel_with": party.name,
                                     "below_latest_signed_state": True, "own_view": hub_own,
                                     "partner_view": party_view_of_hub})  # fmt: skip
    channel_ids = {c.channel_id for p in read.values() for c in p.state.channels.values()}
    held = client.token_balance(client.deployment.manager)
    internal = sum(client.balance_of(parties.address(i)) for i in range(len(parties.keys)))
    totals = 0
    for channel_id in channel_ids:
        channel = next(c for p in read.values() for c in p.state.channels.values()
                       if c.channel_id == channel_id)  # fmt: skip
        totals += client.get_channel(channel_id, channel.our.address, channel.partner.address).total
    if held != internal + totals:
        findings.append({"manager_holds": held, "internal_balances": internal,
                         "channel_totals": totals})  # fmt: skip
    if sum(wallets.values()) != sum(minted.values()):
        findings.append({"conserved": False, "now": sum(wallets.values()),
                         "started": sum(minted.values())})  # fmt: skip
    result.add("wallets_reconciled_from_the_chain", findings, wallets=wallets, hub_fees=fees)


def _minted(client: Web3ChainClient, parties: Parties) -> dict[str, int]:
    """What each party started with: the campaign mints the same to each and nothing else."""
    from cise.campaign import TOKENS

    return dict.fromkeys(("hub", "payer", "payee", "beneficiary", "user", "asset"), TOKENS)


def _command(argv: list[str]) -> tuple[int, str, str]:
    run = subprocess.run(
        [sys.executable, "-m", "cise.main", *argv],
        capture_output=True,
        text=True,
        timeout=COMMAND_S,
        env=child_env(),
        stdin=subprocess.DEVNULL,
    )
    return run.returncode, run.stdout, run.stderr


def _shares_paid_once(result: _Result, parties: Parties, read: Mapping[str, _Party]) -> None:
    """`cise ledger verify` (the ledger, and each beneficiary's receipts against its shares) and
    `cise asset status` (no share unpaid, no use still being paid); the asset's channel received
    exactly the ledger's revenue."""
    findings: list[Any] = []
    ledgers = sorted(parties.data.glob("asset-*-ledger.sqlite"))
    if len(ledgers) != 1:
        result.add("shares_paid_once", [{"ledgers": [str(p) for p in ledgers]}])
        return
    ledger = str(ledgers[0])
    network = ["--network-file", str(parties.network_file)]
    code, out, err = _command(
        ["ledger", "verify", parties.asset_name, "--ledger", ledger, *network]
    )
    if code != 0:
        findings.append({"command": "ledger verify", "exit": code, "out": out[-2000:],
                         "err": err[-1000:]})  # fmt: skip
    for account in (parties.payee, parties.beneficiary):
        who = to_checksum(parties.address(account))
        code, out, err = _command(["ledger", "verify", parties.asset_name, "--ledger", ledger,
                                   *network, "--beneficiary", who,
                                   "--store", str(parties.store(account))])  # fmt: skip
        if code != 0:
            findings.append({"command": "ledger verify --beneficiary", "beneficiary": who,
                             "exit": code, "out": out[-2000:], "err": err[-1000:]})  # fmt: skip
    code, out, err = _command(["asset", "status", parties.asset_name, "--ledger", ledger, "--json"])
    status: dict[str, Any] = {}
    if code != 0:
        findings.append({"command": "asset status", "exit": code, "err": err[-1000:]})
    else:
        status = json.loads(out)
        if status["unpaid_shares"]["count"] or status["uses_being_paid"]:
            findings.append({"unpaid_shares": status["unpaid_shares"],
                             "uses_being_paid": status["uses_being_paid"]})  # fmt: skip
        asset = read["asset"]
        if status.get("revenue") is not None and _received(asset) != status["revenue"]:
            findings.append(
                {"asset_received": _received(asset), "ledger_revenue": status["revenue"]}
            )
    result.add("shares_paid_once", findings, uses=status.get("uses"), revenue=status.get("revenue"))


def settlement_rounds(parties: Parties) -> dict[str, int]:
    """How many of the hub's settlement rounds ended in each status (`cise settle history`)."""
    code, out, _err = _command(["settle", "history", "--network", str(parties.network_file),
                               "--account", str(parties.hub), "--data-dir", str(parties.data),
                               "--limit", "10000", "--json"])  # fmt: skip
    if code != 0:
        return {f"unreadable (exit {code})": 0}
    counts: dict[str, int] = {}
    for row in json.loads(out)["rounds"]:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    return counts


def _tower_guards(result: _Result, parties: Parties, read: Mapping[str, _Party]) -> None:
    """The tower guards the payee's channel, never with a nonce the hub did not sign."""
    findings: list[Any] = []
    code, out, err = _command(["watchtower", "status", "--network", str(parties.network_file),
                               "--account", str(parties.tower), "--data-dir", str(parties.data),
                               "--json"])  # fmt: skip
    payee = read["payee"]
    channel = _channel_with(payee, read["hub"].address)
    rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    guarded = [r for r in rows if channel is not None and r.get("channel") == channel.channel_id]
    if code != 0:
        findings.append({"command": "watchtower status", "exit": code, "err": err[-1000:]})
    elif not guarded or channel is None:
        findings.append({"tower_guards_payee_channel": False, "rows": rows[:5]})
    elif guarded[0]["nonce"] > channel.partner.balance_proof.nonce:
        findings.append({"guarded_nonce": guarded[0]["nonce"],
                         "latest_signed": channel.partner.balance_proof.nonce})  # fmt: skip
    lag = None
    if guarded and channel is not None:
        lag = channel.partner.balance_proof.nonce - guarded[0]["nonce"]
    result.add("tower_guards_the_payee", findings, nonce_lag=lag)


__all__ = ["Parties", "check_all", "settlement_rounds", "wait_quiet"]

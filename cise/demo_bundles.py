"""The Bundles part of `cise demo`: washing machines paid per wash cycle, every fee split at once.

On the demo's chain: three washing machines are registered as assets (Bundles is the operator),
each with four beneficiaries (manufacturer, maintenance, detergent supplier, financier) and its
own split; users open channels to a hub; the hub opens channels to the machines and the
beneficiaries. Then the hub, every agent and the three asset agents run in one trio run over
loopback TCP: a simulated day of prepaid wash cycles (time-of-use and per-kWh tariffs) is charged
to the users through the hub; each fee is split and paid to the beneficiaries as real routed
payments and written to the machine's signed, hash-chained ledger; the ledgers are anchored on
chain and verified; per-asset revenue and per-beneficiary income are reconciled with the ledgers
and the channels; every channel closes cooperatively and every wallet is checked.

Wiring and printing only: the decisions are `assets`, `channels` and `hub`. The keys are derived
from public names: this must never hold real funds.
"""

from __future__ import annotations

import tempfile
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import trio
from eth_account import Account
from eth_account.signers.local import LocalAccount

from assets.agent import AssetAgent, AssetConfig
from assets.anchoring import anchor_pending
from assets.audit import audit_ledger
from assets.ledger import SignedEntry, revenue_totals
from assets.ledger_store import LedgerStore
from assets.meter import MeterEvent
from assets.meter_sources import Outcome, simulate_events
from assets.service_events import action_code, sign_service_event
from assets.tariff import Band, Tariff
from channels.agent import ChargePolicy
from channels.chain.artifacts import load_artifact
from channels.chain.assets import AssetRegistryClient
from channels.chain.client import Web3ChainClient
from channels.chain.connection import Connection
from channels.chain.deploy import Deployment
from channels.chain.governance import Role, admit_by_vote
from channels.chain.nodes import dev_private_keys
from channels.codec.eip712 import Domain
from channels.codec.keccak import keccak
from channels.core.fees import FeeSchedule
from channels.core.splits import Split
from channels.core.types import Address
from channels.records import InvoiceRecord
from channels.signer import LocalSigner
from cise.local_net import LocalNet, close_all, run_local_net
from cise.money import UNITS_PER_EURO
from hub.mediator import MediationTerms

DAY_START = (int(time.time()) // 86_400 - 1) * 86_400 + 7 * 3_600  # yesterday 07:00 UTC
TERMS = MediationTerms(FeeSchedule(flat=0, ppm=1_000, cap=2_000), reveal_timeout=5, lock_timeout=40)
USER_DEPOSIT = 100 * UNITS_PER_EURO
USER_BUDGET = {"user-5": 3 * UNITS_PER_EURO}  # a user whose wallet policy stops at €3 a day
HUB_TO_MACHINE = 200 * UNITS_PER_EURO
HUB_TO_BENEFICIARY = 100 * UNITS_PER_EURO
MACHINE_FLOAT = 2 * UNITS_PER_EURO  # the operator's float for the routing fees of the shares
GAS_ETH = 10**18
STEP_TIMEOUT = 180.0
USERS = ("user-1", "user-2", "user-3", "user-4", "user-5")
BENEFICIARIES = ("manufacturer", "maintenance", "detergent", "financier")

PEAK = (Band(17 * 60, 21 * 60, 1_250_000), Band(0, 7 * 60, 800_000))  # evening +25%, night -20%
MACHINES: dict[str, tuple[str, Tariff, dict[str, int]]] = {
    # name: (what it is, tariff, split in ppm)
    "machine-1": (
        "washer, Amsterdam, €1.99 a cycle (+25% 17-21h)",
        Tariff(kind="cycle", price=1_990_000, max_units=1, bands=PEAK),
        {
            "manufacturer": 450_000,
            "maintenance": 200_000,
            "detergent": 150_000,
            "financier": 200_000,
        },
    ),
    "machine-2": (
        "washer, Utrecht, €2.49 a cycle (+25% 17-21h)",
        Tariff(kind="cycle", price=2_490_000, max_units=1, bands=PEAK),
        {
            "manufacturer": 400_000,
            "maintenance": 250_000,
            "detergent": 100_000,
            "financier": 250_000,
        },
    ),
    "machine-3": (
        "washer-dryer, Leiden, €0.35 a kWh, at least €0.25",
        Tariff(
            kind="unit",
            price=350_000,
            unit_scale=1_000,
            unit_name="Wh",
            minimum=250_000,
            max_units=5_000,
        ),
        {
            "manufacturer": 333_333,
            "maintenance": 333_333,
            "detergent": 33_334,
            "financier": 300_000,
        },
    ),
}


class BundlesDemoError(RuntimeError):
    """A check of the Bundles demo failed."""


def key_of(name: str) -> bytes:
    """The demo key of a named party (derived from a public name: test-only)."""
    return keccak(b"cise bundles demo " + name.encode())


def address_of(name: str) -> Address:
    return Address(LocalSigner(key_of(name)).address)


def asset_id_of(name: str) -> bytes:
    return keccak(b"bundles asset " + name.encode())


def split_of(name: str) -> Split:
    ppm = MACHINES[name][2]
    ordered = sorted(ppm, key=address_of)
    return Split(1, tuple(address_of(n) for n in ordered), tuple(ppm[n] for n in ordered))


@dataclass
class MachineReport:
    name: str
    uses: int = 0
    refused: int = 0
    revenue: int = 0  # ledger fee total
    charged: int = 0  # what the machine's channel received for its charges
    routing_fees: int = 0
    anchored_to: int = 0
    entries: list[SignedEntry] = field(default_factory=list)


@dataclass
class BundlesResult:
    machines: dict[str, MachineReport]
    income: dict[str, dict[str, int]]  # beneficiary -> machine -> ledger shares
    received: dict[str, int]  # beneficiary -> received in its channel from all machines
    wallet_change: dict[str, int]
    expected_change: dict[str, int]
    receipts: int
    hub_fees: int
    uses_per_s: float
    admitted: int = 0  # parties the members admitted by vote


# ----------------------------------------------------------------------------- chain set-up


def _fund(connection: Connection, operator: LocalAccount, deployment: Deployment) -> None:
    """Gas and tokens for every party (the operator mints: a dev network only)."""
    token = Web3ChainClient(connection, deployment, operator)
    abi = load_artifact("Token").abi
    for name in ("hub", *MACHINES, *USERS, *BENEFICIARIES):
        connection.transact(operator, address_of(name), b"", abi, "gas", value=GAS_ETH)
    for name in USERS:
        token.mint(address_of(name), USER_DEPOSIT)
    token.mint(address_of("hub"), len(MACHINES) * HUB_TO_MACHINE + 4 * HUB_TO_BENEFICIARY)
    for name in MACHINES:
        token.mint(address_of(name), MACHINE_FLOAT)


ROLES: dict[str, Role] = {
    "hub": Role.HUB,
    **dict.fromkeys(MACHINES, Role.ASSET_OPERATOR),
    **dict.fromkeys(USERS, Role.USER),
    "manufacturer": Role.SERVICER,
    "maintenance": Role.SERVICER,
    "detergent": Role.SERVICER,
    "financier": Role.FINANCIER,
}


def _admit(connection: Connection, operator: LocalAccount, deployment: Deployment) -> int:
    """Every Bundles party applies for membership (accepting the code of conduct) and the
    founding members admit them in one ordinary proposal (a dev network: its clock is advanced
    through the vote and the timelock). Returns how many were admitted."""
    applicants = {Account.from_key(key_of(n)): int(role) for n, role in ROLES.items()}
    voters = [operator, Account.from_key(dev_private_keys()[1])]
    admit_by_vote(connection, deployment, applicants, voters, title="Admit the Bundles parties")
    return len(applicants)


def _register(connection: Connection, operator: LocalAccount, deployment: Deployment) -> None:
    registry = AssetRegistryClient(connection, deployment, operator)
    for name, (what, _, _) in MACHINES.items():
        split = split_of(name)
        registry.register_asset(
            asset_id_of(name),
            address_of(name),
            keccak(what.encode()),
            f"bundles://{name}",
            split.beneficiaries,
            split.ppm,
        )


def _open_channels(clients: dict[str, Web3ChainClient]) -> None:
    hub = clients["hub"]
    for name in USERS:
        clients[name].approve(USER_DEPOSIT)
        clients[name].open_channel(hub.address, USER_DEPOSIT)
    hub.approve(len(MACHINES) * HUB_TO_MACHINE + 4 * HUB_TO_BENEFICIARY)
    for name in MACHINES:
        channel_id, _ = hub.open_channel(clients[name].address, HUB_TO_MACHINE)
        clients[name].approve(MACHINE_FLOAT)
        clients[name].set_total_deposit(channel_id, hub.address, MACHINE_FLOAT)
    for name in BENEFICIARIES:
        hub.open_channel(clients[name].address, HUB_TO_BENEFICIARY)


def _wallets(clients: dict[str, Web3ChainClient]) -> dict[str, int]:
    return {name: client.token_balance(client.address) for name, client in clients.items()}


# ----------------------------------------------------------------------------- the day


def _day_of_events(uses: int) -> dict[str, list[MeterEvent]]:
    """A day of prepaid cycles per machine, 07:00 to about 23:00 (deterministic)."""
    users = ["0x" + address_of(u).hex() for u in USERS]
    per_machine = max(1, uses // len(MACHINES))
    out = {}
    for index, name in enumerate(MACHINES):
        kwh = name == "machine-3"
        out[name] = list(
            simulate_events(
                users=users,
                count=per_machine + (1 if index < uses % len(MACHINES) else 0),
                seed=index + 1,
                start_at=DAY_START,
                mean_gap_s=16 * 3600 / per_machine,
                units=(400, 1_400) if kwh else (1, 1),
                prefix=f"{name}-cycle-",
                prepaid=True,
            )
        )
    return out


def _policy(name: str, machines: set[Address]) -> ChargePolicy:
    budget = USER_BUDGET.get(name)
    spent = [0]

    def accept(payee: Address, amount: int, payment_id: int) -> bool:
        if payee not in machines or amount > 5 * UNITS_PER_EURO:
            return False
        if budget is not None and spent[0] + amount > budget:
            return False
        spent[0] += amount
        return True

    return accept


async def _run_day(
    net: LocalNet, workdir: Path, deployment: Deployment, uses: int, result: BundlesResult
) -> None:
    domain = Domain(deployment.chain_id, deployment.asset_registry or b"")
    known = {address_of(u) for u in USERS}
    ledgers = {n: LedgerStore(workdir / f"{n}-ledger.sqlite") for n in MACHINES}
    assets: dict[str, AssetAgent] = {}
    try:
        async with trio.open_nursery() as nursery:
            for name in MACHINES:
                config = AssetConfig(
                    asset_id=asset_id_of(name),
                    domain=domain,
                    tariff=MACHINES[name][1],
                    split=split_of(name),
                    known_user=known.__contains__,
                    charge_timeout=5.0,
                )
                assets[name] = AssetAgent(net.agents[name], ledgers[name], config)
                await nursery.start(assets[name].run)
            events = _day_of_events(uses)
            outcomes: dict[str, list[Outcome]] = {}
            started = trio.current_time()
            with trio.fail_after(STEP_TIMEOUT):
                async with trio.open_nursery() as day:
                    for name, machine_events in events.items():
                        day.start_soon(_run_machine, assets[name], machine_events, outcomes, name)
                while any(a.book.counts().get("ledgered", 0) for a in assets.values()):  # noqa: ASYNC110
                    await trio.sleep(0.05)  # the last shares are on their way
            result.uses_per_s = uses / max(trio.current_time() - started, 1e-9)
            for name, asset in assets.items():
                registry = AssetRegistryClient.from_key(
                    net.clients[name].connection, deployment, key_of(name)
                )
                await anchor_pending(ledgers[name], registry, asset_id_of(name), net.chain_lock)
                report = result.machines[name] = MachineReport(name)
                report.refused = Counter(o.status for o in outcomes[name])["refused"]
                report.entries = list(ledgers[name].entries())
                report.routing_fees = asset.stats.routing_fees
                report.anchored_to = max(a.to_seq for a in ledgers[name].anchors())
                async with net.chain_lock:  # the same check as `cise ledger verify`
                    history = await trio.to_thread.run_sync(
                        registry.asset_history, asset_id_of(name)
                    )
                audit = audit_ledger(
                    report.entries,
                    asset_id=asset_id_of(name),
                    domain=domain,
                    history=history,
                    local_anchors=[a.anchor for a in ledgers[name].anchors()],
                )
                if not audit.ok:
                    raise BundlesDemoError(f"{name}: the ledger does not verify: {audit.problem}")
            nursery.cancel_scope.cancel()
    finally:
        for ledger in ledgers.values():
            ledger.close()


async def _run_machine(
    asset: AssetAgent, events: list[MeterEvent], outcomes: dict[str, list[Outcome]], name: str
) -> None:
    """The machine's cycles in order; machine-1's drain pump is repaired half way."""
    outcomes[name] = []
    for index, event in enumerate(events):
        if name == REPAIRED and index == len(events) // 2:
            _repair(asset, at=event.at - 1)
        outcomes[name].append(await asset.handle(event))


REPAIRED = "machine-1"


def _repair(asset: AssetAgent, at: int) -> None:
    """The maintenance company signs its repair; the machine's agent counter-signs it in its
    ledger (a service event between two wash cycles)."""
    body = sign_service_event(
        LocalSigner(key_of("maintenance")).sign_digest,
        asset.config.domain,
        asset_id=asset.config.asset_id,
        event_id="repair-001",
        action=action_code("repair"),
        time=at,
        part_id="DP-220 drain pump",
        details="drain pump blocked: replaced, door seal inspected, test cycle run",
        servicer=address_of("maintenance"),
        split_version=asset.split.version,
    )
    asset.record_service(body)


def _received_from(net: LocalNet, name: str, payers: Iterable[Address]) -> int:
    """What `name`'s channel received from `payers` (its durable invoice records)."""
    wanted = set(payers)
    return sum(
        record.received
        for _, record in net.services[name].store.facts("invoice:")
        if isinstance(record, InvoiceRecord)
        and record.status == "received"
        and record.payer in wanted
    )


async def _reconcile(net: LocalNet, result: BundlesResult) -> None:
    machines = {address_of(n) for n in MACHINES}
    users = {address_of(u) for u in USERS}
    for name, report in result.machines.items():
        totals = revenue_totals(report.entries)
        report.uses = totals.uses
        report.revenue = totals.fee_total
        report.charged = _received_from(net, name, users)
        if report.charged != report.revenue:
            raise BundlesDemoError(
                f"{name}: its channel received {report.charged}, its ledger says {report.revenue}"
            )
        for beneficiary in BENEFICIARIES:
            shares = totals.beneficiary_total(address_of(beneficiary))
            result.income.setdefault(beneficiary, {})[name] = shares
    for beneficiary in BENEFICIARIES:
        owed = sum(result.income[beneficiary].values())
        with trio.move_on_after(10):  # a payee records a payment with its next commit
            while _received_from(net, beneficiary, machines) < owed:  # noqa: ASYNC110
                await trio.sleep(0.02)
        result.received[beneficiary] = _received_from(net, beneficiary, machines)
        if result.received[beneficiary] != owed:
            raise BundlesDemoError(
                f"{beneficiary} received {result.received[beneficiary]}, the ledgers owe {owed}"
            )
    result.receipts = sum(len(net.agents[u].receipts()) for u in USERS)
    result.hub_fees = net.hub.stats.fees_earned


def _expected_changes(result: BundlesResult, clients: dict[str, Web3ChainClient]) -> None:
    """Each wallet's change, from the payments: users pay fees + hub fees, machines their
    shares' routing fees, beneficiaries get their shares, the hub its fees."""
    expected = dict.fromkeys(clients, 0)
    for name, report in result.machines.items():
        expected[name] -= report.routing_fees
    for beneficiary, received in result.received.items():
        expected[beneficiary] += received
    expected["hub"] += result.hub_fees
    users_change = -sum(expected.values())  # the users paid for all of it: nothing is created
    result.expected_change = expected | {"users (all)": users_change}


# ----------------------------------------------------------------------------- entry


def run_bundles(
    connection: Connection, operator: LocalAccount, deployment: Deployment, uses: int
) -> BundlesResult:
    """The whole Bundles day (see the module docstring); raises BundlesDemoError on a failure."""
    _fund(connection, operator, deployment)
    admitted = _admit(connection, operator, deployment) if deployment.governed else 0
    _register(connection, operator, deployment)
    names = ("hub", *MACHINES, *USERS, *BENEFICIARIES)
    clients = {
        n: Web3ChainClient(connection, deployment, Account.from_key(key_of(n))) for n in names
    }
    before = _wallets(clients)
    _open_channels(clients)
    result = BundlesResult({}, {}, {}, {}, {}, 0, 0, 0.0, admitted)
    machines = {address_of(n) for n in MACHINES}
    policies = {u: _policy(u, machines) for u in USERS}
    with tempfile.TemporaryDirectory(prefix="cise-demo-bundles-") as tmp:
        trio.run(_run_all, clients, Path(tmp), deployment, uses, policies, result)
    for client in clients.values():
        balance = client.balance_of(client.address)
        if balance:
            client.withdraw_from_balance(balance)
    after = _wallets(clients)
    result.wallet_change = {n: after[n] - before[n] for n in names}
    _expected_changes(result, clients)
    users_change = sum(result.wallet_change[u] for u in USERS)
    wrong = [
        n
        for n in ("hub", *MACHINES, *BENEFICIARIES)
        if result.wallet_change[n] != result.expected_change[n]
    ]
    if users_change != result.expected_change["users (all)"]:
        wrong.append("users")
    if wrong:
        raise BundlesDemoError(
            f"wallets of {', '.join(wrong)} do not match the payments: {result.wallet_change} vs {result.expected_change}"
        )
    return result


async def _run_all(
    clients: dict[str, Web3ChainClient],
    workdir: Path,
    deployment: Deployment,
    uses: int,
    policies: dict[str, ChargePolicy],
    result: BundlesResult,
) -> None:
    keys = {name: key_of(name) for name in clients}
    async with run_local_net(
        clients,
        keys,
        workdir,
        TERMS,
        policies=policies,
    ) as net:
        await _run_day(net, workdir, deployment, uses, result)
        await _reconcile(net, result)
        await close_all(net)


__all__ = ["BENEFICIARIES", "MACHINES", "USERS", "BundlesDemoError", "BundlesResult", "run_bundles"]

"""The Bundles part of `cise demo`: washing machines paid per wash cycle, every fee split at once.

On the demo's chain: three washing machines are registered as assets (Bundles is the operator),
each with four beneficiaries (manufacturer, maintenance, detergent supplier, financier) and its
own split; users open channels to a hub; the hub opens channels to the machines and the
beneficiaries. Then the hub, every agent and the three asset agents run in one trio run over
loopback TCP: a simulated day of prepaid wash cycles (time-of-use and per-kWh tariffs) is charged
to the users through the hub; each fee is split and paid to the beneficiaries as real routed
payments and written to the machine's signed, hash-chained ledger; the ledgers are anchored on
chain and verified; per-asset revenue and per-beneficiary income are reconciled with the ledgers
and the channels. Machine-1 was co-financed: a financing pool (the financier and a user) paid its
supplier before the day and is a beneficiary of its split in the financier's place, so the
machine keeps the pool's shares. At the end of the day the hub settles: one batch transaction
moves every party's earnings to its balance on the channel manager; machine-1 pays the pool its
kept shares on chain, and the contributors claim their repayment (up to the agreed return, the
rest going to the operator). Every channel closes cooperatively and every wallet is checked.

Wiring and printing only: the decisions are `assets`, `channels` and `hub`. The keys are derived
from public names: this must never hold real funds.
"""

from __future__ import annotations

import functools
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
from assets.pool_payments import pay_kept_shares
from assets.service_events import action_code, sign_service_event
from assets.tariff import Band, Tariff
from channels.agent import ChargePolicy
from channels.chain.artifacts import load_artifact
from channels.chain.assets import AssetRegistryClient
from channels.chain.client import Web3ChainClient
from channels.chain.connection import Connection
from channels.chain.deploy import Deployment
from channels.chain.financing import FinancingPoolClient
from channels.chain.governance import Role, admit_by_vote
from channels.chain.nodes import dev_private_keys
from channels.codec.eip712 import Domain
from channels.codec.keccak import keccak
from channels.core.fees import FeeSchedule
from channels.core.splits import Split
from channels.core.state import ChannelStatus
from channels.core.types import Address
from channels.records import InvoiceRecord
from channels.signer import LocalSigner
from cise.local_net import LocalNet, close_all, run_local_net
from cise.money import UNITS_PER_EURO
from hub.mediator import MediationTerms
from settlement.planner import SettlementPolicy
from settlement.service import RoundReport, SettlementConfig, SettlementService
from settlement.store import SettlementStore

# 07:00 UTC three days ago: a day of a few cycles spreads them by random gaps of many hours, and
# "yesterday" put the last ones after now when the demo ran early in the day (the meter rejects
# readings from the future)
DAY_START = (int(time.time()) // 86_400 - 3) * 86_400 + 7 * 3_600
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

POOL_MACHINE = "machine-1"  # co-financed: its pool takes the financier's place in its split
POOL_SUPPLIER = "manufacturer"  # the pool's funds pay the machine's supplier
POOL_TARGET = 10 * UNITS_PER_EURO
POOL_RETURN_PPM = 1_100_000  # contributors are repaid up to 110% of what they put in
POOL_CONTRIBUTIONS = {"financier": 6 * UNITS_PER_EURO, "user-1": 4 * UNITS_PER_EURO}
OPERATOR_RESERVE = UNITS_PER_EURO  # the pool machine's operator money outside its channel
SETTLEMENT = SettlementPolicy(
    period_s=86_400,
    amount_trigger=0,
    min_withdraw=1,
    liquidity_target=10 * UNITS_PER_EURO,  # the hub keeps €10 of capacity towards each party
    expiry_blocks=60,
)

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


def split_of(name: str, pool: Address | None = None) -> Split:
    """The machine's split as registered (version 1), or with `pool` in the financier's place
    (version 2, the co-financed machine only)."""
    ppm = MACHINES[name][2]
    parts = {address_of(n): share for n, share in ppm.items()}
    version = 1
    if pool is not None and name == POOL_MACHINE:
        parts[pool] = parts.pop(address_of("financier"))
        version = 2
    ordered = sorted(parts)
    return Split(version, tuple(ordered), tuple(parts[a] for a in ordered))


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
class FinancingReport:
    """Machine-1's financing pool, from its funding to the day's repayment."""

    pool: Address
    cap: int = 0
    kept: int = 0  # the day's shares the machine kept for the pool (its ledger)
    paid: int = 0  # paid to the pool on chain after the settlement
    topped_up: int = 0  # the operator's reserve added for the routing fees the machine paid
    repaid: int = 0  # accounted to the contributors (up to the cap)
    to_operator: int = 0  # beyond the cap
    claimed: dict[str, int] = field(default_factory=dict)
    left_in_pool: int = 0  # owed to contributors, not claimable yet (rounding, below the cap)


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
    financing: FinancingReport | None = None
    settlement: RoundReport | None = None


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
    token.mint(address_of(POOL_MACHINE), OPERATOR_RESERVE)
    for name, amount in POOL_CONTRIBUTIONS.items():
        token.mint(address_of(name), amount)


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


def _finance(connection: Connection, operator: LocalAccount, deployment: Deployment) -> Address:
    """The operator opens machine-1's financing pool; the financier and a user fund it (the
    target reached, the pool pays the supplier at once); the pool replaces the financier in the
    machine's split (version 2). Returns the pool's address."""
    if deployment.financing_factory is None or deployment.token is None:
        raise BundlesDemoError("this network has no financing pool factory")
    pools = FinancingPoolClient(connection, deployment.financing_factory, operator)
    pool, _ = pools.create_pool(
        asset_id_of(POOL_MACHINE),
        POOL_TARGET,
        connection.block_number() + 1_000,
        POOL_RETURN_PPM,
        address_of(POOL_SUPPLIER),
    )
    for name, amount in POOL_CONTRIBUTIONS.items():
        member = pools.for_account(Account.from_key(key_of(name)))
        member.approve(pool, amount, deployment.token)
        member.contribute(pool, amount)
    if pools.state(pool).status != 1:
        raise BundlesDemoError("machine-1's financing pool did not reach its target")
    split = split_of(POOL_MACHINE, pool)
    registry = AssetRegistryClient(connection, deployment, operator)
    # The pool takes the financier's place: the financier consents (issue 19).
    consent = registry.for_account(Account.from_key(key_of("financier"))).sign_split_consent(
        asset_id_of(POOL_MACHINE), split.beneficiaries, split.ppm, connection.block_number() + 20
    )
    registry.change_split(asset_id_of(POOL_MACHINE), split.beneficiaries, split.ppm, [consent])
    return pool


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
                pool = result.financing.pool if result.financing else None
                config = AssetConfig(
                    asset_id=asset_id_of(name),
                    domain=domain,
                    tariff=MACHINES[name][1],
                    split=split_of(name, pool),
                    known_user=known.__contains__,
                    charge_timeout=5.0,
                    kept=frozenset({pool}) if pool and name == POOL_MACHINE else frozenset(),
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
            await _repair(asset, at=event.at - 1)
        outcomes[name].append(await asset.handle(event))


REPAIRED = "machine-1"


async def _repair(asset: AssetAgent, at: int) -> None:
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
    await asset.record_service(body)


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
    if result.financing is not None:
        entries = result.machines[POOL_MACHINE].entries
        result.financing.kept = revenue_totals(entries).beneficiary_total(result.financing.pool)
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
    outside = 0  # tokens now held by accounts not in the demo's wallets
    financing = result.financing
    if financing is not None:
        expected[POOL_SUPPLIER] += POOL_TARGET
        for name, amount in POOL_CONTRIBUTIONS.items():
            if name not in USERS:  # a user's contribution and claim are in the users' total
                expected[name] += financing.claimed[name] - amount
        outside = financing.to_operator + financing.left_in_pool
    # the users paid for all of it: nothing is created
    users_change = -sum(expected.values()) - outside
    result.expected_change = expected | {"users (all)": users_change}


# ----------------------------------------------------------------------------- end of day


async def _settle(net: LocalNet, workdir: Path) -> RoundReport:
    """The hub's end-of-day settlement round; returns once every party has seen it land."""
    store = SettlementStore(workdir / "settlement.sqlite")
    try:
        hub = net.services["hub"]
        service = SettlementService(
            hub, net.clients["hub"], store, SettlementConfig(SETTLEMENT, collect_s=60.0)
        )
        with trio.fail_after(STEP_TIMEOUT):
            report = await service.settle_once("end of day")
        service.detach()  # one round only
    finally:
        store.close()
    if report.status != "settled":
        raise BundlesDemoError(f"the end-of-day settlement is {report.status}: {report}")
    with trio.fail_after(STEP_TIMEOUT):
        while any(  # noqa: ASYNC110  # the followers see the batch's withdraws and deposits
            channel.our.pending_withdraw or channel.partner.pending_withdraw
            for service in net.services.values()
            for channel in service.channels.values()
            if channel.status is ChannelStatus.OPENED
        ):
            await trio.sleep(0.05)
    return report


async def _repay_financiers(net: LocalNet, deployment: Deployment, result: BundlesResult) -> None:
    """Machine-1 pays its pool the kept shares from the balance the settlement gave it (its
    operator's reserve adds what the machine spent on routing fees), the pool accounts them,
    and each contributor claims its repayment."""
    financing = result.financing
    if financing is None or deployment.financing_factory is None:
        return
    machine = net.clients[POOL_MACHINE]
    account = Account.from_key(key_of(POOL_MACHINE))
    pools = FinancingPoolClient(machine.connection, deployment.financing_factory, account)
    entries = result.machines[POOL_MACHINE].entries
    pay = functools.partial(pay_kept_shares, machine, entries, {financing.pool}, pool_client=pools)
    async with net.chain_lock:
        report = await trio.to_thread.run_sync(pay)
        if report.still_owed:
            financing.topped_up = report.still_owed
            await trio.to_thread.run_sync(machine.approve, report.still_owed)
            await trio.to_thread.run_sync(machine.deposit_to_balance, report.still_owed)
            report = await trio.to_thread.run_sync(pay)
        if not report.ok or report.still_owed:
            raise BundlesDemoError(f"machine-1 could not pay its pool: {report}")
        financing.paid = sum(p.paid_before + p.paid_now for p in report.pools)
        for name in POOL_CONTRIBUTIONS:
            member = pools.for_account(Account.from_key(key_of(name)))
            claimed, _ = await trio.to_thread.run_sync(member.claim, financing.pool)
            financing.claimed[name] = claimed
        state = await trio.to_thread.run_sync(pools.state, financing.pool)
        financing.cap = (await trio.to_thread.run_sync(pools.terms, financing.pool)).cap
        financing.left_in_pool = await trio.to_thread.run_sync(
            machine.token_balance, financing.pool
        )
    financing.repaid, financing.to_operator = state.repaid, state.to_operator
    if financing.paid != financing.kept:
        raise BundlesDemoError(
            f"the pool was paid {financing.paid}, the ledger kept {financing.kept} for it"
        )
    if financing.repaid + financing.to_operator != financing.paid:
        raise BundlesDemoError("the pool did not account exactly what it was paid")


# ----------------------------------------------------------------------------- entry


def run_bundles(
    connection: Connection,
    operator: LocalAccount,
    deployment: Deployment,
    uses: int,
    keep_dir: Path | None = None,
) -> BundlesResult:
    """The whole Bundles day (see the module docstring); raises BundlesDemoError on a failure.

    `keep_dir`: keep every party's files there (ledgers `<machine>-ledger.sqlite`, the hub's
    `settlement.sqlite`, each party's log `<name>.sqlite`) for `cise demo --serve`; default: a
    temporary folder, removed at the end."""
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
    result.financing = FinancingReport(_finance(connection, operator, deployment))
    machines = {address_of(n) for n in MACHINES}
    policies = {u: _policy(u, machines) for u in USERS}
    if keep_dir is not None:
        keep_dir.mkdir(parents=True, exist_ok=True)
        trio.run(_run_all, clients, keep_dir, deployment, uses, policies, result)
    else:
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
        result.settlement = await _settle(net, workdir)
        await _repay_financiers(net, deployment, result)
        await close_all(net)


__all__ = [
    "BENEFICIARIES",
    "MACHINES",
    "POOL_CONTRIBUTIONS",
    "POOL_MACHINE",
    "POOL_RETURN_PPM",
    "POOL_TARGET",
    "USERS",
    "BundlesDemoError",
    "BundlesResult",
    "FinancingReport",
    "run_bundles",
]

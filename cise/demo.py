"""`cise demo`: a washing machine paid per cycle over payment channels, end to end on a real EVM.

Deploys the contracts, funds a user and a washing machine, opens a channel, streams per-cycle
sub-cent payments through the core (signed, verified and persisted on both sides), withdraws while
open, closes cooperatively; then a second channel is closed unilaterally by the user and disputed by
the machine with the user's latest proof, settled after the challenge period; finally every on-chain
balance before and after is printed with a conservation check. Wiring and printing only: every
protocol decision is made by `channels`.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import trio
from eth_account import Account
from eth_account.signers.local import LocalAccount
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from assets.history import lifecycle
from channels.chain.assets import AssetRegistryClient, canonical_split
from channels.chain.client import Web3ChainClient
from channels.chain.connection import Connection
from channels.chain.deploy import Deployment, deploy
from channels.chain.errors import ChainError
from channels.chain.nodes import dev_private_keys
from channels.core import events as ev
from channels.core import state_changes as sc
from channels.core.channel import get_balance
from channels.core.state import ChannelState
from channels.core.types import (
    BlockNumber,
    ChannelId,
    PaymentId,
    TokenAmount,
    to_checksum,
)
from channels.party import Party, deliver
from channels.signer import LocalSigner
from cise.demo_bundles import (
    MACHINES,
    POOL_CONTRIBUTIONS,
    POOL_MACHINE,
    POOL_RETURN_PPM,
    POOL_TARGET,
    REPAIRED,
    USERS,
    BundlesDemoError,
    BundlesResult,
    asset_id_of,
    run_bundles,
)
from cise.demo_bundles import TERMS as BUNDLES_TERMS
from cise.demo_bundles import address_of as bundles_address_of
from cise.demo_bundles import key_of as bundles_key_of
from cise.ledger_cmd import ChainView, chain_facts
from cise.ledger_print import print_lifecycle
from cise.money import UNITS_PER_EURO, euro

DEMO_SETTLE_TIMEOUT = 20  # blocks


def cycle_price(cycle: int) -> int:
    """A sub-cent price per metered wash-cycle step: €0.002500 to €0.009999, varying per step."""
    return 2_500 + (cycle * 7_919) % 7_500


@dataclass
class Actors:
    connection: Connection
    deployment: Deployment
    operator_account: LocalAccount
    operator: Web3ChainClient
    user: Party
    machine: Party


class DemoError(RuntimeError):
    """The demo found something wrong (a failed check); printed and exit status 1."""


def _setup(rpc_url: str | None, workdir: Path) -> Actors:
    connection = Connection.embedded() if rpc_url is None else Connection.from_url(rpc_url)
    keys = dev_private_keys()
    operator_account = Account.from_key(keys[0])
    deployment = deploy(connection, operator_account, settle_timeout=DEMO_SETTLE_TIMEOUT)
    operator = Web3ChainClient(connection, deployment, operator_account)

    def party(key: bytes, name: str) -> Party:
        client = Web3ChainClient.from_key(connection, deployment, key)
        return Party.open(LocalSigner(key), client, workdir / f"{name}.sqlite")

    return Actors(
        connection,
        deployment,
        operator_account,
        operator,
        party(keys[1], "user"),
        party(keys[2], "machine"),
    )


def _sync(*parties: Party) -> None:
    for party in parties:
        party.sync_chain()


def _channel(party: Party, channel_id: ChannelId) -> ChannelState:
    return party.state.channels[channel_id]


def _holdings(actors: Actors) -> dict[str, int]:
    """Token units per holder: wallets, internal balances, and what the manager holds in all."""
    client = actors.operator
    user, machine = actors.user.address, actors.machine.address
    return {
        "user wallet": client.token_balance(user),
        "machine wallet": client.token_balance(machine),
        "user internal balance": client.balance_of(user),
        "machine internal balance": client.balance_of(machine),
        "channel manager (all funds)": client.token_balance(actors.deployment.manager),
        "total supply": client.token_total_supply(),
    }


def _open_channel(actors: Actors, opener: Party, partner: Party, deposit: int) -> ChannelId:
    opener.client.approve(deposit)
    channel_id, _ = opener.client.open_channel(partner.address, deposit)
    _sync(opener, partner)
    return channel_id


def _stream_payments(
    actors: Actors, channel_id: ChannelId, cycles: int, first_payment_id: int, progress: bool
) -> int:
    """The user pays `cycles` metered steps to the machine; returns the total paid."""
    user, machine = actors.user, actors.machine
    total = 0
    with Progress(
        TextColumn("[bold]streaming payments"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        disable=not progress,
    ) as bar:
        task = bar.add_task("pay", total=cycles)
        for cycle in range(cycles):
            amount = cycle_price(cycle)
            events = user.handle(
                sc.ActionTransfer(
                    channel_id, TokenAmount(amount), PaymentId(first_payment_id + cycle)
                )
            )
            _raise_on_failure(events, "payment")
            deliver([user, machine])
            total += amount
            bar.advance(task)
    received = _channel(machine, channel_id).partner.balance_proof.transferred
    if received < total:
        raise DemoError(f"machine holds proofs for {received} units, {total} were paid")
    return total


def _raise_on_failure(events: list[ev.Event], what: str) -> None:
    for event in events:
        if isinstance(event, ev.EventFailure):
            raise DemoError(f"{what} failed: {event}")


def _withdraw_while_open(actors: Actors, channel_id: ChannelId, amount: int) -> None:
    machine = actors.machine
    expiry = BlockNumber(actors.connection.block_number() + 50)
    _raise_on_failure(
        machine.handle(sc.ActionWithdraw(channel_id, TokenAmount(amount), expiry)), "withdraw"
    )
    deliver([actors.user, machine])
    _sync(actors.user, machine)
    withdrawn = _channel(machine, channel_id).our.withdrawn
    if withdrawn != amount:
        raise DemoError(f"withdraw while open: {withdrawn} on chain, {amount} asked")


def _cooperative_close(actors: Actors, channel_id: ChannelId) -> None:
    _raise_on_failure(actors.user.handle(sc.ActionCooperativeClose(channel_id)), "close")
    deliver([actors.user, actors.machine])
    _sync(actors.user, actors.machine)


def _dispute(actors: Actors, channel_id: ChannelId, cycles: int, progress: bool) -> int:
    """Pay, refund one step, then the user closes alone and the machine counters on chain."""
    user, machine = actors.user, actors.machine
    machine_deposit = 1 * UNITS_PER_EURO
    machine.client.approve(machine_deposit)
    machine.handle(sc.ActionDeposit(channel_id, TokenAmount(machine_deposit)))
    _sync(user, machine)
    paid = _stream_payments(actors, channel_id, cycles, 1_000_000, progress)
    refund = cycle_price(0)
    _raise_on_failure(
        machine.handle(sc.ActionTransfer(channel_id, TokenAmount(refund), PaymentId(2_000_000))),
        "refund",
    )
    deliver([user, machine])
    # The user closes with the machine's latest proof (its refund) and goes quiet; the machine,
    # seeing the close, submits the user's latest proof before the challenge period ends.
    user.handle(sc.ActionClose(channel_id))
    _sync(machine)
    _sync(user)
    latest = _channel(machine, channel_id).partner.balance_proof
    on_chain = machine.client.get_balance_proof(channel_id, user.address, machine.address)
    if (on_chain.nonce, on_chain.transferred) != (latest.nonce, latest.transferred):
        raise DemoError(f"the machine's dispute did not land: chain holds {on_chain}")
    closed = _channel(machine, channel_id)
    actors.connection.mine_until((closed.settle_block or 0) + 1)
    _sync(user, machine)
    failures = [f for p in (user, machine) for f in p.failed_transactions]
    if failures:
        raise DemoError(f"transactions rejected: {failures}")
    return paid - refund


def _bundles(actors: Actors, console: Console, uses: int, keep_dir: Path | None = None) -> None:
    """Step 1: the Bundles day: machines charged per cycle, every fee split, ledgers verified."""
    terms = BUNDLES_TERMS.fees
    console.print(
        f"\n[bold]1.[/] Bundles: {len(MACHINES)} washing machines, {len(USERS)} users, a hub "
        f"(fee {terms.ppm / 10_000:g}%, at most {euro(terms.cap)}); each fee split at once to "
        "the manufacturer, maintenance, detergent supplier and financier"
    )
    for name, (what, _, split) in MACHINES.items():
        parts = ", ".join(f"{b} {ppm / 10_000:g}%" for b, ppm in split.items())
        console.print(f"   {name}: {what}; split {parts}")
    try:
        result = run_bundles(
            actors.connection, actors.operator_account, actors.deployment, uses, keep_dir
        )
    except BundlesDemoError as exc:
        raise DemoError(str(exc)) from exc
    if result.admitted:
        console.print(
            f"   the founding members admitted the {result.admitted} Bundles parties by an "
            "on-chain vote (each applied, accepting the code of conduct)"
        )
    revenue = Table(title=f"per-asset revenue, one day ({result.uses_per_s:,.1f} uses/s)")
    for column in ("asset", "uses", "refused", "revenue", "routing cost", "anchored up to"):
        revenue.add_column(column, justify="left" if column == "asset" else "right")
    for name, report in result.machines.items():
        revenue.add_row(
            name,
            str(report.uses),
            str(report.refused),
            euro(report.revenue),
            euro(report.routing_fees),
            f"seq {report.anchored_to}",
        )
    console.print(revenue)
    income = Table(title="per-beneficiary income (ledger shares = payments received)")
    income.add_column("beneficiary")
    for name in MACHINES:
        income.add_column(name, justify="right")
    income.add_column("received", justify="right")
    for beneficiary, by_machine in result.income.items():
        income.add_row(
            beneficiary,
            *(euro(by_machine[m]) for m in MACHINES),
            euro(result.received[beneficiary]),
        )
    if result.financing is not None:  # kept by the machine, paid on chain after the settlement
        income.add_row(
            f"{POOL_MACHINE}'s pool",
            *(euro(result.financing.kept if m == POOL_MACHINE else 0) for m in MACHINES),
            euro(result.financing.paid) + " on chain",
        )
    console.print(income)
    _print_settlement(console, result)
    repaired = result.machines[REPAIRED]
    view = ChainView.of(actors.connection, actors.deployment)
    facts = chain_facts(view, view.history(asset_id_of(REPAIRED)))
    print_lifecycle(console, REPAIRED, lifecycle(repaired.entries, facts))
    console.print(
        "   every ledger verified against the chain (signatures, hash chain, splits, anchors), "
        f"as `cise ledger verify` does; {result.receipts} receipts kept by the users; the hub earned {euro(result.hub_fees)}; "
        "per-asset and per-beneficiary totals reconcile exactly with the ledgers and the "
        "channels; each wallet changed by exactly its payments"
    )
    _consented_split_change(actors, console)


def _consented_split_change(actors: Actors, console: Console) -> None:
    """A split change lowering a servicer's share, applied with that servicer's signed consent."""
    name, moved = "machine-2", 50_000
    asset_id = asset_id_of(name)
    registry = AssetRegistryClient(actors.connection, actors.deployment, actors.operator_account)
    current = registry.current_split(asset_id)
    parts = current.parts()
    maintenance, manufacturer = (
        bundles_address_of("maintenance"),
        bundles_address_of("manufacturer"),
    )
    parts[maintenance] -= moved
    parts[manufacturer] += moved
    beneficiaries, ppm = canonical_split(parts)
    servicer = registry.for_account(Account.from_key(bundles_key_of("maintenance")))
    expiry = actors.connection.block_number() + 20
    try:  # first without the servicer's consent: the registry must refuse
        registry.change_split(asset_id, beneficiaries, ppm, (), current)
    except ChainError as exc:
        if exc.name != "AssetRegistrySplitConsentMissing":
            raise
    else:
        raise DemoError("the registry lowered the maintenance share without its consent")
    consent = servicer.sign_split_consent(asset_id, beneficiaries, ppm, expiry)
    version, receipt = registry.change_split(asset_id, beneficiaries, ppm, [consent], current)
    console.print(
        f"   consented split change: {name}'s maintenance share "
        f"{(parts[maintenance] + moved) / 10_000:g}% -> {parts[maintenance] / 10_000:g}% (to the "
        f"manufacturer), signed by maintenance (EIP-712 SplitConsent), applied as split version "
        f"{version} ({receipt.gas_used:,} gas); without the signature the registry refused it"
    )


def _print_settlement(console: Console, result: BundlesResult) -> None:
    """The end-of-day settlement batch and the financing pool's repayment."""
    report, financing = result.settlement, result.financing
    if report is not None:
        items = sum(t.items for t in report.transactions)
        deposits = sum(t.deposits for t in report.transactions)
        console.print(
            f"   end-of-day settlement: every party signed its withdraw for the hub's batch; "
            f"{_count(items, 'withdraw')} and {_count(deposits, 're-deposit')} in "
            f"{_count(len(report.transactions), 'transaction')}, {report.gas_used:,} gas "
            f"({report.gas_used // max(items, 1):,} a withdraw, most of it first writes: "
            f"`cise bench settlement` measures later periods); "
            f"{euro(report.to_counterparties)} of the parties' earnings now on chain; the hub "
            f"took {euro(report.hub_withdrawn)} of its surplus and re-deposited "
            f"{euro(report.redeposited)}"
        )
    if financing is None:
        return
    table = Table(title=f"{POOL_MACHINE}'s financing pool: {euro(POOL_TARGET)} raised, repaid up "
                        f"to {POOL_RETURN_PPM / 10_000:g}% ({euro(financing.cap)})")  # fmt: skip
    for column in ("contributor", "contributed", "claimed today", "of its cap"):
        table.add_column(column, justify="left" if column == "contributor" else "right")
    for name, amount in POOL_CONTRIBUTIONS.items():
        claimed = financing.claimed.get(name, 0)
        cap = amount * POOL_RETURN_PPM // 1_000_000
        table.add_row(name, euro(amount), euro(claimed), f"{100 * claimed / cap:.1f}%")
    console.print(table)
    beyond = (
        f"; {euro(financing.to_operator)} beyond the cap went to the operator"
        if financing.to_operator
        else ""
    )
    console.print(
        f"   the pool paid the supplier at its target; {POOL_MACHINE} kept the pool's "
        f"{euro(financing.kept)} of shares in its channel (its ledger records them) and paid "
        f"them on chain after the settlement (its operator adding {euro(financing.topped_up)} "
        f"for the routing fees it paid){beyond}; {euro(financing.left_in_pool)} stays owed in "
        "the pool"
    )


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _withdraw_everything(actors: Actors) -> None:
    for party in (actors.user, actors.machine):
        balance = party.client.balance_of(party.address)
        if balance:
            party.client.withdraw_from_balance(balance)


def run_demo(
    rpc_url: str | None = None,
    cycles: int = 200,
    progress: bool = True,
    uses: int = 90,
    serve: bool = False,
    serve_seconds: float = 0.0,
    port: int = 0,
) -> int:
    """The demo; with `serve`, then the dashboard and API of its network on 127.0.0.1:`port`
    for `serve_seconds` (0: until interrupted)."""
    console = Console(highlight=False)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="cise-demo-") as tmp:
        actors = _setup(rpc_url, Path(tmp))
        keep_dir = Path(tmp) / "bundles" if serve else None
        try:
            code = _run(actors, console, cycles, uses, progress, started, keep_dir)
        except DemoError as exc:
            console.print(f"[bold red]demo failed:[/] {exc}")
            return 1
        finally:
            actors.user.close()
            actors.machine.close()
        if keep_dir is not None and code == 0:
            _serve_dashboard(actors, keep_dir, console, serve_seconds, port)
        return code


def _serve_dashboard(
    actors: Actors, keep_dir: Path, console: Console, seconds: float, port: int
) -> None:
    """The API and dashboard over the demo's chain and files, until `seconds` pass or Ctrl-C."""
    from api.app import create_app
    from api.server import serve
    from api.sources import ApiSources

    sources = ApiSources(
        connection=actors.connection,
        deployment=actors.deployment,
        ledgers={asset_id_of(n): keep_dir / f"{n}-ledger.sqlite" for n in MACHINES},
        names={asset_id_of(n): n for n in MACHINES},
        settlement=keep_dir / "settlement.sqlite",
        towers=[],
        live=None,
    )
    app = create_app(sources)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            bound = await nursery.start(
                lambda task_status: serve(app, port=port, task_status=task_status)
            )
            console.print(
                f"\n[bold]dashboard[/] of the demo network: http://127.0.0.1:{bound}/ "
                f"(API: /api/..., OpenAPI: /openapi.json)"
                + (f"; serving for {seconds:g} s" if seconds else "; Ctrl-C stops it")
            )
            if seconds:
                await trio.sleep(seconds)
                nursery.cancel_scope.cancel()

    try:
        trio.run(main)
    except KeyboardInterrupt:
        console.print("stopped")


def _run(
    actors: Actors,
    console: Console,
    cycles: int,
    uses: int,
    progress: bool,
    started: float,
    keep_dir: Path | None = None,
) -> int:
    where = (
        "embedded py-evm chain" if actors.connection.kind == "embedded" else actors.connection.kind
    )
    console.print(f"[bold]CISE demo[/] on the {where} (chain id {actors.deployment.chain_id})")
    console.print(f"  channel manager {to_checksum(actors.deployment.manager)}")
    console.print(f"  user            {to_checksum(actors.user.address)}")
    console.print(f"  washing machine {to_checksum(actors.machine.address)}")
    operator = actors.operator
    operator.mint(actors.user.address, 100 * UNITS_PER_EURO)
    operator.mint(actors.machine.address, 5 * UNITS_PER_EURO)
    _bundles(actors, console, uses, keep_dir)
    before = _holdings(actors)  # (the Bundles step checked its own wallets)
    console.print(
        "\n[bold]2.[/] a direct channel: the user opens one to a washing machine with €50.000000"
    )
    first = _open_channel(actors, actors.user, actors.machine, 50 * UNITS_PER_EURO)
    console.print(
        f"\n[bold]3.[/] {cycles} metered wash-cycle steps, each paid with one signed proof"
    )
    t0 = time.monotonic()
    paid_first = _stream_payments(actors, first, cycles, 1, progress)
    elapsed = time.monotonic() - t0
    console.print(
        f"   paid {euro(paid_first)} in {cycles} payments "
        f"({cycles / elapsed:,.0f} payments/s, both sides verifying and persisting each)"
    )
    half = paid_first // 2
    console.print(
        f"\n[bold]4.[/] machine withdraws {euro(half)} on chain while the channel stays open"
    )
    _withdraw_while_open(actors, first, half)
    console.print("\n[bold]5.[/] cooperative close: both sign the final balances, one transaction")
    _cooperative_close(actors, first)

    console.print("\n[bold]6.[/] second channel: the user closes alone; the machine disputes")
    second = _open_channel(actors, actors.user, actors.machine, 20 * UNITS_PER_EURO)
    dispute_cycles = max(1, cycles // 10)
    net_second = _dispute(actors, second, dispute_cycles, progress)
    state = _channel(actors.machine, second)
    console.print(
        f"   machine submitted the user's proof nonce {state.partner.balance_proof.nonce}; "
        f"settled after {DEMO_SETTLE_TIMEOUT} blocks; net to machine {euro(net_second)}"
    )
    _withdraw_everything(actors)
    after = _holdings(actors)
    return _report(console, actors, before, after, paid_first + net_second, started)


def _report(
    console: Console,
    actors: Actors,
    before: dict[str, int],
    after: dict[str, int],
    paid: int,
    started: float,
) -> int:
    table = Table(title="on-chain token balances")
    table.add_column("holder")
    table.add_column("before", justify="right")
    table.add_column("after", justify="right")
    table.add_column("change", justify="right")
    for name in before:
        table.add_row(name, euro(before[name]), euro(after[name]), euro(after[name] - before[name]))
    console.print()
    console.print(table)
    holders = [name for name in before if name != "total supply"]
    problems = []
    if sum(before[n] for n in holders) != sum(after[n] for n in holders):
        problems.append("tokens held changed in sum")
    if before["total supply"] != after["total supply"]:
        problems.append("total supply changed")
    if after["machine wallet"] - before["machine wallet"] != paid:
        problems.append(
            f"machine gained {after['machine wallet'] - before['machine wallet']}, was paid {paid}"
        )
    if before["user wallet"] - after["user wallet"] != paid:
        problems.append(f"user lost {before['user wallet'] - after['user wallet']}, paid {paid}")
    if after["channel manager (all funds)"] != 0:
        problems.append("funds left in the channel manager")
    for party in (actors.user, actors.machine):
        for channel in party.state.channels.values():
            if get_balance(channel.our, channel.partner) < 0:
                problems.append(f"negative balance in channel {channel.channel_id}")
    if problems:
        console.print("[bold red]conservation check FAILED:[/] " + "; ".join(problems))
        return 1
    console.print(
        f"[bold green]conservation check passed[/]: nothing created or lost; the machine earned "
        f"exactly the {euro(paid)} paid. ({time.monotonic() - started:.1f} s)"
    )
    return 0

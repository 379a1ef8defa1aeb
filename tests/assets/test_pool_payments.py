"""A financing pool in an asset's split is paid its kept shares on chain, exactly once.

On the embedded chain (py-evm): a pool is created for a registered asset and funded by two members,
the operator puts the pool in the asset's split (`changeSplit`), and the asset agent runs on a hub
network: users are charged, the servicer's shares are routed, the pool's shares are kept (payment
id 0). The asset's channel earnings reach its internal balance by a real co-signed withdraw while
the channel stays open (the agent asks, the hub co-signs, the agent's node sends `withdraw`), as
settlement will do. Then `pay_kept_shares` pays the pool from that balance, the pool's `sync`
accounts it, contributors claim pro rata, a second run pays nothing, and the financier's check
(`check_pool_payments`) passes against what the chain shows; a balance short of what is owed pays
what it holds and reports the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import trio
from eth_account import Account

from assets.agent import AssetAgent, AssetConfig
from assets.audit import audit_ledger, check_beneficiary, check_pool_payments
from assets.ledger import SignedEntry
from assets.ledger_store import LedgerStore
from assets.meter import MeterEvent
from assets.pool_payments import kept_totals, paid_on_chain, pay_kept_shares
from assets.tariff import Tariff
from channels.chain.assets import AssetRegistryClient, canonical_split
from channels.chain.client import Web3ChainClient
from channels.chain.connection import Connection
from channels.chain.deploy import Deployment, deploy
from channels.chain.financing import FinancingPoolClient
from channels.chain.nodes import dev_private_keys
from channels.codec.eip712 import Domain
from channels.codec.keccak import keccak
from channels.core import state_changes as sc
from channels.core.fees import FeeSchedule
from channels.core.splits import Split, split_fee
from channels.core.types import Address, BlockNumber, TokenAmount
from cise.local_net import run_local_net
from hub.mediator import MediationTerms

EURO = 1_000_000
ASSET = keccak(b"financed washing machine")
NAMES = ("operator", "hub", "asset", "user", "servicer", "alice", "bob")  # dev accounts 0..6
TARIFF = Tariff(kind="cycle", price=2_500_003, max_units=1)  # odd: the shares round
POOL_PPM, SERVICER_PPM = 300_000, 700_000
USES = 4
TARGET = 100 * EURO
RETURN_PPM = 1_080_000
CONTRIBUTIONS = {"alice": 60 * EURO, "bob": 40 * EURO}
TERMS = MediationTerms(FeeSchedule(flat=0, ppm=1_000, cap=2_000), reveal_timeout=5, lock_timeout=40)
AT = 1_999_999_000


def _pay_the_asset(payee: Address, amount: int, payment_id: int) -> bool:
    return amount == TARIFF.price  # the user's wallet pays the asset's cycle charges


POLICIES = {"user": _pay_the_asset}


@dataclass
class Financed:
    """The chain after the uses: the asset's ledger and internal balance, the funded pool."""

    connection: Connection
    deployment: Deployment
    clients: dict[str, Web3ChainClient]
    factory: FinancingPoolClient
    pool: Address
    split: Split
    entries: list[SignedEntry]

    @property
    def agent(self) -> Web3ChainClient:
        return self.clients["asset"]

    def pool_client(self, name: str = "asset") -> FinancingPoolClient:
        return self.factory.for_account(Account.from_key(dev_private_keys()[NAMES.index(name)]))

    def kept_total(self) -> int:
        return kept_totals(self.entries, {self.pool})[self.pool]

    def paid(self) -> dict[bytes, int]:
        """What the chain shows the asset's agent paid the pool."""
        return paid_on_chain(self.connection, self.deployment, {self.agent.address}, {self.pool})


def _set_up_chain() -> tuple[Connection, Deployment, dict[str, Web3ChainClient], Address, Split]:
    """The network, the asset (split: the servicer, then also the pool), the pool funded, and
    the channels of a hub network (user -> hub -> asset, hub -> servicer)."""
    connection = Connection.embedded()
    accounts = {
        name: Account.from_key(key)
        for name, key in zip(NAMES, dev_private_keys()[: len(NAMES)], strict=True)
    }
    deployment = deploy(connection, accounts["operator"], settle_timeout=20)
    assert deployment.financing_factory is not None
    clients = {n: Web3ChainClient(connection, deployment, a) for n, a in accounts.items()}
    address = {name: client.address for name, client in clients.items()}
    registry = AssetRegistryClient(connection, deployment, accounts["operator"])
    registry.register_asset(
        ASSET, address["asset"], keccak(b"washer"), "", [address["servicer"]], [10**6]
    )
    factory = FinancingPoolClient(connection, deployment.financing_factory, accounts["operator"])
    deadline = connection.block_number() + 100
    pool, _ = factory.create_pool(ASSET, TARGET, deadline, RETURN_PPM)
    beneficiaries, ppm = canonical_split({address["servicer"]: SERVICER_PPM, pool: POOL_PPM})
    # The servicer's share goes down: its consent (issue 19).
    consent = registry.for_account(accounts["servicer"]).sign_split_consent(
        ASSET, beneficiaries, ppm, expiry=connection.block_number() + 20
    )
    version, _ = registry.change_split(ASSET, beneficiaries, ppm, [consent])
    operator = clients["operator"]
    for name, amount in CONTRIBUTIONS.items():
        operator.mint(address[name], amount)
        member = factory.for_account(accounts[name])
        member.approve(pool, amount, deployment.token)
        member.contribute(pool, amount)
    assert factory.state(pool).raised == TARGET  # funded: the target went to the operator
    operator.mint(address["user"], 50 * EURO)
    operator.mint(address["hub"], 100 * EURO)
    operator.mint(address["asset"], 5 * EURO)
    clients["user"].approve(50 * EURO)
    clients["user"].open_channel(address["hub"], 50 * EURO)
    clients["hub"].approve(100 * EURO)
    channel_id, _ = clients["hub"].open_channel(address["asset"], 50 * EURO)
    clients["asset"].approve(1 * EURO)  # a float for the routing fees of the shares
    clients["asset"].set_total_deposit(channel_id, address["hub"], 1 * EURO)
    clients["hub"].open_channel(address["servicer"], 50 * EURO)
    return connection, deployment, clients, pool, Split(version, beneficiaries, ppm)


async def _run_uses(
    clients: dict[str, Web3ChainClient],
    workdir: Path,
    domain: Domain,
    split: Split,
    pool: Address,
    to_balance: int,
) -> list[SignedEntry]:
    """The asset agent charges USES prepaid cycles (the pool's shares kept), then withdraws
    `to_balance` from its channel with the hub into its internal balance; its ledger."""
    keys = {n: dev_private_keys()[NAMES.index(n)] for n in ("hub", "asset", "user", "servicer")}
    ledger = LedgerStore(workdir / "asset-ledger.sqlite")
    try:
        async with run_local_net(clients, keys, workdir, TERMS, policies=POLICIES) as net:
            config = AssetConfig(
                asset_id=ASSET,
                domain=domain,
                tariff=TARIFF,
                split=split,
                known_user=lambda user: user == clients["user"].address,
                charge_timeout=10.0,
                clock=lambda: float(AT + 1_000),
                kept=frozenset({pool}),
            )
            asset = AssetAgent(net.agents["asset"], ledger, config)
            async with trio.open_nursery() as nursery:
                await nursery.start(asset.run)
                user = "0x" + clients["user"].address.hex()
                with trio.fail_after(60):
                    for n in range(1, USES + 1):
                        event = MeterEvent(f"cycle-{n}", user, 1, AT + n, prepaid=True)
                        outcome = await asset.handle(event)
                        assert outcome.status == "charged", outcome.reason
                    while asset.book.counts().get("paid", 0) < USES:  # noqa: ASYNC110
                        await trio.sleep(0.05)
                service = net.services["asset"]
                channel = service.channel_with(net.hub.service.address)
                assert channel is not None
                async with net.chain_lock:
                    head = await trio.to_thread.run_sync(clients["asset"].block_number)
                service.handle(
                    sc.ActionWithdraw(
                        channel.channel_id, TokenAmount(to_balance), BlockNumber(head + 50)
                    )
                )
                with trio.fail_after(60):  # the hub co-signs, the agent's node sends `withdraw`
                    while channel.our.withdrawn < to_balance:
                        await trio.sleep(0.05)
                        channel = service.channel_with(net.hub.service.address) or channel
                assert not service.chain_failures
                nursery.cancel_scope.cancel()
        return list(ledger.entries())
    finally:
        ledger.close()


def financed(tmp_path: Path, short: int = 0) -> Financed:
    """The set-up; the agent withdraws the pool's kept total less `short` to its internal balance
    (the kept total computed from the tariff and the split, as the ledger will record it)."""
    connection, deployment, clients, pool, split = _set_up_chain()
    kept = USES * split_fee(TARIFF.price, split)[split.beneficiaries.index(pool)]
    assert deployment.asset_registry is not None
    domain = Domain(deployment.chain_id, deployment.asset_registry)
    amount = kept - short
    entries = trio.run(_run_uses, clients, tmp_path, domain, split, pool, amount)
    assert deployment.financing_factory is not None
    operator = Account.from_key(dev_private_keys()[0])
    factory = FinancingPoolClient(connection, deployment.financing_factory, operator)
    result = Financed(connection, deployment, clients, factory, pool, split, entries)
    assert result.kept_total() == kept
    assert clients["asset"].balance_of(clients["asset"].address) == amount
    registry = AssetRegistryClient(connection, deployment, operator)
    audit = audit_ledger(
        entries, asset_id=ASSET, domain=domain, history=registry.asset_history(ASSET)
    )
    assert audit.ok, audit.problem  # the ledger pay_kept_shares is given checks out
    return result


def claimable(f: Financed, name: str) -> int:
    return f.factory.claimable(f.pool, f.clients[name].address)


def test_the_pool_is_paid_its_kept_shares_once_and_its_contributors_claim(tmp_path: Path) -> None:
    f = financed(tmp_path)
    kept = f.kept_total()
    assert kept > 0
    # the beneficiary check counts the pool's shares as kept (payment id 0): none was routed
    routed = check_beneficiary(f.entries, f.pool, ())
    assert (routed.kept, routed.owed, routed.ok) == (kept, 0, True)
    assert not check_pool_payments(f.entries, {f.pool}, f.paid()).ok  # nothing paid yet

    report = pay_kept_shares(f.agent, f.entries, {f.pool}, pool_client=f.pool_client())
    (line,) = report.pools
    assert (line.pool, line.kept, line.paid_before, line.paid_now, line.still_owed) == (
        f.pool,
        kept,
        0,
        kept,
        0,
    )
    assert report.ok and line.transaction is not None and not line.error
    assert (report.available_before, report.available_after) == (kept, 0)
    assert line.synced == (kept, 0) and not line.sync_error  # all to the contributors (cap 108)
    assert f.agent.balance_of(f.agent.address) == 0
    assert f.paid() == {f.pool: kept}
    state = f.factory.state(f.pool)
    assert (state.repaid, state.pending, state.to_operator) == (kept, 0, 0)

    # contributors claim pro rata: floor(repaid * contribution / target)
    for name, contribution in CONTRIBUTIONS.items():
        share = kept * contribution // TARGET
        assert claimable(f, name) == share
        before = f.clients[name].token_balance(f.clients[name].address)
        claimed, _ = f.pool_client(name).claim(f.pool)
        assert claimed == share
        assert f.clients[name].token_balance(f.clients[name].address) == before + share

    # again: nothing more is paid, even with money in the internal balance
    f.clients["asset"].approve(3 * EURO)
    f.clients["asset"].deposit_to_balance(3 * EURO)
    head = f.connection.block_number()
    again = pay_kept_shares(f.agent, f.entries, {f.pool}, pool_client=f.pool_client())
    (line,) = again.pools
    assert (line.paid_before, line.paid_now, line.still_owed, line.transaction) == (
        kept,
        0,
        0,
        None,
    )
    assert again.available_after == again.available_before == 3 * EURO
    assert f.connection.block_number() == head  # no transaction at all
    check = check_pool_payments(f.entries, {f.pool}, f.paid())
    assert check.ok, check.problems()
    assert check.pools[0].kept == check.pools[0].paid == kept


SHORT = 123_457  # what the internal balance lacks at first
EARLIER = 200_000  # what a crashed earlier run paid before it could report


def test_a_short_balance_pays_what_it_holds_and_the_rest_later_never_twice(
    tmp_path: Path,
) -> None:
    f = financed(tmp_path, short=SHORT)
    kept = f.kept_total()
    # an earlier run sent a payment and crashed before reporting it: the chain has it
    f.agent.withdraw_from_balance(EARLIER, f.pool)

    report = pay_kept_shares(f.agent, f.entries, {f.pool}, pool_client=f.pool_client())
    (line,) = report.pools
    assert (line.paid_before, line.paid_now, line.still_owed) == (
        EARLIER,
        kept - SHORT - EARLIER,
        SHORT,
    )
    assert report.still_owed == SHORT and report.available_after == 0 and report.ok
    assert line.synced == (kept - SHORT, 0)  # the crashed run's payment is accounted too
    check = check_pool_payments(f.entries, {f.pool}, f.paid())
    assert not check.ok and check.pools[0].short == SHORT
    assert f"{SHORT} unpaid, from the share at seq {USES} on" in check.problems()[0]
    assert check_pool_payments(f.entries, {f.pool}, f.paid(), up_to_seq=USES - 1).ok

    # a run with nothing available pays nothing and still reports the debt
    nothing = pay_kept_shares(f.agent, f.entries, {f.pool}, pool_client=f.pool_client())
    assert (nothing.pools[0].paid_now, nothing.still_owed) == (0, SHORT)

    # the next settlement's earnings: here the agent simply deposits from its wallet
    f.clients["asset"].approve(SHORT + 1)
    f.clients["asset"].deposit_to_balance(SHORT + 1)
    rest = pay_kept_shares(f.agent, f.entries, {f.pool}, pool_client=f.pool_client())
    (line,) = rest.pools
    assert (line.paid_before, line.paid_now, line.still_owed) == (kept - SHORT, SHORT, 0)
    assert rest.available_after == 1  # never more than owed
    assert f.paid() == {f.pool: kept} and f.factory.state(f.pool).repaid == kept
    assert check_pool_payments(f.entries, {f.pool}, f.paid()).ok

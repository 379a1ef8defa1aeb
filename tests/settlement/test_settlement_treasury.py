"""The community treasury's part of the hub's fee income, paid at settlement rounds on a live
network on the embedded chain: after the members vote a part, each round pays exactly
floor(income * ppm / 1e6) of the fees routed since the round before into the treasury, from the
hub's internal balance; a hub that stops between recording a part and paying it pays it once after
the restart, and one whose payment landed before the stop never pays it again."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
from eth_account import Account

from channels.chain.governance import GovernanceClient, pass_proposal
from channels.core.types import ChannelId
from settlement.service import SettlementService
from settlement.store import SettlementStore, TreasuryPaymentRow
from settlement.treasury import net_of
from settlement.treasury_payer import TreasuryPayer
from tests.settlement.settlefix import TERMS, SettleNet, settle_net, wait_for

PPM = 150_000  # 15%


def _vote_part(sn: SettleNet, ppm: int) -> None:
    deployment = sn.clients["hub"].deployment
    voters = [Account.from_key(k) for k in sn.connection.dev_keys[:3]]
    calls = [GovernanceClient(sn.connection, deployment, None).calls.set_treasury_fee_ppm(ppm)]
    pass_proposal(sn.connection, deployment, voters, calls, "Community proceeds")
    assert GovernanceClient(sn.connection, deployment, None).treasury_fee_ppm() == ppm


def _hub_net(sn: SettleNet) -> int:
    """What the hub received minus what it sent, over all its channels."""
    return sum(net_of(c) for c in sn.net.services["hub"].channels.values())


async def _route(sn: SettleNet, amounts: list[int], first_id: int) -> int:
    """Pay the washer through the hub; returns the hub's fees, once its channels show them all."""
    before = _hub_net(sn)
    with trio.fail_after(30):
        for offset, amount in enumerate(amounts):
            await sn.net.agents["alice"].pay(sn.net.address("washer"), amount,
                                             payment_id=first_id + offset)  # fmt: skip
    fees = sum(TERMS.fees.fee(a) for a in amounts)
    await wait_for(lambda: _hub_net(sn) == before + fees)
    return fees


def _treasury_balance(sn: SettleNet) -> int:
    treasury = sn.clients["hub"].deployment.treasury
    assert treasury is not None
    return int(sn.clients["hub"].token_balance(treasury))


async def test_each_round_pays_the_voted_part_of_the_new_fee_income(tmp_path: Path) -> None:
    async with settle_net(tmp_path) as sn:
        store = SettlementStore(tmp_path / "settlement.sqlite")
        await _route(sn, [700_000], first_id=1)  # routed while the part is 0: never taxed
        untaxed = await sn.service(store, collect_s=10).settle_once()
        assert store.treasury_payments() == [] and store.treasury_counted() == {}
        assert untaxed.status == "settled"
        _vote_part(sn, PPM)
        baseline = await sn.service(store, collect_s=10).settle_once()  # the part starts here
        assert store.treasury_payments() == [] and _treasury_balance(sn) == 0
        assert store.treasury_counted() != {}
        assert baseline.round_id > untaxed.round_id
        income = await _route(sn, [600_000, 3_333, 250_000], first_id=10)
        first = await sn.service(store, collect_s=10).settle_once()
        part = income * PPM // 1_000_000
        assert (income, part) == (610 + 13 + 260, 132)  # floor(132.45)
        [row] = store.treasury_payments()
        assert (row.round_id, row.income, row.ppm, row.amount) == (
            first.round_id,
            income,
            PPM,
            part,
        )
        assert row.status == "paid" and row.tx_hash is not None and row.gas_used
        assert _treasury_balance(sn) == part
        more = await _route(sn, [40_000], first_id=20)  # the second round: only the new income
        second = await sn.service(store, collect_s=10).settle_once()
        [_, row2] = store.treasury_payments()
        assert (row2.round_id, row2.income, row2.amount) == (
            second.round_id,
            more,
            more * PPM // 10**6,
        )
        assert _treasury_balance(sn) == part + more * PPM // 10**6
        # nothing created or lost: what left the manager is what the treasury holds
        assert sn.held_by_manager() + _treasury_balance(sn) == sn.tokens
        # a round without new income pays nothing
        await sn.service(store, collect_s=10).settle_once()
        assert len(store.treasury_payments()) == 2
        print(f"gas of a treasury payment: {row.gas_used:,}")
        store.close()


class _CrashError(Exception):
    """The hub stopping at one point of a treasury payment."""


class _StopsBeforePaying(TreasuryPayer):
    async def _pay(self, row: TreasuryPaymentRow) -> TreasuryPaymentRow:
        raise _CrashError


class _StopsAfterItLanded(TreasuryPayer):
    """Sends the payment through the node's transaction manager, then stops before recording."""

    async def _pay(self, row: TreasuryPaymentRow) -> TreasuryPaymentRow:
        await super()._pay(row)
        raise _CrashError


async def _crash_then_restart(tmp_path: Path, payer: type[TreasuryPayer], forget: bool) -> None:
    async with settle_net(tmp_path) as sn:
        path = tmp_path / "settlement.sqlite"
        store = SettlementStore(path)
        _vote_part(sn, PPM)
        await sn.service(store, collect_s=10).settle_once()  # the part starts
        income = await _route(sn, [900_000], first_id=1)
        part = income * PPM // 1_000_000
        crashing = sn.service(store, collect_s=10)
        crashing.treasury = payer(sn.net.services["hub"], sn.clients["hub"], store)
        with pytest.raises(_CrashError):
            await crashing.settle_once()
        crashing.detach()
        if forget:  # the landed payment's outcome was never written: the file still says owed
            with store._transaction() as db:  # the state a stop leaves
                db.execute("UPDATE treasury_payments SET status = 'owed', tx_hash = NULL")
        [owed] = store.treasury_payments("owed")
        assert owed.amount == part
        store.close()
        restarted = SettlementStore(path)
        service: SettlementService = sn.service(restarted, collect_s=10)
        await service.settle_once()  # finishes the owed part first
        [paid] = restarted.treasury_payments()
        assert paid.status == "paid" and paid.amount == part
        assert _treasury_balance(sn) == part  # once, whatever the stop
        await service.settle_once()
        assert _treasury_balance(sn) == part and len(restarted.treasury_payments()) == 1
        assert sn.held_by_manager() + _treasury_balance(sn) == sn.tokens
        restarted.close()


async def test_a_part_recorded_but_not_paid_is_paid_once_after_a_restart(tmp_path: Path) -> None:
    await _crash_then_restart(tmp_path, _StopsBeforePaying, forget=False)


async def test_a_part_paid_before_the_stop_is_not_paid_again(tmp_path: Path) -> None:
    await _crash_then_restart(tmp_path, _StopsAfterItLanded, forget=True)


async def test_with_no_part_voted_a_round_records_and_pays_nothing(tmp_path: Path) -> None:
    async with settle_net(tmp_path) as sn:
        store = SettlementStore(tmp_path / "settlement.sqlite")
        for first_id in (1, 10):
            await _route(sn, [500_000], first_id=first_id)
            await sn.service(store, collect_s=10).settle_once()
        assert store.treasury_payments() == [] and store.treasury_counted() == {}
        assert _treasury_balance(sn) == 0
        hub = sn.net.services["hub"]
        assert all(ChannelId(c) in hub.channels for c in hub.channels)
        store.close()

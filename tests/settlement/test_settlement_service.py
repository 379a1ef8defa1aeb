"""The hub's settlement service on a live network on the embedded chain: a round moves every
counterparty's earnings (and the hub's surplus) on chain in one batch, leaves payers' prepaid
deposits in their channels, reports and finally closes a counterparty that does not sign, and
finishes a batch interrupted before it was sent without ever applying anything twice."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from channels.chain.errors import ChainError
from channels.core.channel import get_capacity
from channels.core.state import ChannelState
from channels.core.types import ChannelId
from settlement.service import SettlementService
from settlement.store import SettlementStore, SettlementStoreError, TransactionRow
from tests.settlement.settlefix import (
    HUB_TO_WASHER,
    POLICY,
    TERMS,
    USER_DEPOSIT,
    SettleNet,
    settle_net,
    wait_for,
)


async def _pay(sn: SettleNet, payer: str, amounts: list[int], first_id: int = 1) -> int:
    washer = sn.net.address("washer")
    with trio.fail_after(30):
        for offset, amount in enumerate(amounts):
            await sn.net.agents[payer].pay(washer, amount, payment_id=first_id + offset)
    return sum(amounts)


def _hub_view(sn: SettleNet, name: str) -> ChannelState:
    """The hub's view of its channel with `name` (open or not)."""
    return sn.net.services["hub"].channels[ChannelId(sn.channel_id(name))]


def _withdrawn(sn: SettleNet, name: str) -> int:
    channel = sn.net.services[name].channel_with(sn.net.address("hub"))
    assert channel is not None
    return int(channel.our.withdrawn)


async def test_a_round_settles_earnings_on_chain_and_leaves_prepaid_deposits(
    tmp_path: Path,
) -> None:
    async with settle_net(tmp_path) as sn:
        paid = await _pay(sn, "alice", [1_000_000, 250_000, 3_333])
        paid += await _pay(sn, "bob", [400_000], first_id=10)
        fees = sum(TERMS.fees.fee(a) for a in (1_000_000, 250_000, 3_333, 400_000))
        assert fees > 0  # the hub earned them: its surplus grew by them
        store = SettlementStore(tmp_path / "settlement.sqlite")
        report = await sn.service(store, collect_s=10).settle_once()
        washer, hub = sn.clients["washer"], sn.clients["hub"]
        assert report.status == "settled", report
        assert report.non_signers == () and len(report.transactions) == 1
        assert washer.balance_of(washer.address) == paid  # the washer's earnings, on chain
        assert report.to_counterparties == paid
        # the hub had 5,000,000 - paid towards the washer (below its target: nothing taken
        # there) and paid + fees from the users: its surplus above the 1,000,000 target in each
        # user channel is withdrawn, the rest re-deposited towards the washer
        assert report.hub_withdrawn + report.redeposited > 0
        assert hub.balance_of(hub.address) == report.hub_withdrawn - report.redeposited
        for user in ("alice", "bob"):  # prepaid deposits stay: no item for a payer
            info = hub.get_channel(sn.channel_id(user), hub.address, sn.clients[user].address)
            assert USER_DEPOSIT in (info.deposit1, info.deposit2)
        assert sn.held_by_manager() == sn.tokens  # nothing created or lost
        await wait_for(lambda: _withdrawn(sn, "washer") == paid)  # the cores saw it too
        await wait_for(lambda: _hub_view(sn, "washer").partner.withdrawn == paid)
        hub_view = _hub_view(sn, "washer")
        assert hub_view is not None and hub_view.partner.pending_withdraw is None
        assert get_capacity(hub_view.partner, hub_view.our) == 0  # all it earned went on chain
        # the washer keeps being paid after the round, from the hub's re-deposited capacity
        await _pay(sn, "alice", [5_000], first_id=20)
        again = await sn.service(store, collect_s=10).settle_once()
        assert again.status in ("settled", "partial") and again.to_counterparties == 5_000
        assert washer.balance_of(washer.address) == paid + 5_000
        [latest, first, *_] = store.rounds()
        assert (latest.id, first.id) == (again.round_id, report.round_id)
        assert [t.status for t in store.transactions(report.round_id)] == ["applied"]
        store.close()


async def test_a_counterparty_that_does_not_sign_is_reported_then_closed(tmp_path: Path) -> None:
    async with settle_net(tmp_path) as sn:
        await _pay(sn, "alice", [700_000])
        sn.net.agents["washer"].accept_settlement = lambda channel, total: False
        now = [1_000_000.0]
        store = SettlementStore(tmp_path / "settlement.sqlite")
        service = SettlementService(
            sn.net.services["hub"],
            sn.clients["hub"],
            store,
            sn.service(store).config.__class__(POLICY, collect_s=1.0, close_unsigned_after_s=3600),
            clock=lambda: now[0],
        )
        washer_channel = sn.channel_id("washer")
        first = await service.settle_once()
        assert dict(first.non_signers) == {washer_channel: sn.net.address("washer")}
        assert first.closed == () and first.to_counterparties == 0
        [miss] = store.misses()
        assert (miss.channel_id, miss.rounds, miss.closed_at) == (washer_channel, 1, None)
        washer = sn.clients["washer"]
        assert washer.balance_of(washer.address) == 0
        now[0] += 3_600  # past the deadline: the hub closes with the washer's latest proof
        await wait_for(lambda: _hub_view(sn, "washer").partner.pending_withdraw is None)
        second = await service.settle_once()
        assert second.closed == (washer_channel,)
        await wait_for(lambda: _hub_view(sn, "washer").status.value in ("closed", "settled"))
        assert store.misses()[0].closed_at == now[0]
        store.close()


class _CrashError(Exception):
    """The hub stopping right after a batch's arguments became durable."""


class _StopsBeforeSending(SettlementService):
    async def _send(self, row: TransactionRow, items: int, deposits: int):  # type: ignore[no-untyped-def]
        raise _CrashError


async def test_a_batch_interrupted_before_sending_is_sent_once_at_restart(tmp_path: Path) -> None:
    async with settle_net(tmp_path) as sn:
        paid = await _pay(sn, "alice", [900_000])
        path = tmp_path / "settlement.sqlite"
        store = SettlementStore(path)
        crashing = _StopsBeforeSending(sn.net.services["hub"], sn.clients["hub"], store,
                                       sn.service(store).config)  # fmt: skip
        with pytest.raises(_CrashError):
            await crashing.settle_once()
        [stuck] = store.unfinished_rounds()
        [row] = store.transactions(stuck.id)
        assert row.status == "signed" and row.tx_hash is None
        crashing.detach()
        store.close()
        washer = sn.clients["washer"]
        assert washer.balance_of(washer.address) == 0
        restarted = SettlementStore(path)
        service = sn.service(restarted)
        await service.settle_once()  # finishes the stuck batch first
        assert washer.balance_of(washer.address) == paid
        [done] = restarted.transactions(stuck.id)
        assert done.status == "applied" and done.tx_hash is not None
        assert restarted.round(stuck.id).status == "settled"  # type: ignore[union-attr]
        # the same signed batch again: the contract refuses the replay, nothing moves
        held = sn.held_by_manager()
        with pytest.raises(ChainError, match="NotIncreasing"):
            sn.clients["hub"].settle_hub_batch(
                sn.net.address("hub"), row.expiry, row.hub_signature, row.withdraws, row.deposits
            )
        assert washer.balance_of(washer.address) == paid and sn.held_by_manager() == held
        restarted.close()


async def test_a_settlement_file_of_another_hub_is_refused(tmp_path: Path) -> None:
    async with settle_net(tmp_path) as sn:
        store = SettlementStore(tmp_path / "settlement.sqlite")
        store.claim(sn.net.address("alice"), 1, sn.net.address("alice"))
        with pytest.raises(SettlementStoreError, match="belongs to hub"):
            sn.service(store)
        store.close()
        assert HUB_TO_WASHER > 0


class _LandsButNotRecorded(SettlementService):
    """The hub stopping after its batch landed on chain but before it wrote down the outcome."""

    async def _send(self, row: TransactionRow, items: int, deposits: int):  # type: ignore[no-untyped-def]
        await self.node.chain_call(
            self.client.settle_hub_batch, self.hub, row.expiry, row.hub_signature,
            row.withdraws, row.deposits,
        )  # fmt: skip
        raise _CrashError


async def test_a_batch_that_landed_before_the_crash_is_recorded_not_resent(
    tmp_path: Path,
) -> None:
    async with settle_net(tmp_path) as sn:
        paid = await _pay(sn, "alice", [321_000])
        path = tmp_path / "settlement.sqlite"
        store = SettlementStore(path)
        crashing = _LandsButNotRecorded(sn.net.services["hub"], sn.clients["hub"], store,
                                        sn.service(store).config)  # fmt: skip
        with pytest.raises(_CrashError):
            await crashing.settle_once()
        crashing.detach()
        washer = sn.clients["washer"]
        assert washer.balance_of(washer.address) == paid  # it landed
        [stuck] = store.unfinished_rounds()
        store.close()
        restarted = SettlementStore(path)
        await wait_for(lambda: _hub_view(sn, "washer").partner.withdrawn == paid)
        await sn.service(restarted).settle_once()
        [done] = restarted.transactions(stuck.id)
        assert done.status == "applied" and done.error == "found after a restart"
        assert washer.balance_of(washer.address) == paid  # not applied twice
        assert sn.held_by_manager() == sn.tokens
        restarted.close()

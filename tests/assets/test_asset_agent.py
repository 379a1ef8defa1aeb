"""The asset agent end to end on a hub network: meter event → charge → ledger → shares."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
import trio.lowlevel

from assets.agent import AssetAgent
from assets.ledger import LedgerError, verify_chain
from assets.meter import MeterEvent
from channels.bench.synthetic import address_of
from channels.core.splits import split_fee
from channels.core.types import Address
from channels.records import InvoiceRecord
from tests.assets.assetfix import (
    ASSET_ID,
    BENEFICIARIES,
    REGISTRY_DOMAIN,
    TARIFF,
    USERS,
    config,
    running_asset,
    split,
)

AT = 1_999_999_000


def use(n: int, user: str = "user-1", *, prepaid: bool = True) -> MeterEvent:
    return MeterEvent(
        event_id=f"wash-{n}",
        user="0x" + address_of(user).hex(),
        units=1,
        at=AT + n,
        prepaid=prepaid,
    )


def received_by(agent_store: object, payer: Address) -> int:
    return sum(
        r.received
        for _, r in agent_store.facts("invoice:")  # type: ignore[attr-defined]
        if isinstance(r, InvoiceRecord) and r.status == "received" and r.payer == payer
    )


async def test_uses_are_charged_ledgered_and_split(tmp_path: Path) -> None:
    async with running_asset(tmp_path) as a:
        with trio.fail_after(30):
            users = ["user-1", "user-2", "user-1"]
            outcomes = [await a.asset.handle(use(n, u)) for n, u in enumerate(users, start=1)]
            assert [o.status for o in outcomes] == ["charged"] * 3
            assert [o.seq for o in outcomes] == [1, 2, 3]
            while a.asset.book.counts().get("paid", 0) < 3:  # noqa: ASYNC110
                await trio.sleep(0.01)
        entries = list(a.ledger.entries())
        verify_chain(entries, ASSET_ID, a.asset.address, REGISTRY_DOMAIN, splits={1: split()})
        shares = split_fee(TARIFF.price, split())
        assert sum(shares) == TARIFF.price
        for beneficiary in BENEFICIARIES:
            store = a.net.agents[beneficiary].service.store
            owed = 3 * shares[split().beneficiaries.index(address_of(beneficiary))]
            with trio.fail_after(5):  # the payee records the payment with its next commit
                while received_by(store, a.asset.address) < owed:  # noqa: ASYNC110
                    await trio.sleep(0.01)
            assert received_by(store, a.asset.address) == owed
        user_1 = a.net.agents["user-1"]
        with trio.fail_after(5):
            while len(user_1.receipts()) < 2:  # noqa: ASYNC110
                await trio.sleep(0.01)
        assert {r.asset for r in user_1.receipts()} == {a.asset.address}


async def test_a_duplicate_event_is_answered_as_before_and_charged_once(tmp_path: Path) -> None:
    async with running_asset(tmp_path) as a:
        with trio.fail_after(30):
            first = await a.asset.handle(use(1))
            again = await a.asset.handle(use(1))
        assert first.status == "charged" and again.status == "charged"
        assert again.seq == first.seq == 1
        assert a.ledger.count() == 1


async def test_bad_events_are_rejected_and_change_nothing(tmp_path: Path) -> None:
    async with running_asset(tmp_path) as a:
        with trio.fail_after(30):
            await a.asset.handle(use(5))
            stranger = MeterEvent(
                event_id="wash-x", user="0x" + address_of("nobody").hex(), units=1, at=AT + 9
            )
            cases = {
                "out of order": use(4),
                "another event": MeterEvent(
                    event_id="wash-5", user=use(5).user, units=1, at=AT + 7
                ),
                "unknown user": stranger,
                "above the maximum": MeterEvent(
                    event_id="wash-9", user=use(5).user, units=2, at=AT + 9
                ),
            }
            for problem, event in cases.items():
                outcome = await a.asset.handle(event)
                assert outcome.status == "rejected", problem
                assert problem in outcome.reason, (problem, outcome.reason)
        assert a.ledger.count() == 1
        assert a.asset.book.counts() in ({"paid": 1}, {"ledgered": 1})


async def _stopped_midway_then_resumed(tmp_path: Path, stop_after: float) -> None:
    """Postpaid uses stream in; the asset agent is stopped mid-way (charges and shares in flight)
    and a new one resumes from its ledger file: every use is charged once, every share paid once."""
    uses = 40
    async with running_asset(tmp_path) as a:
        first = a.asset
        with trio.move_on_after(stop_after):
            for n in range(1, uses + 1):
                await first.handle(use(n, ("user-1", "user-2")[n % 2], prepaid=False))
        a.cancel.cancel()  # the first agent's tasks die wherever they were
        await trio.lowlevel.checkpoint()
        async with trio.open_nursery() as nursery:
            second = AssetAgent(a.net.agents["asset"], a.ledger, config())
            await nursery.start(second.run)
            accepted = sum(second.book.counts().values())
            with trio.fail_after(30):
                for n in range(accepted + 1, uses + 1):  # the meter goes on
                    await second.handle(use(n, ("user-1", "user-2")[n % 2], prepaid=False))
                while second.book.counts().get("paid", 0) < uses:  # noqa: ASYNC110
                    await trio.sleep(0.02)
            nursery.cancel_scope.cancel()
        assert a.ledger.count() == uses
        entries = list(a.ledger.entries())
        verify_chain(entries, ASSET_ID, a.asset.address, REGISTRY_DOMAIN, splits={1: split()})
        assert len({e.decode_use_body().event_id for e in entries}) == uses
        shares = split_fee(TARIFF.price, split())
        for beneficiary in BENEFICIARIES:
            store = a.net.agents[beneficiary].service.store
            owed = uses * shares[split().beneficiaries.index(address_of(beneficiary))]
            with trio.fail_after(5):
                while received_by(store, a.asset.address) < owed:  # noqa: ASYNC110
                    await trio.sleep(0.01)
            assert received_by(store, a.asset.address) == owed  # nothing skipped, nothing twice
        paid_by_users = sum(
            received_by(a.net.agents["asset"].service.store, address_of(u)) for u in USERS
        )
        assert paid_by_users == uses * TARIFF.price  # each use charged exactly once


async def test_a_stopped_agent_resumes_without_double_charge_or_skipped_share(
    tmp_path: Path,
) -> None:
    await _stopped_midway_then_resumed(tmp_path, stop_after=0.15)


async def test_a_prepaid_use_the_user_refuses_is_not_started_and_not_ledgered(
    tmp_path: Path,
) -> None:
    refusing = [False]

    def policy(payee: Address, amount: int, payment_id: int) -> bool:
        return not refusing[0]

    async with running_asset(tmp_path, accept_charge=policy) as a:
        with trio.fail_after(10):
            assert (await a.asset.handle(use(1))).status == "charged"
            refusing[0] = True
            refused = await a.asset.handle(use(2, "user-2"))
        assert refused.status == "refused" and "refused by the payer" in refused.reason
        assert a.ledger.count() == 1
        with trio.fail_after(10):
            again = await a.asset.handle(use(2, "user-2"))  # the meter retries the same event
        assert again.status == "refused" and a.ledger.count() == 1


async def test_a_new_split_version_applies_to_later_uses_and_is_recorded(tmp_path: Path) -> None:
    new_ppm = {"manufacturer": 500_000, "maintenance": 300_000, "detergent": 100_000,
               "financier": 100_000}  # fmt: skip
    async with running_asset(tmp_path) as a:
        with trio.fail_after(10):
            await a.asset.handle(use(1))
            a.asset.set_split(split(2, new_ppm))
            await a.asset.handle(use(2))
        entries = list(a.ledger.entries())
        assert [e.decode_use_body().split_version for e in entries] == [1, 2]
        splits = {1: split(), 2: split(2, new_ppm)}
        verify_chain(entries, ASSET_ID, a.asset.address, REGISTRY_DOMAIN, splits=splits)
        with pytest.raises(LedgerError, match="split"):  # the old split does not explain entry 2
            verify_chain(
                entries, ASSET_ID, a.asset.address, REGISTRY_DOMAIN, splits={1: split(), 2: split()}
            )


async def test_a_contract_beneficiarys_share_is_kept_for_settlement_not_routed(
    tmp_path: Path,
) -> None:
    pool = address_of("financier")  # stands for a financing pool contract
    async with running_asset(tmp_path, kept=frozenset({pool})) as a:
        with trio.fail_after(10):
            assert (await a.asset.handle(use(1))).status == "charged"
            while a.asset.book.counts().get("paid", 0) < 1:  # noqa: ASYNC110
                await trio.sleep(0.01)
        shares = {s.beneficiary: s for s in next(a.ledger.entries()).decode_use_body().shares}
        assert shares[pool].amount > 0 and shares[pool].payment_id == 0
        assert all(s.payment_id for b, s in shares.items() if b != pool)
        assert received_by(a.net.agents["financier"].service.store, a.asset.address) == 0


async def test_a_pool_added_by_a_new_split_version_is_kept_from_then_on(tmp_path: Path) -> None:
    """A split change that puts a contract (a financing pool) in the split while the agent runs:
    the agent keeps its shares from that version on, never routing them to a contract."""
    pool = address_of("financier")  # stands for the new pool contract
    ppm = {"manufacturer": 450_000, "maintenance": 200_000, "detergent": 150_000,
           "financier": 200_000}  # fmt: skip
    async with running_asset(tmp_path) as a:
        with trio.fail_after(10):
            await a.asset.handle(use(1))
            with pytest.raises(ValueError, match="not in the new split"):
                a.asset.set_split(split(2, ppm), kept={address_of("user-1")})
            assert a.asset.split.version == 1  # a refused change changes nothing
            a.asset.set_split(split(2, ppm), kept={pool})
            await a.asset.handle(use(2))
            while a.asset.book.counts().get("paid", 0) < 2:  # noqa: ASYNC110
                await trio.sleep(0.01)
        first, second = (e.decode_use_body() for e in a.ledger.entries())
        routed = {s.beneficiary: s.payment_id for s in first.shares}
        kept = {s.beneficiary: s.payment_id for s in second.shares}
        assert routed[pool] != 0 and kept[pool] == 0  # routed before the change, kept after
        assert all(payment_id for b, payment_id in kept.items() if b != pool)

"""The settlement planner: which withdraws and re-deposits one batch makes, from the hub's view."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st
from msgspec.structs import replace

from channels.core.channel import get_capacity, get_earnings, new_channel_state
from channels.core.state import ChannelState, ChannelStatus, PendingWithdraw
from channels.core.types import Address, BlockNumber, ChannelId, TokenAmount
from settlement.planner import SettlementPolicy, owed, plan_settlement, settlement_due

HUB = Address(b"\x01" * 20)
POLICY = SettlementPolicy(
    period_s=86_400, amount_trigger=5_000_000, min_withdraw=1_000, liquidity_target=2_000_000,
    expiry_blocks=50,
)  # fmt: skip


def channel(
    n: int, *, hub_deposit: int, partner_deposit: int, paid_to_hub: int = 0,
    paid_by_hub: int = 0, hub_withdrawn: int = 0,
) -> ChannelState:  # fmt: skip
    """Channel n: the partner paid the hub `paid_to_hub`, the hub paid it `paid_by_hub`."""
    state = new_channel_state(
        ChannelId(n), HUB, Address(bytes([n + 1]) * 20), 20,
        TokenAmount(hub_deposit), TokenAmount(partner_deposit),
    )  # fmt: skip
    ours = replace(state.our.balance_proof, transferred=TokenAmount(paid_by_hub))
    theirs = replace(state.partner.balance_proof, transferred=TokenAmount(paid_to_hub))
    return replace(
        state,
        our=replace(state.our, balance_proof=ours, withdrawn=TokenAmount(hub_withdrawn)),
        partner=replace(state.partner, balance_proof=theirs),
    )


def test_a_beneficiary_withdraws_what_it_received_and_the_hub_keeps_its_target() -> None:
    machine = channel(1, hub_deposit=10_000_000, partner_deposit=0, paid_by_hub=7_000_000)
    user = channel(2, hub_deposit=0, partner_deposit=20_000_000, paid_to_hub=9_000_000)
    plan = plan_settlement([machine, user], HUB, POLICY, block_number=100)
    by_party = {(w.channel_id, w.participant): w for w in plan.withdraws}
    assert by_party[(1, machine.partner.address)].amount == 7_000_000  # the machine's income
    assert (2, user.partner.address) not in by_party  # the user's prepaid part stays for its uses
    assert by_party[(2, HUB)].amount == 9_000_000 - 2_000_000  # hub's surplus above its target
    assert by_party[(1, HUB)].amount == 1_000_000  # hub has 3,000,000 there: 1,000,000 above target
    assert plan.owed_to_counterparties == 7_000_000
    assert all(w.expiry == 150 for w in plan.withdraws)


def test_the_hub_tops_up_the_channels_it_is_short_in_lowest_first_within_its_funds() -> None:
    low = channel(1, hub_deposit=1_000_000, partner_deposit=0, paid_by_hub=900_000)  # 100,000
    lower = channel(2, hub_deposit=500_000, partner_deposit=0, paid_by_hub=500_000)  # 0
    user = channel(3, hub_deposit=0, partner_deposit=5_000_000, paid_to_hub=4_000_000)
    plan = plan_settlement([low, lower, user], HUB, POLICY, block_number=1)
    assert [(r.channel_id, r.amount) for r in plan.redeposits] == [(2, 2_000_000)]
    # funds: the hub's surplus of 2,000,000 in channel 3 went to the lowest channel first
    plan = plan_settlement([low, lower, user], HUB, POLICY, block_number=1,
                           hub_internal_balance=1_000_000)  # fmt: skip
    assert [(r.channel_id, r.amount) for r in plan.redeposits] == [(2, 2_000_000), (1, 1_000_000)]
    assert plan.redeposits[1].total_deposit == 2_000_000


def test_channels_not_open_or_with_a_pending_withdraw_and_dust_are_left_alone() -> None:
    closed = replace(
        channel(1, hub_deposit=0, partner_deposit=5_000_000), status=ChannelStatus.CLOSED
    )
    pending = channel(2, hub_deposit=0, partner_deposit=5_000_000)
    pending = replace(pending, partner=replace(
        pending.partner, pending_withdraw=PendingWithdraw(TokenAmount(1), BlockNumber(9))))  # fmt: skip
    dust = channel(3, hub_deposit=2_000_000, partner_deposit=0, paid_by_hub=999)
    plan = plan_settlement([closed, pending, dust], HUB, POLICY, block_number=1)
    assert plan.empty and owed([closed, pending, dust], POLICY) == 0


def test_a_partners_view_is_refused() -> None:
    other = channel(1, hub_deposit=0, partner_deposit=1)
    flipped = replace(other, our=other.partner, partner=other.our)
    with pytest.raises(ValueError, match="not the hub's view"):
        plan_settlement([flipped], HUB, POLICY, block_number=1)


def test_settlement_is_due_by_time_or_by_amount() -> None:
    assert not settlement_due(POLICY, last_settled_at=0, now=3_600, owed_to_counterparties=10)
    assert settlement_due(POLICY, last_settled_at=0, now=86_400, owed_to_counterparties=0)
    assert settlement_due(POLICY, last_settled_at=0, now=1, owed_to_counterparties=5_000_000)
    with pytest.raises(ValueError):
        SettlementPolicy(period_s=0, amount_trigger=0, min_withdraw=0, liquidity_target=0,
                         expiry_blocks=1)  # fmt: skip


positions = st.tuples(
    st.integers(0, 10_000_000), st.integers(0, 10_000_000), st.integers(0, 100), st.integers(0, 100)
)


@given(st.lists(positions, min_size=1, max_size=12), st.integers(0, 5_000_000))
def test_no_plan_takes_more_than_a_party_has_or_deposits_more_than_the_hub_has(
    rows: list[tuple[int, int, int, int]], internal: int
) -> None:
    channels = []
    for n, (hub_deposit, partner_deposit, to_hub, by_hub) in enumerate(rows, start=1):
        paid_to_hub = partner_deposit * to_hub // 100
        paid_by_hub = hub_deposit * by_hub // 100
        channels.append(channel(n, hub_deposit=hub_deposit, partner_deposit=partner_deposit,
                                paid_to_hub=paid_to_hub, paid_by_hub=paid_by_hub))  # fmt: skip
    plan = plan_settlement(channels, HUB, POLICY, block_number=7, hub_internal_balance=internal)
    by_id = {c.channel_id: c for c in channels}
    hub_out = 0
    for item in plan.withdraws:
        c = by_id[item.channel_id]
        end, other = (c.our, c.partner) if item.participant == HUB else (c.partner, c.our)
        assert 0 < item.amount <= get_capacity(end, other)
        if item.participant != HUB:
            assert item.amount <= get_earnings(end, other)  # never the partner's own deposit
        assert item.total_withdraw == end.withdrawn + item.amount
        hub_out += item.amount if item.participant == HUB else 0
    assert sum(r.amount for r in plan.redeposits) <= hub_out + internal
    assert len({r.channel_id for r in plan.redeposits}) == len(plan.redeposits)
    for r in plan.redeposits:
        c = by_id[r.channel_id]
        assert get_capacity(c.our, c.partner) + r.amount <= POLICY.liquidity_target


def test_without_liquidity_management_only_counterparties_settle() -> None:
    machine = channel(1, hub_deposit=10_000_000, partner_deposit=0, paid_by_hub=7_000_000)
    user = channel(2, hub_deposit=0, partner_deposit=20_000_000, paid_to_hub=9_000_000)
    short = channel(3, hub_deposit=100, partner_deposit=0)
    hands_off = dataclasses.replace(POLICY, manage_liquidity=False)
    plan = plan_settlement([machine, user, short], HUB, hands_off, block_number=100,
                           hub_internal_balance=50_000_000)  # fmt: skip
    assert [(w.channel_id, w.participant) for w in plan.withdraws] == [
        (1, machine.partner.address)]  # fmt: skip
    assert plan.redeposits == ()

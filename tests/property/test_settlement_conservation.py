"""Periodic batch settlement conserves tokens to the unit (issue 5), end to end on the real chain.

Over random networks (a hub with 2-4 counterparties, random deposits, internal balances and spare
wallet tokens), random payment histories in both directions (direct transfers through the real
core, signatures and wire encoding) interleaved with random settlement points under random
policies (`min_withdraw`, `liquidity_target`, expiry) and random caps on what the hub may spend
from its internal balance, each batch planned by `settlement.planner`, encoded by
`settlement.batch`, countersigned, signed once by the hub and applied by
`ChannelManager.settleHubBatch` on py-evm, with the chain's withdraw and deposit events fed back to
both views of each channel, this proves:

1. after set-up and after every batch, the tokens the channel manager holds are exactly the sum of
   every internal balance plus, for every channel, deposit1 + deposit2 - withdrawn1 - withdrawn2 as
   `getChannel` reads them; every view's deposits and withdrawals are the chain's, and both views
   of a channel agree on each party's balance;
2. after every batch, every party's internal balance plus its balance in each of its channels
   (deposit - withdrawn + received - sent) is what it started with plus its net payments, and its
   wallet is untouched: nothing created, nothing lost;
3. at the end, once every channel is closed (cooperatively through the core, or by close, update
   and settle with the latest balance proofs) and every internal balance withdrawn, each wallet
   holds what was minted to it plus its net payments, and the wallets together hold every token
   minted.

Focused examples check that a replayed batch, a batch with an item above its channel's total and
a batch re-depositing more than the hub has all revert with the contract's error and change
nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import Phase, event, given, settings
from hypothesis import strategies as st
from settlement_support import ChannelSpec, HubNetwork, NetworkSpec, Party

from channels.chain.client import ChannelInfo
from channels.chain.errors import ChainError
from channels.core.channel import get_balance
from channels.core.state import ChannelState, EndState
from channels.core.types import Address
from settlement.batch import DepositItem, WithdrawItem
from settlement.planner import SettlementPolicy


@dataclass(frozen=True)
class Pay:
    """A payment in the hub's channel with counterparty `channel` (mod their number), of `amount`
    capped at the payer's capacity (skipped when it has none)."""

    channel: int
    hub_pays: bool
    amount: int


@dataclass(frozen=True)
class Settle:
    """A settlement point: one batch under this policy (none when the plan is empty)."""

    min_withdraw: int
    liquidity_target: int
    expiry_blocks: int
    hub_budget: int  # the most of its internal balance the hub lets the planner re-deposit

    @property
    def policy(self) -> SettlementPolicy:
        return SettlementPolicy(
            period_s=3600,
            amount_trigger=0,
            min_withdraw=self.min_withdraw,
            liquidity_target=self.liquidity_target,
            expiry_blocks=self.expiry_blocks,
        )


AMOUNT = st.integers(0, 10_000)

networks = st.builds(
    NetworkSpec,
    hub_internal=AMOUNT,
    hub_spare=st.integers(0, 1_000),
    channels=st.lists(
        st.builds(
            ChannelSpec,
            hub_deposit=AMOUNT,
            deposit=AMOUNT,
            internal=st.integers(0, 2_000),
            spare=st.integers(0, 1_000),
        ),
        min_size=2,
        max_size=4,
    ).map(tuple),
)
periods = st.lists(
    st.tuples(
        st.lists(
            st.builds(Pay, st.integers(0, 3), st.booleans(), st.integers(1, 10_000)), max_size=6
        ),
        st.builds(
            Settle, st.integers(0, 5_000), AMOUNT, st.integers(1, 30), st.integers(0, 20_000)
        ),
    ),
    min_size=2,
    max_size=5,
)  # each period: its payments, then a settlement point
closes = st.lists(st.sampled_from(["cooperative", "hub", "counterparty"]), min_size=4, max_size=4)


# --------------------------------------------------------------------------- the invariants


def started_with(spec: NetworkSpec) -> dict[int, tuple[int, int]]:
    """Per party (0 = the hub, i = counterparty i): (wallet, internal + channel deposits) after
    set-up, before any payment."""
    hub_in = spec.hub_internal + sum(c.hub_deposit for c in spec.channels)
    start = {0: (spec.hub_spare, hub_in)}
    for i, c in enumerate(spec.channels, 1):
        start[i] = (c.spare, c.internal + c.deposit)
    return start


def assert_views_match_chain(net: HubNetwork, chain: dict[Address, ChannelInfo]) -> None:
    """Every view's deposits and withdrawals are the chain's (`chain`: `getChannel` of each
    counterparty's channel); both views hold the same proofs and agree on the balances."""
    for cp in net.counterparties:
        info = chain[cp.address]
        on_chain = {
            min(net.hub.address, cp.address): (info.deposit1, info.withdrawn1),
            max(net.hub.address, cp.address): (info.deposit2, info.withdrawn2),
        }
        for who in (net.hub, cp):
            view: ChannelState = net.view(who, cp)
            for end in (view.our, view.partner):
                assert (end.deposit, end.withdrawn) == on_chain[end.address], (
                    f"channel {view.channel_id}: 0x{who.address.hex()}'s view of 0x"
                    f"{end.address.hex()} is {(end.deposit, end.withdrawn)}, the chain says "
                    f"{on_chain[end.address]}"
                )
        hub_side, cp_side = net.view(net.hub, cp), net.view(cp, cp)
        for mine, theirs in ((hub_side.our, cp_side.partner), (hub_side.partner, cp_side.our)):
            assert _proof(mine) == _proof(theirs)  # the same proof, whoever holds it
        assert get_balance(hub_side.partner, hub_side.our) == net.channel_balance(cp, cp)
        assert net.channel_balance(net.hub, cp) + net.channel_balance(cp, cp) == info.total


def _proof(end: EndState) -> tuple[int, int, int, bytes]:
    proof = end.balance_proof
    return proof.nonce, proof.transferred, proof.locked, proof.locks_root


def assert_conserved(net: HubNetwork, start: dict[int, tuple[int, int]]) -> None:
    """Invariants 1 and 2 (see the module docstring), from one reading of the chain."""
    client = net.admin
    chain = {cp.address: net.chain_channel(cp) for cp in net.counterparties}
    internal = net.internal_balances()
    held = client.token_balance(net.deployment.manager)
    channels_hold = sum(info.total for info in chain.values())
    assert held == sum(internal.values()) + channels_hold, (
        f"the manager holds {held}, internal balances {internal} + channels {channels_hold}"
    )
    assert_views_match_chain(net, chain)
    for i, p in enumerate(net.parties):
        wallet, position = start[i]
        assert client.token_balance(p.address) == wallet
        in_channels = sum(net.channel_balance(p, cp) for cp in channels_of(net, p))
        now = internal[p.address] + in_channels
        assert now == position + p.net_paid_in, (
            f"party {i}: internal + channels = {now}, started with {position}, "
            f"net payments {p.net_paid_in}"
        )


def channels_of(net: HubNetwork, p: Party) -> list[Party]:
    """The counterparties whose channel with the hub `p` is in."""
    return net.counterparties if p is net.hub else [p]


# --------------------------------------------------------------------------- the property


# No shrinking: an example runs 1-3 s on the chain and shrinking a failure runs hundreds of them,
# past the suite's 300 s timeout. The falsifying example is printed whole (and saved to replay).
@settings(
    max_examples=12,
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
)
@given(networks, periods, closes)
def test_batch_settlement_conserves_every_unit(
    spec: NetworkSpec, history: list[tuple[list[Pay], Settle]], close_modes: list[str]
) -> None:
    net = HubNetwork.create(spec)
    start = started_with(spec)
    minted = sum(p.minted for p in net.parties)
    assert net.admin.token_total_supply() == minted
    assert_conserved(net, start)
    for payments, settlement in history:
        for pay in payments:
            cp = net.counterparties[pay.channel % len(net.counterparties)]
            payer, payee = (net.hub, cp) if pay.hub_pays else (cp, net.hub)
            amount = min(pay.amount, net.capacity(payer, cp))
            if amount:
                net.pay(payer, payee, amount)
        plan = net.settle(settlement.policy, settlement.hub_budget)
        if not plan.empty:
            assert_conserved(net, start)
            hub_withdraws = sum(w.participant == net.hub.address for w in plan.withdraws)
            event("a batch: the hub withdraws surplus" if hub_withdraws else "a batch: no surplus")
            event("a batch: re-deposits" if plan.redeposits else "a batch: no re-deposit")
            theirs = len(plan.withdraws) - hub_withdraws
            event("a batch: counterparties withdraw" if theirs else "a batch: none of theirs")
    event(f"batches in the example: {net.batches}")
    assert sum(p.net_paid_in for p in net.parties) == 0
    net.close_all(close_modes[: len(net.counterparties)])
    net.withdraw_everything()
    client = net.admin
    for p in net.parties:
        assert client.balance_of(p.address) == 0
        assert client.token_balance(p.address) == p.minted + p.net_paid_in
    assert sum(client.token_balance(p.address) for p in net.parties) == minted
    assert client.token_balance(net.deployment.manager) == 0
    for cp in net.counterparties:
        assert net.chain_channel(cp).total == 0


# --------------------------------------------------------------------------- bad batches

FIXED = NetworkSpec(
    hub_internal=3_000,
    hub_spare=0,
    channels=(
        ChannelSpec(hub_deposit=4_000, deposit=2_000, internal=0, spare=0),
        ChannelSpec(hub_deposit=1_000, deposit=5_000, internal=100, spare=0),
        ChannelSpec(hub_deposit=2_000, deposit=2_000, internal=0, spare=0),
    ),
)
EVERYTHING = SettlementPolicy(
    period_s=3600, amount_trigger=0, min_withdraw=0, liquidity_target=0, expiry_blocks=20
)


@pytest.fixture
def paid() -> HubNetwork:
    """FIXED after the hub paid counterparty 0 and counterparty 1 paid the hub."""
    net = HubNetwork.create(FIXED)
    a, b, _ = net.counterparties
    net.pay(net.hub, a, 1_500)
    net.pay(b, net.hub, 3_000)
    return net


def assert_reverts_unchanged(
    net: HubNetwork, call: tuple[int, bytes, bytes, bytes], error: str, *args: object
) -> None:
    """The batch is mined and reverts with `error(args)`; the chain's money and every view are
    exactly as before, and the chain emitted nothing for the nodes."""
    before, views = net.snapshot(), dict(net.nodes)
    with pytest.raises(ChainError) as info:
        net.send_batch(call)
    assert info.value.name == error, info.value
    if args:
        assert info.value.error_args == args
    assert info.value.transaction_hash is not None  # mined: a failed transaction, not an estimate
    net.sync()
    assert net.snapshot() == before
    assert {a: n.channels for a, n in net.nodes.items()} == {
        a: n.channels for a, n in views.items()
    }


def test_replayed_batch_reverts_and_changes_nothing(paid: HubNetwork) -> None:
    net = paid
    plan = net.plan(EVERYTHING, hub_budget=0)
    items, deposits = net.batch_items(plan)
    assert items and not deposits
    call = net.hub_batch_call(items, deposits, plan.withdraws[0].expiry)
    before = net.snapshot()
    net.send_batch(call)
    net.sync()
    assert net.snapshot() != before  # the first time, it applied
    first = items[0]
    assert_reverts_unchanged(
        net, call, "ChannelManagerWithdrawNotIncreasing", first.total_withdraw, first.total_withdraw
    )


def test_item_above_channel_total_reverts_and_changes_nothing(paid: HubNetwork) -> None:
    net = paid
    a, b, _ = net.counterparties
    total = net.chain_channel(b).total  # nothing withdrawn yet: the whole channel
    expiry = net.connection.block_number() + 10
    ok = WithdrawItem(net.channel_id(a), a.address, net.hub.address, 1_500)
    too_much = WithdrawItem(net.channel_id(b), b.address, net.hub.address, total + 1)
    items = [ok, too_much]
    signatures = [
        p.signer.sign_digest(item.digest(net.domain, expiry))
        for p, item in zip((a, b), items, strict=True)
    ]
    call = net.hub_batch_call(items, [], expiry, signatures)
    assert_reverts_unchanged(net, call, "ChannelManagerWithdrawExceedsChannel", total + 1, total)


def test_redeposit_above_hub_funds_reverts_and_changes_nothing(paid: HubNetwork) -> None:
    net = paid
    _, _, c = net.counterparties
    plan = net.plan(EVERYTHING, hub_budget=0)
    items, _ = net.batch_items(plan)
    hub_gets = sum(i.total_withdraw for i in items if i.participant == net.hub.address)
    funds = net.hub.client.balance_of(net.hub.address) + hub_gets
    hub_deposit = net.view(net.hub, c).our.deposit
    deposits = [DepositItem(net.channel_id(c), c.address, hub_deposit + funds + 1)]
    call = net.hub_batch_call(items, deposits, plan.withdraws[0].expiry)
    assert_reverts_unchanged(
        net, call, "ChannelManagerInsufficientBalance", net.hub.address, funds, funds + 1
    )

"""ChannelManager.settleBatch / settleHubBatch: many co-signed Withdraws and re-deposits in one tx.

Packing and hashing come from settlement.batch (the same code the settlement service uses).
"""

from __future__ import annotations

import random

import pytest
from cm_support import Actor, Chain, high_s, raw, sign

from settlement.batch import (
    BATCH_ITEM_SIZE,
    HUB_BATCH_ITEM_SIZE,
    DepositItem,
    WithdrawItem,
    batch_digest,
    pack_deposits,
    pack_hub_withdraws,
    pack_withdraws,
)

DEPOSIT = 10_000


def item(channel_id: int, participant: Actor, partner: Actor, total: int) -> WithdrawItem:
    return WithdrawItem(channel_id, raw(participant.address), raw(partner.address), total)


def cosigned(chain: Chain, actors: dict[bytes, Actor], items, expiry, deposits=()):
    sigs = [
        tuple(
            sign(actors[who].key, it.digest(chain.domain, expiry))
            for who in (it.participant, it.partner)
        )
        for it in items
    ]
    return chain.cm.functions.settleBatch(
        expiry, pack_withdraws(items, sigs), pack_deposits(list(deposits))
    )


def hub_batch(chain, hub: Actor, actors, items, expiry, deposits=(), hub_key=None, sigs=None):
    h = raw(hub.address)
    sigs = sigs or [
        sign(actors[it.partner if it.participant == h else it.participant].key,
             it.digest(chain.domain, expiry))
        for it in items
    ]  # fmt: skip
    hub_sig = sign(hub_key or hub.key, batch_digest(chain.domain, items, expiry))
    return chain.cm.functions.settleHubBatch(
        hub.address, expiry, hub_sig, pack_hub_withdraws(h, items, sigs),
        pack_deposits(list(deposits)),
    )  # fmt: skip


@pytest.fixture
def net(chain: Chain):
    """A hub (actor 0) with a channel to actors 1..4, both sides deposited DEPOSIT."""
    hub, others = chain.actors[0], chain.actors[1:5]
    chain.tx(chain.cm.functions.depositToBalance(5 * DEPOSIT), hub)
    ids = {}
    for other in others:
        channel_id = chain.open(hub, other, DEPOSIT)
        chain.tx(chain.cm.functions.setTotalDeposit(channel_id, hub.address, DEPOSIT), other)
        ids[other.address] = channel_id
    actors = {raw(a.address): a for a in chain.actors}
    return hub, others, ids, actors


def withdrawn_of(chain, channel_id, a: Actor, b: Actor) -> int:
    state = chain.channel(channel_id, a, b)
    return state["withdrawn1"] if int(a.address, 16) < int(b.address, 16) else state["withdrawn2"]


@pytest.mark.parametrize("scheme", ["hub", "cosigned"])
def test_batch_applies_every_item_and_redeposit(chain, net, scheme):
    hub, others, ids, actors = net
    a, b, c, _ = others
    items = [
        item(ids[a.address], a, hub, 1_500),
        item(ids[b.address], b, hub, 2_000),
        item(ids[c.address], hub, c, 3_000),
        item(ids[a.address], hub, a, 700),
    ]
    # The hub re-deposits into b's channel (from its balance, which the batch credits first).
    deposits = [DepositItem(ids[b.address], raw(b.address), DEPOSIT + 4_000)]
    expiry = chain.block + 5
    before = {x.address: chain.internal(x) for x in (hub, a, b, c)}
    fn = (
        hub_batch(chain, hub, actors, items, expiry, deposits)
        if scheme == "hub"
        else cosigned(chain, actors, items, expiry, deposits)
    )
    receipt = chain.tx(fn, hub)
    assert chain.events(receipt, "ChannelWithdrawn") == [
        {"channelId": it.channel_id, "participant": actors[it.participant].address,
         "totalWithdraw": it.total_withdraw}
        for it in items
    ]  # fmt: skip
    assert chain.events(receipt, "ChannelDeposited") == [
        {"channelId": ids[b.address], "participant": hub.address, "totalDeposit": DEPOSIT + 4_000}
    ]
    assert chain.internal(a) == before[a.address] + 1_500
    assert chain.internal(b) == before[b.address] + 2_000
    assert chain.internal(c) == before[c.address]  # the hub withdrew from c's channel
    assert chain.internal(hub) == before[hub.address] + 3_700 - 4_000
    assert withdrawn_of(chain, ids[a.address], a, hub) == 1_500
    assert withdrawn_of(chain, ids[a.address], hub, a) == 700
    assert withdrawn_of(chain, ids[c.address], hub, c) == 3_000
    assert chain.channel(ids[b.address], hub, b)["state"] == 1


def test_hub_batch_of_one_item_equals_withdraw(chain, net):
    hub, others, ids, actors = net
    a = others[0]
    chain.tx(hub_batch(chain, hub, actors, [item(ids[a.address], a, hub, 10)], chain.block + 5), a)
    assert withdrawn_of(chain, ids[a.address], a, hub) == 10


def test_deposits_only_batch(chain, net):
    hub, others, ids, _ = net
    b = others[1]
    fn = chain.cm.functions.settleBatch(
        chain.block + 5,
        b"",
        pack_deposits([DepositItem(ids[b.address], raw(b.address), DEPOSIT + 1)]),
    )
    chain.tx(fn, hub)
    assert (
        chain.channel(ids[b.address], hub, b)[
            "deposit1" if int(hub.address, 16) < int(b.address, 16) else "deposit2"
        ]
        == DEPOSIT + 1
    )


@pytest.mark.parametrize("scheme", ["hub", "cosigned"])
def test_replay_in_second_batch_rejected(chain, net, scheme):
    hub, others, ids, actors = net
    a, b = others[:2]
    items = [item(ids[a.address], a, hub, 100), item(ids[b.address], b, hub, 200)]
    expiry = chain.block + 10
    make = (
        (lambda its: hub_batch(chain, hub, actors, its, expiry))
        if scheme == "hub"
        else (lambda its: cosigned(chain, actors, its, expiry))
    )
    chain.tx(make(items), hub)
    # The same batch again, and a new batch that repeats one old item among new ones.
    chain.assert_reverts(make(items), hub, "ChannelManagerWithdrawNotIncreasing", 100, 100)
    again = [item(ids[b.address], b, hub, 300), item(ids[a.address], a, hub, 100)]
    chain.assert_reverts(make(again), hub, "ChannelManagerWithdrawNotIncreasing", 100, 100)


@pytest.mark.parametrize("scheme", ["hub", "cosigned"])
def test_expired_rejected(chain, net, scheme):
    hub, others, ids, actors = net
    a = others[0]
    items = [item(ids[a.address], a, hub, 100)]
    expiry = chain.block  # the tx is mined in block + 1
    fn = (
        hub_batch(chain, hub, actors, items, expiry)
        if scheme == "hub"
        else cosigned(chain, actors, items, expiry)
    )
    chain.assert_reverts(fn, hub, "ChannelManagerWithdrawExpired", expiry)


@pytest.mark.parametrize("scheme", ["hub", "cosigned"])
def test_above_channel_balance_rejected(chain, net, scheme):
    hub, others, ids, actors = net
    a, b = others[:2]
    items = [item(ids[a.address], a, hub, 50), item(ids[b.address], b, hub, 2 * DEPOSIT + 1)]
    expiry = chain.block + 5
    fn = (
        hub_batch(chain, hub, actors, items, expiry)
        if scheme == "hub"
        else cosigned(chain, actors, items, expiry)
    )
    chain.assert_reverts(
        fn, hub, "ChannelManagerWithdrawExceedsChannel", 2 * DEPOSIT + 1, 2 * DEPOSIT
    )


def test_cosigned_one_party_only_rejected(chain, net):
    hub, others, ids, _actors = net
    a = others[0]
    it = item(ids[a.address], a, hub, 100)
    expiry = chain.block + 5
    digest = it.digest(chain.domain, expiry)
    own = sign(a.key, digest)
    withdraws = pack_withdraws([it], [(own, own)])  # the participant signed twice, the hub never
    fn = chain.cm.functions.settleBatch(expiry, withdraws, b"")
    chain.assert_reverts(fn, hub, "ChannelManagerWrongSigner", hub.address, a.address)


def test_hub_batch_counterparty_signature_missing_rejected(chain, net):
    hub, others, ids, actors = net
    a = others[0]
    items = [item(ids[a.address], hub, a, 100)]
    expiry = chain.block + 5
    hub_signed = [sign(hub.key, items[0].digest(chain.domain, expiry))]  # the hub signed a's part
    fn = hub_batch(chain, hub, actors, items, expiry, sigs=hub_signed)
    chain.assert_reverts(fn, hub, "ChannelManagerWrongSigner", a.address, hub.address)


def test_hub_batch_wrong_batch_signature_rejected(chain, net):
    hub, others, ids, actors = net
    a, b = others[:2]
    items = [item(ids[a.address], a, hub, 100), item(ids[b.address], b, hub, 100)]
    fn = hub_batch(chain, hub, actors, items, chain.block + 5, hub_key=a.key)
    chain.assert_reverts(fn, hub, "ChannelManagerWrongBatchSigner", hub.address, a.address)


def test_hub_batch_signature_covers_every_item(chain, net):
    """The hub's signature of a batch does not cover the same batch with an item left out."""
    hub, others, ids, _actors = net
    a, b = others[:2]
    items = [item(ids[a.address], a, hub, 100), item(ids[b.address], b, hub, 100)]
    expiry = chain.block + 5
    h = raw(hub.address)
    hub_sig = sign(hub.key, batch_digest(chain.domain, items, expiry))
    sig_a = sign(a.key, items[0].digest(chain.domain, expiry))
    fn = chain.cm.functions.settleHubBatch(
        hub.address, expiry, hub_sig, pack_hub_withdraws(h, items[:1], [sig_a]), b""
    )
    from cm_support import recover

    recovered = recover(batch_digest(chain.domain, items[:1], expiry), hub_sig)
    chain.assert_reverts(fn, hub, "ChannelManagerWrongBatchSigner", hub.address, recovered)


def test_high_s_signature_rejected(chain, net):
    hub, others, ids, _actors = net
    a = others[0]
    it = item(ids[a.address], a, hub, 100)
    expiry = chain.block + 5
    digest = it.digest(chain.domain, expiry)
    withdraws = pack_withdraws([it], [(high_s(sign(a.key, digest)), sign(hub.key, digest))])
    fn = chain.cm.functions.settleBatch(expiry, withdraws, b"")
    chain.assert_reverts(fn, hub, "ChannelManagerInvalidSignature")


def test_unknown_or_closed_channel_rejected(chain, net):
    hub, others, ids, actors = net
    a, b = others[:2]
    # a's channel id named with b: no such channel.
    it = WithdrawItem(ids[a.address], raw(b.address), raw(hub.address), 100)
    expiry = chain.block + 5
    fn = cosigned(chain, actors, [it], expiry)
    chain.assert_reverts(
        fn, hub, "ChannelManagerUnknownChannel", ids[a.address], b.address, hub.address
    )
    chain.close(hub, a, ids[a.address])
    fn = cosigned(chain, actors, [item(ids[a.address], a, hub, 100)], expiry)
    chain.assert_reverts(fn, hub, "ChannelManagerChannelNotOpen", ids[a.address])


def test_malformed_and_empty_batches_rejected(chain, net):
    hub, _others, _ids, _actors = net
    expiry = chain.block + 5
    cm = chain.cm.functions
    chain.assert_reverts(
        cm.settleBatch(expiry, b"\1" * 189, b""),
        hub,
        "ChannelManagerMalformedBatch",
        189,
        BATCH_ITEM_SIZE,
    )
    chain.assert_reverts(
        cm.settleBatch(expiry, b"", b"\1" * 41), hub, "ChannelManagerMalformedBatch", 41, 40
    )
    chain.assert_reverts(cm.settleBatch(expiry, b"", b""), hub, "ChannelManagerEmptyBatch")
    chain.assert_reverts(
        cm.settleHubBatch(hub.address, expiry, b"\0" * 65, b"\1" * 107, b""), hub,
        "ChannelManagerMalformedBatch", 107, HUB_BATCH_ITEM_SIZE,
    )  # fmt: skip


def test_redeposit_rules_apply(chain, net):
    hub, others, ids, actors = net
    a, b = others[:2]
    expiry = chain.block + 5
    items = [item(ids[a.address], a, hub, 100)]
    same = [DepositItem(ids[b.address], raw(b.address), DEPOSIT)]
    chain.assert_reverts(
        cosigned(chain, actors, items, expiry, same), hub,
        "ChannelManagerDepositNotIncreasing", DEPOSIT, DEPOSIT,
    )  # fmt: skip
    balance = chain.internal(hub)
    too_much = [DepositItem(ids[b.address], raw(b.address), DEPOSIT + balance + 1)]
    chain.assert_reverts(
        cosigned(chain, actors, items, expiry, too_much), hub,
        "ChannelManagerInsufficientBalance", hub.address, balance, balance + 1,
    )  # fmt: skip


def test_conservation_over_random_settlement_schedules(chain, net):
    """Internal balances + what the channels hold = the tokens the manager holds, to the unit, and
    every participant's position moves exactly by its withdrawals minus its re-deposits."""
    hub, others, ids, actors = net
    rng = random.Random(5)
    pairs = [(hub, o) for o in others]
    everyone = [hub, *others, chain.actors[-1], chain.actors[-2]]

    def ledger() -> int:
        total = sum(chain.internal(x) for x in set(everyone))
        for other in others:
            state = chain.channel(ids[other.address], hub, other)
            total += (
                state["deposit1"] + state["deposit2"] - state["withdrawn1"] - state["withdrawn2"]
            )
        return total

    held = chain.tokens(chain.cm.address)
    assert ledger() == held
    totals: dict[tuple[int, str], int] = {}
    for _period in range(6):
        items = []
        for h, o in rng.sample(pairs, rng.randint(1, len(pairs))):
            channel_id = ids[o.address]
            state = chain.channel(channel_id, h, o)
            available = (
                state["deposit1"] + state["deposit2"] - state["withdrawn1"] - state["withdrawn2"]
            )
            who, partner = (h, o) if rng.random() < 0.5 else (o, h)
            if available == 0:
                continue
            total = totals.get((channel_id, who.address), 0) + rng.randint(1, min(available, 3_000))
            totals[(channel_id, who.address)] = total
            items.append(item(channel_id, who, partner, total))
        if not items:
            continue
        deposits = []
        if rng.random() < 0.7:
            o = rng.choice(others)
            state = chain.channel(ids[o.address], hub, o)
            mine = (
                state["deposit1"]
                if int(hub.address, 16) < int(o.address, 16)
                else state["deposit2"]
            )
            deposits.append(DepositItem(ids[o.address], raw(o.address), mine + rng.randint(1, 500)))
        expiry = chain.block + 5
        fn = (
            hub_batch(chain, hub, actors, items, expiry, deposits)
            if rng.random() < 0.5
            else cosigned(chain, actors, items, expiry, deposits)
        )
        chain.tx(fn, hub)
        assert chain.tokens(chain.cm.address) == held  # no ERC20 moved
        assert ledger() == held


def test_bench_settlement_prints_one_json_object(capsys: pytest.CaptureFixture[str]) -> None:
    """`cise bench settlement --json` (issue 5's figures; the ceilings are the targets)."""
    import json

    from cise.main import main

    assert main(["bench", "settlement", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    for key in ("gas_per_channel_1", "gas_per_channel_10", "gas_per_channel_100"):
        assert isinstance(result[key], int)
    assert (
        result["gas_per_channel_1"] > result["gas_per_channel_10"] > result["gas_per_channel_100"]
    )
    assert result["gas_per_channel_100"] <= 20_000  # 19,505 (2026-11-26-withdraw-headroom.md)
    assert result["gas_per_channel_100_hub"] <= 15_000  # 14,359
    assert result["targets_met"]
    assert result["gas_per_payment"] <= 50

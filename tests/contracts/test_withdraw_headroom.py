"""The withdrawn slot's headroom (docs/decisions/2026-11-26-withdraw-headroom.md).

A batch withdraw within the channel's headroom is checked and applied on the withdrawn slot alone, so
the headroom must never let through what the full checks would refuse: it stays a lower bound of
`D1 + D2 - W1 - W2`, it is zero unless the channel is open, and past it the full checks run (with the
same errors and arguments as `withdraw`). These tests read the slot raw to check that invariant.
"""

from __future__ import annotations

import random
from collections import Counter

import pytest
from cm_support import UINT96_MAX, Actor, Chain, raw, sign
from eth_abi import encode
from eth_utils import keccak

from settlement.batch import (
    DepositItem,
    WithdrawItem,
    batch_digest,
    pack_deposits,
    pack_hub_withdraws,
    pack_withdraws,
)

# `_withdrawn`'s slot in ChannelManager's storage layout (solc storageLayout: after the two EIP712
# fallback strings, settleTimeout, channelCount, _balances and _channels).
WITHDRAWN_MAPPING_SLOT = 6
M96 = 2**96 - 1
H64 = 2**64 - 1
DEPOSIT = 10_000


def ordered(a: Actor, b: Actor) -> tuple[Actor, Actor]:
    return (a, b) if int(a.address, 16) < int(b.address, 16) else (b, a)


def withdrawn_slot(chain: Chain, channel_id: int, a: Actor, b: Actor) -> tuple[int, int, int]:
    """(withdrawn1, withdrawn2, headroom) read raw from the channel's withdrawn slot."""
    p1, p2 = ordered(a, b)
    key = keccak(encode(["uint256", "address", "address"], [channel_id, p1.address, p2.address]))
    slot = keccak(key + WITHDRAWN_MAPPING_SLOT.to_bytes(32, "big"))
    word = int.from_bytes(chain.w3.eth.get_storage_at(chain.cm.address, slot), "big")
    return word & M96, (word >> 96) & M96, word >> 192


def available(chain: Chain, channel_id: int, a: Actor, b: Actor) -> int:
    s = chain.channel(channel_id, a, b)
    return s["deposit1"] + s["deposit2"] - s["withdrawn1"] - s["withdrawn2"]


def check_invariant(chain: Chain, channel_id: int, a: Actor, b: Actor) -> int:
    """The slot agrees with getChannel; headroom <= available, and 0 unless open. Returns it."""
    w1, w2, headroom = withdrawn_slot(chain, channel_id, a, b)
    state = chain.channel(channel_id, a, b)
    assert (w1, w2) == (state["withdrawn1"], state["withdrawn2"])
    assert headroom <= available(chain, channel_id, a, b)
    if state["state"] != 1:
        assert headroom == 0
    return headroom


def item(channel_id: int, participant: Actor, partner: Actor, total: int) -> WithdrawItem:
    return WithdrawItem(channel_id, raw(participant.address), raw(partner.address), total)


def single(chain: Chain, it: WithdrawItem, who: dict[bytes, Actor], expiry: int):
    participant, partner = who[it.participant], who[it.partner]
    sigs = [
        chain.sign_withdraw(s, it.channel_id, participant, it.total_withdraw, expiry)
        for s in (participant, partner)
    ]
    return chain.cm.functions.withdraw(
        it.channel_id, participant.address, partner.address, it.total_withdraw, expiry, *sigs
    )


def cosigned(chain: Chain, items, who: dict[bytes, Actor], expiry: int, deposits=()):
    sigs = [
        tuple(
            sign(who[x].key, it.digest(chain.domain, expiry)) for x in (it.participant, it.partner)
        )
        for it in items
    ]
    return chain.cm.functions.settleBatch(
        expiry, pack_withdraws(items, sigs), pack_deposits(list(deposits))
    )


def hub_batch(chain: Chain, hub: Actor, items, who: dict[bytes, Actor], expiry: int, deposits=()):
    h = raw(hub.address)
    sigs = [
        sign(who[it.partner if it.participant == h else it.participant].key,
             it.digest(chain.domain, expiry))
        for it in items
    ]  # fmt: skip
    hub_sig = sign(hub.key, batch_digest(chain.domain, items, expiry))
    return chain.cm.functions.settleHubBatch(
        hub.address, expiry, hub_sig, pack_hub_withdraws(h, items, sigs),
        pack_deposits(list(deposits)),
    )  # fmt: skip


SCHEMES = ["single", "cosigned", "hub"]


def apply(chain: Chain, scheme: str, hub: Actor, items, who, deposits=()):
    expiry = chain.block + 5
    if scheme == "single":
        assert len(items) == 1 and not deposits
        return single(chain, items[0], who, expiry)
    if scheme == "cosigned":
        return cosigned(chain, items, who, expiry, deposits)
    return hub_batch(chain, hub, items, who, expiry, deposits)


@pytest.fixture
def net(chain: Chain):
    """A hub (actor 0) with a channel to actors 1 and 2, both sides deposited DEPOSIT."""
    hub, a, b = chain.actors[:3]
    chain.tx(chain.cm.functions.depositToBalance(5 * DEPOSIT), hub)
    ids = {}
    for other in (a, b):
        channel_id = chain.open(hub, other, DEPOSIT)
        chain.tx(chain.cm.functions.setTotalDeposit(channel_id, hub.address, DEPOSIT), other)
        ids[other.address] = channel_id
    who = {raw(x.address): x for x in chain.actors}
    return hub, a, b, ids, who


@pytest.mark.parametrize("scheme", SCHEMES)
def test_first_withdraw_sets_the_exact_headroom_and_the_next_lowers_it(chain, net, scheme):
    hub, a, _b, ids, who = net
    cid = ids[a.address]
    assert withdrawn_slot(chain, cid, hub, a) == (0, 0, 0)
    chain.tx(apply(chain, scheme, hub, [item(cid, a, hub, 1_500)], who), hub)
    assert check_invariant(chain, cid, hub, a) == 2 * DEPOSIT - 1_500
    chain.tx(apply(chain, scheme, hub, [item(cid, hub, a, 700)], who), hub)
    assert check_invariant(chain, cid, hub, a) == 2 * DEPOSIT - 2_200
    assert chain.internal(a) == 1_500


@pytest.mark.parametrize("scheme", SCHEMES)
def test_past_a_stale_headroom_the_full_checks_run(chain, net, scheme):
    """A deposit leaves the headroom below what the channel holds: a withdraw past the headroom but
    within the channel passes (and refreshes it); one past the channel reverts with the exact figure."""
    hub, a, _b, ids, who = net
    cid = ids[a.address]
    chain.tx(apply(chain, scheme, hub, [item(cid, a, hub, 2 * DEPOSIT - 100)], who), hub)
    assert check_invariant(chain, cid, hub, a) == 100
    chain.tx(chain.cm.functions.setTotalDeposit(cid, hub.address, 2 * DEPOSIT), a)
    assert check_invariant(chain, cid, hub, a) == 100  # a lower bound now: the channel holds 10,100
    total = 2 * DEPOSIT - 100 + 10_101
    chain.assert_reverts(
        apply(chain, scheme, hub, [item(cid, a, hub, total)], who), hub,
        "ChannelManagerWithdrawExceedsChannel", 10_101, 10_100,
    )  # fmt: skip
    chain.tx(apply(chain, scheme, hub, [item(cid, a, hub, total - 1)], who), hub)
    assert check_invariant(chain, cid, hub, a) == 0
    assert available(chain, cid, hub, a) == 0


@pytest.mark.parametrize("scheme", SCHEMES)
def test_non_increasing_total_within_headroom_reverts_as_before(chain, net, scheme):
    hub, a, _b, ids, who = net
    cid = ids[a.address]
    chain.tx(apply(chain, scheme, hub, [item(cid, a, hub, 300)], who), hub)
    assert check_invariant(chain, cid, hub, a) > 0
    for total in (300, 299, 1):
        chain.assert_reverts(
            apply(chain, scheme, hub, [item(cid, a, hub, total)], who), hub,
            "ChannelManagerWithdrawNotIncreasing", total, 300,
        )  # fmt: skip


@pytest.mark.parametrize("scheme", SCHEMES)
def test_close_zeroes_the_headroom_so_no_withdraw_passes(chain, net, scheme):
    hub, a, _b, ids, who = net
    cid = ids[a.address]
    chain.tx(apply(chain, "hub", hub, [item(cid, a, hub, 1_000), item(cid, hub, a, 500)], who), hub)
    assert check_invariant(chain, cid, hub, a) == 2 * DEPOSIT - 1_500
    chain.close(a, hub, cid)
    assert check_invariant(chain, cid, hub, a) == 0
    assert withdrawn_slot(chain, cid, hub, a)[:2] != (0, 0)  # the totals stay for settle
    chain.assert_reverts(
        apply(chain, scheme, hub, [item(cid, a, hub, 1_001)], who), hub,
        "ChannelManagerChannelNotOpen", cid,
    )  # fmt: skip
    chain.mine(10)
    before = {x.address: chain.internal(x) for x in (hub, a)}
    chain.settle(cid, hub, a)
    # No proofs: each gets its deposit minus its withdrawn total.
    assert chain.internal(a) == before[a.address] + DEPOSIT - 1_000
    assert chain.internal(hub) == before[hub.address] + DEPOSIT - 500
    assert withdrawn_slot(chain, cid, hub, a) == (0, 0, 0)
    chain.assert_reverts(
        apply(chain, scheme, hub, [item(cid, a, hub, 1_001)], who), hub,
        "ChannelManagerUnknownChannel", cid, a.address, hub.address,
    )  # fmt: skip


def test_cooperative_close_deletes_the_slot(chain, net):
    hub, a, _b, ids, who = net
    cid = ids[a.address]
    chain.tx(apply(chain, "hub", hub, [item(cid, a, hub, 1_000)], who), hub)
    p1, p2 = ordered(hub, a)
    b1 = DEPOSIT - (1_000 if p1 == a else 0)
    b2 = 2 * DEPOSIT - 1_000 - b1
    sigs = [chain.sign_coop(s, cid, b1, b2) for s in (p1, p2)]
    chain.tx(chain.cm.functions.cooperativeClose(cid, p1.address, p2.address, b1, b2, *sigs), hub)
    assert withdrawn_slot(chain, cid, hub, a) == (0, 0, 0)


def test_uint96_totals_with_a_saturated_headroom(chain):
    """Deposits and withdrawn totals up to type(uint96).max still work: the headroom saturates at
    2^64 - 1 and every withdraw past it takes the full checks."""
    p1, p2 = chain.pair(0, 1)
    who = {raw(x.address): x for x in (p1, p2)}
    for x in (p1, p2):
        chain.tx(chain.token.functions.mint(x.address, UINT96_MAX), chain.admin)
        chain.tx(chain.token.functions.approve(chain.cm.address, 2**256 - 1), x)
    cid = chain.open(p1, p2, UINT96_MAX)
    chain.tx(chain.cm.functions.setTotalDeposit(cid, p1.address, UINT96_MAX), p2)
    chain.tx(apply(chain, "single", p1, [item(cid, p1, p2, 2**64 + 5)], who), p1)
    assert check_invariant(chain, cid, p1, p2) == H64
    # Exactly the headroom: on the withdrawn slot alone; it is then zero.
    chain.tx(apply(chain, "cosigned", p1, [item(cid, p2, p1, H64)], who), p1)
    assert check_invariant(chain, cid, p1, p2) == 0
    chain.tx(apply(chain, "hub", p1, [item(cid, p2, p1, H64 + 1)], who), p1)
    assert check_invariant(chain, cid, p1, p2) == H64
    chain.tx(apply(chain, "hub", p1, [item(cid, p1, p2, UINT96_MAX)], who), p2)
    last = 2 * UINT96_MAX - UINT96_MAX - (H64 + 1)
    assert check_invariant(chain, cid, p1, p2) == min(last, H64)
    chain.tx(apply(chain, "cosigned", p1, [item(cid, p2, p1, UINT96_MAX)], who), p1)
    assert check_invariant(chain, cid, p1, p2) == 0
    state = chain.channel(cid, p1, p2)
    assert (state["withdrawn1"], state["withdrawn2"]) == (UINT96_MAX, UINT96_MAX)
    assert chain.internal(p1) == chain.internal(p2) == UINT96_MAX
    chain.assert_reverts(
        apply(chain, "hub", p1, [item(cid, p1, p2, UINT96_MAX)], who), p2,
        "ChannelManagerWithdrawNotIncreasing", UINT96_MAX, UINT96_MAX,
    )  # fmt: skip


def test_random_operations_match_a_model(chain, net):
    """Withdraws by every path, deposits by every path and over-asks, against a model of the full
    checks: each accepted or refused as the model says (same error arguments), invariant after each."""
    hub, a, b, ids, who = net
    rng = random.Random(11)
    cps = [a, b]
    model = {
        ids[x.address]: {"d": {hub.address: DEPOSIT, x.address: DEPOSIT}, "w": {hub.address: 0, x.address: 0}}
        for x in cps
    }  # fmt: skip
    seen: Counter[str] = Counter()
    for step in range(60):
        x = rng.choice(cps)
        cid = ids[x.address]
        m = model[cid]
        left = sum(m["d"].values()) - sum(m["w"].values())
        if rng.random() < 0.25:
            depositor, partner = (hub, x) if rng.random() < 0.5 else (x, hub)
            total = m["d"][depositor.address] + rng.randint(1, 3_000)
            if depositor == hub and rng.random() < 0.5:
                deposits = [DepositItem(cid, raw(x.address), total)]
                chain.tx(
                    chain.cm.functions.settleBatch(chain.block + 5, b"", pack_deposits(deposits)),
                    hub,
                )
            else:
                chain.tx(chain.cm.functions.setTotalDeposit(cid, partner.address, total), depositor)
            m["d"][depositor.address] = total
        else:
            participant, partner = (hub, x) if rng.random() < 0.5 else (x, hub)
            current = m["w"][participant.address]
            roll = rng.random()
            if roll < 0.1:
                total = max(1, current - rng.randint(0, 5))  # not increasing (once any)
            elif roll < 0.25:
                total = current + left + rng.randint(1, 50)  # past the channel
            else:
                total = current + rng.randint(1, max(1, left))
            scheme = rng.choice(SCHEMES)
            fn = apply(chain, scheme, hub, [item(cid, participant, partner, total)], who)
            headroom = withdrawn_slot(chain, cid, hub, x)[2]
            if total <= current:
                seen["not increasing"] += 1
                chain.assert_reverts(fn, hub, "ChannelManagerWithdrawNotIncreasing", total, current)
            elif total - current > left:
                seen["past the channel"] += 1
                chain.assert_reverts(
                    fn, hub, "ChannelManagerWithdrawExceedsChannel", total - current, left
                )
            else:
                increase = total - current
                seen["within the headroom" if increase <= headroom else "past the headroom"] += 1
                seen["past a stale headroom"] += 0 < headroom < increase
                chain.tx(fn, hub)
                m["w"][participant.address] = total
        for y in cps:
            c = ids[y.address]
            check_invariant(chain, c, hub, y)
            p1, p2 = ordered(hub, y)
            s = chain.channel(c, hub, y)
            got = (s["deposit1"], s["deposit2"], s["withdrawn1"], s["withdrawn2"])
            mm = model[c]
            assert got == (mm["d"][p1.address], mm["d"][p2.address], mm["w"][p1.address],
                           mm["w"][p2.address]), step  # fmt: skip
    # Every path was taken.
    assert len(seen) == 5 and all(seen.values()), seen

"""ChannelManager.settleChannel: the settlement arithmetic of docs/protocol.md after the challenge period."""

import pytest
from cm_support import SETTLE_TIMEOUT

from channels.core.settlement import effective_locked, settle_amounts

ZERO = b"\0" * 32
ROOT = b"\x33" * 32


def expected_settlement(d1, d2, w1, p1_proof, p2_proof):
    """channels.core.settlement (the Python twin); a locked amount under an empty root counts as 0."""
    t1, l1, r1 = p1_proof or (0, 0, ZERO)
    t2, l2, r2 = p2_proof or (0, 0, ZERO)
    return tuple(
        settle_amounts(d1, w1, t1, effective_locked(l1, r1), d2, 0, t2, effective_locked(l2, r2))
    )


def settle_case(chain, pair, d1, d2, p1_proof, p2_proof, w1=0):
    """p1 closes with p2's proof; p2 updates with p1's proof; settle. Proof = (T, L, root) or None."""
    p1, p2 = pair
    channel_id = chain.open(p1, p2, d1)
    if d2:
        chain.tx(chain.cm.functions.setTotalDeposit(channel_id, p1.address, d2), p2)
    if w1:
        expiry = chain.block + 10
        sigs = [chain.sign_withdraw(s, channel_id, p1, w1, expiry) for s in (p1, p2)]
        chain.tx(
            chain.cm.functions.withdraw(channel_id, p1.address, p2.address, w1, expiry, *sigs), p1
        )
    if p2_proof:
        chain.close(p1, p2, channel_id, 1, *p2_proof)
    else:
        chain.close(p1, p2, channel_id)
    if p1_proof:
        t, locked, root = p1_proof
        sig = chain.sign_proof(p1, channel_id, 1, t, locked, root)
        chain.tx(
            chain.cm.functions.updateBalanceProof(channel_id, p1.address, 1, t, locked, root, sig),
            p2,
        )
    chain.mine(SETTLE_TIMEOUT)
    before = chain.internal(p1), chain.internal(p2)
    receipt = chain.settle(channel_id, p1, p2, sender=chain.actors[5])
    [event] = chain.events(receipt, "ChannelSettled")
    after = chain.internal(p1) - before[0], chain.internal(p2) - before[1]
    return channel_id, event, after


CASES = [
    # d1, d2, p1 proof (T1, L1, root1), p2 proof (T2, L2, root2), w1
    (1000, 500, None, None, 0),
    (1000, 500, (300, 0, ZERO), (100, 0, ZERO), 0),
    (1000, 500, (300, 0, ZERO), None, 0),
    (1000, 500, None, (400, 0, ZERO), 0),
    (1000, 500, (5000, 0, ZERO), (10, 0, ZERO), 0),  # b1 clamps at 0
    (1000, 500, (10, 0, ZERO), (5000, 0, ZERO), 0),  # b1 clamps at the total
    (1000, 500, (300, 200, ROOT), (100, 50, ROOT), 0),  # locks kept in the contract
    (1000, 500, (900, 400, ROOT), None, 0),  # locked1 capped by b1 = 100
    (1000, 500, (300, 200, ZERO), None, 0),  # locked without a root stays with its sender
    (1000, 0, (1200, 0, ZERO), (700, 0, ZERO), 0),  # cumulative transfers beyond the capacity
    (1000, 500, (100, 0, ZERO), (300, 0, ZERO), 600),  # after p1 withdrew 600
]


@pytest.mark.parametrize(("d1", "d2", "p1_proof", "p2_proof", "w1"), CASES)
def test_settlement_arithmetic(chain, pair, d1, d2, p1_proof, p2_proof, w1):
    expected = expected_settlement(d1, d2, w1, p1_proof, p2_proof)
    r1 = (p1_proof or (0, 0, ZERO))[2]
    r2 = (p2_proof or (0, 0, ZERO))[2]
    p1, p2 = pair
    channel_id, event, credited = settle_case(chain, pair, d1, d2, p1_proof, p2_proof, w1)
    assert (event["balance1"], event["balance2"], event["locked1"], event["locked2"]) == expected
    assert credited == expected[:2]
    assert chain.channel(channel_id, p1, p2) == {
        "state": 0,
        "settleBlock": 0,
        "closer": "0x" + "00" * 20,
        "deposit1": 0,
        "deposit2": 0,
        "withdrawn1": 0,
        "withdrawn2": 0,
    }
    # Directions with locked value keep (0, 0, pool, root) for unlock; the others are freed.
    for sender, receiver, locked, root in ((p1, p2, expected[2], r1), (p2, p1, expected[3], r2)):
        stored = chain.stored_proof(channel_id, sender, receiver)
        assert stored == ((0, 0, locked, root) if locked else (0, 0, 0, ZERO))


def test_nothing_is_created_or_lost(chain, pair):
    tokens_in_cm = chain.tokens(chain.cm.address)
    _, event, credited = settle_case(chain, pair, 1000, 500, (300, 200, ROOT), (100, 50, ROOT))
    assert sum(credited) + event["locked1"] + event["locked2"] == 1500
    assert chain.tokens(chain.cm.address) == tokens_in_cm + 1500


@pytest.fixture
def closed(chain, pair, channel):
    p1, p2 = pair
    chain.close(p2, p1, channel)
    return channel


def test_rejects_within_the_period(chain, pair, closed):
    p1, p2 = pair
    settle_block = chain.channel(closed, p1, p2)["settleBlock"]
    chain.mine(settle_block - chain.block - 1)  # would be mined in settle_block
    chain.assert_reverts(
        chain.cm.functions.settleChannel(closed, p1.address, p2.address),
        p1,
        "ChannelManagerChallengePeriodNotOver",
        settle_block,
    )


def test_rejects_open_channel(chain, pair, channel):
    p1, p2 = pair
    chain.assert_reverts(
        chain.cm.functions.settleChannel(channel, p1.address, p2.address),
        p1,
        "ChannelManagerChannelNotClosed",
        channel,
    )


def test_rejects_second_settle(chain, pair, closed):
    p1, p2 = pair
    chain.mine(SETTLE_TIMEOUT)
    chain.settle(closed, p1, p2)
    chain.assert_reverts(
        chain.cm.functions.settleChannel(closed, p1.address, p2.address),
        p1,
        "ChannelManagerUnknownChannel",
        closed,
        p1.address,
        p2.address,
    )


def test_rejects_unordered_participants(chain, pair, closed):
    p1, p2 = pair
    chain.mine(SETTLE_TIMEOUT)
    chain.assert_reverts(
        chain.cm.functions.settleChannel(closed, p2.address, p1.address),
        p1,
        "ChannelManagerInvalidParticipants",
        p2.address,
        p1.address,
    )


def test_rejects_wrong_participants(chain, pair, closed):
    p1, _ = pair
    outsider = chain.actors[2]
    a, b = sorted([p1.address, outsider.address], key=lambda x: int(x, 16))
    chain.mine(SETTLE_TIMEOUT)
    chain.assert_reverts(
        chain.cm.functions.settleChannel(closed, a, b),
        p1,
        "ChannelManagerUnknownChannel",
        closed,
        a,
        b,
    )

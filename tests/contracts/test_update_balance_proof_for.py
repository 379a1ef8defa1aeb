"""ChannelManager.updateBalanceProofFor: a watchtower submits the closer's proof for the non-closer."""

import pytest
from cm_support import SETTLE_TIMEOUT, UINT96_MAX, ZERO, high_s, proof_hash, raw, recover

from channels.codec import eip712

ANYONE = "0x" + "00" * 20


@pytest.fixture
def closed(chain, pair, channel):
    """p1 closed without a proof; p2 (offline) is guarded by a watchtower."""
    p1, p2 = pair
    chain.close(p1, p2, channel)
    return channel


@pytest.fixture
def tower(chain):
    return chain.actors[3]


def for_fn(
    chain,
    channel_id,
    closer,
    non_closer,
    nonce,
    transferred,
    reward,
    watchtower,
    *,
    closer_sig=None,
    monitor_sig=None,
):
    closer_sig = closer_sig or chain.sign_proof(closer, channel_id, nonce, transferred)
    monitor_sig = monitor_sig or chain.sign_monitor(
        non_closer, channel_id, proof_hash(channel_id, nonce, transferred), reward, watchtower
    )
    return chain.cm.functions.updateBalanceProofFor(
        channel_id,
        closer.address,
        non_closer.address,
        nonce,
        transferred,
        0,
        ZERO,
        closer_sig,
        reward,
        monitor_sig,
    )


def recovered_for(chain, channel_id, nonce, transferred, reward, watchtower, sig):
    """Who the contract recovers from `sig` for the request it checks (watchtower = the caller)."""
    digest = eip712.monitor_request_digest(
        chain.domain,
        channel_id,
        proof_hash(channel_id, nonce, transferred),
        reward,
        raw(watchtower),
    )
    return recover(digest, sig)


def test_watchtower_update_and_reward_at_settle(chain, pair, closed, tower):
    p1, p2 = pair
    receipt = chain.tx(for_fn(chain, closed, p1, p2, 4, 300, 7, tower.address), tower)
    assert chain.events(receipt, "ChannelBalanceProofUpdated") == [
        {"channelId": closed, "closer": p1.address, "nonce": 4, "submitter": tower.address}
    ]
    assert chain.stored_proof(closed, p1, p2) == (4, 300, 0, ZERO)
    assert tuple(chain.cm.functions.getMonitorReward(closed, p1.address, p2.address).call()) == (
        tower.address,
        7,
    )
    chain.mine(SETTLE_TIMEOUT)
    receipt = chain.settle(closed, p1, p2)
    assert chain.events(receipt, "ChannelMonitorRewarded") == [
        {"channelId": closed, "watchtower": tower.address, "amount": 7}
    ]
    # p2 (non-closer): 500 + 300 received - 7 reward; p1: 1000 - 300.
    assert (chain.internal(p1), chain.internal(p2), chain.internal(tower)) == (700, 793, 7)
    assert tuple(chain.cm.functions.getMonitorReward(closed, p1.address, p2.address).call()) == (
        ANYONE,
        0,
    )


def test_request_for_anyone(chain, pair, closed):
    p1, p2 = pair
    stranger = chain.actors[4]
    chain.tx(for_fn(chain, closed, p1, p2, 4, 300, 5, ANYONE), stranger)
    assert tuple(chain.cm.functions.getMonitorReward(closed, p1.address, p2.address).call()) == (
        stranger.address,
        5,
    )


def test_reward_is_capped_by_the_guarded_balance(chain, pair, tower):
    p1, p2 = pair
    channel_id = chain.open(p1, p2, 1000)  # p2 deposited nothing
    chain.close(p1, p2, channel_id)
    chain.tx(for_fn(chain, channel_id, p1, p2, 1, 40, 100, tower.address), tower)
    chain.mine(SETTLE_TIMEOUT)
    chain.settle(channel_id, p1, p2)
    assert (chain.internal(p1), chain.internal(p2), chain.internal(tower)) == (960, 0, 40)


def test_rejects_request_naming_another_watchtower(chain, pair, closed, tower):
    p1, p2 = pair
    other = chain.actors[4]
    fn = for_fn(chain, closed, p1, p2, 4, 300, 7, other.address)
    sig = chain.sign_monitor(p2, closed, proof_hash(closed, 4, 300), 7, other.address)
    expected = recovered_for(chain, closed, 4, 300, 7, tower.address, sig)
    chain.assert_reverts(fn, tower, "ChannelManagerWrongSigner", p2.address, expected)


@pytest.mark.parametrize(
    ("signed", "submitted"),
    [
        ((3, 200, 7), (4, 300, 7)),  # a request for another proof
        ((4, 300, 7), (4, 300, 70)),  # an inflated reward
    ],
    ids=["another-proof", "inflated-reward"],
)
def test_rejects_a_request_for_other_terms(chain, pair, closed, tower, signed, submitted):
    p1, p2 = pair
    nonce, transferred, reward = signed
    sig = chain.sign_monitor(
        p2, closed, proof_hash(closed, nonce, transferred), reward, tower.address
    )
    expected = recovered_for(chain, closed, *submitted, tower.address, sig)
    chain.assert_reverts(
        for_fn(chain, closed, p1, p2, *submitted, tower.address, monitor_sig=sig),
        tower,
        "ChannelManagerWrongSigner",
        p2.address,
        expected,
    )


def test_rejects_request_signed_by_the_closer(chain, pair, closed, tower):
    p1, p2 = pair
    sig = chain.sign_monitor(p1, closed, proof_hash(closed, 4, 300), 7, tower.address)
    chain.assert_reverts(
        for_fn(chain, closed, p1, p2, 4, 300, 7, tower.address, monitor_sig=sig),
        tower,
        "ChannelManagerWrongSigner",
        p2.address,
        p1.address,
    )


def test_rejects_high_s_request(chain, pair, closed, tower):
    p1, p2 = pair
    sig = high_s(chain.sign_monitor(p2, closed, proof_hash(closed, 4, 300), 7, tower.address))
    chain.assert_reverts(
        for_fn(chain, closed, p1, p2, 4, 300, 7, tower.address, monitor_sig=sig),
        tower,
        "ChannelManagerInvalidSignature",
    )


@pytest.mark.parametrize("where", ["chain", "contract"])
def test_rejects_request_for_another_domain(chain, pair, closed, tower, where):
    p1, p2 = pair
    domain = chain.other_domains()[where]
    sig = chain.sign_monitor(
        p2, closed, proof_hash(closed, 4, 300), 7, tower.address, domain=domain
    )
    expected = recovered_for(chain, closed, 4, 300, 7, tower.address, sig)
    chain.assert_reverts(
        for_fn(chain, closed, p1, p2, 4, 300, 7, tower.address, monitor_sig=sig),
        tower,
        "ChannelManagerWrongSigner",
        p2.address,
        expected,
    )


def test_rejects_forged_closer_proof(chain, pair, closed, tower):
    p1, p2 = pair
    forged = chain.sign_proof(p2, closed, 4, 300)
    chain.assert_reverts(
        for_fn(chain, closed, p1, p2, 4, 300, 7, tower.address, closer_sig=forged),
        tower,
        "ChannelManagerWrongSigner",
        p1.address,
        p2.address,
    )


def test_rejects_reward_too_large(chain, pair, closed, tower):
    p1, p2 = pair
    chain.assert_reverts(
        for_fn(chain, closed, p1, p2, 4, 300, UINT96_MAX + 1, tower.address),
        tower,
        "ChannelManagerAmountTooLarge",
        UINT96_MAX + 1,
    )


def test_rejects_lower_nonce(chain, pair, closed, tower):
    p1, p2 = pair
    chain.tx(for_fn(chain, closed, p1, p2, 4, 300, 7, tower.address), tower)
    chain.assert_reverts(
        for_fn(chain, closed, p1, p2, 3, 200, 7, tower.address),
        tower,
        "ChannelManagerNonceTooLow",
        3,
        4,
    )


def test_rejects_after_the_period(chain, pair, closed, tower):
    p1, p2 = pair
    settle_block = chain.channel(closed, p1, p2)["settleBlock"]
    chain.mine(settle_block - chain.block)
    chain.assert_reverts(
        for_fn(chain, closed, p1, p2, 4, 300, 7, tower.address),
        tower,
        "ChannelManagerChallengePeriodOver",
        settle_block,
    )


def test_rejects_guarding_the_closer(chain, pair, closed, tower):
    p1, p2 = pair
    chain.assert_reverts(
        for_fn(chain, closed, p2, p1, 4, 300, 7, tower.address),
        tower,
        "ChannelManagerNotCloser",
        p2.address,
    )

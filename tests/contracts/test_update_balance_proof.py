"""ChannelManager.updateBalanceProof: the non-closer submits the closer's latest proof."""

import pytest
from cm_support import (
    UINT64_MAX,
    UINT96_MAX,
    high_s,
    recover,
)

from channels.codec import eip712

ROOT = b"\x22" * 32
ZERO = b"\0" * 32


@pytest.fixture
def closed(chain, pair, channel):
    """p1 closed with p2's proof of nonce 2; p1's own direction is empty on chain."""
    p1, p2 = pair
    chain.close(p1, p2, channel, nonce=2, transferred=100)
    return channel


def update_fn(chain, channel_id, closer, nonce, transferred, locked=0, root=ZERO, sig=None):
    sig = (
        sig
        if sig is not None
        else chain.sign_proof(closer, channel_id, nonce, transferred, locked, root)
    )
    return chain.cm.functions.updateBalanceProof(
        channel_id, closer.address, nonce, transferred, locked, root, sig
    )


def test_update_stores_the_closers_proof(chain, pair, closed):
    p1, p2 = pair
    receipt = chain.tx(update_fn(chain, closed, p1, 5, 300, 20, ROOT), p2)
    assert chain.events(receipt, "ChannelBalanceProofUpdated") == [
        {"channelId": closed, "closer": p1.address, "nonce": 5, "submitter": p2.address}
    ]
    assert chain.stored_proof(closed, p1, p2) == (5, 300, 20, ROOT)
    # A later, higher proof replaces it; the partner's stored proof is untouched.
    chain.tx(update_fn(chain, closed, p1, 6, 350), p2)
    assert chain.stored_proof(closed, p1, p2) == (6, 350, 0, ZERO)
    assert chain.stored_proof(closed, p2, p1) == (2, 100, 0, ZERO)


def test_update_in_the_last_block_of_the_period(chain, pair, closed):
    p1, p2 = pair
    settle_block = chain.channel(closed, p1, p2)["settleBlock"]
    chain.mine(settle_block - chain.block - 1)  # the update is mined in settle_block
    receipt = chain.tx(update_fn(chain, closed, p1, 1, 1), p2)
    assert receipt.blockNumber == settle_block


def test_rejects_after_the_period(chain, pair, closed):
    p1, p2 = pair
    settle_block = chain.channel(closed, p1, p2)["settleBlock"]
    chain.mine(settle_block - chain.block)
    chain.assert_reverts(
        update_fn(chain, closed, p1, 1, 1), p2, "ChannelManagerChallengePeriodOver", settle_block
    )


@pytest.mark.parametrize("nonce", [4, 3])
def test_rejects_lower_or_equal_nonce(chain, pair, closed, nonce):
    p1, p2 = pair
    chain.tx(update_fn(chain, closed, p1, 4, 300), p2)
    chain.assert_reverts(
        update_fn(chain, closed, p1, nonce, 999), p2, "ChannelManagerNonceTooLow", nonce, 4
    )


def test_rejects_zero_nonce(chain, pair, closed):
    p1, p2 = pair
    chain.assert_reverts(update_fn(chain, closed, p1, 0, 0), p2, "ChannelManagerNonceTooLow", 0, 0)


def test_rejects_update_by_the_closer(chain, pair, closed):
    p1, p2 = pair
    # The closer naming its partner as "closer" to replace the partner's proof.
    chain.assert_reverts(
        update_fn(chain, closed, p2, 9, 0), p1, "ChannelManagerNotCloser", p2.address
    )


def test_rejects_open_channel(chain, pair, channel):
    p1, p2 = pair
    chain.assert_reverts(
        update_fn(chain, channel, p1, 1, 1), p2, "ChannelManagerChannelNotClosed", channel
    )


def test_rejects_non_participant(chain, pair, closed):
    p1, _ = pair
    outsider = chain.actors[2]
    chain.assert_reverts(
        update_fn(chain, closed, p1, 5, 1),
        outsider,
        "ChannelManagerUnknownChannel",
        closed,
        p1.address,
        outsider.address,
    )


def test_rejects_forged_proof(chain, pair, closed):
    p1, p2 = pair
    forger = chain.actors[2]
    sig = chain.sign_proof(forger, closed, 5, 1)
    chain.assert_reverts(
        update_fn(chain, closed, p1, 5, 1, sig=sig),
        p2,
        "ChannelManagerWrongSigner",
        p1.address,
        forger.address,
    )


@pytest.mark.parametrize("where", ["channel", "chain", "contract"])
def test_rejects_proof_for_other_channel_or_domain(chain, pair, closed, where):
    p1, p2 = pair
    domain = chain.other_domains().get(where, chain.domain)
    sig = chain.sign_proof(p1, closed + 1 if where == "channel" else closed, 5, 1, domain=domain)
    real = eip712.balance_proof_digest(chain.domain, closed, 5, 1, 0, ZERO)
    chain.assert_reverts(
        update_fn(chain, closed, p1, 5, 1, sig=sig),
        p2,
        "ChannelManagerWrongSigner",
        p1.address,
        recover(real, sig),
    )


def test_rejects_high_s(chain, pair, closed):
    p1, p2 = pair
    sig = high_s(chain.sign_proof(p1, closed, 5, 1))
    chain.assert_reverts(
        update_fn(chain, closed, p1, 5, 1, sig=sig), p2, "ChannelManagerInvalidSignature"
    )


def test_rejects_nonce_too_large(chain, pair, closed):
    p1, p2 = pair
    chain.assert_reverts(
        update_fn(chain, closed, p1, UINT64_MAX + 1, 1),
        p2,
        "ChannelManagerNonceTooLarge",
        UINT64_MAX + 1,
    )


def test_rejects_amount_too_large(chain, pair, closed):
    p1, p2 = pair
    chain.assert_reverts(
        update_fn(chain, closed, p1, 5, 0, UINT96_MAX + 1, ROOT),
        p2,
        "ChannelManagerAmountTooLarge",
        UINT96_MAX + 1,
    )

"""ChannelManager.openChannel: open with an ERC20 deposit (or none)."""

from cm_support import ALLOWANCE, SETTLE_TIMEOUT, UINT96_MAX

ZERO_ADDRESS = "0x" + "00" * 20


def test_open_with_deposit_stores_one_record_and_pulls_tokens(chain, pair):
    p1, p2 = pair
    count = chain.cm.functions.channelCount().call()
    tokens_before, cm_before = chain.tokens(p2), chain.tokens(chain.cm.address)

    receipt = chain.tx(chain.cm.functions.openChannel(p1.address, 700), p2)

    [event] = chain.events(receipt, "ChannelOpened")
    assert event == {
        "channelId": count + 1,
        "participant1": p1.address,
        "participant2": p2.address,
        "opener": p2.address,
        "deposit": 700,
    }
    assert chain.cm.functions.channelCount().call() == count + 1
    assert chain.channel(count + 1, p1, p2) == {
        "state": 1,
        "settleBlock": 0,
        "closer": ZERO_ADDRESS,
        "deposit1": 0,
        "deposit2": 700,
        "withdrawn1": 0,
        "withdrawn2": 0,
    }
    # Either order of the participants names the same channel.
    assert chain.channel(count + 1, p2, p1)["deposit2"] == 700
    assert chain.tokens(p2) == tokens_before - 700
    assert chain.tokens(chain.cm.address) == cm_before + 700


def test_open_by_participant1_credits_deposit1(chain, pair):
    p1, p2 = pair
    channel_id = chain.open(p1, p2, UINT96_MAX // 10**18)
    assert chain.channel(channel_id, p1, p2)["deposit1"] == UINT96_MAX // 10**18
    assert chain.channel(channel_id, p1, p2)["deposit2"] == 0


def test_open_without_deposit_moves_no_tokens(chain, pair):
    p1, p2 = pair
    before = chain.tokens(p1)
    channel_id = chain.open(p1, p2, 0)
    assert chain.channel(channel_id, p1, p2)["state"] == 1
    assert chain.tokens(p1) == before


def test_ids_count_up_and_are_never_reused(chain, pair):
    p1, p2 = pair
    first = chain.open(p1, p2, 0)
    second = chain.open(p1, p2, 0)
    assert second == first + 1
    assert chain.cm.functions.settleTimeout().call() == SETTLE_TIMEOUT


def test_rejects_self_channel(chain, pair):
    p1, _ = pair
    chain.assert_reverts(
        chain.cm.functions.openChannel(p1.address, 1),
        p1,
        "ChannelManagerInvalidParticipants",
        p1.address,
        p1.address,
    )


def test_rejects_zero_partner(chain, pair):
    p1, _ = pair
    chain.assert_reverts(
        chain.cm.functions.openChannel(ZERO_ADDRESS, 1),
        p1,
        "ChannelManagerInvalidParticipants",
        p1.address,
        ZERO_ADDRESS,
    )


def test_rejects_amount_too_large(chain, pair):
    p1, p2 = pair
    chain.assert_reverts(
        chain.cm.functions.openChannel(p2.address, UINT96_MAX + 1),
        p1,
        "ChannelManagerAmountTooLarge",
        UINT96_MAX + 1,
    )


def test_rejects_deposit_beyond_allowance(chain, pair):
    p1, p2 = pair
    chain.assert_reverts(
        chain.cm.functions.openChannel(p2.address, ALLOWANCE + 1),
        p1,
        "ERC20InsufficientAllowance",
        chain.cm.address,
        ALLOWANCE,
        ALLOWANCE + 1,
        contract=chain.token,
    )

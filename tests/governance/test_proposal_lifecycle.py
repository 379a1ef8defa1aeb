"""A proposal's whole life on the embedded chain (propose, vote, queue, execute, with time travel),
and the parameter it changes taking effect on the channel manager."""

from __future__ import annotations

import pytest

from channels.chain.client import ChannelState
from channels.chain.errors import ChainError
from channels.chain.governance import (
    ProposalState,
    Support,
    advance_time,
    describe_proposal,
    latest_timestamp,
)
from tests.governance.govfix import EURO, SETTLE_TIMEOUT, GovEnv, address_of


def test_a_proposal_lives_its_whole_life_and_the_new_challenge_period_applies(
    env: GovEnv,
) -> None:
    f = env.founders
    gov = env.gov(f[0])
    params = gov.parameters()
    assert params.settle_timeout == SETTLE_TIMEOUT and params.active_members == len(f)
    call = gov.calls.set_settle_timeout(40)
    description = describe_proposal([gov.describe_call(call)], "A longer challenge period")
    assert description == "A longer challenge period\n\n- set the challenge period to 40 blocks"
    assert not gov.classify([call])

    record, _ = gov.propose([call], description)
    assert record.title == "A longer challenge period" and record.calls == (call,)
    assert gov.proposals() == (record,)
    assert gov.state(record.proposal_id) is ProposalState.PENDING
    with pytest.raises(ChainError) as early:  # the vote has not opened
        gov.for_account(f[1]).cast_vote(record.proposal_id, Support.FOR)
    assert early.value.name == "GovernorUnexpectedProposalState"

    env.connection.mine_until(record.vote_start + 1)
    assert gov.state(record.proposal_id) is ProposalState.ACTIVE
    for voter, support in ((f[0], Support.FOR), (f[1], Support.FOR), (f[2], Support.AGAINST)):
        gov.for_account(voter).cast_vote(record.proposal_id, support)
    gov.for_account(f[3]).cast_vote(record.proposal_id, Support.ABSTAIN, "no opinion")
    with pytest.raises(ChainError) as twice:
        gov.for_account(f[1]).cast_vote(record.proposal_id, Support.AGAINST)
    assert twice.value.name == "GovernorAlreadyCastVote"
    with pytest.raises(ChainError) as too_soon:  # still voting
        gov.queue(record.proposal_id)
    assert too_soon.value.name == "GovernorUnexpectedProposalState"

    env.connection.mine_until(record.vote_end + 1)
    status = gov.status(record)
    assert status.state is ProposalState.SUCCEEDED and not status.constitutional
    assert (status.for_, status.against, status.abstain, status.quorum) == (2, 1, 1, 2)

    gov.queue(record.proposal_id)
    status = gov.status(record)
    assert status.state is ProposalState.QUEUED
    assert status.eta == latest_timestamp(env.connection) + params.timelock_delay
    with pytest.raises(ChainError) as not_ready:  # the timelock's delay has not passed
        gov.execute(record.proposal_id)
    assert not_ready.value.name == "CiseGovernorProposalNotReady"
    assert not_ready.value.error_args == (record.proposal_id, status.eta)
    assert env.chain(f[0]).settle_timeout() == SETTLE_TIMEOUT

    advance_time(env.connection, params.timelock_delay)
    receipt = gov.for_account(f[5]).execute(record.proposal_id)  # anyone may execute
    assert gov.state(record.proposal_id) is ProposalState.EXECUTED
    assert env.chain(f[0]).settle_timeout() == 40 == gov.parameters().settle_timeout
    assert receipt.event("ProposalExecuted").args["proposalId"] == record.proposal_id

    # The manager's next close gets the new challenge period.
    alice, bob = env.chain(f[6]), env.chain(f[7])
    channel_id = env.open(f[6], f[7], 5 * EURO)
    closed = alice.close_channel(channel_id, bob.address, 0, 0, 0, b"\0" * 32, b"")
    settle_block = closed.event("ChannelClosed").args["settleBlock"]
    assert settle_block == closed.block_number + 40
    p1, p2 = sorted([alice.address, bob.address])
    env.connection.mine_until(closed.block_number + 39)
    with pytest.raises(ChainError) as waiting:
        alice.settle_channel(channel_id, p1, p2)
    assert waiting.value.name == "ChannelManagerChallengePeriodNotOver"
    env.connection.mine(1)
    alice.settle_channel(channel_id, p1, p2)
    assert alice.get_channel(channel_id, p1, p2).state is ChannelState.NONE


def test_a_proposal_without_quorum_or_majority_is_defeated(env: GovEnv) -> None:
    f = env.founders
    gov = env.gov(f[0])
    records = []
    for title, supports in (
        ("Too few votes", [Support.FOR]),  # quorum 2 (20% of 10) not reached
        ("Voted down", [Support.FOR, Support.AGAINST, Support.AGAINST]),
    ):
        record, _ = gov.propose([gov.calls.set_hub_fee_cap(20_000)], title)
        env.connection.mine_until(record.vote_start + 1)
        for voter, support in zip(f, supports, strict=False):
            gov.for_account(voter).cast_vote(record.proposal_id, support)
        records.append(record)
    env.connection.mine_until(max(r.vote_end for r in records) + 1)
    for record in records:
        assert gov.state(record.proposal_id) is ProposalState.DEFEATED
        with pytest.raises(ChainError) as refused:
            gov.queue(record.proposal_id)
        assert refused.value.name == "GovernorUnexpectedProposalState"
    assert gov.parameters().hub_fee_cap == 10_000


def test_only_members_propose_and_only_the_timelock_changes_parameters(env: GovEnv) -> None:
    outsider = env.outsider("proposer")
    gov = env.gov(outsider)
    with pytest.raises(ChainError) as refused:
        gov.propose([gov.calls.set_settle_timeout(30)], "An outsider's idea")
    assert refused.value.name == "GovernorInsufficientProposerVotes"
    assert refused.value.error_args == (address_of(outsider), 0, 1)
    # Calling the governed setters directly, even as a founder, is refused.
    founder = env.gov(env.founders[0])
    for call, error in (
        (founder.calls.set_settle_timeout(30), "ChannelManagerNotGovernance"),
        (founder.calls.set_hub_fee_cap(1), "NetworkParametersNotGovernance"),
        (founder.calls.suspend(address_of(env.founders[1])), "MembershipNotGovernance"),
    ):
        with pytest.raises(ChainError) as direct:
            env.connection.transact(env.founders[0], call.target, call.data, founder.abi)
        assert direct.value.name == error
    # A governed setter's own bound still holds inside a passed proposal: execution reverts.
    with pytest.raises(ChainError) as bounded:
        env.pass_([founder.calls.set_settle_timeout(4)], "Too short")
    assert bounded.value.name == "ChannelManagerSettleTimeoutOutOfRange"
    assert bounded.value.error_args == (4, 5, 1_000_000)

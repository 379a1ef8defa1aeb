"""Constitutional proposals: classed by their calls, they fail under the ordinary quorum and wait the
longer delay; once passed, a new code of conduct is what applicants must accept."""

from __future__ import annotations

import pytest

from channels.chain.deploy import Document
from channels.chain.errors import ChainError
from channels.chain.governance import (
    Call,
    ProposalState,
    Role,
    Support,
    advance_time,
    latest_timestamp,
)
from channels.codec.keccak import keccak
from tests.governance.govfix import GovEnv, address_of

NEW_CODE = Document(keccak(b"CISE code of conduct v2"), "ipfs://code-of-conduct-v2")


def _vote(env: GovEnv, calls: list[Call], title: str, votes_for: int) -> int:
    gov = env.gov(env.founders[0])
    record, _ = gov.propose(calls, title)
    env.connection.mine_until(record.vote_start + 1)
    for voter in env.founders[:votes_for]:
        gov.for_account(voter).cast_vote(record.proposal_id, Support.FOR)
    env.connection.mine_until(record.vote_end + 1)
    return record.proposal_id


def test_a_constitutional_change_fails_under_the_ordinary_quorum(env: GovEnv) -> None:
    gov = env.gov(env.founders[0])
    params = gov.parameters()
    assert (params.quorum_percent, params.constitutional_quorum_percent) == (20, 50)
    change = gov.calls.set_code_of_conduct(NEW_CODE)
    assert gov.classify([change])
    # Three votes for, none against: enough for an ordinary proposal (quorum 2), not for this one.
    proposal_id = _vote(env, [change], "A new code of conduct", votes_for=3)
    status = gov.status(gov.proposal_record(proposal_id))
    assert status.constitutional and (status.for_, status.quorum) == (3, 5)
    assert status.state is ProposalState.DEFEATED
    with pytest.raises(ChainError) as refused:
        gov.queue(proposal_id)
    assert refused.value.name == "GovernorUnexpectedProposalState"
    # The same votes pass an ordinary proposal.
    ordinary = _vote(env, [gov.calls.set_hub_fee_cap(5_000)], "A lower fee cap", votes_for=3)
    assert gov.state(ordinary) is ProposalState.SUCCEEDED
    assert gov.parameters().code_of_conduct == params.code_of_conduct


def test_a_constitutional_change_with_its_quorum_waits_the_longer_delay(env: GovEnv) -> None:
    gov = env.gov(env.founders[0])
    params = gov.parameters()
    assert params.constitutional_delay > params.timelock_delay
    proposal_id = _vote(
        env, [gov.calls.set_code_of_conduct(NEW_CODE)], "A new code of conduct", votes_for=5
    )
    assert gov.state(proposal_id) is ProposalState.SUCCEEDED
    gov.queue(proposal_id)
    eta = gov.status(gov.proposal_record(proposal_id)).eta
    assert eta == latest_timestamp(env.connection) + params.constitutional_delay
    advance_time(env.connection, params.timelock_delay)  # an ordinary proposal would run now
    with pytest.raises(ChainError) as not_ready:
        gov.execute(proposal_id)
    assert not_ready.value.name == "CiseGovernorProposalNotReady"
    assert not_ready.value.error_args == (proposal_id, eta)
    advance_time(env.connection, eta - latest_timestamp(env.connection))
    gov.execute(proposal_id)
    assert gov.parameters().code_of_conduct == NEW_CODE

    # Applicants now accept the new code, not the old one.
    applicant = env.gov(env.outsider("late applicant"))
    with pytest.raises(ChainError) as old:
        applicant.apply_for_membership(Role.USER, params.code_of_conduct.hash)
    assert old.value.name == "MembershipCodeOfConductMismatch"
    assert old.value.error_args == (params.code_of_conduct.hash, NEW_CODE.hash)
    applicant.apply_for_membership(Role.USER, NEW_CODE.hash)


def test_a_proposal_is_constitutional_when_any_call_is(env: GovEnv) -> None:
    gov = env.gov(env.founders[0])
    calls = gov.calls
    member = address_of(env.founders[3])
    ordinary = [
        calls.set_settle_timeout(30),
        calls.set_hub_fee_cap(1),
        calls.set_settlement_period(3_600),
        calls.admit(member),
        calls.reject_application(member),
        calls.suspend(member),
        calls.reinstate(member),
        calls.set_roles(member, Role.HUB),
    ]
    assert not gov.classify(ordinary)
    for constitutional in (
        calls.expel(member),
        calls.set_code_of_conduct(NEW_CODE),
        calls.set_admission_rules(NEW_CODE),
        calls.set_quorum(30),
        calls.set_constitutional_quorum(60),
        calls.set_voting_period(100),
        calls.set_timelock_delay(120),
        calls.set_constitutional_delay(600),
        calls.set_ordinary_call("Membership", "expel", True),
        Call(ordinary[0].target, 1, ordinary[0].data),  # sends ether
        Call(ordinary[0].target, 0, b""),  # no function
    ):
        assert gov.classify([*ordinary, constitutional]), gov.describe_call(constitutional)
    assert [gov.describe_call(c) for c in ordinary[:4]] == [
        "set the challenge period to 30 blocks",
        "set the hub fee cap to €0.000001 per routed payment",
        "set the settlement period to 1 h",
        f"admit {env.founders[3].address}",
    ]
    assert gov.describe_call(calls.set_ordinary_call("Membership", "expel", True)) == (
        "make Membership.expel ordinary"
    )


def test_the_members_can_change_the_rules_of_governance(env: GovEnv) -> None:
    gov = env.gov(env.founders[0])
    calls = gov.calls
    status = env.pass_(
        [
            calls.set_constitutional_quorum(70),
            calls.set_voting_period(12),
            calls.set_timelock_delay(30),
            calls.set_ordinary_call("Membership", "expel", True),
        ],
        "New rules",
        voters=4,
    )
    assert status.state is ProposalState.EXECUTED and status.constitutional
    params = gov.parameters()
    assert (params.constitutional_quorum_percent, params.voting_period) == (70, 12)
    assert params.timelock_delay == 30
    assert not gov.classify([calls.expel(address_of(env.founders[9]))])
    # Calls on the governor and the timelock stay constitutional: such a proposal fails at execution.
    with pytest.raises(ChainError) as protected:
        env.pass_([calls.set_ordinary_call("CiseGovernor", "setVotingPeriod", True)], "Cheat", 6)
    assert protected.value.name == "CiseGovernorProtectedCall"

"""Membership: founders, applying, every decision of the members, votes, and every custom error.

Runs on the session chain of conftest.py with the governed set of governance_support.py (an
ordinary account, `gov`, stands in for the timelock).
"""

from __future__ import annotations

from typing import Any

import pytest
from cm_support import error_data
from eth_utils import keccak
from governance_support import (
    ACTIVE,
    ALL_ROLES,
    APPLIED,
    CODE_OF_CONDUCT,
    EXPELLED,
    FINANCIER,
    HUB,
    NONE,
    SERVICER,
    SUSPENDED,
    USER,
    ZERO_ADDRESS,
    Governed,
    constructor_revert,
    deploy,
    deploy_governed,
    next_address,
)

TESTED_ERRORS = {
    "MembershipZeroAddress",
    "MembershipNotGovernance",
    "MembershipInvalidRoles",
    "MembershipFoundersMismatch",
    "MembershipCodeOfConductMismatch",
    "MembershipUnexpectedStatus",
    "MembershipNotTransferable",
    "MembershipDelegationDisabled",
}
FOUNDER_ROLES = [ALL_ROLES, USER, HUB, FINANCIER]


@pytest.fixture(scope="session")
def _governed_deployed(_deployed) -> tuple[Governed, int]:
    chain, snapshot = _deployed
    chain.tester.revert_to_snapshot(snapshot)
    governed = deploy_governed(chain)
    return governed, chain.tester.take_snapshot()


@pytest.fixture
def g(_governed_deployed) -> Governed:
    governed, snapshot = _governed_deployed
    governed.chain.tester.revert_to_snapshot(snapshot)
    return governed


def _m(g: Governed) -> Any:
    return g.membership.functions


def _apply(g: Governed, who: Any, roles: int = USER) -> Any:
    return g.tx(_m(g).applyForMembership(roles, CODE_OF_CONDUCT), who)


def _votes(g: Governed, who: Any) -> int:
    g.chain.mine(1)  # votes are checkpointed per block
    return int(_m(g).getVotes(who.address).call())


# --------------------------------------------------------------------------- deployment


def test_every_custom_error_is_tested(g: Governed) -> None:
    names = {e["name"] for e in g.membership.abi if e["type"] == "error"}
    assert {n for n in names if n.startswith("Membership")} == TESTED_ERRORS


def test_founders_are_active_members_with_one_vote_each(g: Governed) -> None:
    m = _m(g)
    assert m.ALL_ROLES().call() == ALL_ROLES
    assert [m.ROLE_USER().call(), m.ROLE_HUB().call(), m.ROLE_FINANCIER().call()] == [
        USER, HUB, FINANCIER,
    ]  # fmt: skip
    for token_id, (founder, roles) in enumerate(zip(g.founders, FOUNDER_ROLES, strict=True), 1):
        status, got_roles, got_token, _ = m.memberOf(founder.address).call()
        assert (status, got_roles, got_token) == (ACTIVE, roles, token_id)
        assert m.ownerOf(token_id).call() == founder.address
        assert m.getVotes(founder.address).call() == 1
        assert m.delegates(founder.address).call() == founder.address
        assert m.isActiveMember(founder.address).call()
        assert g.cm.functions.isMember(founder.address).call()
    assert m.activeMembers().call() == len(g.founders)
    outsider = g.outsiders[0]
    assert m.memberOf(outsider.address).call() == [NONE, 0, 0, 0]
    assert not m.isActiveMember(outsider.address).call()
    assert not g.cm.functions.isMember(outsider.address).call()
    assert (m.governance().call(), m.channelManager().call(), m.parameters().call()) == (
        g.gov.address, g.cm.address, g.params.address,
    )  # fmt: skip


def test_constructor_errors(g: Governed) -> None:
    gov, cm, params, f0 = g.gov.address, g.cm.address, g.params.address, g.founders[0].address
    for args, error, error_args in (
        ((ZERO_ADDRESS, cm, params, [], []), "MembershipZeroAddress", ()),
        ((gov, ZERO_ADDRESS, params, [], []), "MembershipZeroAddress", ()),
        ((gov, cm, ZERO_ADDRESS, [], []), "MembershipZeroAddress", ()),
        ((gov, cm, params, [ZERO_ADDRESS], [USER]), "MembershipZeroAddress", ()),
        ((gov, cm, params, [f0], []), "MembershipFoundersMismatch", (1, 0)),
        ((gov, cm, params, [f0], [0]), "MembershipInvalidRoles", (0,)),
        ((gov, cm, params, [f0], [64]), "MembershipInvalidRoles", (64,)),
    ):
        got = constructor_revert(g.chain, "Membership", *args)
        assert got == error_data(g.membership.abi, error, *error_args), error
    # A founder listed twice: a manager that mirrors the next contract, and the second admission
    # finds an active member.
    fresh_cm = deploy(g.chain, "GovernedChannelManager", g.chain.token.address, 10,
                      next_address(g.chain, 1), gov)  # fmt: skip
    got = constructor_revert(
        g.chain, "Membership", gov, fresh_cm.address, params, [f0, f0], [USER, USER]
    )
    assert got == error_data(g.membership.abi, "MembershipUnexpectedStatus", f0, ACTIVE)


# --------------------------------------------------------------------------- applyForMembership


def test_apply(g: Governed) -> None:
    m, outsider = _m(g), g.outsiders[0]
    receipt = _apply(g, outsider, USER | SERVICER)
    assert g.events(receipt, "MembershipApplied", g.membership) == [
        {
            "account": outsider.address,
            "roles": USER | SERVICER,
            "codeOfConductHash": CODE_OF_CONDUCT,
        }
    ]
    status, roles, token, since = m.memberOf(outsider.address).call()
    assert (status, roles, token) == (APPLIED, USER | SERVICER, 0) and since > 0
    _apply(g, outsider, HUB)  # an applicant may change the roles it asks for
    assert m.memberOf(outsider.address).call()[:2] == [APPLIED, HUB]
    assert not m.isActiveMember(outsider.address).call()


def test_apply_errors(g: Governed) -> None:
    m, outsider, founder = _m(g), g.outsiders[0], g.founders[0]
    g.assert_reverts(
        m.applyForMembership(0, CODE_OF_CONDUCT), outsider, "MembershipInvalidRoles", 0
    )
    g.assert_reverts(
        m.applyForMembership(ALL_ROLES + 1, CODE_OF_CONDUCT), outsider, "MembershipInvalidRoles",
        ALL_ROLES + 1,
    )  # fmt: skip
    other = keccak(b"another code")
    g.assert_reverts(
        m.applyForMembership(USER, other), outsider, "MembershipCodeOfConductMismatch",
        other, CODE_OF_CONDUCT,
    )  # fmt: skip
    g.assert_reverts(
        m.applyForMembership(USER, CODE_OF_CONDUCT), founder, "MembershipUnexpectedStatus",
        founder.address, ACTIVE,
    )  # fmt: skip


# --------------------------------------------------------------------------- decisions


def test_only_governance_decides(g: Governed) -> None:
    m, founder, target = _m(g), g.founders[0], g.founders[1].address
    for fn in (
        m.admit(target),
        m.rejectApplication(target),
        m.suspend(target),
        m.reinstate(target),
        m.expel(target),
        m.setRoles(target, USER),
    ):
        g.assert_reverts(fn, founder, "MembershipNotGovernance", founder.address)


def test_admit(g: Governed) -> None:
    m, outsider = _m(g), g.outsiders[0]
    g.assert_reverts(
        m.admit(outsider.address), g.gov, "MembershipUnexpectedStatus", outsider.address, NONE
    )
    _apply(g, outsider, USER | HUB)
    receipt = g.tx(m.admit(outsider.address), g.gov)
    token_id = len(g.founders) + 1
    assert g.events(receipt, "MemberAdmitted", g.membership) == [
        {"account": outsider.address, "tokenId": token_id, "roles": USER | HUB}
    ]
    assert m.memberOf(outsider.address).call()[:3] == [ACTIVE, USER | HUB, token_id]
    assert m.ownerOf(token_id).call() == outsider.address
    assert g.cm.functions.isMember(outsider.address).call()
    assert _votes(g, outsider) == 1 and m.activeMembers().call() == len(g.founders) + 1
    g.assert_reverts(
        m.admit(outsider.address), g.gov, "MembershipUnexpectedStatus", outsider.address, ACTIVE
    )


def test_reject_application(g: Governed) -> None:
    m, outsider = _m(g), g.outsiders[0]
    g.assert_reverts(
        m.rejectApplication(outsider.address), g.gov, "MembershipUnexpectedStatus",
        outsider.address, NONE,
    )  # fmt: skip
    _apply(g, outsider)
    receipt = g.tx(m.rejectApplication(outsider.address), g.gov)
    assert g.events(receipt, "MembershipRejected", g.membership) == [{"account": outsider.address}]
    assert m.memberOf(outsider.address).call() == [NONE, 0, 0, 0]
    _apply(g, outsider)  # it may apply again


def test_suspend_and_reinstate(g: Governed) -> None:
    m, member = _m(g), g.founders[1]
    g.assert_reverts(
        m.reinstate(member.address), g.gov, "MembershipUnexpectedStatus", member.address, ACTIVE
    )
    receipt = g.tx(m.suspend(member.address), g.gov)
    assert g.events(receipt, "MemberSuspended", g.membership) == [{"account": member.address}]
    assert m.memberOf(member.address).call()[:3] == [SUSPENDED, USER, 2]
    assert not m.isActiveMember(member.address).call()
    assert not g.cm.functions.isMember(member.address).call()
    assert _votes(g, member) == 0 and m.activeMembers().call() == len(g.founders) - 1
    assert m.ownerOf(2).call() == member.address  # it keeps its token
    g.assert_reverts(
        m.suspend(member.address), g.gov, "MembershipUnexpectedStatus", member.address, SUSPENDED
    )
    receipt = g.tx(m.reinstate(member.address), g.gov)
    assert g.events(receipt, "MemberReinstated", g.membership) == [{"account": member.address}]
    assert m.memberOf(member.address).call()[0] == ACTIVE
    assert g.cm.functions.isMember(member.address).call()
    assert _votes(g, member) == 1 and m.activeMembers().call() == len(g.founders)


@pytest.mark.parametrize("suspended_first", [False, True])
def test_expel(g: Governed, suspended_first: bool) -> None:
    m, member, outsider = _m(g), g.founders[2], g.outsiders[0]
    g.assert_reverts(
        m.expel(outsider.address), g.gov, "MembershipUnexpectedStatus", outsider.address, NONE
    )
    if suspended_first:
        g.tx(m.suspend(member.address), g.gov)
    receipt = g.tx(m.expel(member.address), g.gov)
    assert g.events(receipt, "MemberExpelled", g.membership) == [
        {"account": member.address, "tokenId": 3}
    ]
    assert m.memberOf(member.address).call()[:3] == [EXPELLED, HUB, 3]
    assert m.balanceOf(member.address).call() == 0
    assert not g.cm.functions.isMember(member.address).call()
    assert _votes(g, member) == 0 and m.activeMembers().call() == len(g.founders) - 1
    for fn, sender in (
        (m.applyForMembership(USER, CODE_OF_CONDUCT), member),  # final
        (m.expel(member.address), g.gov),
        (m.reinstate(member.address), g.gov),
        (m.setRoles(member.address, USER), g.gov),
    ):
        g.assert_reverts(fn, sender, "MembershipUnexpectedStatus", member.address, EXPELLED)


def test_set_roles(g: Governed) -> None:
    m, member, outsider = _m(g), g.founders[1], g.outsiders[0]
    g.assert_reverts(m.setRoles(member.address, 0), g.gov, "MembershipInvalidRoles", 0)
    g.assert_reverts(
        m.setRoles(outsider.address, USER), g.gov, "MembershipUnexpectedStatus",
        outsider.address, NONE,
    )  # fmt: skip
    receipt = g.tx(m.setRoles(member.address, HUB | SERVICER), g.gov)
    assert g.events(receipt, "MemberRolesChanged", g.membership) == [
        {"account": member.address, "roles": HUB | SERVICER}
    ]
    g.tx(m.suspend(member.address), g.gov)
    g.tx(m.setRoles(member.address, USER), g.gov)  # a suspended member's roles may change too
    assert m.memberOf(member.address).call()[:2] == [SUSPENDED, USER]


# --------------------------------------------------------------------------- personal


def test_tokens_are_personal_and_votes_not_delegable(g: Governed) -> None:
    m, a, b = _m(g), g.founders[0], g.founders[1]
    for fn in (
        m.transferFrom(a.address, b.address, 1),
        m.approve(b.address, 1),
        m.setApprovalForAll(b.address, True),
    ):
        g.assert_reverts(fn, a, "MembershipNotTransferable")
    g.assert_reverts(m.delegate(b.address), a, "MembershipDelegationDisabled")
    g.assert_reverts(
        m.delegateBySig(b.address, 0, 2**40, 27, b"\1" * 32, b"\2" * 32), a,
        "MembershipDelegationDisabled",
    )  # fmt: skip
    assert _votes(g, a) == 1 and _votes(g, b) == 1

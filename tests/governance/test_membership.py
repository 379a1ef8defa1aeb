"""Membership on the embedded chain: a non-member is refused, an applicant is admitted by the members,
and a suspended or expelled member still closes, settles and withdraws (funds are never trapped)."""

from __future__ import annotations

import pytest

from channels.chain.artifacts import load_artifact
from channels.chain.assets import AssetRegistryClient
from channels.chain.client import ChannelState, Web3ChainClient, ordered
from channels.chain.errors import ChainError
from channels.chain.governance import (
    MemberStatus,
    ProposalState,
    Role,
    admit_by_vote,
)
from channels.codec.eip712 import cooperative_close_digest
from channels.codec.keccak import keccak
from channels.core.types import ChannelId
from channels.signer import LocalSigner
from tests.governance.govfix import EURO, SETTLE_TIMEOUT, GovEnv

SPLIT = ((b"\x11" * 20,), (1_000_000,))


def _register(client: AssetRegistryClient, name: str) -> None:
    client.register_asset(keccak(name.encode()), client.address, b"\0" * 32, "", *SPLIT)


def _registry_error(exc: ChainError) -> str:
    """The governed registry's own errors decode with its ABI (the plain registry's has not them)."""
    decoded = load_artifact("GovernedAssetRegistry").abi.decode_error(exc.data)
    return "" if decoded is None else decoded[0]


def test_a_non_member_is_refused_until_the_members_admit_it(env: GovEnv) -> None:
    founder, outsider_account = env.founders[0], env.outsider("applicant")
    outsider, member = env.chain(outsider_account), env.chain(founder)
    outsider.approve(10 * EURO)
    member.approve(10 * EURO)
    for opener, partner in ((outsider, member), (member, outsider)):
        with pytest.raises(ChainError) as refused:
            opener.open_channel(partner.address, EURO)
        assert refused.value.name == "ChannelManagerNotMember"
        assert refused.value.error_args == (outsider.address,)
    with pytest.raises(ChainError) as refused:
        outsider.open_channel_from_balance(member.address, 0)
    assert refused.value.name == "ChannelManagerNotMember"
    registry = AssetRegistryClient(env.connection, env.deployment, outsider_account)
    with pytest.raises(ChainError) as not_registered:
        _register(registry, "an outsider's washer")
    assert _registry_error(not_registered.value) == "AssetRegistryNotMember"

    gov = env.gov(outsider_account)
    with pytest.raises(ChainError) as unaccepted:
        gov.apply_for_membership(Role.USER, keccak(b"some other text"))
    assert unaccepted.value.name == "MembershipCodeOfConductMismatch"
    status = admit_by_vote(
        env.connection,
        env.deployment,
        {outsider_account: Role.USER | Role.ASSET_OPERATOR},
        env.founders[:2],
        title="Admit a washing-machine operator",
    )
    assert status.state is ProposalState.EXECUTED and not status.constitutional
    assert status.record.description.endswith(f"- admit {outsider_account.address}")
    info = gov.member_of(outsider.address)
    assert info.status is MemberStatus.ACTIVE and info.roles == Role.USER | Role.ASSET_OPERATOR
    assert info.token_id == len(env.founders) + 1 and gov.may_open_channels(outsider.address)
    assert gov.active_members() == len(env.founders) + 1
    channel_id, _ = outsider.open_channel(member.address, EURO)
    member.open_channel(outsider.address, EURO)
    assert outsider.get_channel(channel_id, outsider.address, member.address).state is (
        ChannelState.OPENED
    )
    _register(registry, "an admitted operator's washer")
    env.connection.mine(1)
    assert gov.votes(outsider.address) == 1


def _settle_and_withdraw(env: GovEnv, who: Web3ChainClient, partner: Web3ChainClient, cid: int):
    """`who` closes alone, settles after the challenge period, and withdraws all to its wallet."""
    closed = who.close_channel(ChannelId(cid), partner.address, 0, 0, 0, b"\0" * 32, b"")
    env.connection.mine_until(closed.block_number + SETTLE_TIMEOUT + 1)
    who.settle_channel(ChannelId(cid), *ordered(who.address, partner.address))
    balance = who.balance_of(who.address)
    wallet = who.token_balance(who.address)
    who.withdraw_from_balance(balance)
    assert who.token_balance(who.address) == wallet + balance
    return balance


def test_a_suspended_member_closes_settles_and_withdraws_but_opens_nothing(env: GovEnv) -> None:
    f = env.founders
    suspended_account, partner_account = f[8], f[9]
    suspended, partner = env.chain(suspended_account), env.chain(partner_account)
    unilateral = env.open(suspended_account, partner_account, 7 * EURO)
    cooperative = env.open(partner_account, suspended_account, 3 * EURO)
    gov = env.gov(f[0])
    status = env.pass_([gov.calls.suspend(suspended.address)], "Suspend member 8")
    assert status.state is ProposalState.EXECUTED and not status.constitutional
    assert gov.member_of(suspended.address).status is MemberStatus.SUSPENDED
    assert not gov.may_open_channels(suspended.address) and not gov.is_active_member(
        suspended.address
    )
    assert gov.active_members() == len(f) - 1

    # No new channel either way, no vote, no proposal.
    for opener, other in ((suspended, partner), (partner, suspended)):
        opener.approve(EURO)
        with pytest.raises(ChainError) as refused:
            opener.open_channel(other.address, EURO)
        assert refused.value.name == "ChannelManagerNotMember"
    env.connection.mine(1)
    assert env.gov().votes(suspended.address) == 0
    with pytest.raises(ChainError) as no_proposal:
        env.gov(suspended_account).propose([gov.calls.set_hub_fee_cap(1)], "Mine")
    assert no_proposal.value.name == "GovernorInsufficientProposerVotes"

    # Its channels still close (cooperatively and alone), settle and pay out.
    p1, p2 = ordered(suspended.address, partner.address)
    balances = (3 * EURO, 0) if p1 == partner.address else (0, 3 * EURO)
    digest = cooperative_close_digest(suspended.domain(), cooperative, *balances)
    signatures = [
        LocalSigner(a.key).sign_digest(digest) for a in (suspended_account, partner_account)
    ]
    if p1 != suspended.address:
        signatures.reverse()
    suspended.cooperative_close(ChannelId(cooperative), p1, p2, *balances, *signatures)
    assert _settle_and_withdraw(env, suspended, partner, unilateral) == 7 * EURO
    partner_balance = partner.balance_of(partner.address)
    assert partner_balance == 3 * EURO  # the cooperative close credited it

    # Reinstated, it opens again.
    env.pass_([gov.calls.reinstate(suspended.address)], "Reinstate member 8")
    assert gov.may_open_channels(suspended.address)
    suspended.approve(EURO)
    suspended.open_channel(partner.address, EURO)


def test_an_expelled_member_gets_its_funds_out_and_cannot_come_back(env: GovEnv) -> None:
    f = env.founders
    expelled_account, partner_account = f[8], f[9]
    expelled, partner = env.chain(expelled_account), env.chain(partner_account)
    channel_id = env.open(expelled_account, partner_account, 4 * EURO)
    gov = env.gov(f[0])
    expel = gov.calls.expel(expelled.address)
    assert gov.classify([expel])  # constitutional: the constitutional quorum (5) and delay
    status = env.pass_([expel], "Expel member 8", voters=4)
    assert status.state is ProposalState.EXECUTED and status.constitutional and status.quorum == 5
    info = gov.member_of(expelled.address)
    assert info.status is MemberStatus.EXPELLED and info.token_id == 9
    assert gov.active_members() == len(f) - 1 and not gov.may_open_channels(expelled.address)
    assert _settle_and_withdraw(env, expelled, partner, channel_id) == 4 * EURO
    with pytest.raises(ChainError) as final:
        env.gov(expelled_account).apply_for_membership(
            Role.USER, gov.parameters().code_of_conduct.hash
        )
    assert final.value.name == "MembershipUnexpectedStatus"
    assert final.value.error_args == (expelled.address, MemberStatus.EXPELLED)

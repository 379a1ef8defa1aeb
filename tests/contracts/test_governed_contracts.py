"""GovernedChannelManager, GovernedAssetRegistry and NetworkParameters: membership on open and on
registration, the governed parameters and their bounds, funds out for a suspended member, gas.

Runs on the session chain of conftest.py with the governed set of governance_support.py (an
ordinary account, `gov`, stands in for the timelock; Membership's own tests are
test_membership_contract.py).
"""

from __future__ import annotations

from typing import Any

import pytest
from cm_support import ZERO, error_data
from eth_utils import keccak
from governance_support import (
    ADMISSION_RULES,
    CODE_OF_CONDUCT,
    HUB_FEE_CAP,
    SETTLE_TIMEOUT,
    SETTLEMENT_PERIOD,
    ZERO_ADDRESS,
    Governed,
    constructor_revert,
    deploy_governed,
)

from channels.codec.eip712 import Domain

# The membership check on open reads one cold slot per participant (2 x 2,100 gas) and little else.
OPEN_OVERHEAD_MAX = 4_600
CM_ERRORS = {"ChannelManagerNotMember", "ChannelManagerNotGovernance",
             "ChannelManagerNotMembership", "ChannelManagerZeroGovernance"}  # fmt: skip
PARAMETERS_ERRORS = {
    "NetworkParametersZeroGovernance",
    "NetworkParametersNotGovernance",
    "NetworkParametersHubFeeCapOutOfRange",
    "NetworkParametersSettlementPeriodOutOfRange",
    "NetworkParametersZeroDocumentHash",
    "NetworkParametersTreasuryFeeOutOfRange",
}
REGISTRY_ERRORS = {"AssetRegistryNotMember", "AssetRegistryZeroMembership"}


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


def _register(g: Governed, operator: Any, label: str) -> Any:
    return g.registry.functions.registerAsset(
        keccak(label.encode()), operator.address, ZERO, "", [g.founders[3].address], [1_000_000]
    )


def test_the_new_errors_are_tested(g: Governed) -> None:
    # Each named error below is asserted by a test of this file; the plain contracts' own errors by
    # their own tests.
    cm_errors = {e["name"] for e in g.cm.abi if e["type"] == "error"}
    assert cm_errors >= CM_ERRORS
    assert {e["name"] for e in g.params.abi if e["type"] == "error"} == PARAMETERS_ERRORS
    registry_errors = {e["name"] for e in g.registry.abi if e["type"] == "error"}
    assert registry_errors >= REGISTRY_ERRORS


# --------------------------------------------------------------------------- the channel manager


def test_only_members_open_and_only_to_members(g: Governed) -> None:
    cm, member, other, outsider = g.cm.functions, g.founders[0], g.founders[1], g.outsiders[0]
    for opener, partner in ((outsider, member), (member, outsider)):
        g.assert_reverts(
            cm.openChannel(partner.address, 100),
            opener,
            "ChannelManagerNotMember",
            outsider.address,
        )
    g.chain.tx(cm.depositToBalance(100), outsider)  # money in is always fine
    g.assert_reverts(
        cm.openChannelFromBalance(member.address, 100), outsider, "ChannelManagerNotMember",
        outsider.address,
    )  # fmt: skip
    channel_id = g.open(member, other, 100)
    assert g.chain.tokens(g.cm.address) == 200
    assert g.cm.functions.getChannel(channel_id, member.address, other.address).call()[0] == 1


def test_a_suspended_member_keeps_its_channels_and_gets_its_funds_out(g: Governed) -> None:
    cm, m = g.cm.functions, g.membership.functions
    member, other = g.founders[1], g.founders[2]
    closing, cooperative = g.open(member, other, 700), g.open(other, member, 300)
    g.tx(m.suspend(member.address), g.gov)
    g.assert_reverts(
        cm.openChannel(other.address, 0), member, "ChannelManagerNotMember", member.address
    )
    g.assert_reverts(
        cm.openChannel(member.address, 0), other, "ChannelManagerNotMember", member.address
    )
    g.tx(cm.setTotalDeposit(closing, other.address, 800), member)  # its open channels go on
    p1, p2 = sorted([member, other], key=lambda a: int(a.address, 16))
    balances = (300, 0) if p1 is other else (0, 300)
    digest_sigs = [
        g.chain.sign_coop(a, cooperative, *balances, domain=_domain(g)) for a in (p1, p2)
    ]
    g.tx(cm.cooperativeClose(cooperative, p1.address, p2.address, *balances, *digest_sigs), member)
    g.tx(cm.closeChannel(closing, other.address, 0, 0, 0, ZERO, b""), member)
    g.chain.mine(SETTLE_TIMEOUT + 1)
    g.tx(cm.settleChannel(closing, p1.address, p2.address), member)
    g.tx(m.expel(member.address), g.gov)  # even expelled, it takes its money out
    wallet = g.chain.tokens(member)
    g.tx(cm.withdrawFromBalance(800, member.address), member)
    assert g.chain.tokens(member) == wallet + 800
    g.tx(cm.withdrawFromBalance(300, other.address), other)
    assert cm.balanceOf(member.address).call() == 0 == cm.balanceOf(other.address).call()


def _domain(g: Governed) -> Domain:
    return Domain(g.chain.w3.eth.chain_id, bytes.fromhex(g.cm.address[2:]))


def test_set_settle_timeout(g: Governed) -> None:
    cm, member = g.cm.functions, g.founders[0]
    g.assert_reverts(cm.setSettleTimeout(30), member, "ChannelManagerNotGovernance", member.address)
    for bad in (4, 1_000_001):
        g.assert_reverts(
            cm.setSettleTimeout(bad), g.gov, "ChannelManagerSettleTimeoutOutOfRange",
            bad, 5, 1_000_000,
        )  # fmt: skip
    receipt = g.tx(cm.setSettleTimeout(30), g.gov)
    assert g.events(receipt, "SettleTimeoutSet", g.cm) == [{"settleTimeout": 30}]
    assert cm.settleTimeout().call() == 30
    channel_id = g.open(member, g.founders[1], 10)
    closed = g.tx(cm.closeChannel(channel_id, g.founders[1].address, 0, 0, 0, ZERO, b""), member)
    assert g.events(closed, "ChannelClosed", g.cm)[0]["settleBlock"] == closed.blockNumber + 30


def test_only_the_membership_contract_mirrors(g: Governed) -> None:
    cm, outsider = g.cm.functions, g.outsiders[0]
    for sender in (g.gov, outsider):
        g.assert_reverts(
            cm.setMemberActive(outsider.address, True), sender, "ChannelManagerNotMembership",
            sender.address,
        )  # fmt: skip
    assert (cm.membership().call(), cm.governance().call()) == (g.membership.address, g.gov.address)


def test_channel_manager_constructor_errors(g: Governed) -> None:
    token, gov, membership = g.chain.token.address, g.gov.address, g.membership.address
    expected = error_data(g.cm.abi, "ChannelManagerZeroGovernance")
    assert (
        constructor_revert(g.chain, "GovernedChannelManager", token, 10, ZERO_ADDRESS, gov)
        == expected
    )
    assert (
        constructor_revert(g.chain, "GovernedChannelManager", token, 10, membership, ZERO_ADDRESS)
        == expected
    )


def test_open_costs_little_more_than_on_an_open_manager(g: Governed) -> None:
    # The same open (with an ERC20 deposit, a running manager, a member with a balance) on the plain
    # manager and on the governed one.
    chain, a, b = g.chain, g.founders[0], g.founders[1]
    for cm in (chain.cm, g.cm):
        chain.tx(cm.functions.depositToBalance(1), a)
        chain.tx(cm.functions.openChannel(b.address, 1), a)
    plain = chain.tx(chain.cm.functions.openChannel(b.address, 1000), a).gasUsed
    governed = chain.tx(g.cm.functions.openChannel(b.address, 1000), a).gasUsed
    assert 0 < governed - plain <= OPEN_OVERHEAD_MAX, (plain, governed)


# --------------------------------------------------------------------------- the asset registry


def test_only_members_register_and_receive_assets(g: Governed) -> None:
    reg, member, outsider = g.registry.functions, g.founders[0], g.outsiders[0]
    g.assert_reverts(
        _register(g, outsider, "a"), outsider, "AssetRegistryNotMember", outsider.address
    )
    g.tx(_register(g, member, "a"), member)
    asset = keccak(b"a")
    g.assert_reverts(
        reg.transferAsset(asset, outsider.address),
        member,
        "AssetRegistryNotMember",
        outsider.address,
    )
    g.tx(g.membership.functions.suspend(member.address), g.gov)
    g.assert_reverts(_register(g, member, "b"), member, "AssetRegistryNotMember", member.address)
    # The asset it registered keeps its ledger and its split going.
    g.tx(reg.anchorLedger(asset, 1, 5, keccak(b"root"), keccak(b"head")), member)
    split = ([g.founders[3].address], [1_000_000])  # lowers nobody: no consent needed
    g.tx(reg.changeSplit(asset, split, split, []), member)
    g.tx(reg.transferAsset(asset, g.founders[2].address), member)
    assert reg.membership().call() == g.membership.address


def test_registry_constructor_error(g: Governed) -> None:
    got = constructor_revert(
        g.chain, "GovernedAssetRegistry", ZERO_ADDRESS, g.gov.address, ZERO_ADDRESS
    )
    assert got == error_data(g.registry.abi, "AssetRegistryZeroMembership")


# --------------------------------------------------------------------------- the parameters


def test_parameters_at_deployment(g: Governed) -> None:
    p = g.params.functions
    assert p.governance().call() == g.gov.address
    assert (p.hubFeeCap().call(), p.settlementPeriod().call()) == (HUB_FEE_CAP, SETTLEMENT_PERIOD)
    assert (p.codeOfConductHash().call(), p.codeOfConductURI().call()) == (
        CODE_OF_CONDUCT,
        "urn:coc:1",
    )
    assert (p.admissionRulesHash().call(), p.admissionRulesURI().call()) == (
        ADMISSION_RULES,
        "urn:rules:1",
    )
    assert (p.MAX_HUB_FEE_CAP().call(), p.MIN_SETTLEMENT_PERIOD().call(), p.MAX_SETTLEMENT_PERIOD().call()) == (
        1_000_000, 3_600, 90 * 86_400,
    )  # fmt: skip


def test_parameter_setters(g: Governed) -> None:
    p, member = g.params.functions, g.founders[0]
    new_code = keccak(b"code v2")
    for fn in (
        p.setHubFeeCap(1),
        p.setSettlementPeriod(3_600),
        p.setCodeOfConduct(new_code, "urn:coc:2"),
        p.setAdmissionRules(new_code, "urn:rules:2"),
    ):
        g.assert_reverts(fn, member, "NetworkParametersNotGovernance", member.address)
    g.assert_reverts(p.setHubFeeCap(1_000_001), g.gov, "NetworkParametersHubFeeCapOutOfRange",
                     1_000_001, 1_000_000)  # fmt: skip
    for bad in (3_599, 90 * 86_400 + 1):
        g.assert_reverts(p.setSettlementPeriod(bad), g.gov,
                         "NetworkParametersSettlementPeriodOutOfRange", bad, 3_600, 90 * 86_400)  # fmt: skip
    for fn in (p.setCodeOfConduct(ZERO, "x"), p.setAdmissionRules(ZERO, "x")):
        g.assert_reverts(fn, g.gov, "NetworkParametersZeroDocumentHash")
    for fn, event, args in (
        (p.setHubFeeCap(0), "HubFeeCapSet", {"hubFeeCap": 0}),
        (p.setSettlementPeriod(7_200), "SettlementPeriodSet", {"settlementPeriod": 7_200}),
        (p.setCodeOfConduct(new_code, "urn:coc:2"), "CodeOfConductSet",
         {"documentHash": new_code, "uri": "urn:coc:2"}),
        (p.setAdmissionRules(new_code, "urn:rules:2"), "AdmissionRulesSet",
         {"documentHash": new_code, "uri": "urn:rules:2"}),
    ):  # fmt: skip
        assert g.events(g.tx(fn, g.gov), event, g.params) == [args]
    assert (p.hubFeeCap().call(), p.settlementPeriod().call(), p.codeOfConductHash().call()) == (
        0, 7_200, new_code,
    )  # fmt: skip
    # Applicants now accept the new code.
    m, outsider = g.membership.functions, g.outsiders[0]
    g.assert_reverts(m.applyForMembership(1, CODE_OF_CONDUCT), outsider,
                     "MembershipCodeOfConductMismatch", CODE_OF_CONDUCT, new_code)  # fmt: skip
    g.tx(m.applyForMembership(1, new_code), outsider)


def test_treasury_fee_setter(g: Governed) -> None:
    p, member = g.params.functions, g.founders[0]
    assert (p.treasuryFeePpm().call(), p.MAX_TREASURY_FEE_PPM().call()) == (0, 200_000)
    g.assert_reverts(p.setTreasuryFeePpm(1), member, "NetworkParametersNotGovernance",
                     member.address)  # fmt: skip
    g.assert_reverts(p.setTreasuryFeePpm(200_001), g.gov,
                     "NetworkParametersTreasuryFeeOutOfRange", 200_001, 200_000)  # fmt: skip
    for ppm in (200_000, 0):
        receipt = g.tx(p.setTreasuryFeePpm(ppm), g.gov)
        assert g.events(receipt, "TreasuryFeePpmSet", g.params) == [{"treasuryFeePpm": ppm}]
        assert p.treasuryFeePpm().call() == ppm


def test_parameters_constructor_errors(g: Governed) -> None:
    good = [g.gov.address, 0, 3_600, CODE_OF_CONDUCT, "", ADMISSION_RULES, ""]
    for index, value, error, args in (
        (0, ZERO_ADDRESS, "NetworkParametersZeroGovernance", ()),
        (1, 1_000_001, "NetworkParametersHubFeeCapOutOfRange", (1_000_001, 1_000_000)),
        (2, 0, "NetworkParametersSettlementPeriodOutOfRange", (0, 3_600, 90 * 86_400)),
        (3, ZERO, "NetworkParametersZeroDocumentHash", ()),
        (5, ZERO, "NetworkParametersZeroDocumentHash", ()),
    ):
        bad = list(good)
        bad[index] = value
        assert constructor_revert(g.chain, "NetworkParameters", *bad) == error_data(
            g.params.abi, error, *args
        )

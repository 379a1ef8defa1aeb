"""CiseGovernor: its construction, classes, quorums and guards (the full proposal path through the
timelock runs in tests/governance, on a network as `deploy()` builds it)."""

from __future__ import annotations

from typing import Any

import pytest
from cm_support import error_data, revert_data
from eth_tester.exceptions import TransactionFailed
from eth_utils import keccak
from governance_support import Governed, constructor_revert, deploy, deploy_governed, next_address

TESTED_ERRORS = {
    "CiseGovernorOrdinaryListMismatch",
    "CiseGovernorProtectedCall",
    "CiseGovernorInvalidConstitutionalQuorum",
    "CiseGovernorConstitutionalDelayTooLong",
    "CiseGovernorProposalNotReady",  # tests/governance: test_proposal_lifecycle, test_constitutional
}
SET_SETTLE_TIMEOUT = keccak(b"setSettleTimeout(uint256)")[:4]


@pytest.fixture(scope="session")
def _governor_deployed(_deployed) -> tuple[Governed, Any, str, int]:
    chain, snapshot = _deployed
    chain.tester.revert_to_snapshot(snapshot)
    g = deploy_governed(chain)
    timelock = g.chain.actors[8].address  # any address: these tests never queue
    governor = deploy(chain, "CiseGovernor", g.membership.address, timelock, 1, 10, 20, 50, 300,
                      [g.cm.address], [SET_SETTLE_TIMEOUT])  # fmt: skip
    return g, governor, timelock, chain.tester.take_snapshot()


@pytest.fixture
def setup(_governor_deployed) -> tuple[Governed, Any, str]:
    g, governor, timelock, snapshot = _governor_deployed
    g.chain.tester.revert_to_snapshot(snapshot)
    return g, governor, timelock


def _args(g: Governed, timelock: str, **change: Any) -> list[Any]:
    values = {
        "token": g.membership.address,
        "timelock": timelock,
        "voting_delay": 1,
        "voting_period": 10,
        "quorum": 20,
        "constitutional_quorum": 50,
        "constitutional_delay": 300,
        "targets": [g.cm.address],
        "selectors": [SET_SETTLE_TIMEOUT],
    } | change
    return list(values.values())


def test_every_custom_error_is_tested(setup) -> None:
    _, governor, _ = setup
    names = {e["name"] for e in governor.abi if e["type"] == "error"}
    assert {n for n in names if n.startswith("CiseGovernor")} == TESTED_ERRORS


def test_deployed_settings(setup) -> None:
    g, governor, timelock = setup
    f = governor.functions
    assert (f.name().call(), f.timelock().call(), f.token().call()) == (
        "CISE Governor", timelock, g.membership.address,
    )  # fmt: skip
    assert (f.votingDelay().call(), f.votingPeriod().call(), f.proposalThreshold().call()) == (
        1,
        10,
        1,
    )
    assert (f.quorumNumerator().call(), f.constitutionalQuorumNumerator().call()) == (20, 50)
    assert f.constitutionalDelay().call() == 300
    assert f.COUNTING_MODE().call() == "support=bravo&quorum=for,abstain"
    assert f.CLOCK_MODE().call() == "mode=blocknumber&from=default"
    g.chain.mine(1)
    block = g.chain.block - 1  # the governor's deployment block
    # 4 founders: ordinary 20% -> 0 (floor), constitutional 50% -> 2; before the governor, no quorum.
    assert (f.quorum(block).call(), f.constitutionalQuorum(block).call()) == (0, 2)
    assert f.constitutionalQuorum(block - 1).call() == 0
    assert f.MAX_CONSTITUTIONAL_DELAY().call() == 365 * 86_400


def test_classes(setup) -> None:
    g, governor, _ = setup
    f = governor.functions
    ordinary = SET_SETTLE_TIMEOUT + (40).to_bytes(32, "big")
    assert f.isOrdinaryCall(g.cm.address, SET_SETTLE_TIMEOUT).call()
    assert not f.isOrdinaryCall(g.params.address, SET_SETTLE_TIMEOUT).call()
    assert not f.classify([g.cm.address], [0], [ordinary]).call()
    for targets, values, calldatas in (
        ([g.cm.address], [1], [ordinary]),  # ether
        ([g.cm.address], [0], [b"\xc2\x64"]),  # no selector
        ([g.params.address], [0], [ordinary]),  # another target
        ([g.cm.address, g.cm.address], [0, 0], [ordinary, bytes.fromhex("12345678")]),
    ):
        assert f.classify(targets, values, calldatas).call()


def test_only_governance_changes_the_governor(setup) -> None:
    g, governor, _ = setup
    f, member = governor.functions, g.founders[0]
    abi = governor.abi
    for fn in (
        f.setOrdinaryCall(g.cm.address, SET_SETTLE_TIMEOUT, False),
        f.setConstitutionalQuorumNumerator(60),
        f.setConstitutionalDelay(600),
        f.updateQuorumNumerator(30),
        f.setVotingPeriod(20),
    ):
        with pytest.raises(TransactionFailed) as info:
            fn.call({"from": member.address})
        assert revert_data(info.value) == error_data(abi, "GovernorOnlyExecutor", member.address)


def test_constructor_errors(setup) -> None:
    g, governor, timelock = setup
    abi = governor.abi
    selector = SET_SETTLE_TIMEOUT
    for change, error, args in (
        ({"selectors": []}, "CiseGovernorOrdinaryListMismatch", (1, 0)),
        ({"targets": [timelock]}, "CiseGovernorProtectedCall", (timelock, selector)),
        ({"constitutional_quorum": 101}, "CiseGovernorInvalidConstitutionalQuorum", (101, 100)),
        (
            {"constitutional_delay": 365 * 86_400 + 1},
            "CiseGovernorConstitutionalDelayTooLong",
            (365 * 86_400 + 1, 365 * 86_400),
        ),
    ):
        got = constructor_revert(g.chain, "CiseGovernor", *_args(g, timelock, **change))
        assert got == error_data(abi, error, *args), error
    itself = next_address(g.chain)  # the governor being created
    got = constructor_revert(g.chain, "CiseGovernor", *_args(g, timelock, targets=[itself]))
    assert got == error_data(abi, "CiseGovernorProtectedCall", itself, selector)

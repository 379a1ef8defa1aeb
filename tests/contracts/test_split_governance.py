"""GovernedAssetRegistry split changes (issue 19): pool protection and the two governance paths.

A financing pool of the network's factory that has not been repaid its cap cannot be lowered or
removed by the operator, with or without anything, nor by an ordinary proposal
(`changeSplitByGovernance`); only a constitutional one may (`changeSplitByConstitution`). A pool
repaid its cap, or failed, is lowered by the operator alone (what it receives goes on to the
operator). The governance paths need no consents (a beneficiary that is a contract or does not
answer). Runs on financing_support's governed set, whose `admin` stands in for the timelock.
"""

from __future__ import annotations

from typing import Any

import pytest
from cm_support import Actor, error_data
from financing_support import ASSET, TARGET, ZERO_ADDRESS, Financing, deploy_financing
from governance_support import constructor_revert
from registry_support import ascending, current_split


@pytest.fixture(scope="session")
def _split_governance_deployed(_deployed) -> tuple[Financing, int]:
    chain, snapshot = _deployed
    chain.tester.revert_to_snapshot(snapshot)
    financing = deploy_financing(chain)
    registry = financing.gov.registry
    chain.tx(registry.functions.setPoolFactory(financing.member_factory.address), chain.admin)
    return financing, chain.tester.take_snapshot()


@pytest.fixture
def fin(_split_governance_deployed) -> Financing:
    financing, snapshot = _split_governance_deployed
    financing.chain.tester.revert_to_snapshot(snapshot)
    return financing


def _current(fin: Financing) -> tuple[list[str], list[int]]:
    return current_split(fin.gov.registry, ASSET)


def _parts(split: tuple[list[str], list[int]]) -> dict[str, int]:
    return dict(zip(*split, strict=True))


def _split(parts: dict[str, int]) -> tuple[list[str], list[int]]:
    beneficiaries = ascending([b for b, p in parts.items() if p > 0])
    return beneficiaries, [parts[b] for b in beneficiaries]


def _change(fin: Financing, parts: dict[str, int], how: str = "operator") -> Any:
    f = fin.gov.registry.functions
    current, new = _current(fin), _split(parts)
    if how == "operator":
        return f.changeSplit(ASSET, current, new, [])
    if how == "governance":
        return f.changeSplitByGovernance(ASSET, current, new)
    return f.changeSplitByConstitution(ASSET, current, new)


def _with_pool(fin: Financing, ppm: int = 200_000) -> tuple[Any, dict[str, int]]:
    """A pool of the network's factory put in the split at the operator's expense."""
    pool, _ = fin.create()
    parts = _parts(_current(fin))
    parts[fin.operator.address] -= ppm
    parts[pool.address] = ppm
    fin.tx(_change(fin, parts), fin.operator)
    return pool, parts


def _without_pool(parts: dict[str, int], pool: Any, operator: Actor) -> dict[str, int]:
    moved = dict(parts)
    moved[operator.address] += moved.pop(pool.address)
    return moved


def _fund_and_repay(fin: Financing, pool: Any, repay: int) -> None:
    members = fin.gov.founders[1:4]
    fin.contribute(pool, members[0], TARGET // 2)
    fin.contribute(pool, members[1], TARGET // 2)
    fin.pay(pool, repay)
    fin.tx(pool.functions.sync(), members[2])


def test_the_operator_never_lowers_an_unrepaid_pool(fin: Financing) -> None:
    pool, parts = _with_pool(fin)
    removed, lowered = _without_pool(parts, pool, fin.operator), dict(parts)
    lowered[pool.address] -= 1
    lowered[fin.operator.address] += 1
    for target in (removed, lowered):
        fin.assert_reverts(
            _change(fin, target), fin.operator, "AssetRegistrySplitLowersUnrepaidPool",
            pool.address, pools=(pool,),
        )  # fmt: skip
    # Funded, repaid below its cap: still protected.
    _fund_and_repay(fin, pool, 10_000)
    assert fin.state_of(pool)["status"] == 1
    fin.assert_reverts(
        _change(fin, removed), fin.operator, "AssetRegistrySplitLowersUnrepaidPool",
        pool.address, pools=(pool,),
    )  # fmt: skip


def test_an_ordinary_proposal_may_not_lower_an_unrepaid_pool(fin: Financing) -> None:
    pool, parts = _with_pool(fin)
    fin.assert_reverts(
        _change(fin, _without_pool(parts, pool, fin.operator), "governance"),
        fin.chain.admin, "AssetRegistrySplitLowersUnrepaidPool", pool.address, pools=(pool,),
    )  # fmt: skip


def test_a_constitutional_proposal_may(fin: Financing) -> None:
    pool, parts = _with_pool(fin)
    removed = _without_pool(parts, pool, fin.operator)
    receipt = fin.tx(_change(fin, removed, "constitution"), fin.chain.admin)
    assert fin.chain.events(receipt, "SplitChanged", fin.gov.registry)[0]["version"] == 3
    assert _current(fin) == _split(removed)


def test_a_repaid_pool_is_lowered_by_the_operator_alone(fin: Financing) -> None:
    pool, parts = _with_pool(fin)
    _fund_and_repay(fin, pool, pool.functions.cap().call())
    state = fin.state_of(pool)
    assert state["repaid"] == pool.functions.cap().call()
    fin.tx(_change(fin, _without_pool(parts, pool, fin.operator)), fin.operator)
    assert pool.address not in _current(fin)[0]


def test_a_failed_pool_is_lowered_by_the_operator_alone(fin: Financing) -> None:
    pool, parts = _with_pool(fin)
    fin.chain.mine(60)
    assert fin.state_of(pool)["status"] == 2
    fin.tx(_change(fin, _without_pool(parts, pool, fin.operator)), fin.operator)
    assert pool.address not in _current(fin)[0]


def test_governance_lowers_a_beneficiary_without_its_consent(fin: Financing) -> None:
    parts = _parts(_current(fin))
    other = next(b for b in parts if b != fin.operator.address)
    lowered = dict(parts)
    lowered[other] -= 100_000
    lowered[fin.operator.address] += 100_000
    fin.assert_reverts(
        _change(fin, lowered), fin.operator, "AssetRegistrySplitConsentMissing", other
    )
    fin.tx(_change(fin, lowered, "governance"), fin.chain.admin)
    assert _current(fin) == _split(lowered)


def test_governance_paths_are_for_the_timelock_only(fin: Financing) -> None:
    parts = _parts(_current(fin))
    for how in ("governance", "constitution"):
        fin.assert_reverts(
            _change(fin, parts, how), fin.operator, "AssetRegistryNotGovernance",
            fin.operator.address,
        )  # fmt: skip
    f = fin.gov.registry.functions
    fin.assert_reverts(
        f.setPoolFactory(ZERO_ADDRESS), fin.operator, "AssetRegistryNotGovernance",
        fin.operator.address,
    )  # fmt: skip
    fin.assert_reverts(
        f.changeSplitByGovernance(b"\x01" * 32, _current(fin), _current(fin)),
        fin.chain.admin, "AssetRegistryUnknownAsset", b"\x01" * 32,
    )  # fmt: skip


def test_set_pool_factory(fin: Financing) -> None:
    registry = fin.gov.registry
    assert registry.functions.poolFactory().call() == fin.member_factory.address
    assert registry.functions.governance().call() == fin.chain.admin.address
    pool, parts = _with_pool(fin)
    receipt = fin.tx(registry.functions.setPoolFactory(ZERO_ADDRESS), fin.chain.admin)
    assert fin.chain.events(receipt, "PoolFactorySet", registry) == [{"factory": ZERO_ADDRESS}]
    # Without a factory nothing is a pool: it is a beneficiary like any other (a contract, which
    # cannot sign), lowered by an ordinary proposal.
    removed = _without_pool(parts, pool, fin.operator)
    fin.assert_reverts(
        _change(fin, removed), fin.operator, "AssetRegistrySplitConsentMissing", pool.address,
        pools=(pool,),
    )  # fmt: skip
    fin.tx(_change(fin, removed, "governance"), fin.chain.admin)


def test_a_pool_of_another_factory_is_a_plain_beneficiary(fin: Financing) -> None:
    pool, _ = fin.create(factory=fin.open_factory)
    parts = _parts(_current(fin))
    parts[fin.operator.address] -= 1
    parts[pool.address] = 1
    fin.tx(_change(fin, parts), fin.operator)
    removed = _without_pool(parts, pool, fin.operator)
    fin.assert_reverts(
        _change(fin, removed), fin.operator, "AssetRegistrySplitConsentMissing", pool.address,
        pools=(pool,),
    )  # fmt: skip
    fin.tx(_change(fin, removed, "governance"), fin.chain.admin)
    assert _current(fin) == _split(removed)


def test_constructor_refuses_a_zero_governance(fin: Financing) -> None:
    got = constructor_revert(
        fin.chain, "GovernedAssetRegistry", fin.gov.membership.address, ZERO_ADDRESS, ZERO_ADDRESS
    )
    assert got == error_data(fin.gov.registry.abi, "AssetRegistryZeroGovernance")

"""FinancingPool with an agreed share (`createPlannedPool`, `bind`, `outstanding`) and the factory's
financier check: a pool opened for an asset not registered yet holds what it raises until the named
operator registers the asset with the pool in its split and binds it; unbound at the deadline it
refunds. Every refusal is the exact custom error and changes no storage and no balance."""

from __future__ import annotations

from typing import Any

import pytest
from eth_utils import keccak
from financing_support import ASSET, RETURN_PPM, ZERO_ADDRESS, Financing, deploy_financing

PLANNED = keccak(b"washer-planned")  # `cise asset register washer-planned` registers this id
TARGET = 1_000_000  # EUR 1, a multiple of the granule (25)
SHARE = 200_000
CAP = TARGET * RETURN_PPM // 1_000_000
BIND_MAX = 110_000


@pytest.fixture(scope="session")
def _financing_deployed(_deployed) -> tuple[Financing, int]:
    chain, snapshot = _deployed
    chain.tester.revert_to_snapshot(snapshot)
    financing = deploy_financing(chain)
    return financing, chain.tester.take_snapshot()


@pytest.fixture
def fin(_financing_deployed) -> Financing:
    financing, snapshot = _financing_deployed
    financing.chain.tester.revert_to_snapshot(snapshot)
    return financing


def _planned(
    fin: Financing,
    asset: bytes = PLANNED,
    share: int = SHARE,
    deadline_in: int = 60,
    supplier: str | None = None,
    factory: Any | None = None,
) -> Any:
    """A pool for `asset` created by the financier (founder 3), operated by founder 0."""
    factory = factory or fin.member_factory
    supplier = supplier or fin.chain.actors[7].address
    receipt = fin.tx(
        factory.functions.createPlannedPool(
            asset, fin.operator.address, supplier, TARGET, fin.chain.block + deadline_in,
            RETURN_PPM, share,
        ),
        fin.gov.founders[3],
    )  # fmt: skip
    created = fin.chain.events(receipt, "PlannedPoolCreated", factory)[0]
    assert created["sharePpm"] == share and created["operator"] == fin.operator.address
    return fin.pool_at(created["pool"])


def _raise(fin: Financing, pool: Any) -> None:
    a, b = fin.gov.founders[1], fin.gov.founders[2]
    fin.contribute(pool, a, 600_000)
    fin.contribute(pool, b, 400_000)


def _split(pool: Any, fin: Financing, share: int = SHARE) -> tuple[list[str], list[int]]:
    parts = {pool.address: share, fin.operator.address: 1_000_000 - share}
    beneficiaries = sorted(parts, key=lambda a: int(a, 16))
    return beneficiaries, [parts[b] for b in beneficiaries]


def _register(fin: Financing, split: tuple[list[str], list[int]], asset: bytes = PLANNED) -> None:
    op = fin.operator
    fin.tx(
        fin.gov.registry.functions.registerAsset(asset, op.address, keccak(b"m"), "", *split), op
    )


def test_only_financiers_create_pools(fin: Financing) -> None:
    f = fin.member_factory.functions
    deadline = fin.chain.block + 30
    user, outsider = fin.gov.founders[1], fin.gov.outsiders[0]
    args = (PLANNED, fin.operator.address, ZERO_ADDRESS, TARGET, deadline, RETURN_PPM, SHARE)
    for who in (user, outsider):
        fin.assert_reverts(f.createPlannedPool(*args), who, "FinancingPoolFactoryNotFinancier",
                           who.address)  # fmt: skip
        fin.assert_reverts(f.createPool(ASSET, ZERO_ADDRESS, TARGET, deadline, RETURN_PPM), who,
                           "FinancingPoolFactoryNotFinancier", who.address)  # fmt: skip
    # The constant the factory checks is Membership's.
    assert fin.member_factory.functions.ROLE_FINANCIER().call() == 32
    assert fin.gov.membership.functions.ROLE_FINANCIER().call() == 32
    # A factory without a membership admits anyone.
    pool = _planned(fin, factory=fin.open_factory)
    assert pool.functions.sharePpm().call() == SHARE


def test_planned_terms_are_checked(fin: Financing) -> None:
    f = fin.member_factory.functions
    financier = fin.gov.founders[3]
    deadline = fin.chain.block + 30
    op = fin.operator.address
    fin.assert_reverts(f.createPlannedPool(PLANNED, op, ZERO_ADDRESS, TARGET, deadline, RETURN_PPM, 0),
                       financier, "FinancingPoolFactoryZeroShare")  # fmt: skip
    fin.assert_reverts(
        f.createPlannedPool(PLANNED, op, ZERO_ADDRESS, TARGET, deadline, RETURN_PPM, 1_000_001),
        financier, "FinancingPoolInvalidShare", 1_000_001,
    )  # fmt: skip
    fin.assert_reverts(
        f.createPlannedPool(PLANNED, ZERO_ADDRESS, ZERO_ADDRESS, TARGET, deadline, RETURN_PPM, 1),
        financier, "FinancingPoolZeroAddress",
    )  # fmt: skip
    fin.assert_reverts(
        f.createPlannedPool(PLANNED, op, ZERO_ADDRESS, TARGET + 1, deadline, RETURN_PPM, 1),
        financier, "FinancingPoolInexactAmount", TARGET + 1, 25,
    )  # fmt: skip


def test_a_planned_pool_holds_what_it_raised(fin: Financing) -> None:
    pool = _planned(fin)
    p = pool.functions
    assert (p.plannedOperator().call(), p.assetId().call()) == (fin.operator.address, PLANNED)
    supplier = fin.chain.actors[7]
    before = fin.chain.tokens(supplier)
    _raise(fin, pool)
    assert fin.state_of(pool)["status"] == 3  # raised, waiting to be bound
    assert fin.chain.tokens(pool.address) == TARGET and fin.chain.tokens(supplier) == before
    assert p.outstanding().call() == 0 and p.claimable(fin.gov.founders[1].address).call() == 0
    c = fin.gov.founders[3]
    fin.approve(pool, c)
    fin.assert_reverts(p.contribute(25), c, "FinancingPoolTargetReached", PLANNED, pools=(pool,))
    fin.assert_reverts(p.refund(), c, "FinancingPoolStillOpen", p.deadline().call(), pools=(pool,))
    fin.assert_reverts(p.claim(1), c, "FinancingPoolNotFunded", pools=(pool,))


def test_binding_at_registration_pays_the_supplier_and_repays_the_pool(fin: Financing) -> None:
    pool = _planned(fin)
    p = pool.functions
    _raise(fin, pool)
    split = _split(pool, fin)
    _register(fin, split)  # the first split: the pool's share in it from the start
    supplier = fin.chain.actors[7]
    before = fin.chain.tokens(supplier)
    receipt = fin.tx(p.bind(PLANNED, *split), fin.operator)
    assert receipt.gasUsed < BIND_MAX
    assert fin.chain.events(receipt, "PoolBound", pool)[0] == {
        "assetId": PLANNED, "operator": fin.operator.address, "version": 1, "sharePpm": SHARE,
    }  # fmt: skip
    funded = fin.chain.events(receipt, "PoolFunded", pool)[0]
    assert (funded["recipient"], funded["amount"]) == (supplier.address, TARGET)
    assert fin.chain.tokens(supplier) == before + TARGET and fin.chain.tokens(pool.address) == 0
    assert fin.state_of(pool)["status"] == 1 and p.outstanding().call() == CAP
    # Repaid like any pool: what the asset still owes falls as fees arrive.
    fin.pay(pool, 300_000)
    fin.tx(p.sync(), fin.operator)
    assert p.outstanding().call() == CAP - 300_000
    a = fin.gov.founders[1]
    fin.tx(p.claim(180_000), a)  # 6/10 of 300,000
    assert p.positionOf(a.address).call() == [600_000, 180_000, 180_000, 648_000]
    fin.assert_reverts(p.bind(PLANNED, *split), fin.operator, "FinancingPoolAlreadyBound", PLANNED,
                       pools=(pool,))  # fmt: skip
    fin.chain.mine(80)
    fin.assert_reverts(p.refund(), a, "FinancingPoolNotFailed", pools=(pool,))


def test_bad_bindings_are_refused(fin: Financing) -> None:
    pool = _planned(fin)
    p = pool.functions
    split = _split(pool, fin)
    op = fin.operator
    fin.assert_reverts(p.bind(PLANNED, *split), op, "FinancingPoolNotRaised", 0, TARGET,
                       pools=(pool,))  # fmt: skip
    _raise(fin, pool)
    fin.assert_reverts(p.bind(PLANNED, *split), op, "AssetRegistryUnknownAsset", PLANNED,
                       pools=(pool,))  # fmt: skip
    fin.assert_reverts(p.bind(ASSET, *split), op, "FinancingPoolWrongAsset", PLANNED, ASSET,
                       pools=(pool,))  # fmt: skip
    low = _split(pool, fin, SHARE - 1)
    _register(fin, low)
    fin.assert_reverts(p.bind(PLANNED, *split), op, "FinancingPoolSplitMismatch", PLANNED, 1,
                       pools=(pool,))  # fmt: skip
    fin.assert_reverts(p.bind(PLANNED, *low), op, "FinancingPoolShareMissing", SHARE - 1, SHARE,
                       pools=(pool,))  # fmt: skip
    other = fin.gov.founders[3]
    fin.assert_reverts(p.bind(PLANNED, *low), other, "FinancingPoolNotOperator", other.address,
                       pools=(pool,))  # fmt: skip
    # The operator raises the pool's share by a new split version: the binding follows the current one.
    # Only the operator's own share goes down: no consent needed.
    fin.tx(fin.gov.registry.functions.changeSplit(PLANNED, low, split, []), op)
    fin.assert_reverts(p.bind(PLANNED, *low), op, "FinancingPoolSplitMismatch", PLANNED, 2,
                       pools=(pool,))  # fmt: skip
    fin.tx(p.bind(PLANNED, *split), op)
    legacy, _ = fin.create()
    fin.assert_reverts(legacy.functions.bind(ASSET, *split), op, "FinancingPoolNothingToBind",
                       pools=(legacy,))  # fmt: skip


def test_an_asset_registered_by_another_operator_cannot_bind(fin: Financing) -> None:
    pool = _planned(fin)
    _raise(fin, pool)
    squatter = fin.gov.founders[2]
    split = _split(pool, fin)
    fin.tx(fin.gov.registry.functions.registerAsset(PLANNED, squatter.address, keccak(b"m"), "",
                                                    *split), squatter)  # fmt: skip
    fin.assert_reverts(pool.functions.bind(PLANNED, *split), squatter, "FinancingPoolNotOperator",
                       squatter.address, pools=(pool,))  # fmt: skip


def test_a_registered_asset_binds_once_its_split_pays_the_pool(fin: Financing) -> None:
    pool = _planned(fin, asset=ASSET)  # ASSET is registered: operator 50%, founder 1 50%
    _raise(fin, pool)
    parts = {pool.address: SHARE, fin.operator.address: 500_000 - SHARE,
             fin.gov.founders[1].address: 500_000}  # fmt: skip
    beneficiaries = sorted(parts, key=lambda a: int(a, 16))
    split = (beneficiaries, [parts[b] for b in beneficiaries])
    current = sorted([fin.operator.address, fin.gov.founders[1].address], key=lambda a: int(a, 16))
    was = (current, [500_000, 500_000])  # only the operator's own share goes down: no consent
    fin.tx(fin.gov.registry.functions.changeSplit(ASSET, was, split, []), fin.operator)
    receipt = fin.tx(pool.functions.bind(ASSET, *split), fin.operator)
    assert fin.chain.events(receipt, "PoolBound", pool)[0]["version"] == 2


def test_unbound_at_the_deadline_every_contributor_is_refunded(fin: Financing) -> None:
    pool = _planned(fin, deadline_in=30)
    p = pool.functions
    _raise(fin, pool)
    split = _split(pool, fin)
    _register(fin, split)
    deadline = p.deadline().call()
    fin.chain.mine(deadline - fin.chain.block)
    fin.assert_reverts(p.bind(PLANNED, *split), fin.operator, "FinancingPoolDeadlinePassed",
                       deadline, deadline + 1, pools=(pool,))  # fmt: skip
    assert fin.state_of(pool)["status"] == 2
    c = fin.gov.founders[3]
    fin.approve(pool, c)
    fin.assert_reverts(p.contribute(25), c, "FinancingPoolDeadlinePassed", deadline,
                       fin.chain.block + 1, pools=(pool,))  # fmt: skip
    for who, amount in ((fin.gov.founders[1], 600_000), (fin.gov.founders[2], 400_000)):
        before = fin.chain.tokens(who)
        fin.tx(p.refund(), who)
        assert fin.chain.tokens(who) == before + amount
    assert fin.chain.tokens(pool.address) == 0 and p.outstanding().call() == 0


def test_fees_at_a_failed_pool_of_an_unregistered_asset_go_to_its_named_operator(
    fin: Financing,
) -> None:
    pool = _planned(fin, deadline_in=20)
    fin.contribute(pool, fin.gov.founders[1], 600_000)
    fin.chain.mine(25)
    fin.pay(pool, 7)  # the asset was never registered: the registry knows no operator
    before = fin.chain.tokens(fin.operator)
    receipt = fin.tx(pool.functions.sync(), fin.gov.founders[2])
    assert fin.chain.events(receipt, "PoolSynced", pool)[0]["operator"] == fin.operator.address
    assert fin.chain.tokens(fin.operator) == before + 7
    assert fin.chain.tokens(pool.address) == 600_000  # the contribution stays refundable

"""FinancingPool and its factory: raising, funding, refunds, repayment up to the cap, every custom
error (nothing moved), the events the asset history reads, gas, and agreement with the Python mirror
(`settlement.financing`) over seeded random histories."""

from __future__ import annotations

import random
from typing import Any

import pytest
from financing_support import (
    ASSET,
    RETURN_PPM,
    TARGET,
    ZERO_ADDRESS,
    Financing,
    deploy_financing,
)

from settlement.financing import FUNDED, Pool, granule

CAP = TARGET * RETURN_PPM // 1_000_000
CREATE_MAX = 1_850_000  # bind, the share and the role check added ~430k (once per financing)
CONTRIBUTE_MAX = 140_000  # the first contribution: every slot written for the first time
FUND_MAX = 100_000
SYNC_MAX = 80_000
CLAIM_MAX = 60_000
GAS: dict[str, int] = {}


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


@pytest.fixture
def members(fin: Financing):
    return fin.gov.founders[1], fin.gov.founders[2], fin.gov.founders[3]


@pytest.fixture
def funded(fin: Financing, members) -> Any:
    """A pool funded by three members: 500, 300 and 200 EUR."""
    pool, _ = fin.create()
    a, b, c = members
    fin.contribute(pool, a, 500_000_000)
    fin.contribute(pool, b, 300_000_000)
    fin.contribute(pool, c, 200_000_000)
    return pool


# --------------------------------------------------------------------------- creation


def test_create_records_the_pool_and_its_terms(fin: Financing) -> None:
    pool, receipt = fin.create()
    GAS["create"] = receipt.gasUsed
    assert receipt.gasUsed < CREATE_MAX
    event = fin.chain.events(receipt, "FinancingPoolCreated", fin.member_factory)[0]
    assert event["assetId"] == ASSET and event["creator"] == fin.operator.address
    assert (event["target"], event["returnPpm"], event["supplier"]) == (
        TARGET,
        RETURN_PPM,
        ZERO_ADDRESS,
    )
    f = fin.member_factory.functions
    assert f.poolCount(ASSET).call() == 1 and f.poolOf(ASSET, 0).call() == pool.address
    assert f.isPool(pool.address).call() and not f.isPool(fin.operator.address).call()
    p = pool.functions
    assert p.assetId().call() == ASSET and p.target().call() == TARGET
    assert p.cap().call() == CAP and p.granule().call() == 25 == granule(RETURN_PPM)
    assert p.deadline().call() == event["deadline"]
    assert fin.state_of(pool) == {
        "status": 0,
        "raised": 0,
        "repaid": 0,
        "toOperator": 0,
        "contributors": 0,
        "pending": 0,
    }


def test_create_rejects_bad_terms(fin: Financing, members) -> None:
    f = fin.member_factory.functions
    block = fin.chain.block + 1  # the block the attempt is mined in
    op = fin.operator
    fin.assert_reverts(
        f.createPool(ASSET, ZERO_ADDRESS, TARGET, block + 9, RETURN_PPM),
        members[0],
        "FinancingPoolFactoryNotFinancier",
        members[0].address,
    )  # a user only
    financier = fin.gov.founders[3]  # the financier role, not the asset's operator
    fin.assert_reverts(f.createPool(ASSET, ZERO_ADDRESS, TARGET, block + 9, RETURN_PPM), financier,
                       "FinancingPoolNotOperator", financier.address)  # fmt: skip
    fin.assert_reverts(f.createPool(b"\x01" * 32, ZERO_ADDRESS, TARGET, block + 9, RETURN_PPM), op,
                       "AssetRegistryUnknownAsset", b"\x01" * 32)  # fmt: skip
    for target in (0, 2**96):
        fin.assert_reverts(f.createPool(ASSET, ZERO_ADDRESS, target, block + 9, RETURN_PPM), op,
                           "FinancingPoolInvalidTarget", target)  # fmt: skip
    for ppm in (999_999, 10_000_001):
        fin.assert_reverts(f.createPool(ASSET, ZERO_ADDRESS, TARGET, block + 9, ppm), op,
                           "FinancingPoolInvalidReturn", ppm)  # fmt: skip
    block = fin.chain.block + 1
    fin.assert_reverts(f.createPool(ASSET, ZERO_ADDRESS, TARGET, block, RETURN_PPM), op,
                       "FinancingPoolDeadlineNotInFuture", block, block)  # fmt: skip
    fin.assert_reverts(f.createPool(ASSET, ZERO_ADDRESS, TARGET + 1, block + 9, RETURN_PPM), op,
                       "FinancingPoolInexactAmount", TARGET + 1, 25)  # fmt: skip
    fin.assert_reverts(f.poolOf(ASSET, 0), op, "FinancingPoolFactoryUnknownPool", ASSET, 0)


# --------------------------------------------------------------------------- raising


def test_reaching_the_target_pays_the_operator(fin: Financing, members) -> None:
    pool, _ = fin.create()
    a, b, _ = members
    token = fin.chain.token.functions
    before = token.balanceOf(fin.operator.address).call()
    fin.approve(pool, a)
    r1 = fin.tx(pool.functions.contribute(600_000_000), a)
    GAS["contribute"] = r1.gasUsed
    assert r1.gasUsed < CONTRIBUTE_MAX
    assert fin.chain.events(r1, "PoolContributed", pool)[0] == {
        "assetId": ASSET,
        "contributor": a.address,
        "amount": 600_000_000,
        "raised": 600_000_000,
    }
    fin.approve(pool, b)
    r2 = fin.tx(pool.functions.contribute(900_000_000), b)  # only 400 EUR are taken
    GAS["contribute_funding"] = r2.gasUsed
    assert r2.gasUsed < FUND_MAX
    assert fin.chain.events(r2, "PoolContributed", pool)[0]["amount"] == 400_000_000
    assert fin.chain.events(r2, "PoolFunded", pool)[0] == {
        "assetId": ASSET,
        "recipient": fin.operator.address,
        "amount": TARGET,
    }
    assert token.balanceOf(fin.operator.address).call() == before + TARGET
    assert token.balanceOf(pool.address).call() == 0
    assert fin.state_of(pool)["status"] == FUNDED
    assert pool.functions.positionOf(b.address).call() == [400_000_000, 0, 0, 432_000_000]
    fin.assert_reverts(
        pool.functions.contribute(25), a, "FinancingPoolAlreadyFunded", pools=(pool,)
    )


def test_a_named_supplier_receives_the_funds(fin: Financing, members) -> None:
    supplier = fin.chain.actors[7]
    pool, _ = fin.create(supplier=supplier.address, target=100)
    before = fin.chain.tokens(supplier)
    receipt = fin.contribute(pool, members[0], 100)
    assert fin.chain.events(receipt, "PoolFunded", pool)[0]["recipient"] == supplier.address
    assert fin.chain.tokens(supplier) == before + 100


def test_bad_contributions_are_rejected(fin: Financing, members) -> None:
    pool, _ = fin.create(deadline_in=20)
    a = members[0]
    outsider = fin.gov.outsiders[0]
    fin.approve(pool, a)
    fin.approve(pool, outsider)
    c = pool.functions.contribute
    fin.assert_reverts(c(0), a, "FinancingPoolZeroAmount", pools=(pool,))
    fin.assert_reverts(c(1_000_001), a, "FinancingPoolInexactAmount", 1_000_001, 25, pools=(pool,))
    fin.assert_reverts(c(25), outsider, "FinancingPoolNotMember", outsider.address, pools=(pool,))
    deadline = pool.functions.deadline().call()
    fin.chain.mine(deadline - fin.chain.block)
    fin.assert_reverts(
        c(25), a, "FinancingPoolDeadlinePassed", deadline, deadline + 1, pools=(pool,)
    )


def test_an_open_pool_admits_anyone(fin: Financing) -> None:
    pool, _ = fin.create(factory=fin.open_factory)
    outsider = fin.gov.outsiders[0]
    fin.contribute(pool, outsider, 25)
    assert pool.functions.positionOf(outsider.address).call()[0] == 25


# --------------------------------------------------------------------------- failure


def test_a_failed_pool_refunds_each_contributor(fin: Financing, members) -> None:
    pool, _ = fin.create(deadline_in=20)
    a, b, c = members
    fin.contribute(pool, a, 100_000_000)
    fin.contribute(pool, b, 50_000_000)
    r = pool.functions.refund
    fin.assert_reverts(
        r(), a, "FinancingPoolStillOpen", pool.functions.deadline().call(), pools=(pool,)
    )
    fin.assert_reverts(pool.functions.sync(), a, "FinancingPoolStillOpen",
                       pool.functions.deadline().call(), pools=(pool,))  # fmt: skip
    fin.chain.mine(25)
    assert fin.state_of(pool)["status"] == 2
    before = fin.chain.tokens(a)
    receipt = fin.tx(r(), a)
    assert fin.chain.events(receipt, "PoolRefunded", pool)[0]["amount"] == 100_000_000
    assert fin.chain.tokens(a) == before + 100_000_000
    fin.assert_reverts(r(), a, "FinancingPoolNothingToRefund", a.address, pools=(pool,))
    fin.assert_reverts(r(), c, "FinancingPoolNothingToRefund", c.address, pools=(pool,))
    fin.assert_reverts(pool.functions.claim(1), b, "FinancingPoolNotFunded", pools=(pool,))
    # Tokens arriving at a failed pool go to the operator; b's contribution stays refundable.
    fin.pay(pool, 7)
    op_before = fin.chain.tokens(fin.operator)
    fin.tx(pool.functions.sync(), c)
    assert fin.chain.tokens(fin.operator) == op_before + 7
    fin.tx(r(), b)
    assert fin.chain.tokens(pool.address) == 0


def test_a_funded_pool_refunds_nothing(fin: Financing, funded, members) -> None:
    fin.chain.mine(60)
    fin.assert_reverts(
        funded.functions.refund(), members[0], "FinancingPoolNotFailed", pools=(funded,)
    )


# --------------------------------------------------------------------------- repayment


def test_repayments_are_claimed_pro_rata_up_to_the_cap(fin: Financing, funded, members) -> None:
    a, _, c = members
    p = funded.functions
    fin.pay(funded, 1_000_001)
    assert fin.state_of(funded)["pending"] == 1_000_001
    receipt = fin.tx(p.sync(), c)
    GAS["sync"] = receipt.gasUsed
    assert receipt.gasUsed < SYNC_MAX
    assert fin.chain.events(receipt, "PoolSynced", funded)[0] == {
        "assetId": ASSET, "toContributors": 1_000_001, "toOperator": 0,
        "operator": ZERO_ADDRESS, "repaid": 1_000_001,
    }  # fmt: skip
    # floor(1_000_001 * share): 500_000, 300_000, 200_000; one unit is carried.
    assert [p.claimable(x.address).call() for x in members] == [500_000, 300_000, 200_000]
    fin.assert_reverts(p.claim(500_001), a, "FinancingPoolClaimAboveEntitlement", 500_001, 500_000,
                       pools=(funded,))  # fmt: skip
    fin.assert_reverts(p.claim(0), a, "FinancingPoolZeroAmount", pools=(funded,))
    before = fin.chain.tokens(a)
    receipt = fin.tx(p.claim(500_000), a)
    GAS["claim"] = receipt.gasUsed
    assert receipt.gasUsed < CLAIM_MAX
    assert fin.chain.tokens(a) == before + 500_000
    assert fin.chain.events(receipt, "PoolClaimed", funded)[0]["claimed"] == 500_000
    # Past the cap: the pool takes what it is owed, the rest goes to the operator.
    fin.pay(funded, CAP)
    op_before = fin.chain.tokens(fin.operator)
    receipt = fin.tx(p.sync(), c)
    synced = fin.chain.events(receipt, "PoolSynced", funded)[0]
    assert synced["toContributors"] == CAP - 1_000_001
    assert synced["toOperator"] == 1_000_001 and synced["operator"] == fin.operator.address
    assert fin.chain.events(receipt, "PoolRepaid", funded)[0]["cap"] == CAP
    assert fin.chain.tokens(fin.operator) == op_before + 1_000_001
    # At the cap every share is exact: the claims empty the pool to the unit.
    for x, share in zip(members, (500_000_000, 300_000_000, 200_000_000), strict=True):
        cap = share * RETURN_PPM // 1_000_000
        assert p.positionOf(x.address).call()[2:] == [cap, cap]
        fin.tx(p.claim(p.claimable(x.address).call()), x)
    assert fin.chain.tokens(funded.address) == 0
    fin.pay(funded, 5)
    fin.tx(p.sync(), c)
    assert fin.chain.tokens(funded.address) == 0
    assert fin.state_of(funded)["toOperator"] == 1_000_006
    assert fin.tx(p.sync(), c).gasUsed < SYNC_MAX  # nothing new: a no-op


def test_the_operator_of_the_day_gets_the_excess(fin: Financing, funded, members) -> None:
    new_operator = fin.gov.founders[2]
    fin.tx(fin.gov.registry.functions.transferAsset(ASSET, new_operator.address), fin.operator)
    fin.pay(funded, CAP + 10)
    before = fin.chain.tokens(new_operator)
    fin.tx(funded.functions.sync(), members[0])
    assert fin.chain.tokens(new_operator) == before + 10


@pytest.mark.parametrize("seed", range(3))
def test_the_contract_agrees_with_the_mirror(fin: Financing, seed: int) -> None:
    rng = random.Random(seed)
    ppm = rng.choice([1_000_000, 1_080_000, 1_333_333, 2_500_000])
    g = granule(ppm)
    target = g * rng.randint(3, 40)
    pool, _ = fin.create(factory=fin.open_factory, target=target, return_ppm=ppm)
    block = fin.chain.block
    mirror = Pool.create(target, pool.functions.deadline().call(), ppm, block)
    actors = fin.chain.actors[1:6]
    for actor in actors:
        fin.approve(pool, actor)
    paid: dict[str, int] = {}
    while not mirror.funded:
        actor = rng.choice(actors)
        amount = g * rng.randint(1, 10)
        mirror, taken, _ = mirror.contribute(
            bytes.fromhex(actor.address[2:]), amount, fin.chain.block + 1
        )
        fin.tx(pool.functions.contribute(amount), actor)
        paid[actor.address] = paid.get(actor.address, 0) - taken
    for _ in range(25):
        step = rng.random()
        if step < 0.4:
            amount = rng.randint(0, target // 3 + 2)
            fin.pay(pool, amount)
            mirror = mirror.receive(amount)
        elif step < 0.6:
            mirror, _, _ = mirror.sync(fin.chain.block + 1)
            fin.tx(pool.functions.sync(), actors[0])
        else:
            actor = rng.choice(actors)
            key = bytes.fromhex(actor.address[2:])
            due = mirror.claimable(key)
            assert pool.functions.claimable(actor.address).call() == due
            if due:
                amount = rng.randint(1, due)
                mirror = mirror.claim(key, amount)
                fin.tx(pool.functions.claim(amount), actor)
                paid[actor.address] = paid.get(actor.address, 0) + amount
        state = fin.state_of(pool)
        assert (state["repaid"], state["toOperator"], state["pending"]) == (
            mirror.repaid,
            mirror.to_operator,
            mirror.pending,
        )
        assert fin.chain.tokens(pool.address) == mirror.balance


def test_gas_report(capsys) -> None:
    """Prints what the tests above measured (pytest -s)."""
    with capsys.disabled():
        print(f"\nfinancing pool gas: {GAS}")

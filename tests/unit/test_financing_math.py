"""settlement.financing: the pool's arithmetic, each rejection named as the contract names it."""

import pytest

from settlement.financing import (
    FAILED,
    FUNDED,
    OPEN,
    FinancingError,
    Pool,
    granule,
    return_of,
    round_to_granule,
)

A, B, C = b"\x0a" * 20, b"\x0b" * 20, b"\x0c" * 20
PPM = 1_080_000


def funded_pool() -> Pool:
    pool = Pool.create(1_000, 100, PPM, 1)
    for who, amount in ((A, 500), (B, 300), (C, 200)):
        pool, _, _ = pool.contribute(who, amount, 2)
    return pool


def test_granule_makes_every_return_exact() -> None:
    assert granule(1_080_000) == 25 and granule(1_000_000) == 1 and granule(1_333_333) == 1_000_000
    assert return_of(25, 1_080_000) == 27 and round_to_granule(1_013, 1_080_000) == 1_000


def test_create_rejections() -> None:
    for args, name in (
        ((0, 10, PPM, 1), "FinancingPoolInvalidTarget"),
        ((2**96, 10, PPM, 1), "FinancingPoolInvalidTarget"),
        ((1_000, 10, 999_999, 1), "FinancingPoolInvalidReturn"),
        ((1_000, 1, PPM, 1), "FinancingPoolDeadlineNotInFuture"),
        ((1_001, 10, PPM, 1), "FinancingPoolInexactAmount"),
    ):
        with pytest.raises(FinancingError) as info:
            Pool.create(*args)
        assert info.value.name == name


def test_the_last_contribution_is_cut_to_the_target() -> None:
    pool = Pool.create(1_000, 100, PPM, 1)
    pool, taken, reached = pool.contribute(A, 900, 2)
    assert (taken, reached, pool.status(2)) == (900, False, OPEN)
    pool, taken, reached = pool.contribute(B, 500, 3)
    assert (taken, reached, pool.status(3), pool.balance) == (100, True, FUNDED, 0)
    with pytest.raises(FinancingError, match="FinancingPoolAlreadyFunded"):
        pool.contribute(C, 25, 4)


def test_contribution_rejections() -> None:
    pool = Pool.create(1_000, 10, PPM, 1)
    for amount, block, name in (
        (0, 2, "FinancingPoolZeroAmount"),
        (26, 2, "FinancingPoolInexactAmount"),
        (25, 11, "FinancingPoolDeadlinePassed"),
    ):
        with pytest.raises(FinancingError) as info:
            pool.contribute(A, amount, block)
        assert info.value.name == name


def test_failed_pool_refunds_and_forwards_strays() -> None:
    pool = Pool.create(1_000, 10, PPM, 1)
    pool, _, _ = pool.contribute(A, 100, 2)
    with pytest.raises(FinancingError, match="FinancingPoolStillOpen"):
        pool.refund(A, 10)
    assert pool.status(11) == FAILED
    pool, amount = pool.refund(A, 11)
    assert amount == 100 and pool.balance == 0
    with pytest.raises(FinancingError, match="FinancingPoolNothingToRefund"):
        pool.refund(A, 12)
    pool, to_c, to_op = pool.receive(7).sync(12)
    assert (to_c, to_op, pool.balance) == (0, 7, 0)


def test_floor_carries_the_remainder_until_the_cap() -> None:
    pool, to_c, to_op = funded_pool().receive(1_001).sync(3)
    assert (to_c, to_op) == (1_001, 0)
    assert [pool.claimable(x) for x in (A, B, C)] == [500, 300, 200]
    assert pool.carried() == 1
    with pytest.raises(FinancingError) as info:
        pool.claim(A, 501)
    assert info.value.error_args == (501, 500)
    pool, to_c, to_op = pool.receive(100).sync(4)  # cap 1_080: 79 more, 21 to the operator
    assert (to_c, to_op, pool.repaid, pool.carried()) == (79, 21, 1_080, 0)
    assert [pool.claimable(x) for x in (A, B, C)] == [540, 324, 216]
    for x in (A, B, C):
        pool = pool.claim(x, pool.claimable(x))
    assert pool.balance == 0 and pool.tracked == 0


def test_claim_rejections() -> None:
    with pytest.raises(FinancingError, match="FinancingPoolNotFunded"):
        Pool.create(1_000, 10, PPM, 1).claim(A, 1)
    with pytest.raises(FinancingError, match="FinancingPoolZeroAmount"):
        funded_pool().claim(A, 0)

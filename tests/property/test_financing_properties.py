"""Property tests of the financing pool's arithmetic (`settlement.financing`, the contract's mirror):
over random contributions and repayment sequences, tokens are conserved to the unit, no contributor
ever claims above its pro-rata cap, and past the cap the operator gets the rest."""

from hypothesis import given, settings
from hypothesis import strategies as st

from settlement.financing import Pool, granule, return_of

RETURNS = st.sampled_from([1_000_000, 1_080_000, 1_250_000, 1_333_333, 2_000_000, 10_000_000])
ACCOUNTS = [bytes([i]) * 20 for i in range(1, 7)]

steps = st.lists(
    st.one_of(
        st.tuples(st.just("pay"), st.integers(0, 10**7)),
        st.tuples(st.just("sync"), st.just(0)),
        st.tuples(st.just("claim"), st.integers(0, 5)),
    ),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(
    RETURNS,
    st.integers(1, 10**4),
    st.lists(st.tuples(st.integers(0, 5), st.integers(1, 10**4)), min_size=1, max_size=30),
    steps,
    st.booleans(),
)
def test_conservation_caps_and_operator(ppm, units, contributions, history, claim_all):
    g = granule(ppm)
    target = g * units
    pool = Pool.create(target, 100, ppm, 1)
    contributed = received = paid_out = 0
    for who, amount in contributions:
        if pool.funded:
            break
        pool, taken, reached = pool.contribute(ACCOUNTS[who], g * amount, 2)
        contributed += taken
        if reached:
            paid_out += target  # to the recipient
    if not pool.funded:
        pool, taken, _ = pool.contribute(ACCOUNTS[0], target - pool.raised, 2)
        contributed += taken
        paid_out += target
    for kind, value in history:
        if kind == "pay":
            pool, received = pool.receive(value), received + value
        elif kind == "sync":
            pool, _, to_op = pool.sync(3)
            paid_out += to_op
        else:
            due = pool.claimable(ACCOUNTS[value])
            if due:
                pool, paid_out = pool.claim(ACCOUNTS[value], due), paid_out + due
        # Conservation to the unit.
        assert pool.balance + paid_out == contributed + received
        assert 0 <= pool.carried() < max(len(pool.positions), 1)
        for account in pool.positions:
            assert pool.position(account).claimed <= pool.entitlement(account)
            assert pool.entitlement(account) <= pool.contributor_cap(account)
        assert pool.repaid <= pool.cap
        # The operator only gets anything once the contributors are owed their whole cap.
        assert pool.to_operator == 0 or pool.repaid == pool.cap
    pool, _, to_op = pool.sync(4)
    paid_out += to_op
    assert pool.repaid + pool.to_operator == received  # every unit that came in was assigned
    if claim_all:
        for account in list(pool.positions):
            due = pool.claimable(account)
            if due:
                pool, paid_out = pool.claim(account, due), paid_out + due
        assert pool.balance == pool.carried()
        if pool.repaid == pool.cap:  # at the cap nothing is left: the caps sum to it exactly
            assert pool.balance == 0
            assert sum(pool.position(a).claimed for a in pool.positions) == pool.cap
            assert all(
                pool.position(a).claimed == return_of(pool.position(a).contributed, ppm)
                for a in pool.positions
            )
    assert pool.balance + paid_out == contributed + received

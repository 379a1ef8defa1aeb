"""`payee_lock_time_problem`: a hub's lock terms leave a payee its reveal timeout plus the head
skew, or the payee says why every payment to it would be refused."""

from __future__ import annotations

from channels.core.hub_terms import HEAD_SKEW, payee_lock_time_problem


def test_terms_that_leave_exactly_enough_pass_and_one_block_less_does_not() -> None:
    # the defaults: lock 40, hub reveal 5, payee reveal 10
    assert payee_lock_time_problem(40, 5, 10) is None
    enough = 5 + 10 + HEAD_SKEW
    assert payee_lock_time_problem(enough, 5, 10) is None
    problem = payee_lock_time_problem(enough - 1, 5, 10)
    assert problem is not None
    assert f"leave a lock forwarded to us {enough - 1 - 5} blocks" in problem
    assert f"--lock-timeout must be at least {enough}" in problem

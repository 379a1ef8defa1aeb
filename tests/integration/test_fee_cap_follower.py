"""`GovernedLimitsFollower` on a governed network (embedded chain): it reads the hub fee cap and a
hub's standing, then follows the members' votes from the contracts' events."""

from __future__ import annotations

from channels.chain.governance import Role
from channels.chain.governed_limits import GovernedLimitsFollower
from tests.governance.govfix import GovEnv, address_of, make_env


def _follower(env: GovEnv, hub_index: int) -> GovernedLimitsFollower:
    hub = address_of(env.founders[hub_index])
    return GovernedLimitsFollower(env.connection, env.deployment, hub)


def test_it_follows_a_vote_that_lowers_the_hub_fee_cap() -> None:
    env = make_env()
    follower = _follower(env, 4)
    first = follower.read()
    assert first.hub_fee_cap == env.gov().hub_fee_cap() == 10_000
    assert first.hub_problem is None  # a dev founder: every role
    assert follower.poll() == first  # nothing mined: nothing changes
    env.pass_([env.gov().calls.set_hub_fee_cap(5_000)], "A lower hub fee cap")
    after = follower.poll()
    assert after.hub_fee_cap == 5_000
    assert after.block_number == env.connection.block_number() == follower.cursor
    env.pass_([env.gov().calls.set_hub_fee_cap(7_000)], "A higher one")
    env.pass_([env.gov().calls.set_hub_fee_cap(6_000)], "And lower again")
    assert follower.poll().hub_fee_cap == 6_000  # the last of several votes in one range


def test_it_follows_the_hubs_role_and_membership() -> None:
    env = make_env()
    follower = _follower(env, 4)
    hub = address_of(env.founders[4])
    calls = env.gov().calls
    assert follower.read().hub_problem is None
    env.pass_([calls.set_roles(hub, Role.USER)], "The hub is only a user now")
    problem = follower.poll().hub_problem
    assert problem is not None and "does not hold the hub role" in problem
    env.pass_([calls.set_roles(hub, Role.USER | Role.HUB)], "A hub again")
    assert follower.poll().hub_problem is None
    env.pass_([calls.suspend(hub)], "Suspend the hub")
    suspended = follower.poll().hub_problem
    assert suspended is not None and "not an active member" in suspended
    # another member's change is not the hub's: the standing is not read again
    env.pass_([calls.set_roles(address_of(env.founders[5]), Role.USER)], "Another member")
    assert follower.poll().hub_problem == suspended


def test_it_walks_a_long_range_in_bounded_steps_without_skipping_a_block() -> None:
    env = make_env()
    follower = GovernedLimitsFollower(env.connection, env.deployment, None, max_range=3)
    follower.read()
    env.pass_([env.gov().calls.set_hub_fee_cap(4_000)], "A lower hub fee cap")
    head = env.connection.block_number()
    seen = []
    while follower.cursor < head:
        before = follower.cursor
        seen.append(follower.poll().hub_fee_cap)
        assert follower.cursor - before <= 3
    assert seen[-1] == 4_000

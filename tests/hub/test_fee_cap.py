"""The governed hub fee cap binds the hub and every payer while they run (issue 19, point 1).

A hub and agents over loopback TCP (`running_net`); the governed limits enter as the shell feeds
them from the chain (`Hub.apply_governed_fee_cap`, `Agent.apply_governed_limits`; the chain side
is tested in tests/integration/test_fee_cap_*.py). The hub's own fee is the one that charged
€0.006010 on a €6 payment after the members voted the cap down to €0.005.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from channels.agent import Agent, PaymentError
from channels.core.fee_cap import hub_standing_problem
from channels.core.fees import FeeSchedule
from hub.mediator import MediationTerms
from tests.hub.netfix import DEPOSIT, Net, running_net

OWN = MediationTerms(FeeSchedule(flat=10, ppm=1_000, cap=10_000), reveal_timeout=5, lock_timeout=30)
AMOUNT = 6_000_000  # €6: the hub's own fee is min(10 + 6_000, 10_000) = 6_010
OLD_FEE = 6_010
CAP = 5_000  # the members' new cap, €0.005


async def _terms_cap(agent: Agent, cap: int) -> None:
    with trio.fail_after(5):
        while agent.fees.cap != cap:  # noqa: ASYNC110  # set by the agent's reader task
            await trio.sleep(0.01)


def _nothing_moved(net: Net, payer: str, payee: str) -> None:
    [p] = net.agents[payer].balances()
    [q] = net.agents[payee].balances()
    assert (p.balance, p.capacity, p.pending_locks) == (DEPOSIT, DEPOSIT, 0)
    assert (q.balance, q.pending_locks) == (DEPOSIT, 0)
    assert net.hub.stats.forwarded == 0 and net.hub.stats.fees_earned == 0


async def test_a_running_hub_lowers_its_fee_to_a_new_cap_and_tells_its_agents_at_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with running_net(tmp_path, ["alice", "washer"], terms=OWN) as net:
        alice, washer = net.agents["alice"], net.agents["washer"]
        assert alice.fees.fee(AMOUNT) == OLD_FEE
        alice.apply_governed_limits(CAP, None)  # the payer saw the vote too
        net.hub.apply_governed_fee_cap(CAP)
        assert "hub fee cap is now 5000" in caplog.text
        assert any(r.levelname == "WARNING" for r in caplog.records if "hub fee cap" in r.message)
        await _terms_cap(alice, CAP)  # announced now, not at the next periodic announcement
        with trio.fail_after(10):
            outcome = await alice.pay(net.address("washer"), AMOUNT, payment_id=1)
            received = await washer.received.receive()
        assert outcome.fee == CAP
        assert received.amount == AMOUNT and received.received == AMOUNT
        [a] = alice.balances()
        [w] = washer.balances()
        assert a.balance == DEPOSIT - AMOUNT - CAP  # the payer paid the new cap, no more
        assert w.balance == DEPOSIT + AMOUNT
        assert net.hub.stats.fees_earned == CAP


async def test_a_payer_refuses_a_fee_above_the_cap_it_knows_before_any_lock_leaves(
    tmp_path: Path,
) -> None:
    # the hub has not (yet) followed the vote: it still announces its own cap of 10_000
    async with running_net(tmp_path, ["alice", "washer"], terms=OWN) as net:
        alice = net.agents["alice"]
        alice.apply_governed_limits(CAP, None)
        with trio.fail_after(10), pytest.raises(PaymentError) as refused:
            await alice.pay(net.address("washer"), AMOUNT, payment_id=1)
        message = str(refused.value)
        assert "6010" in message and "5000" in message and "hub fee cap" in message
        assert alice.payments[1].status == "failed" and alice.payments[1].fee == 0
        await trio.sleep(0.3)  # a lock sent anyway would reach the hub meanwhile
        _nothing_moved(net, "alice", "washer")
        # a payment whose fee is within the cap still goes through the same hub
        with trio.fail_after(10):
            small = await alice.pay(net.address("washer"), 1_000_000, payment_id=2)
        assert small.fee == 1_010


async def test_a_payer_checks_each_payment_against_the_cap_known_at_that_moment(
    tmp_path: Path,
) -> None:
    async with running_net(tmp_path, ["alice", "washer"], terms=OWN) as net:
        alice = net.agents["alice"]
        alice.apply_governed_limits(10_000, None)
        with trio.fail_after(10):
            first = await alice.pay(net.address("washer"), AMOUNT, payment_id=1)
        assert first.fee == OLD_FEE  # within the cap of that moment
        alice.apply_governed_limits(CAP, None)  # the vote lands; the hub lags behind
        with trio.fail_after(10), pytest.raises(PaymentError, match="above the network's hub"):
            await alice.pay(net.address("washer"), AMOUNT, payment_id=2)
        net.hub.apply_governed_fee_cap(CAP)
        await _terms_cap(alice, CAP)
        with trio.fail_after(10):
            third = await alice.pay(net.address("washer"), AMOUNT, payment_id=3)
        assert third.fee == CAP
        [a] = alice.balances()
        assert a.balance == DEPOSIT - 2 * AMOUNT - OLD_FEE - CAP
        assert net.hub.stats.fees_earned == OLD_FEE + CAP


async def test_a_cap_raised_again_restores_the_hubs_own_fee_never_more(tmp_path: Path) -> None:
    async with running_net(tmp_path, ["alice", "washer"], terms=OWN) as net:
        alice = net.agents["alice"]
        net.hub.apply_governed_fee_cap(5)  # below even the flat fee
        await _terms_cap(alice, 5)
        assert alice.fees == FeeSchedule(flat=5, ppm=1_000, cap=5)
        net.hub.apply_governed_fee_cap(1_000_000)
        await _terms_cap(alice, OWN.fees.cap)
        assert alice.fees == OWN.fees
        assert net.hub.terms == OWN


async def test_a_lock_made_under_the_old_fee_is_charged_at_most_the_new_cap_by_the_hub(
    tmp_path: Path,
) -> None:
    """A payer that has not seen the vote yet locks the old fee; the hub, which has, forwards all
    but the new cap: the payee gets the difference, the hub never earns above the cap."""
    async with running_net(tmp_path, ["alice", "washer"], terms=OWN) as net:
        alice, washer = net.agents["alice"], net.agents["washer"]
        net.hub.mediator.terms = MediationTerms(
            FeeSchedule(flat=10, ppm=1_000, cap=CAP), OWN.reveal_timeout, OWN.lock_timeout
        )  # the hub's decisions follow the cap; its next announcement has not reached alice
        with trio.fail_after(10):
            outcome = await alice.pay(net.address("washer"), AMOUNT, payment_id=1)
            received = await washer.received.receive()
        assert outcome.fee == OLD_FEE
        assert received.received == AMOUNT + OLD_FEE - CAP
        assert net.hub.stats.fees_earned == CAP


async def test_a_payer_refuses_a_hub_without_the_hub_role(tmp_path: Path) -> None:
    async with running_net(tmp_path, ["alice", "washer"], terms=OWN) as net:
        alice = net.agents["alice"]
        problem = hub_standing_problem(net.hub.service.address, True, False)
        alice.apply_governed_limits(CAP, problem)
        with trio.fail_after(10), pytest.raises(PaymentError, match="does not hold the hub role"):
            await alice.pay(net.address("washer"), 1_000, payment_id=1)
        await trio.sleep(0.3)
        _nothing_moved(net, "alice", "washer")

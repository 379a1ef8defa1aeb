"""A client agent survives its peers: a payee or a hub that goes away and comes back never ends
an agent, and a payment that could not complete ends as a `PaymentError`, never another error.

In-process: the hub and the agents run in this trio run over loopback TCP; an agent or the hub
"goes away" when its tasks are cancelled (its connections close, as when its process dies) and
"comes back" as a new object on the same store (as a restarted process does).
"""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import trio

from channels.agent import BOOK_RETRY, Agent, PaymentError
from channels.bench.synthetic import address_of, hub_channels, open_service
from channels.chain.nodes import free_port
from channels.core import state_changes as sc
from hub.service import Hub
from tests.hub.netfix import DEPOSIT, HUB_DEPOSIT, TERMS


@dataclass
class Peer:
    """One running agent or hub; `stop` ends its tasks and closes its store."""

    agent: Agent | None
    hub: Hub | None
    scope: trio.CancelScope
    stopped: trio.Event

    async def stop(self) -> None:
        self.scope.cancel()
        with trio.fail_after(10):
            await self.stopped.wait()


async def _run_agent(
    name: str,
    tmp: Path,
    opening: Sequence[sc.StateChange],
    port: int,
    task_status: trio.TaskStatus[Peer] = trio.TASK_STATUS_IGNORED,
) -> None:
    service = open_service(name, tmp / f"{name}.sqlite", opening)
    agent = Agent(service, address_of("hub"), blocks_from_hub=True)
    stopped = trio.Event()
    try:
        with trio.CancelScope() as scope:
            async with trio.open_nursery() as nursery:
                agent.start(nursery, port)
                task_status.started(Peer(agent, None, scope, stopped))
    finally:
        service.store.close()
        stopped.set()


async def _run_hub(
    tmp: Path,
    opening: Sequence[sc.StateChange],
    port: int,
    task_status: trio.TaskStatus[Peer] = trio.TASK_STATUS_IGNORED,
) -> None:
    service = open_service("hub", tmp / "hub.sqlite", opening)
    hub = Hub(service, TERMS)
    stopped = trio.Event()
    try:
        with trio.CancelScope() as scope:
            async with trio.open_nursery() as nursery:
                await nursery.start(
                    lambda task_status: hub.serve(port=port, task_status=task_status)
                )
                task_status.started(Peer(None, hub, scope, stopped))
    finally:
        service.store.close()
        stopped.set()


@dataclass
class Peers:
    tmp: Path
    opening: list[sc.StateChange]
    port: int
    nursery: trio.Nursery

    async def agent(self, name: str, *, ready: bool = True) -> tuple[Agent, Peer]:
        peer: Peer = await self.nursery.start(_run_agent, name, self.tmp, self.opening, self.port)
        assert peer.agent is not None
        if ready:
            with trio.fail_after(10):
                await peer.agent.wait_ready()
        return peer.agent, peer

    async def hub(self) -> Peer:
        peer: Peer = await self.nursery.start(_run_hub, self.tmp, self.opening, self.port)
        return peer


@asynccontextmanager
async def peers(tmp: Path, names: Sequence[str]) -> AsyncIterator[Peers]:
    opening = hub_channels(address_of("hub"), [address_of(n) for n in names], DEPOSIT, HUB_DEPOSIT)
    async with trio.open_nursery() as nursery:
        yield Peers(tmp, opening, free_port(), nursery)
        nursery.cancel_scope.cancel()


async def _wait_until(condition: object, seconds: float = 10.0) -> None:
    with trio.fail_after(seconds):
        while not condition():  # type: ignore[operator]  # noqa: ASYNC110  # another task's effect
            await trio.sleep(0.01)


async def test_a_payee_going_away_while_the_payer_holds_its_book_never_ends_the_payer(
    tmp_path: Path,
) -> None:
    async with peers(tmp_path, ["alice", "washer"]) as net:
        await net.hub()
        alice, _ = await net.agent("alice")
        _, washer_peer = await net.agent("washer")
        washer = address_of("washer")
        with trio.fail_after(10):
            await alice.pay(washer, 1_000, 1)  # a single invoice
            await alice.pay(washer, 1_000, 2)  # in order: a book of open invoices for 2 on
        assert 3 in alice._book.get(washer, {})
        await washer_peer.stop()
        # the book ran low while the payee is away: the hub refuses the next book for it
        with pytest.raises(PaymentError, match="no outcome"):
            await alice.pay(washer, 1_000, 3, give_up_after=0.5)
        await _wait_until(lambda: alice._books_refused(washer))
        # paying on: a clean PaymentError (or a payment pending on the payee), nothing else
        with pytest.raises(PaymentError, match="no outcome"):
            await alice.pay(washer, 1_000, 4, give_up_after=0.5)
        with pytest.raises(PaymentError, match="requested: the payee is not connected"):
            await alice.pay(washer, 1_000, 200, give_up_after=1.5)  # no invoice for it at hand
        # the payee comes back: the locks it missed are resent to it and complete
        await net.agent("washer")
        with trio.fail_after(10):
            for payment_id in (3, 4):
                outcome = await alice.pay(washer, 1_000, payment_id)
                assert outcome.payment_id == payment_id
            # books again once the refusal is old
            await trio.sleep(BOOK_RETRY)
            for payment_id in range(5, 12):
                await alice.pay(washer, 1_000, payment_id)
        assert not alice._books_refused(washer)
        assert max(alice._book[washer]) > 129  # a new book came after the outage


async def test_an_agent_started_while_the_hub_is_down_connects_when_it_comes_up(
    tmp_path: Path,
) -> None:
    async with peers(tmp_path, ["alice", "washer"]) as net:
        alice, _ = await net.agent("alice", ready=False)
        washer, _ = await net.agent("washer", ready=False)
        ready = trio.Event()

        async def wait_ready() -> None:  # waiting from the start, as `cise agent pay` does
            await alice.wait_ready()
            await washer.wait_ready()
            ready.set()

        net.nursery.start_soon(wait_ready)
        await trio.sleep(1.5)  # a few failed attempts first
        assert alice.terms is None and not ready.is_set()
        assert alice.connection_problem is not None
        assert "cannot reach the hub" in alice.connection_problem
        await net.hub()
        with trio.fail_after(10):
            await ready.wait()
            await alice.pay(address_of("washer"), 1_000, 1)
        assert alice.connection_problem is None


async def test_the_hub_going_away_and_coming_back_never_ends_an_agent(tmp_path: Path) -> None:
    async with peers(tmp_path, ["alice", "washer"]) as net:
        hub = await net.hub()
        alice, _ = await net.agent("alice")
        await net.agent("washer")
        washer = address_of("washer")
        with trio.fail_after(10):
            for payment_id in range(1, 4):
                await alice.pay(washer, 1_000, payment_id)
        await hub.stop()
        with pytest.raises(PaymentError, match="no outcome"):  # the lock waits in the outbox
            await alice.pay(washer, 1_000, 4, give_up_after=0.5)
        await net.hub()
        with trio.fail_after(10):
            await alice.wait_ready()
            for payment_id in range(4, 8):
                await alice.pay(washer, 1_000, payment_id)
        assert all(alice.payments[i].status == "completed" for i in range(1, 8))


async def test_a_payment_id_covered_by_a_book_is_paid_by_a_single_invoice_after_a_restart(
    tmp_path: Path,
) -> None:
    async with peers(tmp_path, ["alice", "washer"]) as net:
        await net.hub()
        alice, alice_peer = await net.agent("alice")
        await net.agent("washer")
        washer = address_of("washer")
        with trio.fail_after(10):
            await alice.pay(washer, 1_000, 1)
            await alice.pay(washer, 1_000, 2)  # the payee issues open invoices for 2 .. 129
        await alice_peer.stop()
        alice, _ = await net.agent("alice")  # restarted: the book is gone from memory
        started = trio.current_time()
        with trio.fail_after(10):
            outcome = await alice.pay(washer, 1_234, 3)  # its invoice is an open one
        assert outcome.amount == 1_234
        assert trio.current_time() - started < INVOICE_ROUND_TRIPS
        with trio.fail_after(10):
            await alice.pay(washer, 2_000, 50)  # out of order, also covered by the book
        assert alice.payments[50].status == "completed"


INVOICE_ROUND_TRIPS = 0.9  # well under the 1 s invoice retry: one round trip, no retry


async def test_repeating_a_paid_payment_after_a_restart_resends_nothing_the_hub_refuses(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with peers(tmp_path, ["alice", "washer"]) as net:
        await net.hub()
        alice, alice_peer = await net.agent("alice")
        await net.agent("washer")
        washer = address_of("washer")
        with trio.fail_after(10):
            first = await alice.pay(washer, 1_000, 1)
            await alice.wait_delivered()  # what an exiting `cise agent pay` does
        await alice_peer.stop()
        caplog.set_level(logging.INFO)
        alice, _ = await net.agent("alice")
        with trio.fail_after(10):
            again = await alice.pay(washer, 1_000, 1)
            await alice.wait_delivered()
        assert again == first
        assert alice.service.stats.messages_resent == 0
        assert not [r for r in caplog.records if "refused" in r.getMessage()]


async def test_every_way_out_of_pay_and_charge_is_a_payment_error(tmp_path: Path) -> None:
    async with peers(tmp_path, ["alice", "washer"]) as net:
        await net.hub()
        alice, _ = await net.agent("alice")
        washer, _ = await net.agent("washer")
        bad = [
            (address_of("washer"), 0, 1),
            (address_of("washer"), 1, 0),
            (address_of("washer"), 1, 2**64),
            (address_of("washer"), 2**96, 1),  # above uint96: no invoice request can carry it
            (b"\x01" * 19, 1, 1),  # not an address
            (address_of("alice"), 1, 1),  # ourselves
        ]
        for payee, amount, payment_id in bad:
            with pytest.raises(PaymentError):
                await alice.pay(payee, amount, payment_id, give_up_after=2)  # type: ignore[arg-type]
        for give_up_after in (-1.0, math.nan):
            with pytest.raises(PaymentError, match="give_up_after"):
                await alice.pay(address_of("washer"), 1, 1, give_up_after=give_up_after)
        with pytest.raises(PaymentError, match="integers"):
            await alice.pay(address_of("washer"), 1.5, 1)  # type: ignore[arg-type]
        with pytest.raises(PaymentError):
            await alice.pay(address_of("nobody"), 1, 1, give_up_after=2)  # no channel to it
        for payer, amount, payment_id in [
            (address_of("alice"), 1, 0),
            (address_of("alice"), 1, 2**64),
            (address_of("alice"), 2**96, 1),
            (b"\x02" * 3, 1, 1),
        ]:
            with pytest.raises(PaymentError):
                await washer.charge(payer, amount, payment_id, give_up_after=1)  # type: ignore[arg-type]
        # the agents still work
        with trio.fail_after(10):
            await alice.pay(address_of("washer"), 1_000, 2)


async def test_what_an_agent_reports_is_durable_even_if_it_dies_at_once(tmp_path: Path) -> None:
    """A payment reported completed (payer) or received (payee) has its record in the same
    commit as the unlock: an agent killed right after reporting it keeps it after a restart."""
    async with peers(tmp_path, ["alice", "washer"]) as net:
        await net.hub()
        alice, alice_peer = await net.agent("alice")
        washer, washer_peer = await net.agent("washer")
        with trio.fail_after(10):
            await alice.pay(address_of("washer"), 1_000, 1)
            await alice_peer.stop()  # at once: nothing more is committed
            received = await washer.received.receive()
            await washer_peer.stop()
        assert received.payment_id == 1
        alice, _ = await net.agent("alice", ready=False)
        washer, _ = await net.agent("washer", ready=False)
        assert alice.payments[1].status == "completed"
        [invoice] = [r for r in washer.invoices.values() if r.payment_id == 1]
        assert invoice.status == "received"

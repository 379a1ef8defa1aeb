"""An agent stopped at each step of its commit pipeline keeps records equal to its channel.

Every record an agent keeps (payments, invoices) is written in the commit group of the state
change it belongs to, and nothing that depends on a record (an invoice, a book of invoices)
leaves before that group is durable. Each test here stops a payer or a payee at one point —
before the group holding a decision commits, after it commits but before anything it caused
leaves, after that — exactly as a SIGKILL would (the open group is lost, nothing more is sent),
restarts it on its store, and checks that the payment still ends right and that every party's
records equal its channel (`tests.hub.recordcheck`).

In-process: the hub and the agents run in this trio run over loopback TCP (as in
`tests.hub.test_agent_peers`); a stopped agent's tasks are cancelled and a new one is started on
its sqlite store, as a restarted process would be.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path

import pytest
import trio

from channels import wire
from channels.agent import Agent, PaymentError
from channels.bench.synthetic import address_of, hub_channels, open_service
from channels.codec.eip712 import secrethash_of
from channels.core import events as ev
from channels.records import InvoiceRecord
from channels.service import NodeService
from tests.hub.recordcheck import record_mismatches
from tests.hub.test_agent_peers import Peer, Peers, _wait_until, peers

AMOUNT = 1_000


async def _frozen() -> None:
    await trio.sleep_forever()  # a dead process commits nothing more


def freeze_after_sending(service: NodeService, kinds: tuple[type, ...]) -> None:
    """Once a message of `kinds` leaves `service`, it commits nothing more (killed right after
    the send: whatever its open group holds then is lost)."""
    send = service.send_routing

    def sending(recipient: bytes, message: wire.RoutingMessage) -> bool:
        if isinstance(message, kinds):
            service.commit_now = _frozen  # type: ignore[method-assign]
        return send(recipient, message)  # type: ignore[arg-type]

    service.send_routing = sending  # type: ignore[method-assign]


def freeze_at(service: NodeService, point: str, holds: Callable[[list[ev.Event]], bool]) -> None:
    """Stop `service` at `point` of the first commit whose group `holds` the events sought:
    "before_commit" (the group is never durable), "before_acting" (durable, but none of its
    messages leave and no listener hears of it), "after_acting" (everything of that group done,
    nothing after it)."""
    commit_now = service.commit_now

    async def commit() -> None:
        if not holds(list(service._work.notices)):
            await commit_now()
            return
        if point == "before_commit":
            await _frozen()
        if point == "before_acting":
            service._act = lambda work: None  # type: ignore[method-assign]
        await commit_now()
        await _frozen()

    service.commit_now = commit  # type: ignore[method-assign]


def _has(kind: type) -> Callable[[list[ev.Event]], bool]:
    return lambda events: any(isinstance(e, kind) for e in events)


async def _pay_through_a_crash(
    net: Peers, victim: Peer, name: str, alice: Agent, payment_id: int
) -> tuple[Agent, Agent]:
    """Pay `payment_id` while `victim` (the agent `name`) is set to freeze; once the payment is
    under way and the victim frozen, stop it, restart it, and return (alice, washer) after the
    payment completed."""
    washer_address = address_of("washer")

    async def pay() -> None:
        with contextlib.suppress(PaymentError):  # the outcome is checked after the restart
            await alice.pay(washer_address, AMOUNT, payment_id, give_up_after=3)

    net.nursery.start_soon(pay)
    await _wait_until(
        lambda: (r := alice.payments.get(payment_id)) is not None and r.status != "requested"
    )
    await trio.sleep(0.5)  # the victim is frozen by now: nothing more of it becomes durable
    await victim.stop()
    restarted, _ = await net.agent(name)
    if name == "alice":
        alice = restarted
    with trio.fail_after(15):
        outcome = await alice.pay(washer_address, AMOUNT, payment_id)
    assert outcome.payment_id == payment_id
    washer = restarted if name == "washer" else None
    return alice, washer  # type: ignore[return-value]


@pytest.mark.parametrize("book", [False, True], ids=["single_invoice", "book_of_invoices"])
async def test_a_payee_killed_right_after_sending_an_invoice_still_gets_paid(
    tmp_path: object, book: bool
) -> None:
    """The payee's invoice (or book) leaves only once its record is durable: killed right after
    sending it, the restarted payee accepts the lock that pays it (before: it had no record of
    the invoice and refused the lock, so the payment failed)."""
    async with peers(tmp_path, ["alice", "washer"]) as net:  # type: ignore[arg-type]
        await net.hub()
        alice, _ = await net.agent("alice")
        washer, washer_peer = await net.agent("washer")
        first = 1
        if book:  # id 1 by a single invoice; id 2, paid in order, asks for a book
            with trio.fail_after(10):
                await alice.pay(address_of("washer"), AMOUNT, 1)
            first = 2
        freeze_after_sending(washer.service, (wire.InvoiceBook,) if book else (wire.Invoice,))
        alice, washer = await _pay_through_a_crash(net, washer_peer, "washer", alice, first)
        assert alice.payments[first].status == "completed"
        await _wait_until(lambda: _sync_received(washer, first))
        assert record_mismatches(alice) == []
        assert record_mismatches(washer) == []


def _sync_received(agent: Agent, payment_id: int) -> bool:
    return any(
        r.payment_id == payment_id and r.status == "received" for r in agent.invoices.values()
    )


POINTS = ["before_commit", "before_acting", "after_acting"]


@pytest.mark.parametrize("point", POINTS)
@pytest.mark.parametrize(
    ("name", "event"),
    [
        ("washer", ev.EventLockedTransferReceived),  # the payee decides to reveal the secret
        ("washer", ev.EventUnlockReceived),  # the payee is paid
        ("alice", ev.EventUnlockSent),  # the payer's payment ends
    ],
    ids=["payee_reveals", "payee_paid", "payer_unlocks"],
)
async def test_an_agent_killed_at_any_step_of_a_payment_keeps_records_equal_to_its_channel(
    tmp_path: object, point: str, name: str, event: type
) -> None:
    async with peers(tmp_path, ["alice", "washer"]) as net:  # type: ignore[arg-type]
        await net.hub()
        alice, alice_peer = await net.agent("alice")
        washer, washer_peer = await net.agent("washer")
        with trio.fail_after(10):
            await alice.pay(address_of("washer"), AMOUNT, 1)  # a payment before: records to keep
        victim, peer = (alice, alice_peer) if name == "alice" else (washer, washer_peer)
        freeze_at(victim.service, point, _has(event))
        alice, restarted = await _pay_through_a_crash(net, peer, name, alice, 2)
        washer = restarted if name == "washer" else washer
        assert alice.payments[2].status == "completed"
        await _wait_until(lambda: _sync_received(washer, 2))
        await _wait_until(lambda: not alice.service.channel_with(alice.hub).our.slot_of)  # type: ignore[union-attr]
        assert record_mismatches(alice) == []
        assert record_mismatches(washer) == []


def test_an_expired_invoice_can_be_withdrawn(tmp_path: Path) -> None:
    """An invoice whose lock expired unpaid refuses every later lock: withdrawing it succeeds
    (before: it said "revealed, cannot withdraw", so an asset agent refusing a prepaid use kept
    charging the user forever and never recorded the use as refused)."""
    opening = hub_channels(address_of("hub"), [address_of("washer")], 10**6, 10**6)
    service = open_service("washer", tmp_path / "washer.sqlite", opening)
    try:
        agent = Agent(service, address_of("hub"))
        payer = address_of("alice")
        secrethash = secrethash_of(agent._secret_for(payer, 5))
        agent.invoices[secrethash] = InvoiceRecord(5, payer, 100, secrethash, status="expired")
        assert agent.cancel_invoice(payer, 5)
        assert agent.invoices[secrethash].status == "expired"  # unchanged: already final
    finally:
        service.store.close()

"""Routed payments through a running hub: payer -> hub -> payee over loopback TCP."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from channels import wire
from channels.agent import PaymentError
from tests.hub.netfix import TERMS, running_net


async def test_a_routed_payment_moves_amount_and_fee(tmp_path: Path) -> None:
    async with running_net(tmp_path, ["alice", "washer"]) as net:
        alice, washer = net.agents["alice"], net.agents["washer"]
        with trio.fail_after(10):
            outcome = await alice.pay(net.address("washer"), 1_234_567, payment_id=1)
            received = await washer.received.receive()
        fee = TERMS.fees.fee(1_234_567)
        assert outcome.fee == fee
        assert received.amount == 1_234_567 and received.payment_id == 1
        assert received.payer == net.address("alice")
        [a] = alice.balances()
        [w] = washer.balances()
        assert a.balance == 1_000_000_000 - 1_234_567 - fee
        assert w.balance == 1_000_000_000 + 1_234_567
        assert a.pending_locks == 0 and w.pending_locks == 0
        assert net.hub.stats.forwarded == 1
        assert net.hub.stats.fees_earned == fee


async def test_paying_the_same_payment_id_twice_pays_once(tmp_path: Path) -> None:
    async with running_net(tmp_path, ["alice", "washer"]) as net:
        alice = net.agents["alice"]
        with trio.fail_after(10):
            first = await alice.pay(net.address("washer"), 500, payment_id=7)
            again = await alice.pay(net.address("washer"), 500, payment_id=7)
        assert first == again
        [a] = alice.balances()
        assert a.balance == 1_000_000_000 - 500 - TERMS.fees.fee(500)
        with pytest.raises(PaymentError, match="already used"):
            await alice.pay(net.address("washer"), 501, payment_id=7)


async def test_many_payments_in_flight_at_once(tmp_path: Path) -> None:
    async with running_net(tmp_path, ["alice", "bob", "washer", "dryer"]) as net:
        payments = []
        async with trio.open_nursery() as nursery:
            for index in range(200):
                payer = net.agents["alice" if index % 2 else "bob"]
                payee = net.address("washer" if index % 3 else "dryer")

                async def pay(payer=payer, payee=payee, index=index) -> None:  # type: ignore[no-untyped-def]
                    payments.append(await payer.pay(payee, 1000 + index, payment_id=index + 1))

                nursery.start_soon(pay)
        assert len(payments) == 200
        total = sum(p.amount for p in payments)
        fees = sum(p.fee for p in payments)
        hub_balances = (
            {b.partner: b.balance for b in net.hub_balances()}
            if hasattr(net, "hub_balances")
            else None
        )
        received = sum(
            b.balance - 1_000_000_000
            for name in ("washer", "dryer")
            for b in net.agents[name].balances()
        )
        paid = sum(
            1_000_000_000 - b.balance
            for name in ("alice", "bob")
            for b in net.agents[name].balances()
        )
        assert received == total
        assert paid == total + fees
        assert net.hub.stats.fees_earned == fees
        del hub_balances


async def test_old_payments_leave_memory_but_stay_idempotent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("channels.agent.RECENT_RECORDS", 2)
    async with running_net(tmp_path, ["alice", "washer"]) as net:
        alice, washer = net.agents["alice"], net.agents["washer"]
        with trio.fail_after(20):
            first = await alice.pay(net.address("washer"), 700, payment_id=1)
            for payment_id in range(2, 8):
                await alice.pay(net.address("washer"), 700, payment_id=payment_id)
            await alice.service.wait_committed()
            assert 1 not in alice.payments and len(alice.payments) <= 3
            received = [r for r in washer.invoices.values() if r.status == "received"]
            assert len(received) <= 3  # the rest of its records are the payer's open invoices
            again = await alice.pay(net.address("washer"), 700, payment_id=1)  # from the store
        assert again == first
        [a] = alice.balances()
        assert a.balance == 1_000_000_000 - 7 * (700 + TERMS.fees.fee(700))


async def test_payments_in_id_order_use_open_invoices_without_a_round_trip(
    tmp_path: Path,
) -> None:
    async with running_net(tmp_path, ["alice", "washer"]) as net:
        alice, washer = net.agents["alice"], net.agents["washer"]
        with trio.fail_after(20):
            for payment_id in range(1, 101):
                await alice.pay(net.address("washer"), 300 + payment_id, payment_id)
            received = [await washer.received.receive() for _ in range(100)]
        assert [r.amount for r in received] == [300 + i for i in range(1, 101)]
        # 100 payments, a few books of 64 open invoices: not 200 invoice messages relayed
        assert net.hub.stats.relayed <= 8


async def test_a_payee_refuses_a_book_that_is_not_open_amount(tmp_path: Path) -> None:
    async with running_net(tmp_path, ["alice", "washer"]) as net:
        alice = net.agents["alice"]
        refused: list[str] = []
        original = alice._on_routing

        def spy(connection, message):  # type: ignore[no-untyped-def]
            if isinstance(message, wire.InvoiceRefused):
                refused.append(message.reason)
            original(connection, message)

        alice.service.on_routing = spy
        alice.service.send_routing(
            alice.hub,
            wire.InvoiceRequest(
                payment_id=1,
                payer=alice.service.address,
                payee=net.address("washer"),
                amount=wire.amount_to_wire(5),
                count=10,
            ),
        )
        with trio.fail_after(5):
            while not refused:  # noqa: ASYNC110  # the refusal comes back through the hub
                await trio.sleep(0.01)
        assert "open amounts" in refused[0]
        assert not net.agents["washer"].invoices


async def test_a_payer_whose_book_is_refused_falls_back_to_single_invoices(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("channels.agent.MAX_OPEN_PER_PAYER", 10)  # below one book
    async with running_net(tmp_path, ["alice", "washer"]) as net:
        alice, washer = net.agents["alice"], net.agents["washer"]
        with trio.fail_after(20):
            for payment_id in range(1, 6):
                await alice.pay(net.address("washer"), 1_000, payment_id)
            received = [await washer.received.receive() for _ in range(5)]
        assert [r.payment_id for r in received] == [1, 2, 3, 4, 5]
        assert net.address("washer") in alice._no_books


async def test_interleaved_payment_ids_use_single_invoices(tmp_path: Path) -> None:
    async with running_net(tmp_path, ["alice", "washer", "dryer"]) as net:
        alice = net.agents["alice"]
        with trio.fail_after(20):
            for payment_id in range(1, 41):
                payee = net.address("washer" if payment_id % 2 else "dryer")
                await alice.pay(payee, 1_000, payment_id)
        assert not net.agents["washer"]._open_issued.get(alice.service.address)

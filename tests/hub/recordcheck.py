"""Checks that an agent's records equal its channel with the hub: what the records say was paid,
received and is still locked is exactly what the channel says (the records of one process are
durable with the state changes they belong to, so no crash point can leave them apart).
"""

from __future__ import annotations

from channels.agent import Agent
from channels.records import InvoiceRecord, PaymentRecord


def record_mismatches(agent: Agent) -> list[str]:
    """What differs between `agent`'s payment and invoice records (all of them, in memory or
    only in the store) and its channel with the hub; empty when they agree. Assumes the agent's
    channel moved money only through its payments and invoices (no direct transfers)."""
    channel = agent.service.channel_with(agent.hub)
    assert channel is not None, "no open channel with the hub"
    payments = {
        r.payment_id: r
        for _, r in agent.service.store.facts("payment:")
        if isinstance(r, PaymentRecord)
    }
    payments.update(agent.payments)  # newer than the store when a commit is under way
    invoices = {
        r.secrethash: r
        for _, r in agent.service.store.facts("invoice:")
        if isinstance(r, InvoiceRecord)
    }
    invoices.update(agent.invoices)
    problems = []
    locked = {bytes(r.secrethash) for r in payments.values() if r.status == "locked"}
    in_channel = {bytes(h) for h in channel.our.slot_of}
    if locked != in_channel:
        problems.append(
            f"payments locked in the records but not in the channel: {len(locked - in_channel)};"
            f" locks in the channel with no locked payment: {len(in_channel - locked)}"
        )
    paid = sum(r.amount + r.fee for r in payments.values() if r.status == "completed")
    if paid != channel.our.balance_proof.transferred:
        problems.append(
            f"completed payments sum to {paid}, the channel transferred"
            f" {channel.our.balance_proof.transferred}"
        )
    received = sum(r.received for r in invoices.values() if r.status == "received")
    if received != channel.partner.balance_proof.transferred:
        problems.append(
            f"received invoices sum to {received}, the hub transferred"
            f" {channel.partner.balance_proof.transferred}"
        )
    revealed = {bytes(r.secrethash) for r in invoices.values() if r.status == "revealed"}
    incoming = {bytes(h) for h in channel.partner.slot_of}
    if not revealed <= incoming:
        problems.append(
            f"invoices revealed with no lock in the channel: {len(revealed - incoming)}"
        )
    return problems

"""How records are stored and replayed: the one store codec, the replay function, and the
shell's own stored records (outbox messages, payments, invoices).

Every shell that logs core state changes (the party shell, the benchmarks, the services) uses
these, so a record type added to the core is storable everywhere at once. No I/O here.
"""

from __future__ import annotations

import typing
from typing import Any

import msgspec

from channels.core import events as ev
from channels.core import state_changes as sc
from channels.core.node import node_transition
from channels.core.state import NodeState
from channels.store import RecordCodec


class OutboxMessage(msgspec.Struct, frozen=True):
    """A signed, encoded peer message kept until its receiver acknowledges it."""

    recipient: bytes
    message_id: int
    payload: bytes


class OutboxBatch(msgspec.Struct, frozen=True):
    """The messages one commit group sent, kept as one outbox row until all are acknowledged
    (one row per group, not per message: the commit thread binds one row, not hundreds)."""

    messages: list[OutboxMessage]


class PaymentRecord(msgspec.Struct, frozen=True):
    """A payment we make, by payment id: what we were asked to pay and how it ended."""

    payment_id: int
    payee: bytes
    amount: int
    fee: int = 0
    secrethash: bytes = b""
    status: str = "requested"  # requested | locked | completed | failed
    reason: str = ""


class InvoiceRecord(msgspec.Struct, frozen=True):
    """An invoice we issued as payee, by secrethash: who pays, how much, and whether it was paid."""

    payment_id: int
    payer: bytes
    amount: int
    secrethash: bytes
    status: str = "issued"  # issued | revealed | received | refused
    received: int = 0


class ReceiptRecord(msgspec.Struct, frozen=True):
    """An asset's receipt for a charge we paid: its signed revenue-ledger entry (opaque here)."""

    asset: bytes
    payment_id: int
    entry: bytes


class OutboxTransaction(msgspec.Struct, frozen=True):
    """A core transaction signed with its nonce, kept (replacing the event in its outbox row)
    until it is mined with confirmations: the call, and every signed version sent so far (each
    a replacement of the one before, same nonce, higher fee), the newest last. After a restart
    the newest version goes out again: the same nonce, never a second transaction."""

    kind: str  # the event's type name, for logs
    function: str
    to: bytes
    data: bytes
    value: int
    gas: int
    nonce: int
    fee_price: int
    fee_priority: int | None
    raws: list[bytes]
    hashes: list[bytes]
    priority: int = 0
    deadline: int | None = None


SHELL_RECORDS: tuple[type, ...] = (
    OutboxTransaction,
    OutboxMessage,
    OutboxBatch,
    PaymentRecord,
    InvoiceRecord,
    ReceiptRecord,
)


def core_record_codec() -> RecordCodec:
    """The store codec for every core state change, event, the node state (snapshots) and the
    shell's own records."""
    return RecordCodec(
        [*typing.get_args(sc.StateChange), *typing.get_args(ev.Event), NodeState, *SHELL_RECORDS]
    )


def replay(node: NodeState, state_change: Any) -> NodeState:
    """The core transition as the store's replay wants it (events were already acted on)."""
    return node_transition(node, state_change).new_state

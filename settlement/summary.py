"""JSON-ready summaries of the hub's settlement file: one round, and the hub's current status.

What `cise settle history|status --json` prints and what the HTTP API (`api/`) serves. Money is
shown twice: as a euro string (for people) and as integer token units in fields ending in
`_units` (for programs). Reading only: it must never write to the settlement file or decide
anything about a round (that is `settlement.rounds`).
"""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

from channels.core.types import to_checksum
from settlement.store import SettlementStore, SettlementStoreError

STATUS_STALE_S = 10.0  # a hub that has not written its status for this long is not running
UNITS_PER_EURO = 1_000_000


def euro(units: int) -> str:
    """Token units as euros with all six decimals, e.g. €1,234.000001 (display only)."""
    return f"€{Decimal(units) / UNITS_PER_EURO:,.6f}"


def when(timestamp: float) -> str:
    """A unix time as `YYYY-MM-DD HH:MM:SS UTC`."""
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(timestamp))


def round_summary(store: SettlementStore, round_id: int) -> dict[str, Any]:
    """One round as a JSON-ready dict: what was planned, signed, moved, and its transactions.

    `SettlementStoreError` when the file holds no such round."""
    row = store.round(round_id)
    if row is None:
        raise SettlementStoreError(f"no settlement round {round_id}")
    hub = store.owner()
    items = store.items(round_id)
    transactions = store.transactions(round_id)
    applied = {t.tx_index for t in transactions if t.status == "applied"}
    landed = [i for i in items if i.tx_index in applied]
    deposits = [d for d in store.deposits(round_id) if d.tx_index in applied]
    to_counterparties = sum(i.amount for i in landed if i.participant != hub)
    hub_withdrawn = sum(i.amount for i in landed if i.participant == hub)
    redeposited = sum(d.amount for d in deposits)
    gas_used = sum(t.gas_used or 0 for t in transactions)
    return {
        "round": row.id,
        "status": row.status,
        "reason": row.reason,
        "started_at": when(row.started_at),
        "started_at_s": row.started_at,
        "block": row.block,
        "expiry": row.expiry,
        "planned": len(items),
        "signed": sum(i.signature is not None for i in items),
        "unsigned_channels": sorted({i.channel_id for i in items if i.signature is None}),
        "to_counterparties": euro(to_counterparties),
        "to_counterparties_units": to_counterparties,
        "hub_withdrawn": euro(hub_withdrawn),
        "hub_withdrawn_units": hub_withdrawn,
        "redeposited": euro(redeposited),
        "redeposited_units": redeposited,
        "gas_used": gas_used,
        "gas_per_item": round(gas_used / len(landed)) if landed else None,
        "transactions": [
            {
                "index": t.tx_index,
                "status": t.status,
                "hash": "0x" + t.tx_hash.hex() if t.tx_hash else None,
                "gas_used": t.gas_used,
                "block": t.block,
                "error": t.error,
            }
            for t in transactions
        ],
        "excluded": [
            {
                "kind": e.kind,
                "channel": e.channel_id,
                "participant": to_checksum(e.participant),
                "reason": e.reason,
            }
            for e in store.excluded(round_id)
        ],
        "note": row.note,
    }


def status_summary(store: SettlementStore, now: float) -> dict[str, Any]:
    """What the hub last reported: what is owed, when the next round is due, who does not sign."""
    hub = store.owner()
    status = store.status()
    updated = float(status.get("updated_at", "0"))
    rounds = store.rounds(1)
    owed = int(status.get("owed", "0"))  # earned, not on chain yet (batches in flight included)
    in_flight = int(status.get("in_flight", "0"))
    trigger = int(status.get("amount_trigger", "0"))
    return {
        "hub": to_checksum(hub) if hub else None,
        "hub_running": now - updated < STATUS_STALE_S,
        "status_written_at": when(updated) if updated else None,
        "owed_to_counterparties": euro(owed),
        "owed_to_counterparties_units": owed,
        "owed_in_flight": euro(in_flight),
        "owed_in_flight_units": in_flight,
        "channels": int(status.get("channels", "0")),
        "period_s": int(status.get("period_s", "0")),
        "amount_trigger": euro(trigger),
        "amount_trigger_units": trigger,
        "next_due_at": when(float(status["next_due_at"])) if "next_due_at" in status else None,
        "next_due_at_s": float(status["next_due_at"]) if "next_due_at" in status else None,
        "last_round": round_summary(store, rounds[0].id) if rounds else None,
        "not_signing": [
            {
                "channel": m.channel_id,
                "partner": to_checksum(m.partner),
                "since": when(m.first_missed_at),
                "rounds_missed": m.rounds,
                "closed_at": when(m.closed_at) if m.closed_at is not None else None,
            }
            for m in store.misses()
        ],
    }


__all__ = ["STATUS_STALE_S", "euro", "round_summary", "status_summary", "when"]

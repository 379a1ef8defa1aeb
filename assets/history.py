"""An asset's lifecycle on one timeline: its uses and revenue, the service events done to it, and
what the chain says about it (registration, split changes, agent changes, transfers).

Pure: the caller reads the ledger and the chain (with block times) and passes them in; this module
only orders and sums them. It must never judge whether the ledger is sound (that is
`assets.audit`), and never let a float touch money.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from assets.ledger import AdmissionBody, ServiceBody, SignedEntry, UseBody
from assets.service_events import ACTIONS


@dataclass(frozen=True, slots=True)
class ChainFact:
    """Something the chain recorded about the asset, at a block's time."""

    time: int
    what: str


@dataclass(frozen=True, slots=True)
class ServiceLine:
    """One service event with what happened since the previous one."""

    seq: int
    time: int
    servicer: bytes
    action: str
    part_id: str
    details: str
    uses_since_previous: int
    revenue_since_previous: int


@dataclass(frozen=True, slots=True)
class Period:
    """Uses and revenue of one UTC day."""

    day: str
    uses: int
    revenue: int


@dataclass
class Lifecycle:
    """The whole history of an asset, ready to print."""

    uses: int = 0
    revenue: int = 0
    services: list[ServiceLine] = field(default_factory=list)
    admissions: list[tuple[int, bytes, bool, str]] = field(default_factory=list)
    periods: list[Period] = field(default_factory=list)
    chain: list[ChainFact] = field(default_factory=list)
    uses_since_last_service: int = 0
    revenue_since_last_service: int = 0
    by_servicer: dict[bytes, Counter[str]] = field(default_factory=dict)

    def timeline(self) -> list[tuple[int, str]]:
        """(time, line) of every service event, admission and chain fact, in time order."""
        lines = [
            (s.time, f"{s.action}{f' ({s.part_id})' if s.part_id else ''} by 0x{s.servicer.hex()}"
             f": {s.details} [after {s.uses_since_previous} uses]")
            for s in self.services
        ]  # fmt: skip
        lines += [
            (t, f"{'admitted' if ok else 'removed'} servicer 0x{who.hex()}{': ' + note if note else ''}")
            for t, who, ok, note in self.admissions
        ]  # fmt: skip
        lines += [(fact.time, fact.what) for fact in self.chain]
        return sorted(lines, key=lambda line: line[0])


def _day(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d")


def lifecycle(entries: Sequence[SignedEntry], chain: Sequence[ChainFact] = ()) -> Lifecycle:
    """Sum and order an asset's ledger entries (all of them, by seq) and chain facts."""
    life = Lifecycle(chain=sorted(chain, key=lambda fact: fact.time))
    days: dict[str, list[int]] = {}
    since_uses = since_revenue = 0
    for entry in entries:
        body = entry.decode_body()
        if isinstance(body, UseBody):
            life.uses += 1
            life.revenue += body.fee
            since_uses += 1
            since_revenue += body.fee
            day = days.setdefault(_day(entry.time), [0, 0])
            day[0] += 1
            day[1] += body.fee
        elif isinstance(body, ServiceBody):
            action = ACTIONS.get(body.action, str(body.action))
            life.services.append(
                ServiceLine(
                    entry.seq,
                    body.time,
                    body.servicer,
                    action,
                    body.part_id,
                    body.details,
                    since_uses,
                    since_revenue,
                )
            )
            life.by_servicer.setdefault(body.servicer, Counter())[action] += 1
            since_uses = since_revenue = 0
        elif isinstance(body, AdmissionBody):
            life.admissions.append((entry.time, body.servicer, body.admitted, body.note))
    life.uses_since_last_service = since_uses
    life.revenue_since_last_service = since_revenue
    life.periods = [Period(day, uses, revenue) for day, (uses, revenue) in sorted(days.items())]
    return life


__all__ = ["ChainFact", "Lifecycle", "Period", "ServiceLine", "lifecycle"]

"""The governed hub fee cap and the hub role, as decisions every party makes for itself.

The members set a network-wide hub fee cap on chain (`NetworkParameters.hubFeeCap`) and give the
hub role to the members who may route for fees (`Membership`). These functions say what that
means for one payment or one hub, from values the shell read from the chain:

- `route_fee_problem`: a payer refuses a route whose fee for this payment exceeds the cap it
  knows at that moment (the fee is fixed when the lock is made, so the check comes before any
  lock leaves);
- `hub_standing_problem`: a payer refuses a hub that is not an active member with the hub role;
- `capped_schedule`: a running hub lowers its announced fee to the governed cap (and returns to
  its own configured fee when the cap rises again, never above it).

Pure: no I/O, no chain, no clock. It must never let a fee above the known cap through, and never
raise a hub's fee above what its operator configured.
"""

from __future__ import annotations

from channels.core.fees import FeeSchedule


def route_fee_problem(fee: int, governed_cap: int | None) -> str | None:
    """Why a payment whose hub fee is `fee` must not be made (None: it may). `governed_cap` is
    the network's hub fee cap as known now (None: the network has no governed cap)."""
    if governed_cap is None or fee <= governed_cap:
        return None
    return (
        f"the hub's fee for this payment ({fee} token units) is above the network's hub fee cap "
        f"({governed_cap} token units, set by the members' governance): not paying it"
    )


def hub_standing_problem(hub: bytes, active_member: bool, hub_role: bool) -> str | None:
    """Why a payer must not route through `hub` (None: it may): only an active member holding
    the hub role routes payments for fees."""
    if not active_member:
        return (
            f"the hub 0x{hub.hex()} is not an active member of the network: not routing through it"
        )
    if not hub_role:
        return f"the hub 0x{hub.hex()} does not hold the hub role: not routing through it"
    return None


def capped_schedule(configured: FeeSchedule, governed_cap: int | None) -> FeeSchedule:
    """The fee a hub configured with `configured` may announce under `governed_cap`: its own fee
    with the cap lowered to the governed one (and the flat part with it, as a flat fee above the
    cap is no fee schedule); unchanged when the governed cap is at or above its own."""
    if governed_cap is None or configured.cap <= governed_cap:
        return configured
    cap = max(0, governed_cap)
    return FeeSchedule(flat=min(configured.flat, cap), ppm=configured.ppm, cap=cap)


__all__ = ["capped_schedule", "hub_standing_problem", "route_fee_problem"]

"""The payment ids an asset agent uses, so that charges and shares can be matched to the ledger.

- A charge's id is derived from the asset id and the meter event id, with the top bit set: the
  same event always gets the same id (a retry is idempotent), and it never meets a user's own
  payment ids (which stay below 2**63).
- The share of beneficiary `b` in its `n`-th share is paid with id `slot(b) << 40 | n`
  (consecutive per beneficiary, so invoice books apply); attempt `k > 0`, after a failed one, uses
  `slot(b) << 40 | k << 32 | n`. The ledger records the first id; `share_base_id` maps any
  attempt back to it.

Pure: no I/O.
"""

from __future__ import annotations

from channels.codec.keccak import keccak

CHARGE_ID_BIT = 1 << 63
ATTEMPT_SHIFT = 32
SLOT_SHIFT = 40
MAX_ATTEMPTS = 255
MAX_SLOT = (1 << 22) - 1


def charge_payment_id(asset_id: bytes, event_id: str) -> int:
    """The payment id of the charge for one meter event (deterministic: a retry is the same)."""
    return CHARGE_ID_BIT | int.from_bytes(keccak(asset_id + event_id.encode())[:8], "big") >> 1


def share_payment_id(slot: int, n: int, attempt: int = 0) -> int:
    """The payment id of a beneficiary's `n`-th share, try `attempt`."""
    if (
        not 0 < slot <= MAX_SLOT
        or not 0 < n < 1 << ATTEMPT_SHIFT
        or not 0 <= attempt <= MAX_ATTEMPTS
    ):
        raise ValueError(f"share payment id out of range (slot {slot}, n {n}, attempt {attempt})")
    return slot << SLOT_SHIFT | attempt << ATTEMPT_SHIFT | n


def share_base_id(payment_id: int) -> int:
    """The ledger's id of the share a payment (any attempt) pays."""
    return payment_id & ~(MAX_ATTEMPTS << ATTEMPT_SHIFT)


__all__ = [
    "ATTEMPT_SHIFT",
    "MAX_ATTEMPTS",
    "charge_payment_id",
    "share_base_id",
    "share_payment_id",
]

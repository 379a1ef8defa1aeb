"""The asset agent's float for routing fees: how much of its own money it keeps in its channel
with the hub beside what it owes its beneficiaries.

A share is paid as a routed payment, and the hub's fee on it is the asset's own cost (never taken
from the share). Everything the users paid is owed onward as shares, so without money of its own in
the channel the agent cannot pay the fee of its last shares ("amount exceeds our capacity"). The
agent therefore keeps a float: `spare = capacity - owed` (what it can send beyond the shares it
still has to pay: its own share of the split when it is a beneficiary, plus what it deposited).
When the spare falls below half the float, it raises its deposit back to a whole float — from its
internal balance in the channel manager (where settlement puts its earnings) when that holds
enough, else from its ERC20 wallet.

Pure: no I/O; the agent and `cise asset run` act on what it says. It must never count a share's
money as spare.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_FEE_FLOAT = 100_000  # token units (€0.10): ten shares at the network's default fee cap


@dataclass(frozen=True, slots=True)
class FloatTopUp:
    """A deposit to make: raise the channel's total deposit by `increase`."""

    increase: int
    spare: int  # what was spare before it


def float_top_up(capacity: int, owed: int, target: int) -> FloatTopUp | None:
    """The top-up that brings the spare back to `target`, or None while at least half is left
    (a smaller top-up each time would cost a transaction per use)."""
    if target <= 0:
        return None
    spare = capacity - owed
    if spare * 2 >= target:
        return None
    return FloatTopUp(target - spare, spare)


__all__ = ["DEFAULT_FEE_FLOAT", "FloatTopUp", "float_top_up"]

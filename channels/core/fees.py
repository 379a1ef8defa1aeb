"""The hub's routing fee: flat + proportional (ppm), never above a cap. Pure integer arithmetic.

Payers and the hub compute it with the same function: a payer locks `amount + routing_fee(amount)`
and the hub forwards `forward_amount(locked)`, the largest amount whose fee the lock covers,
which for a lock made that way is exactly `amount` (amount + fee is strictly increasing).
Never uses floats; never rounds in the hub's favour beyond the floor of the ppm part.
"""

from __future__ import annotations

import msgspec

PPM = 1_000_000


class FeeSchedule(msgspec.Struct, frozen=True):
    """A hub's fee: `min(flat + amount * ppm // 1_000_000, cap)`."""

    flat: int = 0
    ppm: int = 0
    cap: int = 0

    def __post_init__(self) -> None:
        if self.flat < 0 or self.cap < 0:
            raise ValueError("the flat fee and the fee cap must not be negative")
        if not 0 <= self.ppm <= PPM:
            raise ValueError(f"the proportional fee must be 0..{PPM} ppm, got {self.ppm}")
        if self.flat > self.cap:
            raise ValueError(f"the flat fee {self.flat} is above the fee cap {self.cap}")

    def fee(self, amount: int) -> int:
        """The fee for forwarding `amount`."""
        return min(self.flat + amount * self.ppm // PPM, self.cap)

    def forward_amount(self, locked: int) -> int:
        """The largest amount `a` with `a + fee(a) <= locked` (0 when the lock covers none)."""
        if locked <= self.fee(0):
            return 0
        # a + fee(a) <= locked holds when it holds with the capped fee or with the uncapped one;
        # a + fee(a) is strictly increasing, so the answer is within a step or two of the larger
        guess = max(0, locked - self.cap, (locked - self.flat) * PPM // (PPM + self.ppm))
        while guess + 1 + self.fee(guess + 1) <= locked:
            guess += 1
        while guess > 0 and guess + self.fee(guess) > locked:
            guess -= 1
        return guess

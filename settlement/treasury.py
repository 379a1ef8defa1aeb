"""The community treasury's part of a hub's fee income: how much, decided from the hub's channels.

A hub routes payments: for each one it receives `amount + fee` from the payer's channel and sends
`amount` on to the payee's, so across its channels what it received minus what it sent (the
off-chain balance proofs' cumulative `transferred`, which withdraws and deposits never change) is
its fee income. The settlement file keeps, per channel, the net (received - sent) when income was
last counted (`treasury_counted`); a round's income is the sum of each channel's growth since.

Rules (each tested):
- the part is `floor(income * ppm / 1e6)`, with the ppm the network's `treasuryFeePpm` in force;
- with ppm 0 nothing is counted or recorded (a round is as it was before the treasury existed);
- the first round with a ppm above 0 only counts (the part applies to income earned from then on,
  not to fees routed while the members had set no part);
- a round whose income is not positive, or whose part rounds down to 0, counts nothing (the
  income stays to be counted by a later round: a payment half-unlocked at the round's moment, or
  a small income, is never lost to the treasury, and never counted twice);
- a channel the hub no longer has keeps its last count (its later income, if any, is not counted:
  the treasury is never paid more than its part).

Pure: no I/O. It must never count a unit of income twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from channels.core.state import ChannelState

PPM = 1_000_000


@dataclass(frozen=True, slots=True)
class TreasuryShare:
    """What one round records: the nets to count from now on, the income and the part owed."""

    counted: dict[int, int]  # channel -> net now (empty: record nothing)
    income: int
    amount: int  # owed to the treasury (0: no payment)


NOTHING = TreasuryShare({}, 0, 0)


def net_of(channel: ChannelState) -> int:
    """What the hub received minus what it sent in `channel` (off chain, cumulative)."""
    return int(channel.partner.balance_proof.transferred) - int(
        channel.our.balance_proof.transferred
    )


def part(income: int, ppm: int) -> int:
    """The treasury's part of `income`: floor(income * ppm / 1e6)."""
    if income < 0 or not 0 <= ppm <= PPM:
        raise ValueError(f"income {income} and ppm {ppm} must be >= 0 (ppm at most {PPM})")
    return income * ppm // PPM


def treasury_share(
    channels: Iterable[ChannelState], counted: Mapping[int, int], ppm: int
) -> TreasuryShare:
    """This round's share (see the module docstring for the rules)."""
    if ppm == 0:
        return NOTHING
    nets = {int(channel.channel_id): net_of(channel) for channel in channels}
    if not counted:  # the part starts now
        return TreasuryShare(nets, 0, 0)
    income = sum(net - counted.get(channel_id, 0) for channel_id, net in nets.items())
    if income <= 0:
        return NOTHING
    amount = part(income, ppm)
    if amount == 0:
        return NOTHING
    return TreasuryShare(nets, income, amount)


__all__ = ["NOTHING", "PPM", "TreasuryShare", "net_of", "part", "treasury_share"]

"""What one settlement period moves on chain, decided from the hub's view of its channels.

At the end of a period (or earlier, when enough value is owed) the hub settles every channel that
owes something in one batch (DESIGN §3-§4): each counterparty's earnings become withdrawable
(`Withdraw` of what it received net of what it sent, to its internal balance on the channel
manager; a payer's prepaid deposit stays in the channel), the hub takes
its own surplus out of channels where users paid it, and re-deposits into channels where its
capacity towards the counterparty fell below the liquidity target, paid from what it withdrew in
the same batch and from its internal balance. This module only decides the items; signing,
co-signing and sending them is the settlement service's job.

Rules (each tested):
- only open channels with no withdraw already pending are planned;
- a withdraw is planned only when the amount is at least `min_withdraw` (gas versus value);
- a counterparty withdraws its earnings (received - sent - withdrawn), within its capacity (its
  balance minus what it has locked in flight): pending locks stay in the channel;
- the hub keeps `liquidity_target` of capacity in every channel it withdraws from, and tops every
  channel below the target back up, as far as its funds allow (its withdrawals in the batch plus
  its internal balance), lowest capacity first; with `manage_liquidity` off it does neither;
- totals are cumulative (`total_withdraw`, `total_deposit`), as the contract wants.

Pure: no I/O, clock or keys. It must never plan more out of a channel than the party's capacity,
or re-deposit more than the hub has.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from msgspec.structs import replace

from channels.core.channel import get_capacity, get_earnings
from channels.core.state import ChannelState, ChannelStatus, EndState
from channels.core.types import Address


@dataclass(frozen=True, slots=True)
class SettlementPolicy:
    """The network's settlement parameters as the hub applies them."""

    period_s: int  # settle at least this often (the governed settlement period)
    amount_trigger: int  # settle early once this much is owed to counterparties (0: never)
    min_withdraw: int  # smaller withdraws wait for a later period
    liquidity_target: int  # the hub's capacity to keep towards each counterparty
    expiry_blocks: int  # how long the signed items stay valid
    # False: the hub neither withdraws its own capacity nor re-deposits (only counterparties settle)
    manage_liquidity: bool = True

    def __post_init__(self) -> None:
        if self.period_s <= 0 or self.expiry_blocks <= 0:
            raise ValueError("the period and the expiry must be positive")
        if min(self.amount_trigger, self.min_withdraw, self.liquidity_target) < 0:
            raise ValueError("amounts must not be negative")


@dataclass(frozen=True, slots=True)
class WithdrawItem:
    """`Withdraw(channelId, participant, totalWithdraw, expiry)`, to be signed by both."""

    channel_id: int
    participant: Address
    total_withdraw: int
    amount: int  # the increase over what is withdrawn already
    expiry: int


@dataclass(frozen=True, slots=True)
class Redeposit:
    """The hub's new total deposit in a channel, paid from its internal balance."""

    channel_id: int
    total_deposit: int
    amount: int


@dataclass(frozen=True, slots=True)
class SettlementPlan:
    """The items of one batch."""

    withdraws: tuple[WithdrawItem, ...]  # counterparties' and the hub's
    redeposits: tuple[Redeposit, ...]
    owed_to_counterparties: int  # what becomes withdrawable for them

    @property
    def empty(self) -> bool:
        return not self.withdraws and not self.redeposits


def settlement_due(
    policy: SettlementPolicy, last_settled_at: int, now: int, owed_to_counterparties: int
) -> bool:
    """Whether a batch should run now: the period is over, or enough is owed (an amount trigger
    of 0 is off)."""
    if now - last_settled_at >= policy.period_s:
        return True
    return policy.amount_trigger > 0 and owed_to_counterparties >= policy.amount_trigger


def _plannable(channel: ChannelState) -> bool:
    return (
        channel.status is ChannelStatus.OPENED
        and channel.our.pending_withdraw is None
        and channel.partner.pending_withdraw is None
    )


def owed(channels: Iterable[ChannelState], policy: SettlementPolicy) -> int:
    """What counterparties could withdraw now (the amount trigger's measure)."""
    return sum(
        earned
        for channel in channels
        if _plannable(channel)
        and (earned := get_earnings(channel.partner, channel.our)) >= policy.min_withdraw
    )


def unsettled(channels: Iterable[ChannelState]) -> tuple[int, int]:
    """What counterparties earned in open channels and the chain does not show yet, and the part
    of it in a withdraw in flight (signed for a batch that has not landed, or failed and not yet
    expired): `cise settle status`'s "owed". Unlike `owed`, an item in flight still counts, so a
    batch that keeps failing never shows as nothing owed."""
    total = in_flight = 0
    for channel in channels:
        if channel.status is not ChannelStatus.OPENED:
            continue
        partner = replace(channel.partner, pending_withdraw=None)
        our = replace(channel.our, pending_withdraw=None)
        earned = get_earnings(partner, our)
        total += earned
        in_flight += earned - get_earnings(channel.partner, our)
    return total, in_flight


def plan_settlement(
    channels: Iterable[ChannelState],
    hub: Address,
    policy: SettlementPolicy,
    *,
    block_number: int,
    hub_internal_balance: int = 0,
) -> SettlementPlan:
    """The batch for the hub's channels as they stand (see the module docstring)."""
    expiry = block_number + policy.expiry_blocks
    withdraws: list[WithdrawItem] = []
    short: list[tuple[int, ChannelState]] = []  # (hub capacity, channel) below the target
    funds = hub_internal_balance
    owed_total = 0
    for channel in channels:
        if channel.our.address != hub:
            raise ValueError(f"channel {channel.channel_id} is not the hub's view")
        if not _plannable(channel):
            continue
        theirs = get_earnings(channel.partner, channel.our)
        if theirs >= policy.min_withdraw and theirs > 0:
            withdraws.append(_withdraw(channel.channel_id, channel.partner, theirs, expiry))
            owed_total += theirs
        if not policy.manage_liquidity:
            continue
        ours = get_capacity(channel.our, channel.partner)
        surplus = ours - policy.liquidity_target
        if surplus >= policy.min_withdraw and surplus > 0:
            withdraws.append(_withdraw(channel.channel_id, channel.our, surplus, expiry))
            funds += surplus
        elif ours < policy.liquidity_target:
            short.append((ours, channel))
    redeposits = []
    for ours, channel in sorted(short, key=lambda item: (item[0], item[1].channel_id)):
        amount = min(policy.liquidity_target - ours, funds)
        if amount <= 0:
            break
        funds -= amount
        redeposits.append(Redeposit(channel.channel_id, channel.our.deposit + amount, amount))
    return SettlementPlan(tuple(withdraws), tuple(redeposits), owed_total)


def _withdraw(channel_id: int, end: EndState, amount: int, expiry: int) -> WithdrawItem:
    total = end.withdrawn + amount
    return WithdrawItem(channel_id, end.address, total, amount, expiry)


__all__ = [
    "Redeposit",
    "SettlementPlan",
    "SettlementPolicy",
    "WithdrawItem",
    "owed",
    "plan_settlement",
    "settlement_due",
    "unsettled",
]

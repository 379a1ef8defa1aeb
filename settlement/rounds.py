"""The decisions of one settlement round that are not the plan itself: what goes in each
transaction, which re-deposits the hub can afford, what to do with a batch found after a crash,
and when a counterparty that keeps not signing has its channel closed.

A round (see `settlement.service`) plans the batch (`settlement.planner`), asks every party to
sign its item, waits a bounded time, then puts the signed items on chain in as few transactions as
the chain's gas estimates allow. These rules are pure and tested on their own:

- items are sent grouped by recipient (each recipient's balance written once per transaction);
  a transaction's gas is the chain's estimate plus 20% (no constant per item: a first withdraw to
  a fresh recipient costs more than a later one), and one whose estimate exceeds the block budget
  (80% of the block gas limit) or reverts is split in halves, until a single item that cannot go
  is excluded with the reason; a transaction that fails on chain is split the same way, never
  sent again as it was;
- re-deposits are paid from the hub's internal balance plus what the hub's own signed items
  withdraw: only whole re-deposits it can afford, lowest capacity first (the planner's order);
- a batch found signed but not known applied after a restart is APPLIED when the chain shows every
  one of its totals, RESENT while unexpired when it shows none, and otherwise left to the next
  round (EXPIRED, or STALE when the chain shows only some: the batch would revert);
- a channel whose counterparty has not signed since `first_missed_at` is closed once
  `close_after_s` has passed (0: never).

Pure: no I/O, no clock (times come in), no keys. It must never put an item in two transactions,
lose or duplicate an item when splitting, re-deposit more than the hub has, or resend a batch the
chain has applied in part or in full.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from settlement.batch import DepositItem, WithdrawItem, by_recipient
from settlement.planner import Redeposit

GAS_MARGIN_NUM, GAS_MARGIN_DEN = 6, 5  # send with the chain's estimate + 20% (the state moves)
BLOCK_SHARE = 0.8  # the part of a block one batch transaction may fill


@dataclass(frozen=True, slots=True)
class SignedItem:
    """A batch item with its counterparty's signature of the `Withdraw`."""

    item: WithdrawItem
    amount: int  # the increase over what was withdrawn
    signature: bytes


@dataclass(frozen=True, slots=True)
class BatchTransaction:
    """One `settleHubBatch` transaction of a round (before the hub's signature)."""

    items: tuple[SignedItem, ...]
    deposits: tuple[DepositItem, ...]

    @property
    def size(self) -> int:
        return len(self.items) + len(self.deposits)


class Verdict(enum.Enum):
    """What to do with a batch transaction after the chain's estimate (or its failure on chain)."""

    SEND = "send"  # it fits the block budget and does not revert
    SPLIT = "split"  # too big, or it reverts: try its halves
    EXCLUDE = "exclude"  # a single item that reverts alone or needs more than the budget


def gas_budget(block_gas_limit: int) -> int:
    """The most gas one batch transaction may use (a share of the block gas limit)."""
    return int(block_gas_limit * BLOCK_SHARE)


def with_margin(estimate: int) -> int:
    """The gas limit a batch is sent with: the chain's estimate plus 20% (unused gas is not
    charged; the state may move between the estimate and the block)."""
    return -(-estimate * GAS_MARGIN_NUM // GAS_MARGIN_DEN)


def judge(transaction: BatchTransaction, estimate: int | None, budget: int) -> Verdict:
    """Send a batch whose estimate (with the margin) fits `budget`; split one that reverts
    (`estimate` None) or is too big; exclude a single item that cannot go."""
    if estimate is not None and with_margin(estimate) <= budget:
        return Verdict.SEND
    return Verdict.SPLIT if transaction.size > 1 else Verdict.EXCLUDE


def after_failure(transaction: BatchTransaction) -> Verdict:
    """A batch that failed on chain (out of gas, or reverted after a good estimate) is never sent
    again as it was: its halves are, or a single item is excluded."""
    return Verdict.SPLIT if transaction.size > 1 else Verdict.EXCLUDE


def split(transaction: BatchTransaction) -> tuple[BatchTransaction, BatchTransaction]:
    """Two transactions that carry exactly `transaction`'s items and re-deposits, in order: the
    items halved (the re-deposits ride with the second half, after the hub's withdraws credited
    its balance), or a single item then the re-deposits, or the re-deposits halved."""
    items, deposits = transaction.items, transaction.deposits
    if transaction.size < 2:
        raise ValueError("a single item cannot be split")
    if len(items) >= 2:
        half = len(items) // 2
        return BatchTransaction(items[:half], ()), BatchTransaction(items[half:], deposits)
    if items:
        return BatchTransaction(items, ()), BatchTransaction((), deposits)
    half = len(deposits) // 2
    return BatchTransaction((), deposits[:half]), BatchTransaction((), deposits[half:])


def expired(expiry: int, head: int) -> bool:
    """Whether a batch valid up to block `expiry` can no longer land (the next block is past it)."""
    return head + 1 > expiry


def affordable(redeposits: Sequence[Redeposit], funds: int) -> tuple[Redeposit, ...]:
    """The planned re-deposits, in order, as long as each is wholly covered by `funds`."""
    if funds < 0:
        raise ValueError("funds must not be negative")
    chosen = []
    for redeposit in redeposits:
        if redeposit.amount > funds:
            break
        funds -= redeposit.amount
        chosen.append(redeposit)
    return tuple(chosen)


def transactions(
    signed: Sequence[SignedItem], deposits: Sequence[DepositItem]
) -> tuple[BatchTransaction, ...]:
    """The round's first attempt: every item, by recipient, then the re-deposits (after the hub's
    withdraws credited its balance), in one transaction. The chain's estimate splits it
    (`judge`, `split`) until each part fits a block."""
    keyed = {(s.item.channel_id, s.item.participant): s for s in signed}
    if len(keyed) != len(signed):
        raise ValueError("an item appears twice in one round")
    items = tuple(
        keyed[item.channel_id, item.participant] for item in by_recipient(s.item for s in signed)
    )
    if not items and not deposits:
        return ()
    return (BatchTransaction(items, tuple(deposits)),)


def hub_funds(internal_balance: int, signed: Sequence[SignedItem], hub: bytes) -> int:
    """What the hub can re-deposit: its internal balance and its own withdraws in the round."""
    return internal_balance + sum(s.amount for s in signed if s.item.participant == hub)


class Recovery(enum.Enum):
    """What to do with a batch transaction found unfinished at start."""

    APPLIED = "applied"  # the chain shows all of it: record it as applied
    RESEND = "resend"  # the chain shows none of it and it has not expired: send it again
    EXPIRED = "expired"  # the chain shows none of it and it can no longer land
    STALE = "stale"  # the chain shows part of it (it would revert): leave it to the next round


def recover(
    on_chain: Sequence[int], totals: Sequence[int], *, expiry: int, block_number: int
) -> Recovery:
    """Decide about one batch transaction from the chain's totals (withdrawn, or deposited, per
    item, in the batch's order) against the batch's own totals."""
    if len(on_chain) != len(totals) or not totals:
        raise ValueError("one chain total per item of a non-empty batch is needed")
    done = [chain >= total for chain, total in zip(on_chain, totals, strict=True)]
    if all(done):
        return Recovery.APPLIED
    if any(done):
        return Recovery.STALE
    return Recovery.RESEND if block_number <= expiry else Recovery.EXPIRED


def overdue(first_missed_at: float, now: float, close_after_s: float) -> bool:
    """Whether a counterparty that has not signed since `first_missed_at` is past its deadline."""
    return close_after_s > 0 and now - first_missed_at >= close_after_s


def outcome(*, planned: int, deposits: int, sent: bool, landed: int, deposits_landed: int) -> str:
    """A round's status from what it planned (withdraw items; re-deposits it chose to send), whether
    it sent (or excluded) anything, and what landed: `empty` (nothing to do), `unsigned` (nothing
    signed or affordable), `settled` (everything landed), `partial` (some), `failed` (none)."""
    if planned == 0 and deposits == 0:
        return "empty"
    if not sent:
        return "unsigned"
    if landed == planned and deposits_landed == deposits:
        return "settled"
    return "partial" if landed or deposits_landed else "failed"


__all__ = [
    "BatchTransaction",
    "Recovery",
    "SignedItem",
    "Verdict",
    "affordable",
    "after_failure",
    "expired",
    "gas_budget",
    "hub_funds",
    "judge",
    "outcome",
    "overdue",
    "recover",
    "split",
    "transactions",
    "with_margin",
]

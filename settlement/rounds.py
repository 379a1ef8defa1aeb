"""The decisions of one settlement round that are not the plan itself: what goes in each
transaction, which re-deposits the hub can afford, what to do with a batch found after a crash,
and when a counterparty that keeps not signing has its channel closed.

A round (see `settlement.service`) plans the batch (`settlement.planner`), asks every party to
sign its item, waits a bounded time, then puts the signed items on chain in as few transactions as
the block gas limit allows. These rules are pure and tested on their own:

- items are sent grouped by recipient (each recipient's balance written once per transaction),
  at most `items_per_transaction(block_gas_limit)` to a transaction;
- re-deposits are paid from the hub's internal balance plus what the hub's own signed items
  withdraw: only whole re-deposits it can afford, lowest capacity first (the planner's order);
- a batch found signed but not known applied after a restart is APPLIED when the chain shows every
  one of its totals, RESENT while unexpired when it shows none, and otherwise left to the next
  round (EXPIRED, or STALE when the chain shows only some: the batch would revert);
- a channel whose counterparty has not signed since `first_missed_at` is closed once
  `close_after_s` has passed (0: never).

Pure: no I/O, no clock (times come in), no keys. It must never put an item in two transactions,
re-deposit more than the hub has, or resend a batch the chain has applied in part or in full.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from settlement.batch import DepositItem, WithdrawItem, by_recipient
from settlement.planner import Redeposit

BASE_GAS = 60_000  # a batch transaction's fixed part, generously
ITEM_GAS = 45_000  # one hub-batch item at worst (a first withdraw, a fresh recipient), with margin
DEPOSIT_GAS = 30_000  # one re-deposit at worst
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
    def gas_limit(self) -> int:
        return transaction_gas(len(self.items), len(self.deposits))


def transaction_gas(items: int, deposits: int) -> int:
    """A gas limit that covers a batch of this size at worst (unused gas is not charged)."""
    return BASE_GAS + ITEM_GAS * items + DEPOSIT_GAS * deposits


def items_per_transaction(block_gas_limit: int) -> int:
    """How many items one transaction may carry under the block gas limit."""
    room = int(block_gas_limit * BLOCK_SHARE) - BASE_GAS
    if room < ITEM_GAS:
        raise ValueError(f"a block gas limit of {block_gas_limit} fits no settlement item")
    return room // ITEM_GAS


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
    signed: Sequence[SignedItem], deposits: Sequence[DepositItem], block_gas_limit: int
) -> tuple[BatchTransaction, ...]:
    """The round's transactions: items by recipient in chunks that fit a block; the re-deposits
    go with the last chunk (after the hub's withdraws credited its balance), or alone."""
    size = items_per_transaction(block_gas_limit)
    keyed = {(s.item.channel_id, s.item.participant): s for s in signed}
    if len(keyed) != len(signed):
        raise ValueError("an item appears twice in one round")
    items = [
        keyed[item.channel_id, item.participant] for item in by_recipient(s.item for s in signed)
    ]
    chunks = [tuple(items[start : start + size]) for start in range(0, len(items), size)]
    room_for_deposits = (int(block_gas_limit * BLOCK_SHARE) - BASE_GAS) // DEPOSIT_GAS
    out: list[BatchTransaction] = []
    for index, chunk in enumerate(chunks):
        last = index == len(chunks) - 1
        fits = transaction_gas(len(chunk), len(deposits)) <= block_gas_limit * BLOCK_SHARE
        out.append(BatchTransaction(chunk, tuple(deposits) if last and fits else ()))
    if deposits and (not out or not out[-1].deposits):
        for start in range(0, len(deposits), max(1, room_for_deposits)):
            out.append(BatchTransaction((), tuple(deposits[start : start + room_for_deposits])))
    return tuple(out)


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


def outcome(planned: int, signed: int, deposits: int, tx_statuses: Sequence[str]) -> str:
    """A round's status from what it planned, what was signed, and how its transactions ended:
    `empty` (nothing to do), `unsigned` (nothing signed or affordable), `settled` (everything
    planned landed), `partial` (some landed), `failed` (none landed)."""
    if planned == 0 and deposits == 0:
        return "empty"
    if not tx_statuses:
        return "unsigned"
    applied = sum(status == "applied" for status in tx_statuses)
    if applied == len(tx_statuses):
        return "settled" if signed == planned else "partial"
    return "partial" if applied else "failed"


__all__ = [
    "BatchTransaction",
    "Recovery",
    "SignedItem",
    "affordable",
    "hub_funds",
    "items_per_transaction",
    "outcome",
    "overdue",
    "recover",
    "transaction_gas",
    "transactions",
]

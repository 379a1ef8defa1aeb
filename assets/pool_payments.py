"""Paying the kept shares of contract beneficiaries (financing pools) on chain, exactly once.

What it is for: a beneficiary that is a contract (a financing pool) cannot receive a routed
off-chain payment, so the asset agent keeps its share in its own channel and the ledger records
that share with payment id 0 (`assets.agent`, `AssetConfig.kept`). Once settlement has moved the
asset's channel earnings into its internal balance on the ChannelManager, `pay_kept_shares` pays
each pool what the ledger says is kept for it and not yet paid, with one
`withdrawFromBalance(amount, pool)` per pool, and then lets the pool account the repayment
(`FinancingPool.sync`).

- Pure core: `pool_shares` (the shares of the kept beneficiaries, entry by entry),
  `kept_totals` (what the ledger says is kept for each, up to a seq) and `amounts_due` (what to
  pay now: owed = kept - paid, capped by the available internal balance, in address order).
- Shell: `paid_on_chain` (the `BalanceWithdrawn(account, to, amount)` events of the payers to
  the pools, summed) and `pay_kept_shares`.

A share is *kept* when its beneficiary is in the kept set and the ledger records it with payment
id 0 (as `assets.audit.check_beneficiary` counts it). A kept beneficiary's share recorded with a
payment id was routed (or tried): it is not kept, so it is never paid here.

What it must never do: pay a pool more than the ledger says is kept for it and not yet paid, or
pay twice after a crash. So "paid" is never a local counter: it is read back from the chain's
`BalanceWithdrawn` events right before paying (a crash between sending and recording loses
nothing, the chain is the record), and nothing is paid while a transaction of the paying account
is pending (sent but not mined, so not in the logs yet). It pays from the agent's internal
balance only, never more than that balance, and never to the agent itself. One run at a time per
paying account: two concurrent runs could both read the same "paid". Amounts are integer token
units; a float never touches them.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import NamedTuple, TypeVar

from eth_typing import ChecksumAddress, HexAddress, HexStr
from web3.types import FilterParams

from assets.ledger import KIND_USE, LedgerError, SignedEntry
from channels.chain.abi import ContractAbi
from channels.chain.artifacts import load_artifact
from channels.chain.client import Web3ChainClient
from channels.chain.connection import Connection
from channels.chain.deploy import Deployment
from channels.chain.errors import ChainError
from channels.chain.events import DEFAULT_MAX_RANGE
from channels.chain.financing import FinancingPoolClient
from channels.core.types import Address, to_checksum

ADDRESS_LENGTH = 20
BALANCE_WITHDRAWN = "BalanceWithdrawn"
# address-keyed mappings of any bytes subtype (`Address`): a Mapping's key type is invariant
KeptKey = TypeVar("KeptKey", bound=bytes)
PaidKey = TypeVar("PaidKey", bound=bytes)


class PoolPaymentError(ValueError):
    """Kept shares that cannot be paid now; nothing was sent."""


# ---------------------------------------------------------------------------------------------
# Pure core


class PoolShare(NamedTuple):
    """One nonzero share of a kept beneficiary in the ledger."""

    seq: int
    pool: bytes
    amount: int
    payment_id: int  # 0: kept by the agent (paid on chain); else routed, so not kept

    @property
    def kept(self) -> bool:
        """Whether the agent kept it (to be paid on chain)."""
        return self.payment_id == 0


def _check_amount(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{what} must be a whole number of token units >= 0, got {value!r}")
    return value


def _check_address(value: object, what: str) -> bytes:
    if not isinstance(value, bytes) or len(value) != ADDRESS_LENGTH:
        raise ValueError(f"{what} must be a {ADDRESS_LENGTH}-byte address, got {value!r}")
    return value


def _check_kept(kept: Collection[bytes]) -> frozenset[bytes]:
    if isinstance(kept, bytes | str):
        raise ValueError("kept must be a collection of addresses, not one value")
    return frozenset(bytes(_check_address(pool, "a kept beneficiary")) for pool in kept)


def pool_shares(
    entries: Iterable[SignedEntry], kept: Collection[bytes], up_to_seq: int | None = None
) -> Iterator[PoolShare]:
    """Every nonzero share of a beneficiary in `kept`, in ledger order, up to `up_to_seq`.

    `entries` are an asset's verified ledger entries in seq order (`assets.audit.audit_ledger`
    first). `LedgerError` when they are of several assets or their seqs do not strictly ascend
    (an entry given twice would be counted twice); `ValueError` for a bad `kept` or `up_to_seq`.
    Service events and admissions carry no shares.
    """
    pools = _check_kept(kept)
    last = None if up_to_seq is None else _check_amount(up_to_seq, "up_to_seq")
    asset_id: bytes | None = None
    previous = 0
    for entry in entries:
        if asset_id is None:
            asset_id = entry.asset_id
        elif entry.asset_id != asset_id:
            raise LedgerError(
                f"an entry of asset 0x{entry.asset_id.hex()} among those of 0x{asset_id.hex()}",
                entry.seq,
            )
        if entry.seq <= previous:
            raise LedgerError(f"entries out of order: seq {entry.seq} after seq {previous}")
        previous = entry.seq
        if last is not None and entry.seq > last:
            return
        if entry.kind != KIND_USE:
            continue
        for share in entry.decode_use_body().shares:
            if share.beneficiary in pools and share.amount > 0:
                yield PoolShare(entry.seq, bytes(share.beneficiary), share.amount, share.payment_id)


def kept_totals(
    entries: Iterable[SignedEntry], kept: Collection[bytes], up_to_seq: int | None = None
) -> dict[bytes, int]:
    """What the ledger says the agent kept for each beneficiary of `kept` (0 when nothing), up to
    `up_to_seq` (the last settled seq; None: the whole ledger). See `pool_shares`."""
    totals = dict.fromkeys(sorted(_check_kept(kept)), 0)
    for share in pool_shares(entries, kept, up_to_seq):
        if share.kept:
            totals[share.pool] += share.amount
    return totals


def amounts_due(
    kept_totals: Mapping[KeptKey, int], paid_on_chain: Mapping[PaidKey, int], available: int
) -> list[tuple[bytes, int]]:
    """What to pay each pool now: `kept - paid` (never below 0), capped by `available`.

    Pools come in ascending address order; when `available` is short, the pools are paid in that
    order (the last one partly) and the rest stays owed for a later run. Pools with nothing to
    pay are left out. A pool paid more than it is owed (payments counted past `up_to_seq`) is
    owed nothing; payments to addresses not in `kept_totals` are ignored. `ValueError` for a
    negative or non-integer amount or a malformed address.
    """
    left = _check_amount(available, "available")
    paid: dict[bytes, int] = {}
    for payee, sum_paid in paid_on_chain.items():
        address = bytes(_check_address(payee, "a paid pool"))
        paid[address] = _check_amount(sum_paid, f"paid to 0x{address.hex()}")
    due: list[tuple[bytes, int]] = []
    kept: dict[bytes, int] = {}
    for beneficiary, total in kept_totals.items():
        address = bytes(_check_address(beneficiary, "a pool"))
        kept[address] = _check_amount(total, f"kept for 0x{address.hex()}")
    for pool in sorted(kept):
        owed = max(0, kept[pool] - paid.get(pool, 0))
        amount = min(owed, left)
        if amount > 0:
            due.append((pool, amount))
            left -= amount
    return due


# ---------------------------------------------------------------------------------------------
# The chain


def _topic(address: bytes) -> HexStr:
    return HexStr("0x" + (bytes(12) + bytes(address)).hex())


def paid_on_chain(
    connection: Connection,
    deployment: Deployment,
    payers: Collection[bytes],
    pools: Collection[bytes],
    *,
    to_block: int | None = None,
    max_range: int = DEFAULT_MAX_RANGE,
) -> dict[bytes, int]:
    """What `payers` paid each of `pools` from their internal balances: the sum of the
    ChannelManager's `BalanceWithdrawn(account, to, amount)` events with `account` one of the
    payers and `to` the pool, from the deployment block to `to_block` (default: the head), read in
    ranges of `max_range` blocks. Every pool is in the answer (0 when never paid)."""
    targets = frozenset(bytes(_check_address(p, "a pool")) for p in pools)
    accounts = frozenset(bytes(_check_address(p, "a payer")) for p in payers)
    paid = dict.fromkeys(sorted(targets), 0)
    if not targets or not accounts:
        return paid
    abi: ContractAbi = load_artifact("ChannelManager").abi
    topic0 = HexStr("0x" + abi.events_by_name[BALANCE_WITHDRAWN].topic.hex())
    manager = ChecksumAddress(HexAddress(HexStr(to_checksum(deployment.manager))))
    start: int = deployment.block_number
    end: int = connection.block_number() if to_block is None else to_block
    while start <= end:
        stop = min(end, start + max_range - 1)
        # the node filters on the indexed account and recipient; the decoded events are checked
        # again below, so a node that ignores a topic filter cannot make us count a payment
        params: FilterParams = {
            "address": manager,
            "fromBlock": start,
            "toBlock": stop,
            "topics": [
                topic0,
                [_topic(a) for a in sorted(accounts)],
                [_topic(p) for p in sorted(targets)],
            ],
        }
        logs = connection.w3.eth.get_logs(params)
        ordered = sorted(logs, key=lambda log: (int(log["blockNumber"]), int(log["logIndex"])))
        for event in connection.decode_logs(ordered, abi):
            to = bytes(event.args.get("to", b""))
            if (
                event.name == BALANCE_WITHDRAWN
                and event.address == bytes(deployment.manager)
                and bytes(event.args["account"]) in accounts
                and to in targets
            ):
                paid[to] += int(event.args["amount"])
        start = stop + 1
    return paid


# ---------------------------------------------------------------------------------------------
# Paying


@dataclass(frozen=True, slots=True)
class PoolPayment:
    """One pool in a `pay_kept_shares` run."""

    pool: bytes
    kept: int  # what the ledger says is kept for it (up to the run's seq)
    paid_before: int  # what the chain showed paid to it before this run
    paid_now: int  # sent by this run
    transaction: bytes | None = None  # the withdrawFromBalance transaction, when one was sent
    error: str = ""  # the chain refused the payment (nothing moved)
    synced: tuple[int, int] | None = None  # (to contributors, to operator) of the pool's sync
    sync_error: str = ""  # the sync was not done or refused (anyone can sync later)

    @property
    def still_owed(self) -> int:
        """Kept and not paid after this run (the internal balance was short, or a payment failed)."""
        return max(0, self.kept - self.paid_before - self.paid_now)

    @property
    def overpaid(self) -> int:
        """Paid beyond the kept shares up to the run's seq (later shares, or another payer)."""
        return max(0, self.paid_before + self.paid_now - self.kept)


@dataclass(frozen=True, slots=True)
class PoolPaymentReport:
    """What `pay_kept_shares` found and did."""

    account: bytes  # the paying agent
    up_to_seq: int | None  # None: the whole ledger
    available_before: int  # its internal balance before paying
    available_after: int
    pools: tuple[PoolPayment, ...]  # every kept beneficiary, in address order

    @property
    def paid_now(self) -> int:
        return sum(line.paid_now for line in self.pools)

    @property
    def still_owed(self) -> int:
        return sum(line.still_owed for line in self.pools)

    @property
    def ok(self) -> bool:
        """No payment was refused by the chain (what is still owed for lack of balance is not an
        error: a later run pays it)."""
        return not any(line.error for line in self.pools)


def _pending(client: Web3ChainClient) -> int:
    """Transactions of the client's account sent but not mined."""
    account = ChecksumAddress(HexAddress(HexStr(to_checksum(client.address))))
    eth = client.connection.w3.eth
    return int(eth.get_transaction_count(account, "pending")) - int(
        eth.get_transaction_count(account, "latest")
    )


def _sync(pool_client: FinancingPoolClient, pool: bytes) -> tuple[tuple[int, int] | None, str]:
    """Let a pool account what arrived (when something did); (synced, why not)."""
    address = Address(pool)
    try:
        if not pool_client.is_pool(address):
            return None, "not a pool of this network's factory: not synced"
        if pool_client.state(address).pending == 0:
            return None, ""
        to_contributors, to_operator, _ = pool_client.sync(address)
    except ChainError as exc:
        return None, str(exc)
    return (to_contributors, to_operator), ""


def pay_kept_shares(
    client: Web3ChainClient,
    ledger_entries: Iterable[SignedEntry],
    kept: Collection[bytes],
    *,
    pool_client: FinancingPoolClient | None = None,
    up_to_seq: int | None = None,
    payers: Collection[bytes] | None = None,
) -> PoolPaymentReport:
    """Pay every pool of `kept` what the ledger says is kept for it and the chain shows unpaid,
    from the internal balance of `client`'s account (the asset's agent), then sync each pool that
    has unaccounted tokens (when `pool_client` is given; only pools of its factory).

    `payers`: the accounts whose `BalanceWithdrawn` to a pool count as paid (default: `client`'s
    own; name every agent the asset had when its agent changed). Running it again pays nothing
    more; a run after a crash pays only what the chain does not show paid.
    `PoolPaymentError` (nothing sent) when a transaction of the account is pending or the agent
    itself is in `kept`; `LedgerError`/`ValueError` for malformed entries or arguments. A payment
    the chain refuses is reported in its line (`error`), and the other pools are still paid.
    """
    me = bytes(client.address)
    pools = _check_kept(kept)
    if me in pools:
        raise PoolPaymentError(
            f"the paying agent {to_checksum(me)} is in the kept set: its own share is no debt"
        )
    totals = kept_totals(ledger_entries, pools, up_to_seq)
    pending = _pending(client)
    if pending > 0:
        raise PoolPaymentError(
            f"{pending} transaction(s) of {to_checksum(me)} are pending: what they pay is not "
            "in the chain's logs yet, so nothing is paid now (run again once they are mined)"
        )
    counted = {me} if payers is None else {bytes(p) for p in payers} | {me}
    paid = paid_on_chain(client.connection, client.deployment, counted, pools)
    available = int(client.balance_of(client.address))
    sent: dict[bytes, tuple[int, bytes | None, str]] = {}
    for pool, amount in amounts_due(totals, paid, available):
        try:
            receipt = client.withdraw_from_balance(amount, Address(pool))
        except ChainError as exc:
            sent[pool] = (0, None, str(exc))
            continue
        sent[pool] = (amount, receipt.transaction_hash, "")
    lines = []
    for pool, total in totals.items():
        paid_now, transaction, error = sent.get(pool, (0, None, ""))
        synced, sync_error = (None, "") if pool_client is None else _sync(pool_client, pool)
        lines.append(
            PoolPayment(
                pool=pool,
                kept=total,
                paid_before=paid[pool],
                paid_now=paid_now,
                transaction=transaction,
                error=error,
                synced=synced,
                sync_error=sync_error,
            )
        )
    return PoolPaymentReport(
        account=me,
        up_to_seq=up_to_seq,
        available_before=available,
        available_after=int(client.balance_of(client.address)),
        pools=tuple(lines),
    )


__all__ = [
    "PoolPayment",
    "PoolPaymentError",
    "PoolPaymentReport",
    "PoolShare",
    "amounts_due",
    "kept_totals",
    "paid_on_chain",
    "pay_kept_shares",
    "pool_shares",
]

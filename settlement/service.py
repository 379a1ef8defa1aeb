"""The hub's settlement service: turns a period's off-chain payments into one batch on chain.

Each round (at the end of a period, when enough is owed, or when `cise settle run` asks):

1. plan the batch from the hub's channels (`settlement.planner`): every counterparty's earnings,
   the hub's own surplus above its liquidity target, and re-deposits where it is short;
2. ask for the signatures: each counterparty gets a `SettlementInvite` and answers with its
   `Withdraw` signed for the batch (`WithdrawRequest` marked `batch`); the hub's own withdraws go
   through the core as batched withdraws, which the counterparty co-signs as usual. Signatures
   arrive as `EventBatchWithdrawSigned` after the commit that made them durable;
3. wait at most `collect_s`, then sign `SettlementBatch` over what was signed and send it with
   the re-deposits the hub can afford, in as few `settleHubBatch` transactions as the chain's gas
   estimates allow (`settlement.rounds`): each is estimated first (eth_estimateGas) and sent with
   the estimate plus 20%; one too big for the block budget or that would revert is split in
   halves, and so is one that fails on chain (never sent again as it was), until a single item
   the chain refuses is excluded with the reason. Each transaction's exact arguments are written
   to the settlement store before it is sent (a split retry's too). It goes out through the
   node's transaction manager (`NodeService.sends`, due by the batch's expiry), which records
   each signed version (nonce, fees, raw bytes) in the settlement store before it leaves; the
   round waits for its outcome without holding the chain lock, so the node's chain follower
   keeps following meanwhile;
4. record the outcome: counterparties that did not sign are reported (`cise settle status`), and a
   channel whose counterparty has not signed for `close_unsigned_after_s` is closed unilaterally
   with its latest balance proof. The decision is written to the settlement file first; the
   node's close follows in its commit group, and is issued again at start for every channel the
   file says was closed while the node still has it open (a stop before the node's group
   committed): a non-signer's channel is closed exactly once, whatever the crash point.

At start (and before every round) unfinished transactions are finished from the store: applied
ones are recorded, unexpired ones the chain has not seen are sent again (the signed version
recorded before the stop, with its nonce, when there is one: never a second transaction), and the
rest are left to the next round (`settlement.rounds.recover`). The chain follower feeds the batch's
`ChannelWithdrawn` and `ChannelNewDeposit` events to the core as for any withdraw or deposit.

The shell does I/O only: every decision is in `settlement.planner` and `settlement.rounds`. It must
never send a transaction whose arguments are not durable first, never resend a batch the chain has
applied in part or in full, and never sign a batch over an item its counterparty did not sign.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import msgspec
import trio

from channels import wire
from channels.chain.client import Web3ChainClient, ordered
from channels.chain.errors import ChainError
from channels.chain.executor import PreparedCall
from channels.chain.txmanager import PRIORITY_CLOSE
from channels.core import events as ev
from channels.core import state_changes as sc
from channels.core.state import BatchedBy, ChannelStatus
from channels.core.types import Address, BlockNumber, ChannelId, TokenAmount
from channels.records import OutboxTransaction
from channels.service import NodeService
from settlement.batch import (
    DepositItem,
    WithdrawItem,
    batch_digest,
    counterparty,
    pack_deposits,
    pack_hub_withdraws,
)
from settlement.planner import (
    SettlementPlan,
    SettlementPolicy,
    owed,
    plan_settlement,
    settlement_due,
    unsettled,
)
from settlement.rounds import (
    BatchTransaction,
    Recovery,
    SignedItem,
    Verdict,
    affordable,
    after_failure,
    expired,
    gas_budget,
    hub_funds,
    judge,
    outcome,
    overdue,
    recover,
    split,
    transactions,
    with_margin,
)
from settlement.store import DepositRow, ItemRow, SettlementStore, TransactionRow
from settlement.treasury_payer import TreasuryPayer

log = logging.getLogger(__name__)
T = TypeVar("T")
KEY_PREFIX = "settle:"  # the node's transaction manager keys: settle:<round>:<tx index>


def transaction_key(round_id: int, tx_index: int) -> str:
    return f"{KEY_PREFIX}{round_id}:{tx_index}"


class SignedRecords:
    """The settlement store as the transaction manager's `Durable` for batch transactions: each
    signed version is written (one sqlite transaction, synchronous=FULL) in the node's commit
    thread with its next group, and `flush` waits for it, so it is durable before the manager
    sends it."""

    def __init__(self, node: NodeService, store: SettlementStore) -> None:
        self.node = node
        self.store = store
        self._failure: BaseException | None = None

    def record(self, key: str, record: OutboxTransaction) -> None:
        round_id, tx_index = (int(part) for part in key.removeprefix(KEY_PREFIX).split(":"))
        write = functools.partial(
            self.store.record_signed, round_id, tx_index, msgspec.msgpack.encode(record)
        )
        self.node.write_durably_soon(write, self._written)

    def _written(self, _: object, error: BaseException | None) -> None:
        if error is not None and self._failure is None:
            self._failure = error

    async def flush(self) -> None:
        """Return once every record made so far is durable; raise if one could not be written
        (the manager then sends nothing)."""
        await self.node.wait_durable()
        failure, self._failure = self._failure, None
        if failure is not None:
            raise failure

    def done(self, key: str) -> None:
        """Nothing to do: the outcome is recorded by the round (the signed record stays)."""


@dataclass(frozen=True, slots=True)
class SettlementConfig:
    """How the hub runs its rounds."""

    policy: SettlementPolicy
    collect_s: float = 10.0  # how long a round waits for signatures
    close_unsigned_after_s: float = 7 * 86_400  # close a channel not signing this long (0: never)
    min_gap_s: float = 60.0  # an amount-triggered round waits this long after the previous one
    poll_s: float = 1.0  # how often the service looks for requests and due rounds

    def __post_init__(self) -> None:
        if self.collect_s <= 0 or self.poll_s <= 0:
            raise ValueError("the collection time and the poll interval must be positive")
        if self.close_unsigned_after_s < 0 or self.min_gap_s < 0:
            raise ValueError("deadlines must not be negative")


@dataclass(frozen=True, slots=True)
class SentTransaction:
    tx_index: int
    status: str
    tx_hash: bytes | None
    gas_used: int | None
    items: int
    deposits: int
    error: str = ""


@dataclass(frozen=True, slots=True)
class RoundReport:
    """What one round did."""

    round_id: int
    status: str
    reason: str
    planned: int
    signed: int
    non_signers: tuple[tuple[int, Address], ...]
    to_counterparties: int  # made withdrawable for counterparties (applied items)
    hub_withdrawn: int
    redeposited: int
    transactions: tuple[SentTransaction, ...]
    closed: tuple[int, ...] = ()
    excluded: tuple[tuple[int, Address, str], ...] = ()  # (channel, participant, reason)

    @property
    def gas_used(self) -> int:
        return sum(t.gas_used or 0 for t in self.transactions)


@dataclass(slots=True)
class _Collection:
    """The round waiting for signatures: item key -> (partner, total withdraw)."""

    round_id: int
    expiry: int
    waiting: dict[tuple[int, bytes], int]
    done: trio.Event = field(default_factory=trio.Event)


class SettlementService:
    """Runs the hub's settlement rounds (see the module docstring)."""

    def __init__(
        self,
        node: NodeService,
        client: Web3ChainClient,
        store: SettlementStore,
        config: SettlementConfig,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.node = node
        self.client = client
        self.store = store
        self.config = config
        self.clock = clock
        self._collection: _Collection | None = None
        self._started_at = clock()
        self._lock = trio.Lock()  # one round (or recovery) at a time
        deployment = client.deployment
        store.claim(node.address, deployment.chain_id, deployment.manager)
        node.listeners.append(self._on_durable)
        node.sends.add_durable(KEY_PREFIX, SignedRecords(node, store))
        self.treasury = TreasuryPayer(node, client, store, clock=clock)

    def detach(self) -> None:
        """Stop listening to the hub's commits (a service used for one round, then dropped)."""
        if self._on_durable in self.node.listeners:
            self.node.listeners.remove(self._on_durable)

    @property
    def hub(self) -> Address:
        return self.node.address

    # -- signatures ---------------------------------------------------------------------------

    def _on_durable(self, events: Sequence[ev.Event]) -> None:
        collection = self._collection
        if collection is None:
            return
        signatures = []
        for event in events:
            if type(event) is not ev.EventBatchWithdrawSigned:
                continue
            assert isinstance(event, ev.EventBatchWithdrawSigned)
            key = (int(event.channel_id), bytes(event.participant))
            if collection.waiting.get(key) == event.total_withdraw and (
                event.expiry == collection.expiry
            ):
                signatures.append((key[0], Address(key[1]), event.signature))
        if signatures:  # all that this node commit brought, in one settlement-file transaction
            write = functools.partial(self.store.record_signatures, collection.round_id, signatures)

            def recorded(keys: list[tuple[int, bytes]] | None, error: BaseException | None) -> None:
                if error is not None:
                    log.error("settlement round %d: signatures not recorded: %s",
                              collection.round_id, error)  # fmt: skip
                for key in keys or ():
                    collection.waiting.pop(key, None)
                if not collection.waiting:
                    collection.done.set()

            self.node.write_durably_soon(write, recorded)
        elif not collection.waiting:
            collection.done.set()

    async def _write(self, write: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """A write to the settlement file, in the node's commit thread (never on this one)."""
        return await self.node.write_durably(functools.partial(write, *args, **kwargs))

    # -- rounds -------------------------------------------------------------------------------

    async def settle_once(self, reason: str = "requested") -> RoundReport:
        """Run one round now (after finishing any a crash left); returns what it did."""
        async with self._lock:
            await self._recover()
            return await self._round(reason)

    async def _caught_up(self) -> bool:
        """Wait (at most `collect_s`) until the core has seen the chain up to our last batch: a
        plan made on an older view would ask for totals the chain already has (and revert)."""
        landed = self.store.last_applied_block()
        with trio.move_on_after(self.config.collect_s):
            while self.node.block_number < landed:  # noqa: ASYNC110  # the follower polls
                await trio.sleep(0.05)
        return self.node.block_number >= landed

    async def _round(self, reason: str) -> RoundReport:
        now = self.clock()
        await self._publish_status(now)  # a round can take a while: what is owed stays current
        if not await self._caught_up():
            block = self.node.block_number
            round_id = await self._write(
                self.store.start_round,
                now=now, reason=reason, block=block, expiry=block, items=[], deposits=[],
            )  # fmt: skip
            note = f"the chain follower is behind the last batch (block {self.node.block_number})"
            await self._write(self.store.set_round_status, round_id, "skipped", now=now, note=note)
            return RoundReport(round_id, "skipped", reason, 0, 0, (), 0, 0, 0, ())
        block = self.node.block_number
        internal = await self.node.chain_call(self.client.balance_of, self.hub)
        plan = plan_settlement(
            self.node.channels.values(),
            self.hub,
            self.config.policy,
            block_number=block,
            hub_internal_balance=internal,
        )
        expiry = block + self.config.policy.expiry_blocks
        round_id = await self._write(
            self.store.start_round,
            now=now,
            reason=reason,
            block=block,
            expiry=expiry,
            items=[
                (
                    w.channel_id,
                    w.participant,
                    self._partner_of(w.channel_id, w.participant),
                    w.total_withdraw,
                    w.amount,
                )
                for w in plan.withdraws
            ],
            deposits=[
                (r.channel_id, self._partner_of(r.channel_id, self.hub), r.total_deposit, r.amount)
                for r in plan.redeposits
            ],
        )
        if plan.empty:
            await self._write(self.store.set_round_status, round_id, "empty", now=now)
            await self.treasury.after_round(round_id)
            return RoundReport(round_id, "empty", reason, 0, 0, (), 0, 0, 0, ())
        await self._collect(round_id, plan, expiry)
        rows = self.store.items(round_id)
        signed = _signed(rows)
        non_signers = self._non_signers(rows)
        await self._write(self.store.note_misses, list(non_signers.items()), now)
        await self._write(
            self.store.clear_misses,
            sorted(
                {s.item.channel_id for s in signed}
                - {r.channel_id for r in rows if r.signature is None}
            ),
        )
        deposits = self._deposits(plan, hub_funds(internal, signed, self.hub))
        report = await self.send_signed(round_id, deposits)
        # the community treasury's part of the fee income (settlement.treasury_payer): after the
        # batch, whose hub withdraws fund it; recorded before it is paid
        await self.treasury.after_round(round_id)
        return report

    async def send_signed(self, round_id: int, deposits: Sequence[DepositItem] = ()) -> RoundReport:
        """The sending half of a round whose signatures are in the store: put its signed items
        (and `deposits`) on chain as the chain's estimates allow, then record the outcome."""
        round_row = self.store.round(round_id)
        if round_row is None:
            raise ValueError(f"no settlement round {round_id}")
        rows = self.store.items(round_id)
        budget = gas_budget(await self.node.chain_call(self.client.connection.block_gas_limit))
        await self._write(self.store.set_round_status, round_id, "sending")
        queue = list(transactions(_signed(rows), deposits))
        sent = await self._settle(round_id, round_row.expiry, queue, budget)
        closed = await self._close_overdue(self.clock())
        status = self._outcome(round_id)
        await self._write(self.store.set_round_status, round_id, status, now=self.clock())
        non_signers = self._non_signers(rows)
        return self._report(round_id, status, round_row.reason, rows, non_signers, sent, closed)

    def _partner_of(self, channel_id: int, participant: bytes) -> Address:
        channel = self.node.channels[ChannelId(channel_id)]
        return channel.partner.address if participant == self.hub else channel.our.address

    async def _collect(self, round_id: int, plan: SettlementPlan, expiry: int) -> None:
        """Ask every party for its signature; return when all arrived or `collect_s` passed."""
        collection = _Collection(
            round_id,
            expiry,
            {(w.channel_id, bytes(w.participant)): w.total_withdraw for w in plan.withdraws},
        )
        self._collection = collection
        try:
            for item in plan.withdraws:
                channel_id = ChannelId(item.channel_id)
                if item.participant == self.hub:
                    self.node.handle(
                        sc.ActionWithdraw(
                            channel_id,
                            TokenAmount(item.total_withdraw),
                            BlockNumber(expiry),
                            batched_by=BatchedBy.US,
                        )
                    )
                else:
                    invite = wire.SettlementInvite(
                        channel_id=item.channel_id,
                        total_withdraw=wire.amount_to_wire(item.total_withdraw),
                        expiry=expiry,
                    )
                    if not self.node.send_routing(item.participant, invite):
                        log.info("0x%s is not connected: no settlement signature this round",
                                 item.participant.hex())  # fmt: skip
            if collection.waiting:
                with trio.move_on_after(self.config.collect_s):
                    await collection.done.wait()
        finally:
            self._collection = None

    def _non_signers(self, rows: Sequence[ItemRow]) -> dict[int, Address]:
        """Channels whose counterparty did not sign an item asked of it (a hub withdraw the
        hub's own core refused is the hub's, not the counterparty's)."""
        missing: dict[int, Address] = {}
        for row in rows:
            if row.signature is not None:
                continue
            if row.participant == self.hub:
                channel = self.node.channels.get(ChannelId(row.channel_id))
                pending = channel.our.pending_withdraw if channel is not None else None
                if pending is None or pending.total_withdraw != row.total_withdraw:
                    continue
            other = counterparty(self.hub, WithdrawItem(row.channel_id, row.participant,
                                                        row.partner, row.total_withdraw))  # fmt: skip
            missing[row.channel_id] = Address(other)
        return missing

    def _deposits(self, plan: SettlementPlan, funds: int) -> list[DepositItem]:
        """The planned re-deposits the hub can afford whose channel did not change meanwhile."""
        chosen = []
        for redeposit in affordable(plan.redeposits, funds):
            channel = self.node.channels.get(ChannelId(redeposit.channel_id))
            if channel is None or not channel.is_open:
                continue
            if channel.our.deposit + redeposit.amount != redeposit.total_deposit:
                continue  # a top-up landed meanwhile: the total would not increase as planned
            chosen.append(
                DepositItem(redeposit.channel_id, channel.partner.address, redeposit.total_deposit)
            )
        return chosen

    async def _settle(
        self, round_id: int, expiry: int, queue: list[BatchTransaction], budget: int
    ) -> list[SentTransaction]:
        """Put `queue`'s transactions on chain, each with the chain's estimate plus the margin;
        split one too big for `budget`, one that would revert and one that fails on chain; exclude
        a single item the chain refuses, with the reason (`settlement.rounds.judge`)."""
        sent: list[SentTransaction] = []
        while queue:
            transaction = queue.pop(0)
            head = await self.node.chain_call(self.client.block_number)
            if expired(expiry, head):
                note = f"the batch expired at block {expiry} before it could be sent"
                await self._exclude(round_id, [transaction, *queue], note)
                break
            hub_signature, withdraws, deposits = self._pack(expiry, transaction)
            try:
                estimate = await self.node.chain_call(
                    functools.partial(
                        self._estimate, expiry, hub_signature, withdraws, deposits, budget
                    )
                )
                why = f"needs more than {budget:,} gas (the block budget) even alone"
                if estimate is not None:
                    why = f"needs {with_margin(estimate):,} gas with the margin; the budget is {budget:,}"
            except ChainError as exc:
                estimate, why = None, f"the chain refuses it: {exc}"
            verdict = judge(transaction, estimate, budget)
            if verdict is Verdict.SEND:
                assert estimate is not None
                row = await self._record(round_id, expiry, transaction,
                                   (hub_signature, withdraws, deposits), with_margin(estimate))  # fmt: skip
                result = await self._send(row, len(transaction.items), len(transaction.deposits))
                sent.append(result)
                if result.status == "applied":
                    continue
                verdict, why = after_failure(transaction), f"failed on chain: {result.error}"
            if verdict is Verdict.SPLIT:
                log.info("settlement round %d: splitting a batch of %d (%s)", round_id,
                         transaction.size, why)  # fmt: skip
                queue[:0] = split(transaction)
            else:
                await self._exclude(round_id, [transaction], why)
        return sent

    def _estimate(
        self, expiry: int, hub_signature: bytes, withdraws: bytes, deposits: bytes, cap: int
    ) -> int | None:
        if withdraws:
            return self.client.estimate_settle_hub_batch(
                self.hub, expiry, hub_signature, withdraws, deposits, cap=cap
            )
        return self.client.estimate_settle_batch(expiry, b"", deposits, cap=cap)

    async def _exclude(
        self, round_id: int, dropped: Sequence[BatchTransaction], reason: str
    ) -> None:
        withdraws = [(s.item.channel_id, Address(s.item.participant))
                     for t in dropped for s in t.items]  # fmt: skip
        deposits = [(d.channel_id, self.hub) for t in dropped for d in t.deposits]
        if not withdraws and not deposits:
            return
        log.warning("settlement round %d: %d items and %d re-deposits left out: %s", round_id,
                    len(withdraws), len(deposits), reason)  # fmt: skip
        await self._write(self.store.exclude, round_id, withdraws, deposits, reason)

    def _pack(self, expiry: int, transaction: BatchTransaction) -> tuple[bytes, bytes, bytes]:
        """(the hub's signature of the batch, the packed withdraws, the packed re-deposits)."""
        items = [s.item for s in transaction.items]
        hub_signature = (
            self.node.signer.sign_digest(batch_digest(self.client.domain(), items, expiry))
            if items
            else b""
        )
        withdraws = pack_hub_withdraws(self.hub, items, [s.signature for s in transaction.items])
        return hub_signature, withdraws, pack_deposits(list(transaction.deposits))

    async def _record(
        self,
        round_id: int,
        expiry: int,
        transaction: BatchTransaction,
        packed: tuple[bytes, bytes, bytes],
        gas_limit: int,
    ) -> TransactionRow:
        """Make a signed batch transaction's arguments durable before it is sent."""
        hub_signature, withdraws, deposits = packed
        index = self.store.next_tx_index(round_id)
        await self._write(
            self.store.record_transaction,
            round_id,
            index,
            expiry=expiry,
            hub_signature=hub_signature,
            withdraws=withdraws,
            deposits=deposits,
            gas_limit=gas_limit,
            items=[(s.item.channel_id, Address(s.item.participant)) for s in transaction.items],
            deposit_channels=[d.channel_id for d in transaction.deposits],
        )
        return TransactionRow(
            round_id, index, expiry, hub_signature, withdraws, deposits, gas_limit,
            "signed", None, None, None, "",
        )  # fmt: skip

    def _outcome(self, round_id: int) -> str:
        """The round's status from its store rows (`settlement.rounds.outcome`)."""
        items = self.store.items(round_id)
        deposits = self.store.deposits(round_id)
        sent = self.store.transactions(round_id)
        excluded = self.store.excluded(round_id)
        applied = {t.tx_index for t in sent if t.status == "applied"}
        left_out = {e.channel_id for e in excluded if e.kind == "deposit"}
        return outcome(
            planned=len(items),
            deposits=sum(d.tx_index is not None or d.channel_id in left_out for d in deposits),
            sent=bool(sent or excluded),
            landed=sum(i.tx_index in applied for i in items),
            deposits_landed=sum(d.tx_index in applied for d in deposits),
        )

    async def _send(self, row: TransactionRow, items: int, deposits: int) -> SentTransaction:
        """Put a recorded batch transaction on chain through the node's transaction manager
        (the version signed before a stop, if any, with its nonce) and record its outcome."""
        if row.withdraws:
            function = "settleHubBatch"
            args: tuple[object, ...] = (
                self.hub,
                row.expiry,
                row.hub_signature,
                row.withdraws,
                row.deposits,
            )
        else:  # re-deposits only: no withdraw to sign, so the plain batch function does
            function, args = "settleBatch", (row.expiry, b"", row.deposits)
        abi = self.client.manager_abi
        call = PreparedCall(self.client.deployment.manager, abi.function(function).encode_call(args),
                            abi, f"ChannelManager.{function}")  # fmt: skip
        signed = self.store.signed(row.round_id, row.tx_index)
        result = await self.node.sends.transact(
            transaction_key(row.round_id, row.tx_index),
            function,
            call,
            priority=PRIORITY_CLOSE,
            deadline=row.expiry,
            gas=row.gas_limit,
            restored=None
            if signed is None
            else msgspec.msgpack.decode(signed, type=OutboxTransaction),
        )
        if isinstance(result, ChainError):
            log.warning("settlement transaction %d/%d failed: %s", row.round_id, row.tx_index,
                        result)  # fmt: skip
            # a transaction mined with status 0 cost its gas: keep what it cost and its hash
            await self._write(self.store.finish_transaction, row.round_id, row.tx_index, "reverted",
                              error=str(result), tx_hash=result.transaction_hash,
                              gas_used=result.gas_used)  # fmt: skip
            return SentTransaction(row.tx_index, "reverted", result.transaction_hash,
                                   result.gas_used, items, deposits, str(result))  # fmt: skip
        await self._write(
            self.store.finish_transaction,
            row.round_id,
            row.tx_index,
            "applied",
            tx_hash=result.transaction_hash,
            gas_used=result.gas_used,
            block=result.block_number,
        )
        return SentTransaction(
            row.tx_index, "applied", result.transaction_hash, result.gas_used, items, deposits
        )

    async def _close_overdue(self, now: float) -> tuple[int, ...]:
        closed = []
        for miss in self.store.misses():
            if miss.closed_at is not None:
                continue
            if not overdue(miss.first_missed_at, now, self.config.close_unsigned_after_s):
                continue
            channel = self.node.channels.get(ChannelId(miss.channel_id))
            if channel is None or not channel.is_open:
                await self._write(self.store.clear_misses, [miss.channel_id])
                continue
            log.warning(
                "closing channel %d: 0x%s has not signed a settlement since %s",
                miss.channel_id,
                miss.partner.hex(),
                time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(miss.first_missed_at)),
            )
            # one decision, in one commit step of the node: the settlement file's record first,
            # then the node's group with the close (`write_durably_soon` runs it just before the
            # group). `_reissue_closes` issues the close again at start while the node's channel
            # is still open (a stop between the two files' fsyncs)
            self.node.write_durably_soon(
                functools.partial(self.store.mark_closed, miss.channel_id, now), self._checked
            )
            self.node.handle(sc.ActionClose(ChannelId(miss.channel_id)))
            closed.append(miss.channel_id)
        return tuple(closed)

    def _reissue_closes(self) -> tuple[int, ...]:
        """Close again every channel the settlement file says the hub decided to close while the
        node still has it open: the node's close never became durable (a stop in between).
        Exactly once: a node that took the close has the channel `closing` or later."""
        reissued = []
        for miss in self.store.misses():
            if miss.closed_at is None:
                continue
            channel = self.node.channels.get(ChannelId(miss.channel_id))
            if channel is None or channel.status is not ChannelStatus.OPENED:
                continue
            log.warning(
                "closing channel %d again: the hub decided to close it (0x%s did not sign) but "
                "stopped before the close was durable",
                miss.channel_id,
                miss.partner.hex(),
            )
            self.node.handle(sc.ActionClose(ChannelId(miss.channel_id)))
            reissued.append(miss.channel_id)
        return tuple(reissued)

    def _report(
        self,
        round_id: int,
        status: str,
        reason: str,
        rows: Sequence[ItemRow],
        non_signers: dict[int, Address],
        sent: Sequence[SentTransaction],
        closed: tuple[int, ...],
    ) -> RoundReport:
        applied = {t.tx_index for t in sent if t.status == "applied"}
        items = self.store.items(round_id)
        landed = [r for r in items if r.tx_index in applied]
        deposits = [d for d in self.store.deposits(round_id) if d.tx_index in applied]
        return RoundReport(
            round_id,
            status,
            reason,
            len(rows),
            sum(r.signature is not None for r in rows),
            tuple(sorted(non_signers.items())),
            sum(r.amount for r in landed if r.participant != self.hub),
            sum(r.amount for r in landed if r.participant == self.hub),
            sum(d.amount for d in deposits),
            tuple(sent),
            closed,
            tuple(
                (e.channel_id, e.participant, e.reason)
                for e in self.store.excluded(round_id)
                if e.kind == "withdraw"
            ),
        )

    # -- after a crash ------------------------------------------------------------------------

    async def _recover(self) -> None:
        """Issue again the closes a stop lost, and finish the rounds a stop left unfinished (see
        `settlement.rounds.recover`)."""
        self._reissue_closes()
        for round_row in self.store.unfinished_rounds():
            rows = self.store.transactions(round_row.id)
            if not rows:
                await self._write(
                    self.store.set_round_status,
                    round_row.id,
                    "abandoned",
                    now=self.clock(),
                    note=f"stopped while collecting; its withdraws expire after block "
                    f"{round_row.expiry}",
                )
                continue
            block = await self.node.chain_call(self.client.block_number)
            for row in rows:
                if row.status == "signed":
                    await self._recover_transaction(row, block)
            status = self._outcome(round_row.id)
            await self._write(
                self.store.set_round_status,
                round_row.id,
                status,
                now=self.clock(),
                note="finished after a restart",
            )
        await self.treasury.recover()

    async def _recover_transaction(self, row: TransactionRow, block: int) -> None:
        items = [i for i in self.store.items(row.round_id) if i.tx_index == row.tx_index]
        deposits = [d for d in self.store.deposits(row.round_id) if d.tx_index == row.tx_index]
        on_chain, totals = [], []
        for item in items:
            info = await self.node.chain_call(
                self.client.get_channel, ChannelId(item.channel_id), item.participant, item.partner
            )
            first = ordered(item.participant, item.partner)[0] == item.participant
            on_chain.append(info.withdrawn1 if first else info.withdrawn2)
            totals.append(item.total_withdraw)
        for deposit in deposits:
            info = await self.node.chain_call(
                self.client.get_channel, ChannelId(deposit.channel_id), self.hub, deposit.partner
            )
            first = ordered(self.hub, deposit.partner)[0] == self.hub
            on_chain.append(info.deposit1 if first else info.deposit2)
            totals.append(deposit.total_deposit)
        decision = recover(on_chain, totals, expiry=row.expiry, block_number=block)
        if decision is not Recovery.RESEND:
            await self._write(
                self.store.finish_transaction,
                row.round_id,
                row.tx_index,
                decision.value,
                error="found after a restart",
            )
            return
        result = await self._send(row, len(items), len(deposits))
        if result.status == "applied":
            return
        transaction = self._rebuild(items, deposits)  # failed again: split, as in a round
        if after_failure(transaction) is Verdict.EXCLUDE:
            await self._exclude(row.round_id, [transaction], f"failed on chain: {result.error}")
            return
        budget = gas_budget(await self.node.chain_call(self.client.connection.block_gas_limit))
        await self._settle(row.round_id, row.expiry, list(split(transaction)), budget)

    def _rebuild(
        self, items: Sequence[ItemRow], deposits: Sequence[DepositRow]
    ) -> BatchTransaction:
        """A recorded transaction's items and re-deposits, in the order it carried them."""
        [rebuilt] = transactions(
            _signed(items),
            [DepositItem(d.channel_id, d.partner, d.total_deposit) for d in deposits],
        )
        return rebuilt

    # -- running ------------------------------------------------------------------------------

    def due_reason(self, now: float) -> str | None:
        """Why a round should run now (None: it should not)."""
        last = self.store.last_settled_at() or self._started_at
        owed_now = owed(self.node.channels.values(), self.config.policy)
        if not settlement_due(self.config.policy, int(last), int(now), owed_now):
            return None
        if now - last >= self.config.policy.period_s:
            return "period"
        return "amount" if now - last >= self.config.min_gap_s else None

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Forever: finish what a stop left, then run rounds when asked or due."""
        async with self._lock:
            await self._recover()
        task_status.started()
        while True:
            now = self.clock()
            requests = self.store.open_requests()
            reason = "requested" if requests else self.due_reason(now)
            if reason is not None:
                report = await self.settle_once(reason)
                await self._write(self.store.answer_requests, requests, report.round_id)
                log.info("settlement round %d: %s", report.round_id, report.status)
            await self._publish_status(self.clock())
            await trio.sleep(self.config.poll_s)

    async def _publish_status(self, now: float) -> None:
        policy = self.config.policy
        last = self.store.last_settled_at() or self._started_at
        owed_now, in_flight = unsettled(self.node.channels.values())
        await self._write(
            self.store.set_status,
            {
                "updated_at": f"{now:.3f}",
                "owed": str(owed_now),  # earned and not on chain, batches in flight included
                "in_flight": str(in_flight),
                "channels": str(len(self.node.channels)),
                "period_s": str(policy.period_s),
                "amount_trigger": str(policy.amount_trigger),
                "next_due_at": f"{last + policy.period_s:.3f}",
            },
        )

    def _checked(self, _: object, error: BaseException | None) -> None:
        """A write made without waiting for it: one that failed is logged loudly (what it
        records is also known elsewhere: the status is published again, a close is issued)."""
        if error is not None:
            log.error("a write to the settlement file %s failed: %s", self.store.path, error)


def _signed(rows: Sequence[ItemRow]) -> list[SignedItem]:
    """The items of a round its counterparties signed."""
    return [
        SignedItem(WithdrawItem(r.channel_id, r.participant, r.partner, r.total_withdraw),
                   r.amount, r.signature)
        for r in rows if r.signature is not None
    ]  # fmt: skip


__all__ = ["RoundReport", "SentTransaction", "SettlementConfig", "SettlementService"]

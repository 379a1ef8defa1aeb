"""Pays the community treasury its part of the hub's fee income, at each settlement round.

After a round's batch (`SettlementService._round`), `TreasuryPayer.after_round` reads the
network's `treasuryFeePpm`, decides the part from the hub's channels (`settlement.treasury`), and
records it in the settlement file (one transaction with the channels' counted nets) BEFORE it is
paid. The payment is `withdrawFromBalance(amount, treasury)` on the channel manager: from the
hub's internal balance, where its settlement withdraws put its earnings. It goes out through the
node's transaction manager under the key `treasury:<round>:<attempt>`, whose signed version is
written to the settlement file before it leaves (`TreasuryRecords`).

At start and before every round (`recover`), every part still owed is paid: if its current attempt
was signed before a stop, the chain is asked whether a signed version was mined (then it is
recorded paid, or failed if it reverted) and otherwise that version goes out again (same nonce:
never a second payment); an attempt never signed is sent as a new transaction.
An attempt that failed moved nothing (a revert, or refused before it was sent) and is followed by
a new one at the next round; a payment that landed is marked paid and never sent again.

Writes go through the node's commit thread (`NodeService.write_durably`), never on the trio
thread. It must never pay a part that is not recorded first, nor pay one twice.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable

import msgspec

from channels.chain.artifacts import load_artifact
from channels.chain.client import Web3ChainClient
from channels.chain.errors import ChainError
from channels.chain.executor import PreparedCall
from channels.chain.txmanager import PRIORITY_ROUTINE
from channels.records import OutboxTransaction
from channels.service import NodeService
from settlement.store import SettlementStore, TreasuryPaymentRow
from settlement.treasury import treasury_share

log = logging.getLogger(__name__)
KEY_PREFIX = "treasury:"  # treasury:<round>:<attempt>


def payment_key(round_id: int, attempt: int) -> str:
    return f"{KEY_PREFIX}{round_id}:{attempt}"


class TreasuryRecords:
    """The settlement file as the transaction manager's `Durable` for treasury payments."""

    def __init__(self, node: NodeService, store: SettlementStore) -> None:
        self.node = node
        self.store = store
        self._failure: BaseException | None = None

    def record(self, key: str, record: OutboxTransaction) -> None:
        round_id, attempt = (int(part) for part in key.removeprefix(KEY_PREFIX).split(":"))
        write = functools.partial(
            self.store.record_treasury_signed, round_id, attempt, msgspec.msgpack.encode(record)
        )
        self.node.write_durably_soon(write, self._written)

    def _written(self, _: object, error: BaseException | None) -> None:
        if error is not None and self._failure is None:
            self._failure = error

    async def flush(self) -> None:
        """Return once every record made so far is durable (raise if one was not)."""
        await self.node.wait_durable()
        failure, self._failure = self._failure, None
        if failure is not None:
            raise failure

    def done(self, key: str) -> None:
        """Nothing to do: the outcome is recorded by the payer."""


class TreasuryPayer:
    """Records and pays the treasury's part of each round (see the module docstring)."""

    def __init__(
        self,
        node: NodeService,
        client: Web3ChainClient,
        store: SettlementStore,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.node = node
        self.client = client
        self.store = store
        self.clock = clock
        deployment = client.deployment
        self.treasury = deployment.treasury
        self.parameters = deployment.parameters
        self._parameters_abi = load_artifact("NetworkParameters").abi
        node.sends.add_durable(KEY_PREFIX, TreasuryRecords(node, store))

    @property
    def enabled(self) -> bool:
        """Whether the network has a treasury (one deployed before it existed has none)."""
        return self.treasury is not None and self.parameters is not None

    def _ppm(self) -> int:
        assert self.parameters is not None
        spec = self._parameters_abi.function("treasuryFeePpm")
        raw = self.client.connection.call(
            self.parameters, spec.encode_call(()), self._parameters_abi,
            "NetworkParameters.treasuryFeePpm",
        )  # fmt: skip
        return int(spec.decode_result(raw)[0])

    async def after_round(self, round_id: int) -> TreasuryPaymentRow | None:
        """Count round `round_id`'s fee income, record the treasury's part, then pay it."""
        if not self.enabled:
            return None
        assert self.treasury is not None
        ppm = await self.node.chain_call(self._ppm)
        share = treasury_share(self.node.channels.values(), self.store.treasury_counted(), ppm)
        if not share.counted:
            return None
        await self.node.write_durably(
            functools.partial(
                self.store.record_treasury_share,
                round_id,
                counted=share.counted,
                income=share.income,
                ppm=ppm,
                amount=share.amount,
                treasury=self.treasury,
                now=self.clock(),
            )
        )
        if share.amount == 0:
            return None
        log.info("settlement round %d: %d of fee income, %d ppm: %d owed to the treasury",
                 round_id, share.income, ppm, share.amount)  # fmt: skip
        return await self._pay(self._row(round_id))

    async def recover(self) -> None:
        """Pay every part still owed (a stop between record and payment, or a failed attempt)."""
        for row in self.store.treasury_payments("owed"):
            await self._pay(row)

    def _mined(self, record: OutboxTransaction) -> tuple[bytes, int, bool] | None:
        """(hash, gas used, succeeded) of the signed version of `record` that was mined, if any."""
        for tx_hash in record.hashes:
            receipt = self.client.connection.receipt(tx_hash)
            if receipt is not None:
                return bytes(tx_hash), int(receipt["gasUsed"]), int(receipt["status"]) == 1
        return None

    async def _pay(self, row: TreasuryPaymentRow) -> TreasuryPaymentRow:
        restored = (
            None
            if row.signed is None
            else msgspec.msgpack.decode(row.signed, type=OutboxTransaction)
        )
        if restored is not None:  # signed before a stop: did it land?
            mined = await self.node.chain_call(self._mined, restored)
            if mined is not None:
                tx_hash, gas_used, succeeded = mined
                if succeeded:
                    write = functools.partial(
                        self.store.treasury_paid, row.round_id, tx_hash, gas_used
                    )
                else:
                    note = f"0x{tx_hash.hex()} reverted (found after a restart)"
                    write = functools.partial(self.store.treasury_failed, row.round_id, note)
                await self.node.write_durably(write)
                return self._row(row.round_id)
        abi = self.client.manager_abi
        call = PreparedCall(
            self.client.deployment.manager,
            abi.function("withdrawFromBalance").encode_call((row.amount, row.treasury)),
            abi,
            "ChannelManager.withdrawFromBalance",
        )
        result = await self.node.sends.transact(
            payment_key(row.round_id, row.attempt),
            "treasuryPayment",
            call,
            priority=PRIORITY_ROUTINE,
            restored=restored,
        )
        if isinstance(result, ChainError):
            log.warning("settlement round %d: the treasury's %d were not paid (tried again next "
                        "round): %s", row.round_id, row.amount, result)  # fmt: skip
            await self.node.write_durably(
                functools.partial(self.store.treasury_failed, row.round_id, str(result))
            )
        else:
            await self.node.write_durably(
                functools.partial(
                    self.store.treasury_paid,
                    row.round_id,
                    result.transaction_hash,
                    result.gas_used,
                )
            )
        return self._row(row.round_id)

    def _row(self, round_id: int) -> TreasuryPaymentRow:
        [row] = [r for r in self.store.treasury_payments() if r.round_id == round_id]
        return row


__all__ = ["KEY_PREFIX", "TreasuryPayer", "TreasuryRecords", "payment_key"]

"""`cise bench settlement`: gas per channel of a settlement batch on the embedded chain (issue 5).

A hub with a channel to each of 100 counterparties (every one an admitted member with a non-zero
internal balance, every channel already settled once: steady state, "channels and recipients that
already exist"). Batches of 1, 10 and 100 channels where each counterparty receives (a distinct
recipient per channel), and one of 100 where the hub receives for all; the headline figures use
DESIGN §3's batch form (the hub signs `SettlementBatch` once, each counterparty its own item), the
`*_cosigned` ones the form where both participants sign every item. Full transaction gasUsed,
divided by the channels in the batch. `gas_per_payment` = `gas_per_channel_100` / 1,000 payments per
channel per period. Deterministic: a fresh embedded chain with fixed dev keys every run.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eth_account import Account

from channels.chain.client import Web3ChainClient
from channels.chain.connection import Connection
from channels.chain.deploy import deploy, embedded_gas
from channels.core.types import Address, ChannelId
from channels.signer import LocalSigner
from settlement.batch import (
    WithdrawItem,
    batch_digest,
    pack_hub_withdraws,
    pack_withdraws,
)

EURO = 1_000_000
CHANNELS = 100
PAYMENTS_PER_CHANNEL = 1_000
DEPOSIT = 100 * EURO
SETTLE_TIMEOUT = 10
TARGETS = {"gas_per_channel_100": 20_000, "gas_per_channel_100_hub": 15_000, "gas_per_payment": 50}


class _Network:
    """The embedded chain: a hub, 100 counterparties, one open channel hub <-> each."""

    def __init__(self, channels: int = CHANNELS) -> None:
        self.connection = Connection.embedded(accounts=channels + 2)
        keys = self.connection.dev_keys
        deployer = Account.from_key(keys[0])
        deployment = deploy(self.connection, deployer, settle_timeout=SETTLE_TIMEOUT)
        operator = Web3ChainClient(self.connection, deployment, deployer)
        self.hub = Web3ChainClient.from_key(self.connection, deployment, keys[1])
        self.signers: dict[bytes, LocalSigner] = {self.hub.address: LocalSigner(keys[1])}
        self.counterparties: list[Address] = []
        self.channel_ids: dict[Address, ChannelId] = {}
        self.totals: dict[tuple[ChannelId, Address], int] = {}
        operator.mint(self.hub.address, channels * DEPOSIT + EURO)
        self.hub.approve(channels * DEPOSIT + EURO)
        self.hub.deposit_to_balance(1)
        for key in keys[2 : channels + 2]:
            client = Web3ChainClient.from_key(self.connection, deployment, key)
            self.signers[client.address] = LocalSigner(key)
            self.counterparties.append(client.address)
            operator.mint(client.address, DEPOSIT + 1)
            client.approve(DEPOSIT + 1)
            client.deposit_to_balance(1)  # an existing recipient: its balance slot is in use
            channel_id, _ = self.hub.open_channel(client.address, DEPOSIT)
            client.set_total_deposit(channel_id, self.hub.address, DEPOSIT)
            self.channel_ids[client.address] = channel_id
        # Steady state: every channel was settled in an earlier period, in both directions.
        self.settle(self.counterparties, hub_receives=False, hub_signs=True)
        self.settle(self.counterparties, hub_receives=True, hub_signs=True)

    def _items(self, counterparties: Sequence[Address], hub_receives: bool) -> list[WithdrawItem]:
        items = []
        for counterparty in counterparties:
            channel_id = self.channel_ids[counterparty]
            participant, partner = (
                (self.hub.address, counterparty)
                if hub_receives
                else (counterparty, self.hub.address)
            )
            total = (
                self.totals.get((channel_id, participant), 0) + 1_000
            )  # 1,000 payments of 1 unit
            self.totals[(channel_id, participant)] = total
            items.append(WithdrawItem(channel_id, participant, partner, total))
        return items

    def settle(
        self, counterparties: Sequence[Address], *, hub_receives: bool, hub_signs: bool
    ) -> int:
        """Settle one period of the channels to `counterparties` in one batch; returns its gasUsed."""
        items = self._items(counterparties, hub_receives)
        expiry = self.connection.block_number() + 100
        domain = self.hub.domain()
        gas = embedded_gas(self.connection)
        if hub_signs:
            hub = self.hub.address
            hub_signature = self.signers[hub].sign_digest(batch_digest(domain, items, expiry))
            signatures = [
                self.signers[
                    item.partner if item.participant == hub else item.participant
                ].sign_digest(item.digest(domain, expiry))
                for item in items
            ]
            withdraws = pack_hub_withdraws(hub, items, signatures)
            receipt = self.hub.settle_hub_batch(hub, expiry, hub_signature, withdraws, gas=gas)
        else:
            pairs = []
            for item in items:
                digest = item.digest(domain, expiry)
                pairs.append(
                    (
                        self.signers[item.participant].sign_digest(digest),
                        self.signers[item.partner].sign_digest(digest),
                    )
                )
            receipt = self.hub.settle_batch(expiry, pack_withdraws(items, pairs), gas=gas)
        return receipt.gas_used


def measure_settlement() -> dict[str, Any]:
    """Build the network, settle batches of 1, 10 and 100 channels; gas per channel of each."""
    network = _Network()
    cps = network.counterparties
    result: dict[str, Any] = {}
    for n in (1, 10, 100):
        used = network.settle(cps[:n], hub_receives=False, hub_signs=True)
        result[f"gas_per_channel_{n}"] = round(used / n)
    result["gas_per_channel_100_hub"] = round(
        network.settle(cps, hub_receives=True, hub_signs=True) / CHANNELS
    )
    result["gas_per_payment"] = round(result["gas_per_channel_100"] / PAYMENTS_PER_CHANNEL, 1)
    result["gas_per_channel_100_cosigned"] = round(
        network.settle(cps, hub_receives=False, hub_signs=False) / CHANNELS
    )
    result["gas_per_channel_100_hub_cosigned"] = round(
        network.settle(cps, hub_receives=True, hub_signs=False) / CHANNELS
    )
    result["targets"] = TARGETS
    result["targets_met"] = all(result[key] <= limit for key, limit in TARGETS.items())
    result["conditions"] = (
        "embedded py-evm, full tx gasUsed / channels in the batch; settleHubBatch (the hub signs the "
        "batch once, each counterparty its item) unless *_cosigned (settleBatch, both sign each "
        "item); channels already settled once and recipients with a non-zero internal balance "
        "(a channel's first settlement writes a fresh withdrawn slot: ~17k more); "
        f"{PAYMENTS_PER_CHANNEL} payments per channel per period"
    )
    return result

"""A settlement round's gas comes from the chain (issue 16): on a fresh network, 50 first
withdraws (recipients with no internal balance: the dearest kind of item) land in one round; a
batch that would revert because of one bad item is split and the good items land, the bad one
reported with the chain's reason; a batch that runs out of gas on chain is split and retried,
each part durable before it is sent, never the failed transaction again; and what is owed stays
shown while a batch has not landed."""

from __future__ import annotations

import time
from pathlib import Path

import trio
from eth_account import Account

from channels.chain.client import Web3ChainClient
from channels.codec.keccak import keccak
from channels.core.types import Address
from channels.signer import LocalSigner
from settlement import summary
from settlement.batch import WithdrawItem
from settlement.rounds import BatchTransaction
from settlement.service import SettlementService
from settlement.store import SettlementStore, TransactionRow
from tests.settlement.settlefix import SettleNet, settle_net, wait_for

DEPOSIT = 1_000_000


def _fresh_parties(count: int) -> list[LocalSigner]:
    """Accounts no one has used: no ether, no token, no internal balance."""
    return [LocalSigner(keccak(b"settlement gas party %d" % n)) for n in range(count)]


def _open_channels(sn: SettleNet, parties: list[LocalSigner]) -> list[int]:
    """The hub opens a channel with each party, depositing `DEPOSIT` from its wallet."""
    hub = sn.clients["hub"]
    operator = Account.from_key(sn.connection.dev_keys[0])
    minter = Web3ChainClient(sn.connection, hub.deployment, operator)
    minter.mint(hub.address, DEPOSIT * len(parties))
    hub.approve(DEPOSIT * len(parties))
    return [hub.open_channel(Address(p.address), DEPOSIT)[0] for p in parties]


def _signed_round(
    sn: SettleNet,
    store: SettlementStore,
    parties: list[LocalSigner],
    channels: list[int],
    amounts: list[int],
    forged: frozenset[int] = frozenset(),
) -> int:
    """A round whose items (each party withdrawing its amount to its internal balance) are all
    signed, as after the collection; the parties in `forged` sign with another key."""
    hub = sn.clients["hub"]
    block = hub.block_number()
    expiry = block + 40
    rows = [
        (c, Address(p.address), hub.address, a, a)
        for p, c, a in zip(parties, channels, amounts, strict=True)
    ]
    round_id = store.start_round(
        now=time.time(), reason="test", block=block, expiry=expiry, items=rows, deposits=[]
    )
    impostor = LocalSigner(keccak(b"not a party"))
    for index, (channel, participant, partner, total, _) in enumerate(rows):
        digest = WithdrawItem(channel, participant, partner, total).digest(hub.domain(), expiry)
        signer = impostor if index in forged else parties[index]
        store.record_signature(round_id, channel, participant, signer.sign_digest(digest))
    return round_id


async def test_fifty_first_withdraws_land_in_one_round_on_a_fresh_network(tmp_path: Path) -> None:
    parties = _fresh_parties(50)
    async with settle_net(tmp_path, [p.address for p in parties]) as sn:
        channels = await trio.to_thread.run_sync(_open_channels, sn, parties)
        hub = sn.clients["hub"]
        assert all(hub.balance_of(Address(p.address)) == 0 for p in parties)
        amounts = [1_000 + n for n in range(50)]
        store = SettlementStore(tmp_path / "settlement.sqlite")
        round_id = _signed_round(sn, store, parties, channels, amounts)
        with trio.fail_after(120):
            report = await sn.service(store).send_signed(round_id)
        assert report.status == "settled", report
        assert report.to_counterparties == sum(amounts) and report.excluded == ()
        for party, amount in zip(parties, amounts, strict=True):
            assert hub.balance_of(Address(party.address)) == amount
        for party, channel, amount in zip(parties, channels, amounts, strict=True):
            info = hub.get_channel(channel, hub.address, Address(party.address))
            assert info.total == DEPOSIT - amount  # nothing created or lost
        transactions = store.transactions(round_id)
        assert {t.status for t in transactions} == {"applied"}
        # the chain's price of a first withdraw, not a guess: every limit covered what was used
        assert all(t.gas_used is not None and t.gas_used <= t.gas_limit for t in transactions)
        shown = summary.round_summary(store, round_id)
        assert shown["gas_per_item"] > 45_000  # more than the old constant budget per item
        store.close()


async def test_a_batch_with_one_bad_item_is_split_and_the_good_items_land(tmp_path: Path) -> None:
    parties = _fresh_parties(6)
    async with settle_net(tmp_path, [p.address for p in parties]) as sn:
        channels = await trio.to_thread.run_sync(_open_channels, sn, parties)
        amounts = [2_000] * 6
        store = SettlementStore(tmp_path / "settlement.sqlite")
        round_id = _signed_round(sn, store, parties, channels, amounts, forged=frozenset({3}))
        with trio.fail_after(120):
            report = await sn.service(store).send_signed(round_id)
        hub = sn.clients["hub"]
        bad = Address(parties[3].address)
        assert report.status == "partial"
        assert report.to_counterparties == 5 * 2_000
        [(channel, participant, reason)] = report.excluded
        assert (channel, participant) == (channels[3], bad)
        assert "ChannelManagerWrongSigner" in reason  # the contract's error names what is wrong
        assert hub.balance_of(bad) == 0
        for n, party in enumerate(parties):
            if n != 3:
                assert hub.balance_of(Address(party.address)) == 2_000
        # the doomed batch was refused at the estimate: no transaction failed on chain
        assert {t.status for t in store.transactions(round_id)} == {"applied"}
        [shown] = summary.round_summary(store, round_id)["excluded"]
        assert shown["channel"] == channels[3] and "WrongSigner" in shown["reason"]
        store.close()


class _StarvedOnce(SettlementService):
    """Sends its first transaction with half the gas the chain asked for (as when the state moved
    between the estimate and the block): it runs out of gas on chain."""

    starved = False

    def _record(
        self,
        round_id: int,
        expiry: int,
        transaction: BatchTransaction,
        packed: tuple[bytes, bytes, bytes],
        gas_limit: int,
    ) -> TransactionRow:
        if not self.starved:
            self.starved = True
            gas_limit //= 2
        return super()._record(round_id, expiry, transaction, packed, gas_limit)


async def test_a_batch_out_of_gas_on_chain_is_split_and_retried_durably(tmp_path: Path) -> None:
    parties = _fresh_parties(8)
    async with settle_net(tmp_path, [p.address for p in parties]) as sn:
        channels = await trio.to_thread.run_sync(_open_channels, sn, parties)
        store = SettlementStore(tmp_path / "settlement.sqlite")
        round_id = _signed_round(sn, store, parties, channels, [3_000] * 8)
        service = _StarvedOnce(sn.net.services["hub"], sn.clients["hub"], store,
                               sn.service(store).config)  # fmt: skip
        with trio.fail_after(120):
            report = await service.send_signed(round_id)
        assert report.status == "settled", report
        hub = sn.clients["hub"]
        assert all(hub.balance_of(Address(p.address)) == 3_000 for p in parties)
        failed, *retries = store.transactions(round_id)
        assert failed.status == "reverted" and failed.gas_used == failed.gas_limit  # all paid
        assert len(retries) == 2 and {t.status for t in retries} == {"applied"}
        # the halves carry the failed batch's items, each once, never the failed batch itself
        assert failed.withdraws == retries[0].withdraws + retries[1].withdraws
        assert all(t.hub_signature != failed.hub_signature for t in retries)
        items = store.items(round_id)
        assert {i.tx_index for i in items} == {retries[0].tx_index, retries[1].tx_index}
        service.detach()
        store.close()


class _AlwaysRefused(SettlementService):
    """A chain that refuses every batch of the round (as the first settlements out of gas did)."""

    def _estimate(
        self, expiry: int, hub_signature: bytes, withdraws: bytes, deposits: bytes, cap: int
    ) -> int | None:
        return None  # needs more gas than a block holds, however small the batch


async def test_what_is_owed_stays_shown_while_a_batch_does_not_land(tmp_path: Path) -> None:
    async with settle_net(tmp_path) as sn:
        washer = sn.net.address("washer")
        with trio.fail_after(30):
            await sn.net.agents["alice"].pay(washer, 700_000, payment_id=1)
        store = SettlementStore(tmp_path / "settlement.sqlite")
        service = _AlwaysRefused(sn.net.services["hub"], sn.clients["hub"], store,
                                 sn.service(store, collect_s=10).config)  # fmt: skip
        with trio.fail_after(60):
            report = await service.settle_once()
        assert report.status == "failed" and report.to_counterparties == 0
        assert sn.channel_id("washer") in {channel for channel, _, _ in report.excluded}
        hub_view = sn.net.services["hub"].channels
        await wait_for(
            lambda: any(c.partner.pending_withdraw is not None for c in hub_view.values())
        )  # the washer's signed withdraw is in flight until its expiry
        await service._publish_status(time.time())
        shown = summary.status_summary(store, time.time())
        assert shown["owed_to_counterparties_units"] == 700_000  # not €0 while it is unsettled
        assert shown["owed_in_flight_units"] == 700_000
        assert shown["last_round"]["status"] == "failed"
        assert "gas" in shown["last_round"]["excluded"][0]["reason"]
        service.detach()
        store.close()

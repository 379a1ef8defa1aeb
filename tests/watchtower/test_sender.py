"""The tower's updates through its account's transaction manager on the batched path
(`channels.chain.txmanager`, `watchtower.sender`), on py-evm and anvil: a chunk's checks run in one
request and an update that would revert is not sent (no gas, no nonce used); updates handed over
before any is mined go out with consecutive nonces and land in one block; a node that cannot be
asked sends nothing and crashes nothing, and the updates go out once it answers; sends the node
refuses (no gas money) keep their nonces and go out once funded. Signed raw transactions are
byte-identical to eth_account's."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
import trio
from eth_account import Account
from eth_utils.address import to_checksum_address

from channels.chain.batch_rpc import ChainBatch, HttpBatch
from channels.chain.connection import Connection, Receipt, SentTransaction
from channels.chain.errors import ChainError
from channels.chain.nodes import LocalNode, free_port, rpc_call
from channels.chain.raw_tx import Fees, sign_transaction
from channels.chain.txmanager import PRIORITY_DEADLINE, TransactionManager
from channels.core.types import Address, BlockNumber, ChannelId
from channels.signer import LocalSigner
from tests.watchtower.towerfix import (
    CLOSE_GAS,
    POLL,
    SETTLE_TIMEOUT,
    STEP,
    Actor,
    TowerChain,
    in_one_block,
    make_tower_chain,
    manager_send,
)
from watchtower.bench_peer import build_requests
from watchtower.core import GuardedProof, RequestAccepted, TowerTerms, WatchedChannel, check_request
from watchtower.outbox import TowerOutbox
from watchtower.sender import KIND, UPDATE_GAS, transaction_key, update_call
from watchtower.service import SEND_BATCH
from watchtower.store import TowerStore

DEPOSIT = 1_000


def _closed_channels(chain: TowerChain, count: int) -> tuple[Actor, Actor, list[ChannelId]]:
    """`count` channels partner -> guarded, each closed by the partner without a proof."""
    guarded, partner = chain.actors[0], chain.actors[1]
    chain.fund(partner, count * DEPOSIT)
    channels = [chain.open(partner, guarded, DEPOSIT) for _ in range(count)]

    def close(channel_id: ChannelId) -> Callable[[], SentTransaction]:
        return lambda: manager_send(
            partner, "closeChannel", channel_id, guarded.address, 0, 0, 0, b"\0" * 32, b"",
            gas=CLOSE_GAS,
        )  # fmt: skip

    in_one_block(chain, [close(c) for c in channels], "ChannelClosed")
    return guarded, partner, channels


def _proofs(
    chain: TowerChain, guarded: Actor, partner: Actor, tower: Actor, channels: list[ChannelId]
) -> list[GuardedProof]:
    """Each channel's nonce-1 proof, as a tower holding it would (the core's own check)."""
    terms = TowerTerms(tower.address, chain.admin.domain(), 0)
    requests = build_requests(
        guarded.signer,
        partner.signer,
        terms.domain,
        tower.address,
        list(channels),
        len(channels),
        1,
    )
    proofs = []
    low, high = sorted((guarded.address, partner.address))
    for request in requests:
        channel_id = ChannelId(request.channel_id)
        record = WatchedChannel(channel_id, low, high)
        result = check_request(request, terms, record, None, BlockNumber(chain.head()))
        assert isinstance(result, RequestAccepted), result
        proofs.append(result.proof)
    return proofs


class TowerSender:
    """A tower account's transaction manager on the batched path (as `Watchtower` builds it), its
    records in a tower file; the outcomes and first sends it reports."""

    def __init__(
        self, chain: TowerChain, tower: Actor, path: Path, batch: ChainBatch | None = None
    ) -> None:
        self.chain, self.tower = chain, tower
        deployment = chain.deployment
        self.store = TowerStore(
            path,
            tower=tower.address,
            chain_id=deployment.chain_id,
            manager=deployment.manager,
            start_cursor=BlockNumber(deployment.block_number - 1),
        )
        self.outcomes: dict[str, Receipt | ChainError] = {}
        self.sent: list[str] = []
        self.outbox = TowerOutbox(self.store, trio.Lock())
        self.manager = TransactionManager(
            chain.connection,
            tower.client.account,
            self.outbox,
            tower.client.manager_abi,
            lock=chain.lock,
            poll_interval=POLL,
            outcome=lambda key, kind, result: self.outcomes.__setitem__(key, result),
            on_sent=lambda key, kind: self.sent.append(key),
            batch=batch or ChainBatch.for_connection(chain.connection),
            chunk=SEND_BATCH,
        )

    def submit(self, proofs: list[GuardedProof]) -> list[str]:
        keys = []
        for proof in proofs:
            key = transaction_key(proof)
            call = update_call(self.tower.client, proof)
            self.manager.submit(key, KIND, call, PRIORITY_DEADLINE, None, gas=UPDATE_GAS)
            keys.append(key)
        return keys

    async def until(self, predicate: Callable[[], bool], seconds: float = STEP) -> None:
        """Run the manager until `predicate` holds."""
        with trio.fail_after(seconds):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self.manager.run)
                while not predicate():  # noqa: ASYNC110  (the manager's progress, polled)
                    await trio.sleep(POLL)
                nursery.cancel_scope.cancel()

    def nonce_of(self, key: str) -> int:
        result = self.outcomes[key]
        assert isinstance(result, Receipt), result
        tx = self.chain.connection.w3.eth.get_transaction(result.transaction_hash)
        return int(tx["nonce"])


def _on_chain_nonce(chain: TowerChain, guarded: Actor, partner: Actor, channel: ChannelId) -> int:
    return guarded.client.get_balance_proof(channel, partner.address, guarded.address).nonce


def _sent_count(chain: TowerChain, actor: Actor) -> int:
    address = to_checksum_address(actor.address)
    return int(chain.connection.w3.eth.get_transaction_count(address, "pending"))


async def test_an_update_that_would_revert_is_not_sent(chain: TowerChain, tmp_path: Path) -> None:
    guarded, partner, channels = _closed_channels(chain, 3)
    first_tower, second_tower = chain.actors[2], chain.actors[3]
    first = TowerSender(chain, first_tower, tmp_path / "first.sqlite")
    second = TowerSender(chain, second_tower, tmp_path / "second.sqlite")
    # the first tower answers channel 0; the second then holds the same proofs for all three
    [key0] = first.submit(_proofs(chain, guarded, partner, first_tower, channels[:1]))
    await first.until(lambda: first.manager.pending == 0)
    assert isinstance(first.outcomes[key0], Receipt)
    gas_money = chain.connection.eth_balance(second_tower.address)
    start = _sent_count(chain, second_tower)
    keys = second.submit(_proofs(chain, guarded, partner, second_tower, channels))
    await second.until(lambda: second.manager.pending == 0)
    stood_down = second.outcomes[keys[0]]
    assert isinstance(stood_down, ChainError) and stood_down.name.startswith("ChannelManager")
    assert stood_down.transaction_hash is None  # never sent
    assert second.sent == keys[1:]
    # no nonce for the doomed one
    assert [second.nonce_of(key) for key in keys[1:]] == [start, start + 1]
    assert [_on_chain_nonce(chain, guarded, partner, c) for c in channels] == [1, 1, 1]
    assert _sent_count(chain, second_tower) == start + 2
    assert chain.connection.eth_balance(second_tower.address) < gas_money
    await second.outbox.flush()  # (the tower writes the let-go records at its next wake-up)
    assert second.store.transactions() == []  # every record let go once mined


async def test_updates_handed_over_before_any_is_mined_go_out_together(
    chain: TowerChain, tmp_path: Path
) -> None:
    guarded, partner, channels = _closed_channels(chain, 4)
    tower = chain.actors[2]
    sender = TowerSender(chain, tower, tmp_path / "tower.sqlite")
    proofs = _proofs(chain, guarded, partner, tower, channels)
    start = _sent_count(chain, tower)  # anvil serves every test of the session
    chain.connection.set_automine(False)
    try:
        keys = sender.submit(proofs[:1])
        await sender.until(lambda: len(sender.sent) == 1)
        keys += sender.submit(proofs[1:])
        await sender.until(lambda: len(sender.sent) == 4)
        # signed and recorded before they left: a restart would send these very bytes
        assert sorted(key for key, _ in sender.store.transactions()) == sorted(keys)
        head = await chain.mine(1)
    finally:
        chain.connection.set_automine(True)
    await sender.until(lambda: sender.manager.pending == 0)
    assert [sender.nonce_of(key) for key in keys] == list(range(start, start + 4))
    updated = [
        e
        for e in chain.connection.get_logs(
            chain.deployment.manager, head, head, tower.client.manager_abi
        )
        if e.name == "ChannelBalanceProofUpdated"
    ]
    assert len(updated) == 4  # all in the one block: none waited for another


async def test_a_node_that_cannot_be_asked_sends_nothing_and_crashes_nothing(
    chain: TowerChain, tmp_path: Path
) -> None:
    guarded, partner, channels = _closed_channels(chain, 2)
    tower = chain.actors[2]
    dead = HttpBatch(chain.connection, f"http://127.0.0.1:{free_port()}", timeout=2.0)
    sender = TowerSender(chain, tower, tmp_path / "tower.sqlite", batch=dead)
    start = _sent_count(chain, tower)
    keys = sender.submit(_proofs(chain, guarded, partner, tower, channels))
    with pytest.raises(trio.TooSlowError):  # it keeps trying, and nothing ends it
        await sender.until(lambda: sender.manager.pending < 2, seconds=3.0)
    assert _sent_count(chain, tower) == start and not sender.sent and not sender.outcomes
    assert [_on_chain_nonce(chain, guarded, partner, c) for c in channels] == [0, 0]
    sender.manager.batch = ChainBatch.for_connection(chain.connection)  # the node is back
    await sender.until(lambda: sender.manager.pending == 0, seconds=STEP + 10)
    assert all(isinstance(sender.outcomes[key], Receipt) for key in keys)
    assert [_on_chain_nonce(chain, guarded, partner, c) for c in channels] == [1, 1]
    assert _sent_count(chain, tower) == start + 2


@pytest.mark.parametrize(
    "fees", [Fees(max_fee=3 * 10**9, max_priority_fee=10**9), Fees(gas_price=2 * 10**9)]
)
def test_raw_transactions_are_those_eth_account_signs(fees: Fees) -> None:
    key = os.urandom(32)
    signer, account = LocalSigner(key), Account.from_key(key)
    for nonce in (0, 1, 127, 128, 70_000):
        to, data = Address(os.urandom(20)), os.urandom(nonce % 300)
        mine = sign_transaction(
            signer, chain_id=31337, nonce=nonce, gas=150_000, fees=fees, to=to, data=data
        )
        params = {
            "chainId": 31337, "nonce": nonce, "gas": 150_000, "to": to_checksum_address(to),
            "data": data, "value": 0, **fees.as_params(),
        }  # fmt: skip
        theirs = account.sign_transaction(params)
        assert mine.raw == bytes(theirs.raw_transaction)
        assert mine.transaction_hash == bytes(theirs.hash)


def test_fees_are_one_kind_or_the_other() -> None:
    with pytest.raises(ValueError, match="either"):
        Fees(max_fee=1, max_priority_fee=1, gas_price=1)
    with pytest.raises(ValueError, match="either"):
        Fees(max_fee=1)


@pytest.mark.node
async def test_sends_the_node_refuses_keep_their_nonces_and_go_out_once_funded(
    anvil_node: LocalNode, tmp_path: Path
) -> None:
    """A tower out of gas money: the node refuses every send; the manager keeps each update's
    nonce and signed bytes and sends them again until the account is funded (no gap that would
    hold later updates back, no second transaction)."""
    connection = Connection.from_url(anvil_node.url, anvil_node.private_keys)
    chain = make_tower_chain(connection, "anvil", SETTLE_TIMEOUT)
    guarded, partner, channels = _closed_channels(chain, 3)
    tower = chain.actors[2]
    sender = TowerSender(chain, tower, tmp_path / "tower.sqlite")
    proofs = _proofs(chain, guarded, partner, tower, channels)
    start = _sent_count(chain, tower)
    address, balance = "0x" + tower.address.hex(), connection.eth_balance(tower.address)
    rpc_call(anvil_node.url, "anvil_setBalance", [address, hex(1)])
    try:
        keys = sender.submit(proofs)
        jobs = [sender.manager.scheduler.jobs[key] for key in keys]
        await sender.until(lambda: all(job.send_error for job in jobs))
        assert not sender.sent and _sent_count(chain, tower) == start
        assert all("funds" in (job.send_error or "").lower() for job in jobs)
        assert [job.nonce for job in jobs] == [start, start + 1, start + 2]
        signed = [job.hashes[-1] for job in jobs]
    finally:
        rpc_call(anvil_node.url, "anvil_setBalance", [address, hex(balance)])
    await sender.until(lambda: sender.manager.pending == 0)
    assert [sender.nonce_of(key) for key in keys] == [start, start + 1, start + 2]
    mined = [sender.outcomes[key] for key in keys]
    assert [r.transaction_hash for r in mined if isinstance(r, Receipt)] == signed
    assert [_on_chain_nonce(chain, guarded, partner, c) for c in channels] == [1, 1, 1]

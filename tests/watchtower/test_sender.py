"""The tower's bulk sender (`watchtower.sender`) on py-evm and anvil: a batch's checks run in one
request and an update that would revert is not sent (no gas, no nonce used); nonces assigned
locally run on across batches sent before any is mined, none given twice, and those of sends the
node refused are given again; a node that cannot be asked sends nothing. Signed raw transactions are byte-identical to eth_account's."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest
from eth_account import Account
from eth_utils.address import to_checksum_address

from channels.chain.batch_rpc import BatchTransportError, HttpBatch
from channels.chain.connection import Connection, SentTransaction
from channels.chain.nodes import LocalNode, free_port, rpc_call
from channels.chain.raw_tx import Fees, sign_transaction
from channels.core.types import Address, BlockNumber, ChannelId
from channels.signer import LocalSigner
from tests.watchtower.towerfix import (
    CLOSE_GAS,
    SETTLE_TIMEOUT,
    Actor,
    TowerChain,
    in_one_block,
    make_tower_chain,
    manager_send,
)
from watchtower.bench_peer import build_requests
from watchtower.core import GuardedProof, RequestAccepted, TowerTerms, WatchedChannel, check_request
from watchtower.sender import UpdateSender
from watchtower.service import UPDATE_GAS

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


def _on_chain_nonce(chain: TowerChain, guarded: Actor, partner: Actor, channel: ChannelId) -> int:
    return guarded.client.get_balance_proof(channel, partner.address, guarded.address).nonce


def _sent_count(chain: TowerChain, actor: Actor) -> int:
    address = to_checksum_address(actor.address)
    return int(chain.connection.w3.eth.get_transaction_count(address, "pending"))


def test_an_update_that_would_revert_is_not_sent(chain: TowerChain) -> None:
    guarded, partner, channels = _closed_channels(chain, 3)
    first_tower, second_tower = chain.actors[2], chain.actors[3]
    first = UpdateSender(first_tower.client, first_tower.signer, UPDATE_GAS)
    second = UpdateSender(second_tower.client, second_tower.signer, UPDATE_GAS)
    # the first tower answers channel 0; the second then holds the same proofs for all three
    report = first.check_and_send(_proofs(chain, guarded, partner, first_tower, channels[:1]))
    assert [error for _, error in first.wait_mined(report.sent)] == [None]
    gas_money = chain.connection.eth_balance(second_tower.address)
    start = _sent_count(chain, second_tower)
    report = second.check_and_send(_proofs(chain, guarded, partner, second_tower, channels))
    [(stood_down, error)] = report.stood_down
    assert stood_down.channel_id == channels[0] and error.name.startswith("ChannelManager")
    assert [proof.channel_id for proof, _ in report.sent] == channels[1:] and not report.failed
    # no nonce for the doomed one
    assert [tx.params["nonce"] for _, tx in report.sent] == [start, start + 1]
    assert [error for _, error in second.wait_mined(report.sent)] == [None, None]
    assert [_on_chain_nonce(chain, guarded, partner, c) for c in channels] == [1, 1, 1]
    assert _sent_count(chain, second_tower) == start + 2
    assert chain.connection.eth_balance(second_tower.address) < gas_money


def test_nonces_run_on_across_batches_sent_before_any_is_mined(chain: TowerChain) -> None:
    guarded, partner, channels = _closed_channels(chain, 4)
    tower = chain.actors[2]
    sender = UpdateSender(tower.client, tower.signer, UPDATE_GAS)
    proofs = _proofs(chain, guarded, partner, tower, channels)
    start = _sent_count(chain, tower)  # anvil serves every test of the session
    chain.connection.set_automine(False)
    try:
        reports = [sender.check_and_send(proofs[:1]), sender.check_and_send(proofs[1:])]
        head = chain.connection.mine(1)
    finally:
        chain.connection.set_automine(True)
    sent = [pair for report in reports for pair in report.sent]
    assert [tx.params["nonce"] for _, tx in sent] == list(range(start, start + 4))
    results = sender.wait_mined(sent)
    assert [error for _, error in results] == [None] * 4
    updated = [
        e
        for e in chain.connection.get_logs(
            chain.deployment.manager, head, head, tower.client.manager_abi
        )
        if e.name == "ChannelBalanceProofUpdated"
    ]
    assert len(updated) == 4  # all in the one block: none waited for another


def test_a_node_that_cannot_be_asked_sends_nothing(chain: TowerChain) -> None:
    guarded, partner, channels = _closed_channels(chain, 2)
    tower = chain.actors[2]
    dead = HttpBatch(chain.connection, f"http://127.0.0.1:{free_port()}", timeout=2.0)
    sender = UpdateSender(tower.client, tower.signer, UPDATE_GAS, batch=dead)
    start = _sent_count(chain, tower)
    with pytest.raises(BatchTransportError):
        sender.check_and_send(_proofs(chain, guarded, partner, tower, channels))
    assert _sent_count(chain, tower) == start
    assert [_on_chain_nonce(chain, guarded, partner, c) for c in channels] == [0, 0]


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
def test_sends_the_node_refuses_give_their_nonces_back(anvil_node: LocalNode) -> None:
    """A tower out of gas money: the node refuses every send; nothing holds those nonces, so the
    same ones go out once it is funded again (no gap that would hold later updates back)."""
    connection = Connection.from_url(anvil_node.url, anvil_node.private_keys)
    chain = make_tower_chain(connection, "anvil", SETTLE_TIMEOUT)
    guarded, partner, channels = _closed_channels(chain, 3)
    tower = chain.actors[2]
    sender = UpdateSender(tower.client, tower.signer, UPDATE_GAS)
    proofs = _proofs(chain, guarded, partner, tower, channels)
    start = _sent_count(chain, tower)
    address, balance = "0x" + tower.address.hex(), connection.eth_balance(tower.address)
    rpc_call(anvil_node.url, "anvil_setBalance", [address, hex(1)])
    try:
        report = sender.check_and_send(proofs)
        assert not report.sent and [p.channel_id for p, _ in report.failed] == channels
        assert all("funds" in str(error).lower() for _, error in report.failed)
    finally:
        rpc_call(anvil_node.url, "anvil_setBalance", [address, hex(balance)])
    report = sender.check_and_send(proofs)
    assert [tx.params["nonce"] for _, tx in report.sent] == [start, start + 1, start + 2]
    assert [error for _, error in sender.wait_mined(report.sent)] == [None] * 3
    assert [_on_chain_nonce(chain, guarded, partner, c) for c in channels] == [1, 1, 1]

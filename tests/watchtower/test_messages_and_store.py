"""The tower's wire messages and receipt digest, and its sqlite file (durable, O(1) per channel)."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data

from channels.codec.eip712 import Domain
from channels.core.types import Address, BlockNumber, ChannelId, Nonce, to_checksum
from channels.signer import LocalSigner
from tests.watchtower.test_core import DOMAIN, GUARDED, PARTNER, TOWER, _held, _open, _request
from watchtower import messages as msg
from watchtower.store import TowerStore, TowerStoreError, read_snapshot

KEY = b"\x04" * 32  # the tower's


def test_the_receipt_digest_is_eip712_as_eth_account_computes_it() -> None:
    domain = Domain(31337, bytes.fromhex("5fbdb2315678afecb367f032d93f642f64180aa3"))
    data = {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"},
            ],
            "MonitorReceipt": [
                {"name": "channelId", "type": "uint256"},
                {"name": "guarded", "type": "address"},
                {"name": "nonce", "type": "uint256"},
                {"name": "requestDigest", "type": "bytes32"},
            ],
        },
        "primaryType": "MonitorReceipt",
        "domain": {
            "name": "CISE",
            "version": "1",
            "chainId": 31337,
            "verifyingContract": to_checksum(domain.verifying_contract),
        },
        "message": {
            "channelId": 42,
            "guarded": to_checksum(GUARDED.address),
            "nonce": 9,
            "requestDigest": b"\xab" * 32,
        },
    }
    ours = msg.receipt_digest(domain, 42, GUARDED.address, 9, b"\xab" * 32)
    signed = Account.sign_message(encode_typed_data(full_message=data), KEY)
    assert LocalSigner(KEY).sign_digest(ours) == bytes(signed.signature)


def test_messages_round_trip_and_bad_shapes_name_the_field() -> None:
    frame = msg.MonitorRequests(requests=[_request(3), _request(4)])
    assert msg.decode(msg.encode(frame)) == frame
    short = msgspec.structs.replace(_request(3), partner_signature=b"\x01" * 64)
    with pytest.raises(msg.WireError, match="partner_signature"):
        msg.decode(msg.encode(msg.MonitorRequests(requests=[short])))
    with pytest.raises(msg.WireError):
        msg.decode(msg.encode(msg.MonitorRequests(requests=[])))  # at least one request
    with pytest.raises(msg.WireError):
        msg.decode(b"\xc1garbage")


def _store(path: Path, tower: bytes = TOWER) -> TowerStore:
    return TowerStore(
        path,
        tower=Address(tower),
        chain_id=DOMAIN.chain_id,
        manager=Address(DOMAIN.verifying_contract),
        start_cursor=BlockNumber(9),
    )


def test_the_store_keeps_one_proof_per_channel_and_party_and_forgets_settled_channels(
    tmp_path: Path,
) -> None:
    path = tmp_path / "tower.sqlite"
    store = _store(path)
    assert store.synchronous == 2  # FULL: every commit is fsynced
    channel = _open()
    store.commit_chain([channel], [], BlockNumber(20))
    for nonce in range(1, 30):
        store.commit_requests([_held(nonce)])
    assert store.row_counts() == (1, 1)  # O(1) per channel, however many proofs came
    store.mark_submitted([(channel.channel_id, Address(GUARDED.address))], BlockNumber(21))
    store.close()

    snapshot = read_snapshot(path)  # read-only, as `cise watchtower status` does
    assert snapshot.cursor == 20 and snapshot.tower == TOWER
    assert snapshot.channels == {channel.channel_id: channel}
    key = (ChannelId(channel.channel_id), Address(GUARDED.address))
    assert snapshot.guards[key] == _held(29) and snapshot.submitted[key] == 21

    store = _store(path)
    store.commit_requests([_held(30)])  # a new proof: not sent yet
    assert key not in store.load().submitted
    store.commit_chain([], [channel.channel_id], BlockNumber(30))  # settled
    assert store.row_counts() == (0, 0)
    assert store.load().cursor == 30
    store.close()


def test_a_store_belongs_to_one_tower_and_network(tmp_path: Path) -> None:
    path = tmp_path / "tower.sqlite"
    _store(path).close()
    with pytest.raises(TowerStoreError, match="belongs to tower"):
        _store(path, tower=PARTNER.address)
    with pytest.raises(TowerStoreError, match="no watchtower database"):
        read_snapshot(tmp_path / "none.sqlite")


def test_records_carry_uint96_amounts(tmp_path: Path) -> None:
    store = _store(tmp_path / "tower.sqlite")
    store.commit_chain([_open()], [], BlockNumber(10))
    big = msgspec.structs.replace(_held(1), transferred=2**96 - 1, reward=2**96 - 1, nonce=Nonce(2))
    store.commit_requests([big])
    assert store.load().guards[big.key] == big
    store.close()

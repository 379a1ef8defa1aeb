"""Every EIP-712 digest equals eth_account's `encode_typed_data`, and recovery rejects bad signatures."""

from __future__ import annotations

from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import _hash_eip191_message, encode_typed_data
from hypothesis import given, settings
from hypothesis import strategies as st

from channels.codec import eip712
from channels.codec.ecdsa import SECP256K1_N, InvalidSignature, recover_signer
from channels.core.types import to_checksum
from channels.signer import LocalSigner

uint256 = st.integers(min_value=0, max_value=2**256 - 1)
bytes32 = st.binary(min_size=32, max_size=32)
address = st.binary(min_size=20, max_size=20)
chain_id = st.integers(min_value=1, max_value=2**64)

KEY = bytes.fromhex("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")

TYPES: dict[str, list[dict[str, str]]] = {
    "BalanceProof": [
        {"name": "channelId", "type": "uint256"},
        {"name": "nonce", "type": "uint256"},
        {"name": "transferredAmount", "type": "uint256"},
        {"name": "lockedAmount", "type": "uint256"},
        {"name": "locksRoot", "type": "bytes32"},
    ],
    "Lock": [
        {"name": "amount", "type": "uint256"},
        {"name": "expiration", "type": "uint256"},
        {"name": "secrethash", "type": "bytes32"},
    ],
    "Withdraw": [
        {"name": "channelId", "type": "uint256"},
        {"name": "participant", "type": "address"},
        {"name": "totalWithdraw", "type": "uint256"},
        {"name": "expiry", "type": "uint256"},
    ],
    "CooperativeClose": [
        {"name": "channelId", "type": "uint256"},
        {"name": "balance1", "type": "uint256"},
        {"name": "balance2", "type": "uint256"},
    ],
    "MonitorRequest": [
        {"name": "channelId", "type": "uint256"},
        {"name": "balanceProofHash", "type": "bytes32"},
        {"name": "reward", "type": "uint256"},
        {"name": "watchtower", "type": "address"},
    ],
    "SettlementBatch": [
        {"name": "itemsHash", "type": "bytes32"},
        {"name": "expiry", "type": "uint256"},
    ],
    "ApiRequest": [
        {"name": "action", "type": "string"},
        {"name": "timestamp", "type": "uint256"},
    ],
}


def _typed(domain: eip712.Domain, primary: str, message: dict[str, Any]) -> dict[str, Any]:
    return {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"},
            ],
            primary: TYPES[primary],
        },
        "primaryType": primary,
        "domain": {
            "name": "CISE",
            "version": "1",
            "chainId": domain.chain_id,
            "verifyingContract": to_checksum(domain.verifying_contract),
        },
        "message": message,
    }


def _reference(domain: eip712.Domain, primary: str, message: dict[str, Any]) -> bytes:
    return bytes(
        _hash_eip191_message(encode_typed_data(full_message=_typed(domain, primary, message)))
    )


def _check(domain: eip712.Domain, primary: str, message: dict[str, Any], ours: bytes) -> None:
    assert ours == _reference(domain, primary, message)


@settings(max_examples=40, deadline=None)
@given(chain_id, address, uint256, uint256, uint256, uint256, bytes32)
def test_balance_proof(cid: int, vc: bytes, ch: int, n: int, t: int, lk: int, root: bytes) -> None:
    domain = eip712.Domain(cid, vc)
    message = {
        "channelId": ch,
        "nonce": n,
        "transferredAmount": t,
        "lockedAmount": lk,
        "locksRoot": root,
    }
    _check(domain, "BalanceProof", message, eip712.balance_proof_digest(domain, ch, n, t, lk, root))


@settings(max_examples=40, deadline=None)
@given(chain_id, address, uint256, uint256, bytes32)
def test_lock(cid: int, vc: bytes, amount: int, expiration: int, secrethash: bytes) -> None:
    domain = eip712.Domain(cid, vc)
    message = {"amount": amount, "expiration": expiration, "secrethash": secrethash}
    ours = domain.digest(eip712.lock_hash(amount, expiration, secrethash))
    _check(domain, "Lock", message, ours)


@settings(max_examples=40, deadline=None)
@given(chain_id, address, uint256, address, uint256, uint256)
def test_withdraw(cid: int, vc: bytes, ch: int, who: bytes, total: int, expiry: int) -> None:
    domain = eip712.Domain(cid, vc)
    message = {
        "channelId": ch,
        "participant": to_checksum(who),
        "totalWithdraw": total,
        "expiry": expiry,
    }
    _check(domain, "Withdraw", message, eip712.withdraw_digest(domain, ch, who, total, expiry))
    assert domain.digest(
        eip712.withdraw_struct_hash(ch, who, total, expiry)
    ) == eip712.withdraw_digest(domain, ch, who, total, expiry)


@settings(max_examples=40, deadline=None)
@given(chain_id, address, uint256, uint256, uint256)
def test_cooperative_close(cid: int, vc: bytes, ch: int, b1: int, b2: int) -> None:
    domain = eip712.Domain(cid, vc)
    message = {"channelId": ch, "balance1": b1, "balance2": b2}
    _check(domain, "CooperativeClose", message, eip712.cooperative_close_digest(domain, ch, b1, b2))


@settings(max_examples=40, deadline=None)
@given(chain_id, address, uint256, bytes32, uint256, address)
def test_monitor_request(
    cid: int, vc: bytes, ch: int, bph: bytes, reward: int, tower: bytes
) -> None:
    domain = eip712.Domain(cid, vc)
    message = {
        "channelId": ch,
        "balanceProofHash": bph,
        "reward": reward,
        "watchtower": to_checksum(tower),
    }
    ours = eip712.monitor_request_digest(domain, ch, bph, reward, tower)
    _check(domain, "MonitorRequest", message, ours)


@settings(max_examples=40, deadline=None)
@given(chain_id, address, bytes32, uint256)
def test_settlement_batch(cid: int, vc: bytes, items: bytes, expiry: int) -> None:
    domain = eip712.Domain(cid, vc)
    message = {"itemsHash": items, "expiry": expiry}
    _check(
        domain, "SettlementBatch", message, eip712.settlement_batch_digest(domain, items, expiry)
    )


@settings(max_examples=40, deadline=None)
@given(chain_id, address, st.text(max_size=40), uint256)
def test_api_request(cid: int, vc: bytes, action: str, timestamp: int) -> None:
    domain = eip712.Domain(cid, vc)
    message = {"action": action, "timestamp": timestamp}
    ours = eip712.api_request_digest(domain, action, timestamp)
    _check(domain, "ApiRequest", message, ours)
    assert eip712.keccak(eip712.API_REQUEST_TYPE.encode()) == eip712.API_REQUEST_TYPEHASH


@settings(max_examples=25, deadline=None)
@given(chain_id, address, uint256, uint256, uint256)
def test_local_signer_matches_eth_account(cid: int, vc: bytes, ch: int, b1: int, b2: int) -> None:
    domain = eip712.Domain(cid, vc)
    typed = _typed(domain, "CooperativeClose", {"channelId": ch, "balance1": b1, "balance2": b2})
    reference = Account.sign_message(
        encode_typed_data(full_message=typed), private_key=KEY
    ).signature
    ours = LocalSigner(KEY).sign_digest(eip712.cooperative_close_digest(domain, ch, b1, b2))
    assert ours == bytes(reference)


def _good() -> tuple[bytes, bytes, bytes]:
    signer = LocalSigner(KEY)
    digest = eip712.balance_proof_digest(eip712.Domain(1, b"\x11" * 20), 1, 1, 5, 0, b"\x00" * 32)
    return digest, signer.sign_digest(digest), signer.address


def test_recover_accepts_the_good_signature() -> None:
    digest, signature, who = _good()
    assert recover_signer(digest, signature) == who


def test_recover_rejects_high_s() -> None:
    digest, signature, _ = _good()
    s = int.from_bytes(signature[32:64], "big")
    malleable = signature[:32] + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - signature[64]])
    with pytest.raises(InvalidSignature, match="high"):
        recover_signer(digest, malleable)


@pytest.mark.parametrize("v", [0, 1, 26, 29, 255])
def test_recover_rejects_bad_v(v: int) -> None:
    digest, signature, _ = _good()
    with pytest.raises(InvalidSignature, match="v must be"):
        recover_signer(digest, signature[:64] + bytes([v]))


@pytest.mark.parametrize("length", [0, 64, 66])
def test_recover_rejects_bad_length(length: int) -> None:
    digest, signature, _ = _good()
    with pytest.raises(InvalidSignature, match="65 bytes"):
        recover_signer(digest, (signature * 2)[:length])


def test_recover_rejects_zero_r_and_s() -> None:
    digest, signature, _ = _good()
    with pytest.raises(InvalidSignature):
        recover_signer(digest, b"\x00" * 32 + signature[32:])
    with pytest.raises(InvalidSignature):
        recover_signer(digest, signature[:32] + b"\x00" * 32 + signature[64:])

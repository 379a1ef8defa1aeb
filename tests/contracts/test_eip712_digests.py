"""The contract's EIP-712 struct hashes and digests equal channels.codec.eip712 and eth_account's.

Three implementations (Solidity via the harness, the hand-rolled Python codec, eth_account's generic
`encode_typed_data`) must agree on every message type of docs/protocol.md.
"""

from typing import Any

from eth_account.messages import encode_typed_data
from eth_utils import keccak, to_canonical_address, to_checksum_address
from hypothesis import given, settings
from hypothesis import strategies as st

from channels.codec import eip712

u256 = st.integers(min_value=0, max_value=2**256 - 1)
b32 = st.binary(min_size=32, max_size=32)
address = st.binary(min_size=20, max_size=20)
FAST = settings(max_examples=25, deadline=None)

EIP712_DOMAIN = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]
TYPES = {
    "BalanceProof": [
        ("channelId", "uint256"),
        ("nonce", "uint256"),
        ("transferredAmount", "uint256"),
        ("lockedAmount", "uint256"),
        ("locksRoot", "bytes32"),
    ],
    "Lock": [("amount", "uint256"), ("expiration", "uint256"), ("secrethash", "bytes32")],
    "Withdraw": [
        ("channelId", "uint256"),
        ("participant", "address"),
        ("totalWithdraw", "uint256"),
        ("expiry", "uint256"),
    ],
    "CooperativeClose": [
        ("channelId", "uint256"),
        ("balance1", "uint256"),
        ("balance2", "uint256"),
    ],
    "MonitorRequest": [
        ("channelId", "uint256"),
        ("balanceProofHash", "bytes32"),
        ("reward", "uint256"),
        ("watchtower", "address"),
    ],
    "SettlementBatch": [("itemsHash", "bytes32"), ("expiry", "uint256")],
}


def eth_account_typed(chain_id: int, contract: str, primary: str, values: list[Any]):
    fields = TYPES[primary]
    return encode_typed_data(
        full_message={
            "types": {
                "EIP712Domain": EIP712_DOMAIN,
                primary: [{"name": n, "type": t} for n, t in fields],
            },
            "primaryType": primary,
            "domain": {
                "name": "CISE",
                "version": "1",
                "chainId": chain_id,
                "verifyingContract": contract,
            },
            "message": {name: value for (name, _), value in zip(fields, values, strict=True)},
        }
    )


def eth_account_digest(chain, primary: str, values: list[Any]) -> bytes:
    signable = eth_account_typed(chain.w3.eth.chain_id, chain.harness.address, primary, values)
    return keccak(b"\x19" + signable.version + signable.header + signable.body)


def codec_domain(chain) -> eip712.Domain:
    return eip712.Domain(chain.w3.eth.chain_id, to_canonical_address(chain.harness.address))


def test_domain_separator(chain):
    chain_id, contract = chain.w3.eth.chain_id, chain.cm.address
    header = eth_account_typed(chain_id, contract, "SettlementBatch", [b"\0" * 32, 0]).header
    separator = chain.cm.functions.domainSeparator().call()
    assert (
        separator
        == bytes(header)
        == eip712.Domain(chain_id, to_canonical_address(contract)).separator
    )


@FAST
@given(channel_id=u256, nonce=u256, transferred=u256, locked=u256, root=b32)
def test_balance_proof(_deployed, channel_id, nonce, transferred, locked, root):
    chain = _deployed[0]
    h = chain.harness.functions
    args = [channel_id, nonce, transferred, locked, root]
    struct = eip712.balance_proof_struct_hash(*args)
    assert h.balanceProofStructHash(*args).call() == struct
    assert struct == bytes(eth_account_typed(1, chain.harness.address, "BalanceProof", args).body)
    assert h.balanceProofDigest(*args).call() == eip712.balance_proof_digest(
        codec_domain(chain), *args
    )
    assert h.balanceProofDigest(*args).call() == eth_account_digest(chain, "BalanceProof", args)


@FAST
@given(amount=u256, expiration=u256, secrethash=b32)
def test_lock_hash(_deployed, amount, expiration, secrethash):
    chain = _deployed[0]
    args = [amount, expiration, secrethash]
    leaf = chain.harness.functions.lockHash(*args).call()
    assert (
        leaf
        == eip712.lock_hash(*args)
        == bytes(eth_account_typed(1, chain.harness.address, "Lock", args).body)
    )


@FAST
@given(channel_id=u256, participant=address, total=u256, expiry=u256)
def test_withdraw(_deployed, channel_id, participant, total, expiry):
    chain = _deployed[0]
    checksum = to_checksum_address(participant)
    got = chain.harness.functions.withdrawDigest(channel_id, checksum, total, expiry).call()
    assert got == eip712.withdraw_digest(
        codec_domain(chain), channel_id, participant, total, expiry
    )
    assert got == eth_account_digest(chain, "Withdraw", [channel_id, checksum, total, expiry])


@FAST
@given(channel_id=u256, b1=u256, b2=u256)
def test_cooperative_close(_deployed, channel_id, b1, b2):
    chain = _deployed[0]
    got = chain.harness.functions.cooperativeCloseDigest(channel_id, b1, b2).call()
    assert got == eip712.cooperative_close_digest(codec_domain(chain), channel_id, b1, b2)
    assert got == eth_account_digest(chain, "CooperativeClose", [channel_id, b1, b2])


@FAST
@given(channel_id=u256, proof_hash=b32, reward=u256, watchtower=address)
def test_monitor_request(_deployed, channel_id, proof_hash, reward, watchtower):
    chain = _deployed[0]
    tower = to_checksum_address(watchtower)
    got = chain.harness.functions.monitorRequestDigest(channel_id, proof_hash, reward, tower).call()
    assert got == eip712.monitor_request_digest(
        codec_domain(chain), channel_id, proof_hash, reward, watchtower
    )
    assert got == eth_account_digest(
        chain, "MonitorRequest", [channel_id, proof_hash, reward, tower]
    )


@FAST
@given(items_hash=b32, expiry=u256)
def test_settlement_batch(_deployed, items_hash, expiry):
    chain = _deployed[0]
    got = chain.harness.functions.settlementBatchDigest(items_hash, expiry).call()
    assert got == eip712.settlement_batch_digest(codec_domain(chain), items_hash, expiry)
    assert got == eth_account_digest(chain, "SettlementBatch", [items_hash, expiry])

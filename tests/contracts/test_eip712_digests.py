"""The contract's EIP-712 struct hashes and digests equal an independent implementation's."""

from cm_support import Domain, balance_proof, digest, struct_hash, typed
from hypothesis import given, settings
from hypothesis import strategies as st

u256 = st.integers(min_value=0, max_value=2**256 - 1)
b32 = st.binary(min_size=32, max_size=32)
address = st.binary(min_size=20, max_size=20)
FAST = settings(max_examples=25, deadline=None)


def test_domain_separator(chain):
    # The header of an EIP-712 signable message is the domain separator.
    domain = Domain(chain.w3.eth.chain_id, chain.cm.address)
    header = typed(domain, "SettlementBatch", {"itemsHash": b"\0" * 32, "expiry": 0}).header
    assert chain.cm.functions.domainSeparator().call() == bytes(header)


@FAST
@given(channel_id=u256, nonce=u256, transferred=u256, locked=u256, root=b32)
def test_balance_proof(_deployed, channel_id, nonce, transferred, locked, root):
    chain = _deployed[0]
    h = chain.harness.functions
    message = balance_proof(channel_id, nonce, transferred, locked, root)
    assert h.balanceProofStructHash(channel_id, nonce, transferred, locked, root).call() == struct_hash(
        "BalanceProof", message
    )
    domain = Domain(chain.w3.eth.chain_id, chain.harness.address)
    assert h.balanceProofDigest(channel_id, nonce, transferred, locked, root).call() == digest(
        domain, "BalanceProof", message
    )


@FAST
@given(amount=u256, expiration=u256, secrethash=b32)
def test_lock_hash(_deployed, amount, expiration, secrethash):
    chain = _deployed[0]
    message = {"amount": amount, "expiration": expiration, "secrethash": secrethash}
    assert chain.harness.functions.lockHash(amount, expiration, secrethash).call() == struct_hash("Lock", message)


@FAST
@given(channel_id=u256, participant=address, total=u256, expiry=u256)
def test_withdraw(_deployed, channel_id, participant, total, expiry):
    chain = _deployed[0]
    participant_hex = chain.w3.to_checksum_address(participant)
    message = {"channelId": channel_id, "participant": participant_hex, "totalWithdraw": total, "expiry": expiry}
    domain = Domain(chain.w3.eth.chain_id, chain.harness.address)
    got = chain.harness.functions.withdrawDigest(channel_id, participant_hex, total, expiry).call()
    assert got == digest(domain, "Withdraw", message)


@FAST
@given(channel_id=u256, b1=u256, b2=u256)
def test_cooperative_close(_deployed, channel_id, b1, b2):
    chain = _deployed[0]
    message = {"channelId": channel_id, "balance1": b1, "balance2": b2}
    domain = Domain(chain.w3.eth.chain_id, chain.harness.address)
    got = chain.harness.functions.cooperativeCloseDigest(channel_id, b1, b2).call()
    assert got == digest(domain, "CooperativeClose", message)


@FAST
@given(channel_id=u256, proof_hash=b32, reward=u256, watchtower=address)
def test_monitor_request(_deployed, channel_id, proof_hash, reward, watchtower):
    chain = _deployed[0]
    tower = chain.w3.to_checksum_address(watchtower)
    message = {"channelId": channel_id, "balanceProofHash": proof_hash, "reward": reward, "watchtower": tower}
    domain = Domain(chain.w3.eth.chain_id, chain.harness.address)
    got = chain.harness.functions.monitorRequestDigest(channel_id, proof_hash, reward, tower).call()
    assert got == digest(domain, "MonitorRequest", message)


@FAST
@given(items_hash=b32, expiry=u256)
def test_settlement_batch(_deployed, items_hash, expiry):
    chain = _deployed[0]
    domain = Domain(chain.w3.eth.chain_id, chain.harness.address)
    got = chain.harness.functions.settlementBatchDigest(items_hash, expiry).call()
    assert got == digest(domain, "SettlementBatch", {"itemsHash": items_hash, "expiry": expiry})

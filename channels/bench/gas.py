"""Gas of every channel-manager operation on the embedded chain (`cise bench gas`).

Runs the whole lifecycle once with real signatures and returns each transaction's gasUsed, keyed by
operation. Conditions are stated in the result: participants already hold a non-zero internal
balance (members of a running network do), other channels exist (the id counter is non-zero; the
very first channel of a network costs ~17k more), the manager already holds tokens, and the opener
approved the manager beforehand. Measures only; asserts nothing.
"""

from __future__ import annotations

from typing import Any

from eth_account import Account

from channels.chain.client import Web3ChainClient
from channels.chain.connection import Connection
from channels.chain.deploy import deploy
from channels.codec import eip712
from channels.codec.keccak import keccak
from channels.core.locktree import LockTree
from channels.core.state import Lock
from channels.core.types import (
    Address,
    BlockNumber,
    ChannelId,
    Secret,
    SecretHash,
    TokenAmount,
)
from channels.signer import LocalSigner

EURO = 1_000_000
SETTLE_TIMEOUT = 10


def measure_gas() -> dict[str, Any]:
    """Run the lifecycle on a fresh embedded chain; returns {operation: gasUsed, ...}."""
    connection = Connection.embedded()
    keys = connection.dev_keys
    deployer = Account.from_key(keys[0])
    deployment = deploy(connection, deployer, settle_timeout=SETTLE_TIMEOUT)
    operator = Web3ChainClient(connection, deployment, deployer)
    a_key, b_key = keys[1], keys[2]
    a = Web3ChainClient.from_key(connection, deployment, a_key)
    b = Web3ChainClient.from_key(connection, deployment, b_key)
    a_signer, b_signer = LocalSigner(a_key), LocalSigner(b_key)
    domain = a.domain()
    for client in (a, b):
        operator.mint(client.address, 1_000 * EURO)
        client.approve(1_000 * EURO)
        client.deposit_to_balance(1)  # an existing member: internal balance slot already in use
    gas: dict[str, Any] = {}
    operator.mint(operator.address, EURO)
    operator.approve(EURO)
    operator.open_channel(a.address, EURO)  # a running network: the channel counter is non-zero

    channel_id, receipt = a.open_channel(b.address, 10 * EURO)
    gas["open_with_deposit"] = receipt.gas_used
    gas["deposit"] = b.set_total_deposit(channel_id, a.address, 5 * EURO).gas_used
    expiry = connection.block_number() + 100
    digest = eip712.withdraw_digest(domain, channel_id, a.address, 1 * EURO, expiry)
    gas["withdraw"] = a.withdraw(
        channel_id, a.address, b.address, 1 * EURO, expiry,
        a_signer.sign_digest(digest), b_signer.sign_digest(digest),
    ).gas_used  # fmt: skip
    p1, p2 = sorted((a.address, b.address))
    balances = {a.address: 9 * EURO, b.address: 5 * EURO}
    digest = eip712.cooperative_close_digest(domain, channel_id, balances[p1], balances[p2])
    signers = {a.address: a_signer, b.address: b_signer}
    gas["cooperative_close"] = a.cooperative_close(
        channel_id, p1, p2, balances[p1], balances[p2],
        signers[p1].sign_digest(digest), signers[p2].sign_digest(digest),
    ).gas_used  # fmt: skip

    gas.update(_unilateral(connection, a, b, a_signer, b_signer))
    gas["conditions"] = (
        "embedded py-evm, full tx gasUsed; participants already hold an internal balance; "
        "other channels exist; "
        "ERC20 allowance set beforehand; unlock of one lock proven against a 9-level tree"
    )
    return gas


def _unilateral(
    connection: Connection,
    a: Web3ChainClient,
    b: Web3ChainClient,
    a_signer: LocalSigner,
    b_signer: LocalSigner,
) -> dict[str, int]:
    """close (A, with B's proof), update (B, with A's proof and a pending lock), settle, unlock."""
    domain = a.domain()
    channel_id, _ = a.open_channel(b.address, 10 * EURO)
    b.set_total_deposit(channel_id, a.address, 5 * EURO)
    secret = Secret(keccak(b"gas bench secret"))
    lock = Lock(
        TokenAmount(EURO),
        BlockNumber(connection.block_number() + 1_000),
        SecretHash(eip712.secrethash_of(secret)),
    )
    tree, slot = LockTree().insert(lock.leaf)
    a_proof = (1, 2 * EURO, EURO, tree.root)  # nonce, transferred, locked, root
    b_proof = (1, EURO // 2, 0, bytes(32))
    a_sig = a_signer.sign_digest(eip712.balance_proof_digest(domain, channel_id, *a_proof))
    b_sig = b_signer.sign_digest(eip712.balance_proof_digest(domain, channel_id, *b_proof))
    gas = {"close": a.close_channel(channel_id, b.address, *b_proof, b_sig).gas_used}
    gas["update"] = b.update_balance_proof(channel_id, a.address, *a_proof, a_sig).gas_used
    connection.mine(SETTLE_TIMEOUT + 1)
    p1, p2 = sorted((a.address, b.address))
    gas["settle"] = a.settle_channel(ChannelId(channel_id), Address(p1), Address(p2)).gas_used
    b.register_secret(secret)
    gas["unlock"] = b.unlock(
        channel_id, a.address, b.address, lock, slot, tree.proof(slot)
    ).gas_used
    return gas

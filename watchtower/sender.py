"""The tower's update transactions, as the transaction manager takes them.

`update_call(client, proof)` is the updateBalanceProofFor call of a held proof, and
`transaction_key(proof)` its durable key (channel, guarded party, nonce: a newer proof is another
transaction; the same proof handed over twice is one). The tower hands each update the core
decided to its account's `channels.chain.txmanager.TransactionManager` with the channel's settle
block as its deadline and `UPDATE_GAS` as its gas, on the manager's batched path: a chunk of
updates is checked with eth_calls in one JSON-RPC request (an update that would revert, because
another tower or the guarded party already submitted that nonce or a higher one, or the period is
over, is not sent and costs nothing), signed locally (`channels.chain.raw_tx`), recorded in the
tower's file, and sent in a second request without waiting for any to be mined. The manager
replaces one not mined within its stall blocks (same nonce, higher fee), sends again one a
reorganisation dropped, and rides out a node that does not answer.

It must never build a call the core did not decide (only from a held proof) and never send
anything itself: the manager is the only sender of the tower's account.
"""

from __future__ import annotations

from channels.chain.client import Web3ChainClient
from channels.chain.executor import PreparedCall
from watchtower.core import GuardedProof

FUNCTION = "updateBalanceProofFor"
KIND = "UpdateBalanceProofFor"
KEY_PREFIX = "update:"
# Gas limit of one updateBalanceProofFor (the estimate is skipped: an eth_call checks it first).
# The most it used here is ~110k (uint96 amounts, a locks root, the reward slot written first); a
# lower limit lets a block hold more of them, since a block's gas limit counts each one's limit.
UPDATE_GAS = 150_000


def transaction_key(proof: GuardedProof) -> str:
    """The durable key of `proof`'s update transaction."""
    return f"{KEY_PREFIX}{proof.channel_id}:{proof.guarded.hex()}:{proof.nonce}"


def update_call(client: Web3ChainClient, proof: GuardedProof) -> PreparedCall:
    """The updateBalanceProofFor call of `proof`, to the channel manager."""
    abi = client.manager_abi
    data = abi.function(FUNCTION).encode_call(
        (
            proof.channel_id,
            proof.partner,
            proof.guarded,
            proof.nonce,
            proof.transferred,
            proof.locked,
            proof.locks_root,
            proof.partner_signature,
            proof.reward,
            proof.monitor_signature,
        )
    )
    return PreparedCall(client.deployment.manager, data, abi, f"ChannelManager.{FUNCTION}")


__all__ = ["FUNCTION", "KIND", "UPDATE_GAS", "transaction_key", "update_call"]

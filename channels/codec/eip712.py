"""EIP-712 digests of every CISE message type (docs/protocol.md), hand-rolled for speed.

Pure: takes ints and bytes, returns bytes. It never holds a key and never signs; the signer does
that over the digests made here. Each function is proven equal to eth_account's
`encode_typed_data` and to the Solidity contract in the tests.
"""

from dataclasses import dataclass

from channels.codec.keccak import keccak

DOMAIN_NAME = "CISE"
DOMAIN_VERSION = "1"

BALANCE_PROOF_TYPE = (
    "BalanceProof(uint256 channelId,uint256 nonce,uint256 transferredAmount,"
    "uint256 lockedAmount,bytes32 locksRoot)"
)
LOCK_TYPE = "Lock(uint256 amount,uint256 expiration,bytes32 secrethash)"
WITHDRAW_TYPE = (
    "Withdraw(uint256 channelId,address participant,uint256 totalWithdraw,uint256 expiry)"
)
COOPERATIVE_CLOSE_TYPE = "CooperativeClose(uint256 channelId,uint256 balance1,uint256 balance2)"
MONITOR_REQUEST_TYPE = (
    "MonitorRequest(uint256 channelId,bytes32 balanceProofHash,uint256 reward,address watchtower)"
)
SETTLEMENT_BATCH_TYPE = "SettlementBatch(bytes32 itemsHash,uint256 expiry)"
# API-only (no contract checks it): a member's signed request to the HTTP API (`api/auth.py`).
API_REQUEST_TYPE = "ApiRequest(string action,uint256 timestamp)"
# domain: the asset registry as verifyingContract (like the asset ledger's types)
SPLIT_CONSENT_TYPE = (
    "SplitConsent(bytes32 assetId,bytes32 splitHash,uint256 version,uint256 expiry)"
)
DOMAIN_TYPE = "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"

BALANCE_PROOF_TYPEHASH = keccak(BALANCE_PROOF_TYPE.encode())
LOCK_TYPEHASH = keccak(LOCK_TYPE.encode())
WITHDRAW_TYPEHASH = keccak(WITHDRAW_TYPE.encode())
COOPERATIVE_CLOSE_TYPEHASH = keccak(COOPERATIVE_CLOSE_TYPE.encode())
MONITOR_REQUEST_TYPEHASH = keccak(MONITOR_REQUEST_TYPE.encode())
SETTLEMENT_BATCH_TYPEHASH = keccak(SETTLEMENT_BATCH_TYPE.encode())
API_REQUEST_TYPEHASH = keccak(API_REQUEST_TYPE.encode())
SPLIT_CONSENT_TYPEHASH = keccak(SPLIT_CONSENT_TYPE.encode())
DOMAIN_TYPEHASH = keccak(DOMAIN_TYPE.encode())

EMPTY_ROOT = b"\x00" * 32


def u256(value: int) -> bytes:
    """ABI-encode an unsigned 256-bit integer; OverflowError when out of range or negative."""
    return value.to_bytes(32, "big")


def b32(value: bytes) -> bytes:
    """Check and return a bytes32 word."""
    if len(value) != 32:
        raise ValueError(f"expected 32 bytes, got {len(value)}")
    return value


def addr(value: bytes) -> bytes:
    """ABI-encode a 20-byte address as a 32-byte word."""
    if len(value) != 20:
        raise ValueError(f"expected a 20-byte address, got {len(value)} bytes")
    return b"\x00" * 12 + value


@dataclass(frozen=True, slots=True)
class Domain:
    """The EIP-712 domain of one channel manager on one chain; `separator` is computed once."""

    chain_id: int
    verifying_contract: bytes
    separator: bytes = b""

    def __post_init__(self) -> None:
        separator = keccak(
            DOMAIN_TYPEHASH
            + keccak(DOMAIN_NAME.encode())
            + keccak(DOMAIN_VERSION.encode())
            + u256(self.chain_id)
            + addr(self.verifying_contract)
        )
        object.__setattr__(self, "separator", separator)

    def digest(self, struct_hash: bytes) -> bytes:
        """The digest a signer signs: keccak256(0x1901 ‖ domainSeparator ‖ structHash)."""
        return keccak(b"\x19\x01" + self.separator + struct_hash)


def balance_proof_struct_hash(
    channel_id: int, nonce: int, transferred: int, locked: int, locks_root: bytes
) -> bytes:
    """hashStruct(BalanceProof): also the `balanceProofHash` a MonitorRequest names."""
    return keccak(
        BALANCE_PROOF_TYPEHASH
        + u256(channel_id)
        + u256(nonce)
        + u256(transferred)
        + u256(locked)
        + b32(locks_root)
    )


def balance_proof_digest(
    domain: Domain, channel_id: int, nonce: int, transferred: int, locked: int, locks_root: bytes
) -> bytes:
    """Digest of a BalanceProof, signed by its sender.

    `domain.digest(balance_proof_struct_hash(...))` written out: every payment's digest is made
    here twice (sender and receiver), so it skips the helper calls; the tests compare it to both.
    """
    if len(locks_root) != 32:
        raise ValueError(f"expected 32 bytes, got {len(locks_root)}")
    struct_hash = keccak(
        BALANCE_PROOF_TYPEHASH
        + channel_id.to_bytes(32, "big")
        + nonce.to_bytes(32, "big")
        + transferred.to_bytes(32, "big")
        + locked.to_bytes(32, "big")
        + locks_root
    )
    return keccak(b"\x19\x01" + domain.separator + struct_hash)


def lock_hash(amount: int, expiration: int, secrethash: bytes) -> bytes:
    """hashStruct(Lock): the leaf of a lock in the locks tree."""
    return keccak(LOCK_TYPEHASH + u256(amount) + u256(expiration) + b32(secrethash))


def withdraw_digest(
    domain: Domain, channel_id: int, participant: bytes, total_withdraw: int, expiry: int
) -> bytes:
    """Digest of a Withdraw, signed by both participants."""
    return domain.digest(
        keccak(
            WITHDRAW_TYPEHASH
            + u256(channel_id)
            + addr(participant)
            + u256(total_withdraw)
            + u256(expiry)
        )
    )


def withdraw_struct_hash(
    channel_id: int, participant: bytes, total_withdraw: int, expiry: int
) -> bytes:
    """hashStruct(Withdraw): the item hashed into a SettlementBatch."""
    return keccak(
        WITHDRAW_TYPEHASH
        + u256(channel_id)
        + addr(participant)
        + u256(total_withdraw)
        + u256(expiry)
    )


def cooperative_close_digest(
    domain: Domain, channel_id: int, balance1: int, balance2: int
) -> bytes:
    """Digest of a CooperativeClose, signed by both participants (balances in address order)."""
    return domain.digest(
        keccak(COOPERATIVE_CLOSE_TYPEHASH + u256(channel_id) + u256(balance1) + u256(balance2))
    )


def monitor_request_digest(
    domain: Domain, channel_id: int, balance_proof_hash: bytes, reward: int, watchtower: bytes
) -> bytes:
    """Digest of a MonitorRequest, signed by the party a watchtower guards."""
    return domain.digest(
        keccak(
            MONITOR_REQUEST_TYPEHASH
            + u256(channel_id)
            + b32(balance_proof_hash)
            + u256(reward)
            + addr(watchtower)
        )
    )


def settlement_batch_digest(domain: Domain, items_hash: bytes, expiry: int) -> bytes:
    """Digest of a SettlementBatch, signed once by the party present in every item (the hub)."""
    return domain.digest(keccak(SETTLEMENT_BATCH_TYPEHASH + b32(items_hash) + u256(expiry)))


def api_request_digest(domain: Domain, action: str, timestamp: int) -> bytes:
    """Digest of an ApiRequest, signed by the member asking the HTTP API for `action`."""
    return domain.digest(keccak(API_REQUEST_TYPEHASH + keccak(action.encode()) + u256(timestamp)))


def split_consent_digest(
    domain: Domain, asset_id: bytes, split_hash: bytes, version: int, expiry: int
) -> bytes:
    """Digest of a SplitConsent, signed by a beneficiary whose share a split change lowers.

    `domain` is the asset registry's; `version` the new split version, `expiry` a block number.
    """
    return domain.digest(
        keccak(
            SPLIT_CONSENT_TYPEHASH + b32(asset_id) + b32(split_hash) + u256(version) + u256(expiry)
        )
    )


def secrethash_of(secret: bytes) -> bytes:
    """secrethash = keccak256(secret) for a 32-byte secret, as the secret registry computes it."""
    return keccak(b32(secret))

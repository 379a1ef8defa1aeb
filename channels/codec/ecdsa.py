"""Signature recovery (the off-chain `ecrecover`): pure, no keys.

Always recovers the signer from the digest, as the contract does: checking against a known public
key would skip the recovery id, and a proof could then pass off-chain and fail on chain.
Rejects what OpenZeppelin's ECDSA rejects: wrong length, v not 27/28, high s, r or s out of range.
"""

from coincurve import PublicKey

from channels.codec.keccak import keccak

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
SECP256K1_HALF_N = SECP256K1_N // 2
SIGNATURE_LENGTH = 65


class InvalidSignature(ValueError):  # noqa: N818  # public name, used across the codebase
    """A signature that cannot be valid on chain (malformed, malleable or unrecoverable)."""


def public_key_to_address(uncompressed_public_key: bytes) -> bytes:
    """The 20-byte Ethereum address of a 65-byte uncompressed secp256k1 public key."""
    return keccak(uncompressed_public_key[1:])[-20:]


def recover_signer(digest: bytes, signature: bytes) -> bytes:
    """Return the 20-byte address that signed `digest` with the 65-byte r‖s‖v `signature`."""
    if len(signature) != SIGNATURE_LENGTH:
        raise InvalidSignature(f"signature must be {SIGNATURE_LENGTH} bytes, got {len(signature)}")
    if len(digest) != 32:
        raise InvalidSignature(f"digest must be 32 bytes, got {len(digest)}")
    v = signature[64]
    if v not in (27, 28):
        raise InvalidSignature(f"signature v must be 27 or 28, got {v}")
    r = int.from_bytes(signature[0:32], "big")
    s = int.from_bytes(signature[32:64], "big")
    if not 0 < r < SECP256K1_N:
        raise InvalidSignature("signature r out of range")
    if not 0 < s <= SECP256K1_HALF_N:
        raise InvalidSignature("signature s is high (malleable) or zero")
    try:
        public_key = PublicKey.from_signature_and_message(
            signature[:64] + bytes((v - 27,)), digest, hasher=None
        )
    except Exception as exc:  # coincurve raises plain Exception on unrecoverable input
        raise InvalidSignature(f"signature does not recover: {exc}") from exc
    return public_key_to_address(public_key.format(compressed=False))

"""Signature recovery (the off-chain `ecrecover`): pure, no keys.

Always recovers the signer from the digest, as the contract does: checking against a known public
key would skip the recovery id, and a proof could then pass off-chain and fail on chain.
Rejects what OpenZeppelin's ECDSA rejects: wrong length, v not 27/28, high s, r or s out of range.

Recovery is every received payment's main cost, so it calls libsecp256k1 through coincurve's
cffi bindings directly (parse_compact -> recover -> serialize, the very calls coincurve's
`PublicKey.from_signature_and_message(...).format(compressed=False)` makes) without coincurve's
wrapper objects; a test proves it equal to coincurve's and eth_account's recovery.
"""

from coincurve._libsecp256k1 import ffi, lib
from coincurve.context import GLOBAL_CONTEXT

from channels.codec.keccak import keccak

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
SECP256K1_HALF_N = SECP256K1_N // 2
SIGNATURE_LENGTH = 65
UNCOMPRESSED_PUBLIC_KEY_LENGTH = 65

_CTX = GLOBAL_CONTEXT.ctx
_UNCOMPRESSED = lib.SECP256K1_EC_UNCOMPRESSED
# Big-endian 32-byte words bounding r and s, compared as bytes (same order as the integers).
_N_BYTES = SECP256K1_N.to_bytes(32, "big")
_HALF_N_BYTES = SECP256K1_HALF_N.to_bytes(32, "big")
_ZERO_WORD = bytes(32)


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
    # Equal-length big-endian byte strings compare like the integers they encode.
    r = signature[0:32]
    if not _ZERO_WORD < r < _N_BYTES:
        raise InvalidSignature("signature r out of range")
    s = signature[32:64]
    if not _ZERO_WORD < s <= _HALF_N_BYTES:
        raise InvalidSignature("signature s is high (malleable) or zero")
    recoverable = ffi.new("secp256k1_ecdsa_recoverable_signature *")
    if not lib.secp256k1_ecdsa_recoverable_signature_parse_compact(
        _CTX, recoverable, signature[:64], v - 27
    ):
        raise InvalidSignature("signature does not recover: it cannot be parsed")
    public_key = ffi.new("secp256k1_pubkey *")
    if not lib.secp256k1_ecdsa_recover(_CTX, public_key, recoverable, digest):
        raise InvalidSignature("signature does not recover: no public key for it")
    serialized = ffi.new("unsigned char[65]")
    length = ffi.new("size_t *", UNCOMPRESSED_PUBLIC_KEY_LENGTH)
    lib.secp256k1_ec_pubkey_serialize(_CTX, serialized, length, public_key, _UNCOMPRESSED)
    return keccak(ffi.buffer(serialized, UNCOMPRESSED_PUBLIC_KEY_LENGTH)[1:])[-20:]

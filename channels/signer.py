"""The one place that holds private keys and signs.

Signs 32-byte EIP-712 digests made by `channels.codec.eip712` with coincurve (RFC 6979, low-s),
byte-identical to eth_account's `sign_typed_data` (tested). It must never build or parse message
encodings itself, and never hand its key to anything else.
"""

from coincurve import PrivateKey

from channels.codec.ecdsa import public_key_to_address


class LocalSigner:
    """A secp256k1 key in this process's memory."""

    __slots__ = ("_key", "address")

    def __init__(self, private_key: bytes) -> None:
        if len(private_key) != 32:
            raise ValueError(f"private key must be 32 bytes, got {len(private_key)}")
        self._key = PrivateKey(private_key)
        self.address: bytes = public_key_to_address(self._key.public_key.format(compressed=False))

    def sign_digest(self, digest: bytes) -> bytes:
        """Sign a 32-byte digest; returns 65 bytes r‖s‖v with v in {27, 28}."""
        if len(digest) != 32:
            raise ValueError(f"digest must be 32 bytes, got {len(digest)}")
        rsv = self._key.sign_recoverable(digest, hasher=None)
        return rsv[:64] + bytes((rsv[64] + 27,))

    def __repr__(self) -> str:
        return f"LocalSigner(0x{self.address.hex()})"

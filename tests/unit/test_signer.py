"""LocalSigner: byte-identical to eth_account, recoverable, low-s, and guarded inputs."""

from __future__ import annotations

import pytest
from eth_account import Account
from hypothesis import given, settings
from hypothesis import strategies as st

from channels.codec.ecdsa import SECP256K1_HALF_N, SECP256K1_N, recover_signer
from channels.signer import LocalSigner

keys = st.integers(min_value=1, max_value=SECP256K1_N - 1).map(lambda k: k.to_bytes(32, "big"))
digests = st.binary(min_size=32, max_size=32)


@settings(max_examples=50, deadline=None)
@given(keys, digests)
def test_signature_equals_eth_account_unsafe_sign_hash(key: bytes, digest: bytes) -> None:
    signer = LocalSigner(key)
    assert signer.address == bytes.fromhex(Account.from_key(key).address[2:])
    reference = Account.unsafe_sign_hash(digest, key)
    signature = signer.sign_digest(digest)
    assert signature == bytes(reference.signature)
    assert int.from_bytes(signature[32:64], "big") <= SECP256K1_HALF_N
    assert signature[64] in (27, 28)
    assert recover_signer(digest, signature) == signer.address


def test_rejects_bad_key_and_digest_lengths() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        LocalSigner(b"\x01" * 31)
    with pytest.raises(ValueError, match="32 bytes"):
        LocalSigner(b"\x01" * 32).sign_digest(b"\x00" * 31)


def test_repr_shows_no_key() -> None:
    key = b"\x05" * 32
    assert key.hex() not in repr(LocalSigner(key))

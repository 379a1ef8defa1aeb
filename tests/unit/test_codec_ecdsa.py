"""recover_signer (direct libsecp256k1 calls) against coincurve and eth_account; the written-out
balance_proof_digest against its definition.

The reference below is the implementation `recover_signer` replaced: the same range checks, then
coincurve's `PublicKey.from_signature_and_message`. Both must agree on every input: the same
address, or both `InvalidSignature`.
"""

from __future__ import annotations

import pytest
from coincurve import PublicKey
from eth_account import Account
from hypothesis import given, settings
from hypothesis import strategies as st

from channels.codec import eip712
from channels.codec.ecdsa import (
    SECP256K1_HALF_N,
    SECP256K1_N,
    InvalidSignature,
    public_key_to_address,
    recover_signer,
)
from channels.codec.keccak import keccak
from channels.signer import LocalSigner


def reference_recover(digest: bytes, signature: bytes) -> bytes:
    """The previous recover_signer, through coincurve's public API (integer range checks)."""
    if len(signature) != 65 or len(digest) != 32:
        raise InvalidSignature("length")
    v = signature[64]
    if v not in (27, 28):
        raise InvalidSignature("v")
    r = int.from_bytes(signature[0:32], "big")
    s = int.from_bytes(signature[32:64], "big")
    if not 0 < r < SECP256K1_N or not 0 < s <= SECP256K1_HALF_N:
        raise InvalidSignature("range")
    try:
        public_key = PublicKey.from_signature_and_message(
            signature[:64] + bytes((v - 27,)), digest, hasher=None
        )
    except Exception as exc:
        raise InvalidSignature(str(exc)) from exc
    return public_key_to_address(public_key.format(compressed=False))


def outcome(recover: object, digest: bytes, signature: bytes) -> bytes | None:
    assert callable(recover)
    try:
        address: bytes = recover(digest, signature)
    except InvalidSignature:
        return None
    return address


keys = st.integers(min_value=1, max_value=SECP256K1_N - 1).map(lambda k: k.to_bytes(32, "big"))
digests = st.binary(min_size=32, max_size=32)
# words near every boundary the checks draw (0, half n, n, 2**256 - 1) and anywhere in between
boundaries = [0, 1, SECP256K1_HALF_N - 1, SECP256K1_HALF_N, SECP256K1_HALF_N + 1, SECP256K1_N - 1]
boundaries += [SECP256K1_N, SECP256K1_N + 1, 2**256 - 1]
words = st.one_of(st.sampled_from(boundaries), st.integers(min_value=0, max_value=2**256 - 1)).map(
    lambda w: w.to_bytes(32, "big")
)
vs = st.sampled_from([0, 1, 26, 27, 28, 29, 255])


@settings(max_examples=60, deadline=None)
@given(keys, digests)
def test_recovers_what_eth_account_recovers(key: bytes, digest: bytes) -> None:
    signature = LocalSigner(key).sign_digest(digest)
    expected = bytes.fromhex(Account._recover_hash(digest, signature=signature)[2:])
    assert recover_signer(digest, signature) == expected == reference_recover(digest, signature)


@settings(max_examples=300, deadline=None)
@given(digests, words, words, vs)
def test_any_signature_gets_the_reference_outcome(
    digest: bytes, r: bytes, s: bytes, v: int
) -> None:
    signature = r + s + bytes((v,))
    assert outcome(recover_signer, digest, signature) == outcome(
        reference_recover, digest, signature
    )


@settings(max_examples=60, deadline=None)
@given(keys, digests, st.integers(min_value=0, max_value=64 * 8 - 1))
def test_a_flipped_bit_gets_the_reference_outcome(key: bytes, digest: bytes, bit: int) -> None:
    signature = bytearray(LocalSigner(key).sign_digest(digest))
    signature[bit // 8] ^= 1 << (bit % 8)
    tampered = bytes(signature)
    assert outcome(recover_signer, digest, tampered) == outcome(reference_recover, digest, tampered)


def test_rejects_an_r_that_is_no_curve_point() -> None:
    digest = keccak(b"digest")
    # x = 5 is not the x coordinate of a secp256k1 point (5**3 + 7 = 132 is no square mod p)
    signature = (5).to_bytes(32, "big") + (1).to_bytes(32, "big") + b"\x1b"
    with pytest.raises(InvalidSignature, match="does not recover"):
        recover_signer(digest, signature)
    assert outcome(reference_recover, digest, signature) is None


@pytest.mark.parametrize(
    ("r", "s", "match"),
    [
        (SECP256K1_N, 1, "r out of range"),
        (0, 1, "r out of range"),
        (1, SECP256K1_HALF_N + 1, "high"),
        (1, 0, "zero"),
    ],
)
def test_range_checks(r: int, s: int, match: str) -> None:
    signature = r.to_bytes(32, "big") + s.to_bytes(32, "big") + b"\x1c"
    with pytest.raises(InvalidSignature, match=match):
        recover_signer(keccak(b"d"), signature)


def test_accepts_s_equal_to_half_n_when_it_recovers() -> None:
    digest = keccak(b"half n")
    signature = (1).to_bytes(32, "big") + SECP256K1_HALF_N.to_bytes(32, "big") + b"\x1b"
    assert outcome(recover_signer, digest, signature) == outcome(
        reference_recover, digest, signature
    )


@settings(max_examples=100, deadline=None)
@given(
    st.integers(min_value=0, max_value=2**64 - 1),
    st.integers(min_value=0, max_value=2**64 - 1),
    st.integers(min_value=0, max_value=2**96 - 1),
    st.integers(min_value=0, max_value=2**96 - 1),
    digests,
)
def test_balance_proof_digest_is_the_domain_digest_of_the_struct_hash(
    channel_id: int, nonce: int, transferred: int, locked: int, root: bytes
) -> None:
    """The written-out balance_proof_digest equals its definition (eth_account checks that)."""
    domain = eip712.Domain(1337, b"\x22" * 20)
    expected = domain.digest(
        eip712.balance_proof_struct_hash(channel_id, nonce, transferred, locked, root)
    )
    assert eip712.balance_proof_digest(domain, channel_id, nonce, transferred, locked, root) == (
        expected
    )


def test_balance_proof_digest_checks_the_root_length() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        eip712.balance_proof_digest(eip712.Domain(1, b"\x22" * 20), 1, 1, 1, 0, b"\x00" * 31)

"""Signed raw transactions built without eth_account: EIP-1559 (type 2) and EIP-155 legacy.

A sender that signs many transactions at once (a watchtower answering a block full of closes)
spends most of eth_account's `sign_transaction` in its generic formatting and validation; this
module encodes the few fields itself (RLP), hashes them and signs the digest with
`channels.signer.LocalSigner` (coincurve, RFC 6979, low-s). The bytes are identical to
eth_account's for the same fields (tested).

It does no I/O, picks no nonce and no fee (the caller does), and must never hold the key: the
signer does.
"""

from __future__ import annotations

from dataclasses import dataclass

import rlp  # type: ignore[import-untyped]  # untyped; eth_account uses it too

from channels.codec.keccak import keccak
from channels.signer import LocalSigner

_SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


@dataclass(frozen=True, slots=True)
class Fees:
    """An EIP-1559 fee pair (`gas_price` None) or a legacy gas price (the pair None)."""

    max_fee: int | None = None
    max_priority_fee: int | None = None
    gas_price: int | None = None

    def __post_init__(self) -> None:
        dynamic = self.max_fee is not None and self.max_priority_fee is not None
        legacy = self.gas_price is not None
        if dynamic == legacy or (self.max_fee is None) != (self.max_priority_fee is None):
            raise ValueError("fees are either max_fee and max_priority_fee, or gas_price")

    def as_params(self) -> dict[str, int]:
        """The fee fields as web3 transaction parameters."""
        if self.gas_price is not None:
            return {"gasPrice": self.gas_price}
        assert self.max_fee is not None and self.max_priority_fee is not None
        return {"maxFeePerGas": self.max_fee, "maxPriorityFeePerGas": self.max_priority_fee}


@dataclass(frozen=True, slots=True)
class SignedTransaction:
    """A signed transaction: the bytes for eth_sendRawTransaction and its hash."""

    raw: bytes
    transaction_hash: bytes


def sign_transaction(
    signer: LocalSigner,
    *,
    chain_id: int,
    nonce: int,
    gas: int,
    fees: Fees,
    to: bytes,
    data: bytes,
    value: int = 0,
) -> SignedTransaction:
    """Sign a call to `to` (20 bytes); type 2 with an EIP-1559 fee pair, EIP-155 legacy with a
    gas price. `ValueError` on a field out of range."""
    if len(to) != 20:
        raise ValueError(f"to must be 20 bytes, got {len(to)}")
    if min(chain_id, nonce, gas, value) < 0 or chain_id == 0:
        raise ValueError("chain_id > 0, nonce, gas and value >= 0")
    if fees.gas_price is None:
        assert fees.max_fee is not None and fees.max_priority_fee is not None
        fields: list[object] = [
            chain_id, nonce, fees.max_priority_fee, fees.max_fee, gas, to, value, data, [],
        ]  # fmt: skip
        digest = keccak(b"\x02" + rlp.encode(fields))
        r, s, parity = _sign(signer, digest)
        raw = b"\x02" + rlp.encode([*fields, parity, r, s])
    else:
        fields = [nonce, fees.gas_price, gas, to, value, data]
        digest = keccak(rlp.encode([*fields, chain_id, 0, 0]))
        r, s, parity = _sign(signer, digest)
        raw = rlp.encode([*fields, chain_id * 2 + 35 + parity, r, s])
    return SignedTransaction(raw, keccak(raw))


def _sign(signer: LocalSigner, digest: bytes) -> tuple[int, int, int]:
    signature = signer.sign_digest(digest)  # r ‖ s ‖ v (27/28), low-s
    r = int.from_bytes(signature[:32], "big")
    s = int.from_bytes(signature[32:64], "big")
    if not (0 < r < _SECP256K1_N and 0 < s <= _SECP256K1_N // 2):
        raise ValueError("the signer returned a signature out of range")
    return r, s, signature[64] - 27


__all__ = ["Fees", "SignedTransaction", "sign_transaction"]

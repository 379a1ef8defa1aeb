"""Split changes with consent (issue 19): who a change lowers, and the consents it carries.

A change of an asset's split that lowers or removes a beneficiary's share takes effect on chain
(`AssetRegistry.changeSplit`) only with that beneficiary's EIP-712 `SplitConsent(bytes32 assetId,
bytes32 splitHash,uint256 version,uint256 expiry)` (domain `CISE`/`1`/chainId/the registry), except
the operator's own share and a financing pool's that was repaid its cap or failed; a pool not yet
repaid is lowered by a constitutional proposal only; any other beneficiary that cannot or does not
sign, by an ordinary proposal (`GovernedAssetRegistry.changeSplitByGovernance`).

Pure: records, the comparison of two splits, the digest and a consent signed by a given signing
function; the chain is read by `AssetRegistryClient`. It must never decide whether a change is
allowed (the contract does, and its refusal is the answer), nor hold a key.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from eth_abi.abi import encode

from channels.codec.eip712 import Domain, split_consent_digest
from channels.codec.keccak import keccak
from channels.core.types import Address


def split_hash(beneficiaries: Sequence[bytes], ppm: Sequence[int]) -> bytes:
    """The contract's split hash: `keccak256(abi.encode(address[] beneficiaries, uint32[] ppm))`."""
    return keccak(encode(["address[]", "uint32[]"], [list(beneficiaries), list(ppm)]))


class LoweredBy(enum.Enum):
    """What lowering one beneficiary's share takes (mirrors `AssetRegistry._needsConsent`)."""

    OPERATOR = "the operator's own share: no consent"
    CONSENT = "its signed consent (or, for a contract or a silent one, an ordinary proposal)"
    SETTLED_POOL = "nothing: a pool repaid its cap or failed (its receipts go to the operator)"
    UNREPAID_POOL = "a constitutional proposal: a financing pool not yet repaid its cap"


@dataclass(frozen=True, slots=True)
class LoweredShare:
    """One beneficiary whose share a change lowers (`after` 0: removed), and what that takes."""

    beneficiary: Address
    before: int
    after: int
    needs: LoweredBy


@dataclass(frozen=True, slots=True)
class SplitConsent:
    """A beneficiary's consent to one split change: its signature of the `SplitConsent` digest."""

    beneficiary: Address
    expiry: int  # the last block it is valid in
    signature: bytes  # 65 bytes r || s || v, low-s

    def as_abi(self) -> tuple[Address, int, bytes]:
        """The `IAssetRegistry.SplitConsent` tuple."""
        return (self.beneficiary, self.expiry, self.signature)


def lowered_shares(
    current: Mapping[Address, int],
    new: Mapping[Address, int],
    needs: Callable[[Address], LoweredBy],
) -> tuple[LoweredShare, ...]:
    """Every beneficiary of `current` whose share `new` lowers or removes, ascending by address
    (the order the contract wants their consents in); `needs` says what each one takes."""
    lowered = [
        LoweredShare(b, before, new.get(b, 0), needs(b))
        for b, before in current.items()
        if new.get(b, 0) < before
    ]
    return tuple(sorted(lowered, key=lambda s: int.from_bytes(s.beneficiary, "big")))


def consent_digest(
    domain: Domain,
    asset_id: bytes,
    beneficiaries: Sequence[bytes],
    ppm: Sequence[int],
    version: int,
    expiry: int,
) -> bytes:
    """The digest a beneficiary signs to consent to (beneficiaries, ppm) becoming split `version`."""
    return split_consent_digest(domain, asset_id, split_hash(beneficiaries, ppm), version, expiry)


def sign_split_consent(
    sign_digest: Callable[[bytes], bytes],
    signer: Address,
    domain: Domain,
    asset_id: bytes,
    beneficiaries: Sequence[bytes],
    ppm: Sequence[int],
    version: int,
    expiry: int,
) -> SplitConsent:
    """`signer`'s consent, signed by `sign_digest` (the signer's key; e.g. `LocalSigner.sign_digest`)."""
    digest = consent_digest(domain, asset_id, beneficiaries, ppm, version, expiry)
    return SplitConsent(signer, expiry, sign_digest(digest))


def split_with_pool(
    current: Mapping[Address, int], pool: Address, ppm: int, taken_from: Address
) -> dict[Address, int]:
    """The split `current` with `ppm` parts moved from `taken_from` to `pool` (added, or raised).

    Raises ValueError when `taken_from` has fewer than `ppm` parts or `ppm` is not positive; whether
    the result is a valid split (and whose consent it needs) is the contract's to say.
    """
    if ppm <= 0:
        raise ValueError(f"the pool's share must be positive, got {ppm} ppm")
    if pool == taken_from:
        raise ValueError("the pool cannot take its share from itself")
    have = current.get(taken_from, 0)
    if have < ppm:
        raise ValueError(
            f"0x{bytes(taken_from).hex()} has {have} ppm of the split, fewer than the {ppm} asked"
        )
    parts = dict(current)
    parts[taken_from] = have - ppm
    if parts[taken_from] == 0:
        del parts[taken_from]
    parts[pool] = parts.get(pool, 0) + ppm
    return parts


__all__ = [
    "LoweredBy",
    "LoweredShare",
    "SplitConsent",
    "consent_digest",
    "lowered_shares",
    "sign_split_consent",
    "split_hash",
    "split_with_pool",
]

"""Merkle roots and proofs over 32-byte leaves, as OpenZeppelin's `MerkleProof` verifies them.

The construction (normative: the asset registry checks ledger entries against anchored roots
with `MerkleProof.verify`):

- the leaves are 32-byte hashes, in order (for a revenue ledger: the entry hashes by sequence);
- each level pairs its nodes left to right; a pair hashes as `keccak(min(a, b) ‖ max(a, b))`
  (commutative, so a proof needs no left/right flags); an odd last node is carried up unchanged;
- the root of one leaf is that leaf; there is no root of no leaves.

Leaves are themselves keccak hashes of more than 64 bytes (EIP-712 struct hashes), so a leaf can
never be mistaken for an inner node. This module is pure: no I/O, no keys.
"""

from __future__ import annotations

from collections.abc import Sequence

from channels.codec.keccak import keccak


def hash_pair(a: bytes, b: bytes) -> bytes:
    """The inner node over two children, in sorted order (OpenZeppelin's `_hashPair`)."""
    return keccak(a + b) if a < b else keccak(b + a)


def _check(leaves: Sequence[bytes]) -> None:
    if not leaves:
        raise ValueError("a Merkle tree needs at least one leaf")
    for leaf in leaves:
        if len(leaf) != 32:
            raise ValueError(f"a Merkle leaf is 32 bytes, not {len(leaf)}")


def _next_level(level: Sequence[bytes]) -> list[bytes]:
    paired = [hash_pair(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
    if len(level) % 2:
        paired.append(level[-1])
    return paired


def merkle_root(leaves: Sequence[bytes]) -> bytes:
    """The root over `leaves` (in order)."""
    _check(leaves)
    level = list(leaves)
    while len(level) > 1:
        level = _next_level(level)
    return level[0]


def merkle_proof(leaves: Sequence[bytes], index: int) -> list[bytes]:
    """The sibling hashes from leaf `index` up to the root (carried-up levels add nothing)."""
    _check(leaves)
    if not 0 <= index < len(leaves):
        raise ValueError(f"leaf index {index} is outside 0..{len(leaves) - 1}")
    proof: list[bytes] = []
    level = list(leaves)
    while len(level) > 1:
        sibling = index ^ 1
        if sibling < len(level):
            proof.append(level[sibling])
        level = _next_level(level)
        index //= 2
    return proof


def verify_proof(proof: Sequence[bytes], root: bytes, leaf: bytes) -> bool:
    """Whether `proof` leads from `leaf` to `root` (OpenZeppelin's `MerkleProof.verify`)."""
    node = leaf
    for sibling in proof:
        node = hash_pair(node, sibling)
    return node == root


__all__ = ["hash_pair", "merkle_proof", "merkle_root", "verify_proof"]

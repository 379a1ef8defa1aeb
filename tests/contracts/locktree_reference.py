"""A tiny reference of the locks tree of docs/protocol.md, for the contract tests and the vectors.

Depth 9 (512 slots), leaf = hashStruct(Lock) or 0 for an empty slot, node(l, r) = 0 if both are 0
else keccak256(l ‖ r); proof of a slot = its 9 siblings from the leaf level up. Deliberately naive
(rebuilds every level): the real O(log n) implementation is channels.core.locktree.
"""

from __future__ import annotations

from eth_utils import keccak

DEPTH = 9
SLOTS = 1 << DEPTH
ZERO = b"\0" * 32


def node(left: bytes, right: bytes) -> bytes:
    return ZERO if left == ZERO and right == ZERO else keccak(left + right)


def levels(leaves: dict[int, bytes]) -> list[list[bytes]]:
    level = [leaves.get(i, ZERO) for i in range(SLOTS)]
    out = [level]
    while len(level) > 1:
        level = [node(level[i], level[i + 1]) for i in range(0, len(level), 2)]
        out.append(level)
    return out


def root(leaves: dict[int, bytes]) -> bytes:
    return levels(leaves)[-1][0]


def proof(leaves: dict[int, bytes], slot: int) -> list[bytes]:
    tree = levels(leaves)
    return [tree[k][(slot >> k) ^ 1] for k in range(DEPTH)]


def root_from_proof(leaf: bytes, slot: int, siblings: list[bytes]) -> bytes:
    current = leaf
    for k, sibling in enumerate(siblings):
        current = node(sibling, current) if (slot >> k) & 1 else node(current, sibling)
    return current

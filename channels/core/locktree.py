"""The locks tree behind `locksRoot` (docs/protocol.md, "The locks tree"): pure and persistent.

A fixed-depth (9 levels, 512 slots), zero-collapsing binary Merkle tree. Trees are immutable values
with structural sharing, so a channel state can hold one and an insert or remove costs 9 new nodes
and 9 hashes: O(log n) with hundreds of locks pending. Mirrored by the contract's proof check;
both are tested against `tests/vectors/locktree.json`. Must never depend on anything but keccak.
"""

from __future__ import annotations

from typing import NamedTuple

from channels.codec.keccak import keccak

LOCKS_TREE_DEPTH = 9
MAX_PENDING_LOCKS = 1 << LOCKS_TREE_DEPTH
ZERO = b"\x00" * 32


class _Node(NamedTuple):
    hash: bytes
    occupied: int  # occupied leaves below
    left: _Node | None
    right: _Node | None


def node_hash(left: bytes, right: bytes) -> bytes:
    """Inner node: zero when both children are zero, else keccak256(left ‖ right)."""
    if left == ZERO and right == ZERO:
        return ZERO
    return keccak(left + right)


def _empty_nodes() -> list[_Node]:
    empties = [_Node(ZERO, 0, None, None)]
    for _ in range(LOCKS_TREE_DEPTH):
        below = empties[-1]
        empties.append(_Node(ZERO, 0, below, below))
    return empties


_EMPTY = _empty_nodes()  # _EMPTY[h] is the empty subtree of height h


class LockTreeFull(ValueError):  # noqa: N818  # reads as a state, like queue.Full
    """All MAX_PENDING_LOCKS slots are taken."""


class LockTree:
    """An immutable locks tree; every update returns a new tree sharing unchanged nodes."""

    __slots__ = ("_top",)

    def __init__(self, top: _Node | None = None) -> None:
        self._top = _EMPTY[LOCKS_TREE_DEPTH] if top is None else top

    @property
    def root(self) -> bytes:
        """The locksRoot: bytes32(0) when no lock is pending."""
        return self._top.hash

    def __len__(self) -> int:
        return self._top.occupied

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LockTree) and other._top.hash == self._top.hash

    def __hash__(self) -> int:
        return hash(self._top.hash)

    def __repr__(self) -> str:
        return f"LockTree(root=0x{self.root.hex()}, pending={len(self)})"

    def lowest_free_slot(self) -> int:
        """The slot the next `insert` uses; LockTreeFull when none is free."""
        node = self._top
        if node.occupied == MAX_PENDING_LOCKS:
            raise LockTreeFull(f"all {MAX_PENDING_LOCKS} lock slots are taken")
        slot = 0
        for height in range(LOCKS_TREE_DEPTH, 0, -1):
            left, right = node.left, node.right
            assert left is not None and right is not None
            if left.occupied < (1 << (height - 1)):
                node = left
            else:
                slot |= 1 << (height - 1)
                node = right
        return slot

    def insert(self, leaf: bytes) -> tuple[LockTree, int]:
        """Put `leaf` in the lowest free slot; returns the new tree and the slot."""
        slot = self.lowest_free_slot()
        return self.insert_at(slot, leaf), slot

    def insert_at(self, slot: int, leaf: bytes) -> LockTree:
        """Put `leaf` (non-zero) in the empty `slot`."""
        if len(leaf) != 32 or leaf == ZERO:
            raise ValueError("a lock leaf must be 32 non-zero bytes")
        if self.leaf(slot) != ZERO:
            raise ValueError(f"lock slot {slot} is already taken")
        return LockTree(_set(self._top, LOCKS_TREE_DEPTH, slot, leaf))

    def remove(self, slot: int) -> LockTree:
        """Empty `slot` (which must hold a lock)."""
        if self.leaf(slot) == ZERO:
            raise ValueError(f"lock slot {slot} is empty")
        return LockTree(_set(self._top, LOCKS_TREE_DEPTH, slot, ZERO))

    def leaf(self, slot: int) -> bytes:
        """The leaf in `slot` (ZERO when empty)."""
        _check_slot(slot)
        node = self._top
        for height in range(LOCKS_TREE_DEPTH, 0, -1):
            assert node.left is not None and node.right is not None
            node = node.right if (slot >> (height - 1)) & 1 else node.left
        return node.hash

    def proof(self, slot: int) -> list[bytes]:
        """The 9 sibling hashes from the leaf level up, as the contract's `unlock` takes them."""
        _check_slot(slot)
        siblings: list[bytes] = []
        node = self._top
        for height in range(LOCKS_TREE_DEPTH, 0, -1):
            left, right = node.left, node.right
            assert left is not None and right is not None
            if (slot >> (height - 1)) & 1:
                siblings.append(left.hash)
                node = right
            else:
                siblings.append(right.hash)
                node = left
        siblings.reverse()
        return siblings


def _check_slot(slot: int) -> None:
    if not 0 <= slot < MAX_PENDING_LOCKS:
        raise ValueError(f"lock slot must be in [0, {MAX_PENDING_LOCKS}), got {slot}")


def _set(node: _Node, height: int, slot: int, leaf: bytes) -> _Node:
    if height == 0:
        return _Node(leaf, 0 if leaf == ZERO else 1, None, None)
    assert node.left is not None and node.right is not None
    if (slot >> (height - 1)) & 1:
        left, right = node.left, _set(node.right, height - 1, slot, leaf)
    else:
        left, right = _set(node.left, height - 1, slot, leaf), node.right
    if left.occupied == 0 and right.occupied == 0:
        return _EMPTY[height]
    return _Node(node_hash(left.hash, right.hash), left.occupied + right.occupied, left, right)


def root_from_proof(leaf: bytes, slot: int, proof: list[bytes]) -> bytes:
    """Recompute the root from a leaf, its slot and its proof (what the contract does)."""
    _check_slot(slot)
    if len(proof) != LOCKS_TREE_DEPTH:
        raise ValueError(f"a lock proof has {LOCKS_TREE_DEPTH} hashes, got {len(proof)}")
    current = leaf
    for level, sibling in enumerate(proof):
        is_right = (slot >> level) & 1
        current = node_hash(sibling, current) if is_right else node_hash(current, sibling)
    return current

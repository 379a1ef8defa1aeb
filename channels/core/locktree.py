"""The locks tree behind `locksRoot` (docs/protocol.md, "The locks tree"): pure and persistent.

A fixed-depth (9 levels, 512 slots), zero-collapsing binary Merkle tree. Trees are immutable values
with structural sharing, so a channel state can hold one and an insert or remove costs 9 new nodes
and 9 hashes: O(log n) with hundreds of locks pending. Mirrored by the contract's proof check;
both are tested against `tests/vectors/locktree.json`. Must never depend on anything but keccak.

Representation (private; the hot path of every payment, so plain tuples and iterative loops):
a node of height h >= 1 is the tuple `(hash, left, right)`; a node of height 0 is the leaf itself
(32 bytes, ZERO when the slot is empty). Every empty subtree is the shared `_EMPTY[h]`, whose hash
is ZERO. An update copies the 9 nodes on the slot's path and shares every other node with the old
tree. Beside the nodes a tree keeps `_used`, an int whose bit s is set when slot s holds a lock,
so `len`, `lowest_free_slot` and the occupancy checks are O(1) integer operations.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeAlias

from channels.codec.keccak import keccak, keccak_256

LOCKS_TREE_DEPTH = 9
MAX_PENDING_LOCKS = 1 << LOCKS_TREE_DEPTH
ZERO = b"\x00" * 32

# A node: (hash, left, right) above the leaves, the leaf bytes at height 0. Typed as Any because
# mypy cannot index a recursive union without casts, and casts cost a call on the hot path.
_Node: TypeAlias = Any

# Shifts that pick a slot's child bit from the top (height 9 -> 8 uses bit 8) down to height 2 -> 1;
# the last step, into the leaves (bit 0), is taken outside the loops.
_DOWN = tuple(range(LOCKS_TREE_DEPTH - 1, 0, -1))
_UP = _DOWN[::-1]


def node_hash(left: bytes, right: bytes) -> bytes:
    """Inner node: zero when both children are zero, else keccak256(left ‖ right)."""
    if left == ZERO and right == ZERO:
        return ZERO
    return keccak(left + right)


def _empty_nodes() -> list[_Node]:
    empties: list[_Node] = [ZERO]
    for _ in range(LOCKS_TREE_DEPTH):
        below = empties[-1]
        empties.append((ZERO, below, below))
    return empties


_EMPTY = _empty_nodes()  # _EMPTY[h] is the empty subtree of height h
_EMPTY_TOP = _EMPTY[LOCKS_TREE_DEPTH]
_FULL = (1 << MAX_PENDING_LOCKS) - 1


class LockTreeFull(ValueError):  # noqa: N818  # reads as a state, like queue.Full
    """All MAX_PENDING_LOCKS slots are taken."""


class LockTree:
    """An immutable locks tree; every update returns a new tree sharing unchanged nodes."""

    __slots__ = ("_top", "_used")

    _top: _Node
    _used: int  # bit s set <=> slot s holds a lock

    def __init__(self) -> None:
        self._top = _EMPTY_TOP
        self._used = 0

    @classmethod
    def from_leaves(cls, leaves: Iterable[tuple[int, bytes]]) -> LockTree:
        """The tree holding `leaves` ((slot, leaf) pairs), built bottom-up in one pass.

        Equal to inserting each pair with `insert_at` in turn, and raises as that would (a zero or
        malformed leaf, a slot out of range, a slot given twice), but hashes each node once:
        at most 511 hashes instead of 9 a lock.
        """
        level: dict[int, _Node] = {}
        used = 0
        for slot, leaf in leaves:
            _check_leaf(leaf)
            _check_slot(slot)
            if used >> slot & 1:
                raise ValueError(f"lock slot {slot} is already taken")
            used |= 1 << slot
            level[slot] = leaf
        if not used:
            return cls()
        for height in range(1, LOCKS_TREE_DEPTH + 1):
            empty = _EMPTY[height - 1]
            parents: dict[int, _Node] = {}
            for index in level:
                parent = index >> 1
                if parent in parents:
                    continue
                left: _Node = level.get(parent << 1, empty)
                right: _Node = level.get(parent << 1 | 1, empty)
                # leaves (height 0) are their own hashes
                digest = node_hash(left, right) if height == 1 else node_hash(left[0], right[0])
                parents[parent] = _EMPTY[height] if digest == ZERO else (digest, left, right)
            level = parents
        return _make(level[0], used)

    @property
    def root(self) -> bytes:
        """The locksRoot: bytes32(0) when no lock is pending."""
        digest: bytes = self._top[0]
        return digest

    def __len__(self) -> int:
        return self._used.bit_count()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LockTree) and other._top[0] == self._top[0]

    def __hash__(self) -> int:
        return hash(self._top[0])

    def __repr__(self) -> str:
        return f"LockTree(root=0x{self.root.hex()}, pending={len(self)})"

    def lowest_free_slot(self) -> int:
        """The slot the next `insert` uses; LockTreeFull when none is free."""
        used = self._used
        if used == _FULL:
            raise LockTreeFull(f"all {MAX_PENDING_LOCKS} lock slots are taken")
        return ((used + 1) ^ used).bit_length() - 1  # the lowest clear bit

    def insert(self, leaf: bytes) -> tuple[LockTree, int]:
        """Put `leaf` in the lowest free slot; returns the new tree and the slot."""
        used = self._used
        if used == _FULL:
            raise LockTreeFull(f"all {MAX_PENDING_LOCKS} lock slots are taken")
        if len(leaf) != 32 or leaf == ZERO:
            raise ValueError("a lock leaf must be 32 non-zero bytes")
        slot = ((used + 1) ^ used).bit_length() - 1
        return _make(_set(self._top, slot, leaf), used | 1 << slot), slot

    def insert_at(self, slot: int, leaf: bytes) -> LockTree:
        """Put `leaf` (non-zero) in the empty `slot`."""
        if len(leaf) != 32 or leaf == ZERO:
            raise ValueError("a lock leaf must be 32 non-zero bytes")
        if not 0 <= slot < MAX_PENDING_LOCKS:
            _check_slot(slot)
        used = self._used
        if used >> slot & 1:
            raise ValueError(f"lock slot {slot} is already taken")
        return _make(_set(self._top, slot, leaf), used | 1 << slot)

    def remove(self, slot: int) -> LockTree:
        """Empty `slot` (which must hold a lock)."""
        if not 0 <= slot < MAX_PENDING_LOCKS:
            _check_slot(slot)
        used = self._used
        if not used >> slot & 1:
            raise ValueError(f"lock slot {slot} is empty")
        return _make(_set(self._top, slot, ZERO), used & ~(1 << slot))

    def leaf(self, slot: int) -> bytes:
        """The leaf in `slot` (ZERO when empty)."""
        if not 0 <= slot < MAX_PENDING_LOCKS:
            _check_slot(slot)
        if not self._used >> slot & 1:
            return ZERO
        node = self._top
        for shift in _DOWN:
            node = node[2] if slot >> shift & 1 else node[1]
        leaf: bytes = node[2] if slot & 1 else node[1]
        return leaf

    def items(self) -> list[tuple[int, bytes]]:
        """The occupied slots with their leaves, lowest slot first (what the store keeps)."""
        nodes: list[tuple[int, _Node]] = [] if self._top[0] == ZERO else [(0, self._top)]
        for _ in _DOWN:
            below: list[tuple[int, _Node]] = []
            for index, node in nodes:
                left, right = node[1], node[2]
                if left[0] != ZERO:
                    below.append((index << 1, left))
                if right[0] != ZERO:
                    below.append((index << 1 | 1, right))
            nodes = below
        out: list[tuple[int, bytes]] = []
        for index, node in nodes:
            left, right = node[1], node[2]
            if left != ZERO:
                out.append((index << 1, left))
            if right != ZERO:
                out.append((index << 1 | 1, right))
        return out

    def proof(self, slot: int) -> list[bytes]:
        """The 9 sibling hashes from the leaf level up, as the contract's `unlock` takes them."""
        if not 0 <= slot < MAX_PENDING_LOCKS:
            _check_slot(slot)
        siblings: list[bytes] = []
        append = siblings.append
        node = self._top
        for shift in _DOWN:
            if slot >> shift & 1:
                append(node[1][0])
                node = node[2]
            else:
                append(node[2][0])
                node = node[1]
        append(node[1] if slot & 1 else node[2])
        siblings.reverse()
        return siblings


_new_tree = object.__new__


def _make(top: _Node, used: int) -> LockTree:
    tree: LockTree = _new_tree(LockTree)
    tree._top = top
    tree._used = used
    return tree


def _check_slot(slot: int) -> None:
    if not 0 <= slot < MAX_PENDING_LOCKS:
        raise ValueError(f"lock slot must be in [0, {MAX_PENDING_LOCKS}), got {slot}")


def _check_leaf(leaf: bytes) -> None:
    if len(leaf) != 32 or leaf == ZERO:
        raise ValueError("a lock leaf must be 32 non-zero bytes")


def _path(top: _Node, slot: int) -> list[_Node]:
    """The siblings of the nodes on `slot`'s path, from height 8 down to the leaf's sibling."""
    siblings: list[_Node] = []
    append = siblings.append
    node = top
    for shift in _DOWN:
        if slot >> shift & 1:
            append(node[1])
            node = node[2]
        else:
            append(node[2])
            node = node[1]
    append(node[1] if slot & 1 else node[2])
    return siblings


def _set(top: _Node, slot: int, leaf: bytes) -> _Node:
    """`top` with `leaf` (ZERO to empty it) in `slot`: the 9 nodes on the path rebuilt, the rest
    shared. node_hash inlined: a node whose children are both ZERO is the shared empty subtree."""
    siblings = _path(top, slot)
    k = keccak_256
    sibling: _Node = siblings.pop()
    node: _Node
    if leaf == ZERO and sibling == ZERO:
        digest = ZERO
        node = _EMPTY[1]
    elif slot & 1:
        digest = k(sibling + leaf).digest()
        node = (digest, sibling, leaf)
    else:
        digest = k(leaf + sibling).digest()
        node = (digest, leaf, sibling)
    for shift in _UP:
        sibling = siblings.pop()
        other = sibling[0]
        if digest == ZERO and other == ZERO:
            node = _EMPTY[shift + 1]
        elif slot >> shift & 1:
            digest = k(other + digest).digest()
            node = (digest, sibling, node)
        else:
            digest = k(digest + other).digest()
            node = (digest, node, sibling)
    return node


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

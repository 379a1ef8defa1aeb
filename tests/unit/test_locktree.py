"""The persistent locks tree (docs/protocol.md) against a naive rebuild-everything reference."""

from __future__ import annotations

import json
import random
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from channels.codec.eip712 import lock_hash
from channels.codec.keccak import keccak
from channels.core.locktree import (
    LOCKS_TREE_DEPTH,
    MAX_PENDING_LOCKS,
    ZERO,
    LockTree,
    LockTreeFull,
    root_from_proof,
)

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "locktree.json"


def _node(left: bytes, right: bytes) -> bytes:
    return ZERO if left == ZERO and right == ZERO else keccak(left + right)


def _levels(leaves: dict[int, bytes]) -> list[list[bytes]]:
    level = [leaves.get(i, ZERO) for i in range(MAX_PENDING_LOCKS)]
    out = [level]
    while len(level) > 1:
        level = [_node(level[i], level[i + 1]) for i in range(0, len(level), 2)]
        out.append(level)
    return out


def _leaf(i: int) -> bytes:
    return keccak(i.to_bytes(32, "big"))


def test_empty_tree_root_is_zero() -> None:
    assert LockTree().root == ZERO and len(LockTree()) == 0


def test_single_leaf_root_and_proof() -> None:
    tree, slot = LockTree().insert(_leaf(1))
    assert slot == 0
    assert tree.root == _levels({0: _leaf(1)})[-1][0]
    assert tree.proof(0) == [ZERO] * LOCKS_TREE_DEPTH
    assert root_from_proof(_leaf(1), 0, tree.proof(0)) == tree.root


def test_remove_returns_to_previous_root_and_frees_lowest_slot() -> None:
    tree = LockTree()
    for i in range(5):
        tree, _ = tree.insert(_leaf(i))
    smaller = tree.remove(2)
    assert smaller.lowest_free_slot() == 2
    rebuilt = LockTree()
    for slot in (0, 1, 3, 4):
        rebuilt = rebuilt.insert_at(slot, _leaf(slot))
    assert smaller.root == rebuilt.root and smaller == rebuilt
    assert smaller.remove(0).remove(1).remove(3).remove(4).root == ZERO


def test_bad_operations_raise() -> None:
    tree, _ = LockTree().insert(_leaf(0))
    with pytest.raises(ValueError, match="already taken"):
        tree.insert_at(0, _leaf(1))
    with pytest.raises(ValueError, match="empty"):
        tree.remove(1)
    with pytest.raises(ValueError, match="non-zero"):
        tree.insert_at(1, ZERO)
    with pytest.raises(ValueError, match="slot"):
        tree.leaf(MAX_PENDING_LOCKS)
    with pytest.raises(ValueError, match="9 hashes"):
        root_from_proof(_leaf(0), 0, [ZERO] * 8)


def test_full_tree() -> None:
    tree = LockTree()
    for i in range(MAX_PENDING_LOCKS):
        tree, slot = tree.insert(_leaf(i))
        assert slot == i
    assert len(tree) == MAX_PENDING_LOCKS
    with pytest.raises(LockTreeFull):
        tree.insert(_leaf(10_000))
    assert tree.root == _levels({i: _leaf(i) for i in range(MAX_PENDING_LOCKS)})[-1][0]


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(0, MAX_PENDING_LOCKS - 1)), max_size=40))
def test_matches_reference_under_random_inserts_and_removes(ops: list[tuple[bool, int]]) -> None:
    tree = LockTree()
    leaves: dict[int, bytes] = {}
    for counter, (insert, pick) in enumerate(ops):
        if insert or not leaves:
            leaf = _leaf(counter + 1000)
            tree, slot = tree.insert(leaf)
            assert slot == min(set(range(MAX_PENDING_LOCKS)) - set(leaves))
            leaves[slot] = leaf
        else:
            slot = sorted(leaves)[pick % len(leaves)]
            tree = tree.remove(slot)
            del leaves[slot]
    levels = _levels(leaves)
    assert tree.root == levels[-1][0] and len(tree) == len(leaves)
    for slot, leaf in leaves.items():
        expected = [levels[k][(slot >> k) ^ 1] for k in range(LOCKS_TREE_DEPTH)]
        assert tree.proof(slot) == expected
        assert root_from_proof(leaf, slot, tree.proof(slot)) == tree.root


def _hex(value: str) -> bytes:
    return bytes.fromhex(value.removeprefix("0x"))


def test_shared_vectors() -> None:
    """tests/vectors/locktree.json (also checked against the contract): leaves, roots, proofs."""
    data: Any = json.loads(VECTORS.read_text())
    assert data["depth"] == LOCKS_TREE_DEPTH
    assert data["trees"], "no vector trees"
    for case in data["trees"]:
        tree = LockTree()
        for lock in case["locks"]:
            leaf = lock_hash(lock["amount"], lock["expiration"], _hex(lock["secrethash"]))
            assert leaf == _hex(lock["leaf"]), case["name"]
            tree = tree.insert_at(lock["slot"], leaf)
        assert tree.root == _hex(case["root"]), case["name"]
        for proof in case["proofs"]:
            assert tree.leaf(proof["slot"]) == _hex(proof["leaf"]), case["name"]
            assert tree.proof(proof["slot"]) == [_hex(h) for h in proof["siblings"]], case["name"]


# ---------------------------------------------------------------------------------------------
# The persistent tree against a from-scratch reference, over random insert / insert_at / remove.


def _ref_root(leaves: dict[int, bytes], height: int = LOCKS_TREE_DEPTH, first: int = 0) -> bytes:
    """The construction as written (docs/protocol.md): recomputed from every leaf, recursively."""
    if height == 0:
        return leaves.get(first, ZERO)
    half = 1 << (height - 1)
    left = _ref_root(leaves, height - 1, first)
    right = _ref_root(leaves, height - 1, first + half)
    return ZERO if left == ZERO and right == ZERO else keccak(left + right)


def _ref_proof(leaves: dict[int, bytes], slot: int) -> list[bytes]:
    """Sibling k is the root of the subtree of height k beside `slot`'s path."""
    return [
        _ref_root(leaves, level, ((slot >> level) ^ 1) << level)
        for level in range(LOCKS_TREE_DEPTH)
    ]


_slots = st.integers(0, MAX_PENDING_LOCKS - 1)
_ops = st.one_of(
    st.tuples(st.just("insert"), st.just(0)),
    st.tuples(st.just("insert_at"), _slots),
    st.tuples(st.just("insert_at"), st.integers(0, 7)),  # crowd the first subtrees
    st.tuples(st.just("remove"), _slots),  # usually an occupied slot, picked by rank
    st.tuples(st.just("remove_empty"), _slots),
)


def _check_tree(tree: LockTree, leaves: dict[int, bytes], slots: Iterable[int]) -> None:
    levels = _levels(leaves)
    assert tree.root == levels[-1][0]
    assert len(tree) == len(leaves)
    assert tree.items() == sorted(leaves.items())
    free = [slot for slot in range(MAX_PENDING_LOCKS) if slot not in leaves]
    if free:
        assert tree.lowest_free_slot() == free[0]
    else:
        with pytest.raises(LockTreeFull):
            tree.lowest_free_slot()
    for slot in slots:
        proof = tree.proof(slot)
        assert proof == [levels[k][(slot >> k) ^ 1] for k in range(LOCKS_TREE_DEPTH)]
        assert tree.leaf(slot) == leaves.get(slot, ZERO)
        if slot in leaves:
            assert root_from_proof(leaves[slot], slot, proof) == tree.root
        else:  # an empty slot's proof proves the zero leaf
            assert root_from_proof(ZERO, slot, proof) == tree.root


def _scatter(seed: int, density: float) -> set[int]:
    rng = random.Random(seed)
    return {slot for slot in range(MAX_PENDING_LOCKS) if rng.random() < density}


_starts = st.one_of(
    st.sets(st.integers(0, 40), max_size=20),  # a few locks, low slots
    st.builds(  # the first n slots taken, a few holes punched (up to a full tree)
        lambda n, holes: set(range(n)) - holes,
        st.integers(0, MAX_PENDING_LOCKS),
        st.sets(_slots, max_size=16),
    ),
    st.builds(_scatter, st.integers(0, 2**32), st.floats(0, 1)),  # any density, anywhere
)


@settings(max_examples=80, deadline=None)
@given(start=_starts, ops=st.lists(_ops, max_size=30))
def test_random_operations_match_the_reference(start: set[int], ops: list[tuple[str, int]]) -> None:
    leaves = {slot: _leaf(slot) for slot in start}
    tree = LockTree.from_leaves(sorted(leaves.items(), key=lambda item: -item[0]))
    sequential = LockTree()
    for slot in sorted(start):
        sequential = sequential.insert_at(slot, leaves[slot])
    assert tree.root == sequential.root == _ref_root(leaves)
    assert tree.items() == sequential.items() and len(tree) == len(sequential)
    history = [(tree, dict(leaves))]
    for counter, (op, pick) in enumerate(ops):
        leaf = _leaf(10_000 + counter)
        touched = pick
        if op == "insert":
            if len(leaves) == MAX_PENDING_LOCKS:
                with pytest.raises(LockTreeFull):
                    tree.insert(leaf)
                continue
            tree, touched = tree.insert(leaf)
            assert touched == min(set(range(MAX_PENDING_LOCKS)) - set(leaves))
            leaves[touched] = leaf
        elif op == "insert_at":
            if pick in leaves:
                with pytest.raises(ValueError, match="already taken"):
                    tree.insert_at(pick, leaf)
                continue
            tree = tree.insert_at(pick, leaf)
            leaves[pick] = leaf
        elif op == "remove" and leaves:
            touched = sorted(leaves)[pick % len(leaves)]
            tree = tree.remove(touched)
            del leaves[touched]
        else:
            if pick in leaves:
                continue
            with pytest.raises(ValueError, match="empty"):
                tree.remove(pick)
            continue
        _check_tree(tree, leaves, {touched, touched ^ 1, touched ^ 255, *list(leaves)[:3]})
        history.append((tree, dict(leaves)))
    assert tree.root == _ref_root(leaves)
    for slot in list(leaves)[:8]:
        assert tree.proof(slot) == _ref_proof(leaves, slot)
    # Every earlier tree is untouched by the updates made from it (other states still hold them).
    for old, old_leaves in history:
        assert old.root == _levels(old_leaves)[-1][0]
        assert old.items() == sorted(old_leaves.items()) and len(old) == len(old_leaves)
        assert old == LockTree.from_leaves(old_leaves.items())


def test_from_leaves_rejects_what_insert_at_rejects() -> None:
    with pytest.raises(ValueError, match="already taken"):
        LockTree.from_leaves([(3, _leaf(1)), (3, _leaf(2))])
    with pytest.raises(ValueError, match="non-zero"):
        LockTree.from_leaves([(3, ZERO)])
    with pytest.raises(ValueError, match="slot"):
        LockTree.from_leaves([(MAX_PENDING_LOCKS, _leaf(1))])
    assert LockTree.from_leaves([]) == LockTree() and LockTree.from_leaves([]).root == ZERO


def test_full_tree_drains_back_to_empty() -> None:
    leaves = {slot: _leaf(slot) for slot in range(MAX_PENDING_LOCKS)}
    tree = LockTree.from_leaves(leaves.items())
    assert tree.root == _levels(leaves)[-1][0]
    with pytest.raises(LockTreeFull):
        tree.insert(_leaf(-1 % 2**32))
    for slot in range(0, MAX_PENDING_LOCKS, 2):
        tree = tree.remove(slot)
        del leaves[slot]
    _check_tree(tree, leaves, range(0, 16))
    for slot in range(1, MAX_PENDING_LOCKS, 2):
        tree = tree.remove(slot)
    assert tree.root == ZERO and len(tree) == 0 and tree.items() == [] and tree == LockTree()
    assert tree.proof(5) == [ZERO] * LOCKS_TREE_DEPTH

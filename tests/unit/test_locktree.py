"""The persistent locks tree (docs/protocol.md) against a naive rebuild-everything reference."""

from __future__ import annotations

import json
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

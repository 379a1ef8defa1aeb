"""The Solidity locks-tree verification equals channels.core.locktree, and the shared vectors are current."""

import json

from hypothesis import given, settings
from hypothesis import strategies as st
from make_locktree_vectors import PATH, build_vectors

from channels.codec.keccak import keccak
from channels.core.locktree import ZERO, LockTree, root_from_proof


def h(hex_str: str) -> bytes:
    return bytes.fromhex(hex_str[2:])


def test_vectors_file_is_current():
    assert json.loads(PATH.read_text()) == build_vectors(), (
        "regenerate: .venv/bin/python tests/contracts/make_locktree_vectors.py"
    )


def test_contract_verifies_every_vector_proof(chain):
    verify = chain.harness.functions.locksRootFromProof
    vectors = json.loads(PATH.read_text())
    checked = 0
    for t in vectors["trees"]:
        for p in t["proofs"]:
            assert verify(h(p["leaf"]), p["slot"], [h(s) for s in p["siblings"]]).call() == h(
                t["root"]
            ), t["name"]
            checked += 1
    assert checked == 20
    assert vectors["trees"][0]["root"] == "0x" + "00" * 32


def test_contract_lock_hash_matches_vector_leaves(chain):
    for t in json.loads(PATH.read_text())["trees"]:
        for lock in t["locks"]:
            leaf = chain.harness.functions.lockHash(
                lock["amount"], lock["expiration"], h(lock["secrethash"])
            ).call()
            assert leaf == h(lock["leaf"])


def test_sequence_uses_lowest_free_slot():
    steps = build_vectors()["sequences"][0]["steps"]
    assert [s["slot"] for s in steps if s["op"] == "insert"] == [0, 1, 2, 3, 1]
    assert steps[-1]["root"] == "0x" + "00" * 32  # removing every lock gives the empty root again


@settings(max_examples=25, deadline=None)
@given(
    slots=st.sets(st.integers(min_value=0, max_value=511), min_size=1, max_size=12),
    probe=st.integers(min_value=0, max_value=511),
    seed=st.binary(min_size=1, max_size=8),
)
def test_contract_matches_python_twin(_deployed, slots, probe, seed):
    chain = _deployed[0]
    tree = LockTree()
    for slot in sorted(slots):
        tree = tree.insert_at(slot, keccak(seed + slot.to_bytes(2, "big")))
    for slot in {min(slots), probe}:
        siblings = tree.proof(slot)
        leaf = tree.leaf(slot)
        assert chain.harness.functions.locksRootFromProof(leaf, slot, siblings).call() == tree.root
        assert root_from_proof(leaf, slot, siblings) == tree.root
        wrong = keccak(b"not the leaf")
        assert chain.harness.functions.locksRootFromProof(wrong, slot, siblings).call() != tree.root
    # An empty slot's proof (leaf 0) also leads to the root: the tree collapses zeros.
    free = tree.lowest_free_slot() if len(tree) < 512 else None
    if free is not None:
        assert (
            chain.harness.functions.locksRootFromProof(ZERO, free, tree.proof(free)).call()
            == tree.root
        )

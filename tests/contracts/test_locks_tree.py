"""The Solidity locks-tree verification equals the reference, and the shared vectors are current."""

import json

import locktree_reference as tree
from cm_support import REPO
from hypothesis import given, settings
from hypothesis import strategies as st

VECTORS = REPO / tree.VECTORS_PATH


def h(hex_str: str) -> bytes:
    return bytes.fromhex(hex_str[2:])


def test_vectors_file_is_current():
    assert json.loads(VECTORS.read_text()) == tree.build_vectors(), (
        "regenerate: .venv/bin/python tests/contracts/locktree_reference.py"
    )


def test_contract_verifies_every_vector_proof(chain):
    verify = chain.harness.functions.locksRootFromProof
    vectors = json.loads(VECTORS.read_text())
    checked = 0
    for t in vectors["trees"]:
        for p in t["proofs"]:
            assert verify(h(p["leaf"]), p["slot"], [h(s) for s in p["siblings"]]).call() == h(t["root"]), t["name"]
            checked += 1
    assert checked == 20
    assert vectors["trees"][0]["root"] == "0x" + "00" * 32


def test_sequence_uses_lowest_free_slot():
    steps = tree.build_vectors()["sequences"][0]["steps"]
    assert [s["slot"] for s in steps if s["op"] == "insert"] == [0, 1, 2, 3, 1]
    assert steps[-1]["root"] == "0x" + "00" * 32  # removing every lock gives the empty root again


@settings(max_examples=25, deadline=None)
@given(
    slots=st.sets(st.integers(min_value=0, max_value=511), min_size=1, max_size=12),
    probe=st.integers(min_value=0, max_value=511),
    seed=st.binary(min_size=1, max_size=8),
)
def test_contract_matches_reference(_deployed, slots, probe, seed):
    chain = _deployed[0]
    leaves = {slot: tree.keccak(seed + slot.to_bytes(2, "big")) for slot in slots}
    root = tree.root(leaves)
    for slot in {min(slots), probe}:
        siblings = tree.proof(leaves, slot)
        leaf = leaves.get(slot, tree.ZERO)
        assert chain.harness.functions.locksRootFromProof(leaf, slot, siblings).call() == root
        wrong = tree.keccak(b"not the leaf")
        assert chain.harness.functions.locksRootFromProof(wrong, slot, siblings).call() != root

"""The Merkle construction the asset registry verifies (OpenZeppelin's sorted-pair proofs)."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from channels.codec.keccak import keccak
from channels.codec.merkle import hash_pair, merkle_proof, merkle_root, verify_proof

leaves_strategy = st.lists(st.binary(min_size=32, max_size=32), min_size=1, max_size=70)


def test_one_leaf_is_its_own_root() -> None:
    leaf = keccak(b"x")
    assert merkle_root([leaf]) == leaf
    assert merkle_proof([leaf], 0) == []


def test_three_leaves_carry_the_odd_one_up() -> None:
    a, b, c = (keccak(bytes([i])) for i in range(3))
    assert merkle_root([a, b, c]) == hash_pair(hash_pair(a, b), c)
    assert merkle_proof([a, b, c], 2) == [hash_pair(a, b)]


@given(leaves_strategy, st.data())
def test_every_leaf_proves_and_no_other_does(leaves: list[bytes], data: st.DataObject) -> None:
    root = merkle_root(leaves)
    index = data.draw(st.integers(0, len(leaves) - 1))
    proof = merkle_proof(leaves, index)
    assert verify_proof(proof, root, leaves[index])
    assert not verify_proof(proof, root, keccak(leaves[index]))


@pytest.mark.parametrize("leaves", [[], [b"short"]])
def test_bad_leaves_are_refused(leaves: list[bytes]) -> None:
    with pytest.raises(ValueError, match="Merkle"):
        merkle_root(leaves)


def test_index_outside_the_leaves_is_refused() -> None:
    with pytest.raises(ValueError, match="outside"):
        merkle_proof([keccak(b"a")], 1)

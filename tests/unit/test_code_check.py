"""`channels.chain.code_check`: the runtime code at a network's addresses against the artifacts.

Pure: codes are built from the packaged artifacts (immutables filled as a constructor would), so a
byte changed outside the immutable ranges, a code of another contract, a wrong chain id, a wrong
recorded hash and a token with the wrong decimals must each come back as a mismatch naming the
contract, and the right codes as none.
"""

from __future__ import annotations

import dataclasses

import pytest

from channels.chain.abi import ContractAbi
from channels.chain.artifacts import Artifact, load_artifact
from channels.chain.code_check import (
    ChainAnswers,
    NodeError,
    code_hash,
    contracts,
    mismatches,
    parse_answers,
    requests_for,
    same_code,
)
from channels.chain.deploy import Deployment
from channels.core.types import Address, BlockNumber


def _address(n: int) -> Address:
    return Address(n.to_bytes(20, "big"))


DEPLOYMENT = Deployment(
    31337,
    _address(1),
    _address(2),
    BlockNumber(5),
    20,
    _address(3),
    _address(4),
    _address(5),
    _address(6),
    _address(7),
    _address(8),
    _address(9),
)


def _deployed(artifact: Artifact, fill: int) -> bytes:
    """The artifact's runtime code with its immutables set to `fill` bytes (as a constructor does)."""
    code = bytearray(artifact.deployed_bytecode)
    for start, length in artifact.immutable_ranges:
        code[start : start + length] = bytes([fill]) * length
    return bytes(code)


def _answers(**overrides: bytes) -> ChainAnswers:
    codes = {c.field: _deployed(load_artifact(c.artifacts[0]), 0xAB) for c in contracts(DEPLOYMENT)}
    codes.update(overrides)
    return ChainAnswers(31337, codes, 6, 10**12)


def test_immutables_are_masked_and_any_other_byte_is_compared() -> None:
    artifact = Artifact("X", ContractAbi([]), b"", bytes(range(10)), ((2, 3),))
    assert same_code(artifact, bytes([0, 1, 9, 9, 9, 5, 6, 7, 8, 9]))
    assert not same_code(artifact, bytes([0, 1, 9, 9, 9, 5, 6, 7, 8, 8]))  # outside: differs
    assert not same_code(artifact, bytes([0, 1, 2, 3, 4, 5, 6, 7, 8]))  # shorter
    assert not same_code(artifact, bytes(range(10)) + b"\x00")  # longer
    assert not same_code(dataclasses.replace(artifact, deployed_bytecode=b""), b"")


def test_packaged_artifacts_carry_their_immutable_ranges() -> None:
    manager = load_artifact("GovernedChannelManager")
    assert manager.immutable_ranges, "the manager has immutables (token, membership, timelock)"
    for start, length in manager.immutable_ranges:
        assert start >= 0 and start + length <= len(manager.deployed_bytecode)


def test_the_deployed_codes_match() -> None:
    assert mismatches(DEPLOYMENT, _answers()) == []


def test_a_byte_changed_outside_the_immutables_is_wrong_code() -> None:
    artifact = load_artifact("GovernedChannelManager")
    code = bytearray(_deployed(artifact, 0xAB))
    inside = {i for s, n in artifact.immutable_ranges for i in range(s, s + n)}
    at = next(i for i in range(len(code) // 2, len(code)) if i not in inside)
    code[at] ^= 0x01
    found = mismatches(DEPLOYMENT, _answers(channel_manager=bytes(code)))
    assert [(m.field, m.address) for m in found] == [("channel_manager", _address(2))]
    assert "wrong code" in found[0].problem and "GovernedChannelManager" in found[0].problem


def test_swapped_addresses_name_both_contracts() -> None:
    good = _answers()
    swapped = _answers(
        channel_manager=good.codes["asset_registry"], asset_registry=good.codes["channel_manager"]
    )
    found = mismatches(DEPLOYMENT, swapped)
    assert {m.field for m in found} == {"channel_manager", "asset_registry"}
    assert "0x0000000000000000000000000000000000000002" in str(found[0]).lower()


def test_no_code_and_a_wrong_chain_id() -> None:
    found = mismatches(DEPLOYMENT, _answers(treasury=b""))
    assert [str(m) for m in found] == [
        "treasury at 0x0000000000000000000000000000000000000009: no code at the address "
        "(expected Treasury)"
    ]
    other_chain = dataclasses.replace(_answers(), chain_id=1)
    assert [str(m) for m in mismatches(DEPLOYMENT, other_chain)] == [
        "chain_id: the node runs chain 1, the network file says 31337"
    ]


def test_recorded_code_hashes_are_held_to() -> None:
    answers = _answers()
    hashes = {field: code_hash(code) for field, code in answers.codes.items()}
    assert mismatches(DEPLOYMENT, answers, hashes) == []
    # same artifact, other immutables (e.g. the same contract deployed for another network)
    other = _deployed(load_artifact("Membership"), 0xCD)
    found = mismatches(DEPLOYMENT, _answers(membership=other), hashes)
    assert [m.field for m in found] == ["membership"]
    assert "code hash" in found[0].problem


def test_an_external_token_is_judged_by_its_answers() -> None:
    foreign = b"\x60\x00\x60\x00\xf3"  # some other ERC20's code
    assert mismatches(DEPLOYMENT, _answers(token=foreign)) == []
    eighteen = dataclasses.replace(_answers(token=foreign), decimals=18)
    assert "18 decimals" in str(mismatches(DEPLOYMENT, eighteen)[0])
    mute = dataclasses.replace(_answers(token=foreign), total_supply=None)
    assert "not an ERC20" in str(mismatches(DEPLOYMENT, mute)[0])
    found = mismatches(DEPLOYMENT, _answers(token=foreign), {"token": code_hash(b"other")})
    assert [m.field for m in found] == ["token"] and "code hash" in found[0].problem


def test_garbage_answers_are_node_errors() -> None:
    n = len(requests_for(DEPLOYMENT))
    good: list[object] = ["0x7a69"] + ["0x00"] * (n - 3) + ["0x" + "00" * 32] * 2
    assert parse_answers(DEPLOYMENT, good).chain_id == 31337
    with pytest.raises(NodeError, match="not a number"):
        parse_answers(DEPLOYMENT, ["banana", *good[1:]])
    with pytest.raises(NodeError, match="eth_getCode"):
        parse_answers(DEPLOYMENT, [good[0], 42, *good[2:]])
    with pytest.raises(NodeError, match="answered"):
        parse_answers(DEPLOYMENT, good[:-1])

"""AssetRegistry: every function, every custom error, the events, the Merkle agreement, gas.

The registry runs on the session chain of conftest.py (deployed once, reverted to its own snapshot per
test). Split hashes are checked against channels.chain.assets.split_hash and a plain eth_abi encoding;
ledger roots and proofs come from channels.codec.merkle, the Python twin of OpenZeppelin's MerkleProof.
"""

from __future__ import annotations

from typing import Any

import pytest
from cm_support import UINT64_MAX
from eth_abi import encode
from eth_utils import keccak, to_canonical_address
from registry_support import (
    METADATA_HASH,
    METADATA_URI,
    PPM_TOTAL,
    ZERO_ADDRESS,
    Registry,
    address_of,
    ascending,
    asset_id,
    deploy_registry,
    equal_ppm,
    make_split,
)

from channels.chain.assets import split_hash
from channels.codec.merkle import merkle_proof, merkle_root, verify_proof

ASSET = asset_id("wm-7")
OTHER = asset_id("milk robot")
ROOT = keccak(b"some root")
HEAD = keccak(b"some head")
MAX_BENEFICIARIES = 32
REGISTER_4_MAX = 115_000
ANCHOR_MAX = 80_000


@pytest.fixture(scope="session")
def _registry_deployed(_deployed) -> tuple[Registry, int]:
    chain, snapshot = _deployed
    chain.tester.revert_to_snapshot(snapshot)
    registry = deploy_registry(chain)
    return registry, chain.tester.take_snapshot()


@pytest.fixture
def reg(_registry_deployed) -> Registry:
    registry, snapshot = _registry_deployed
    registry.chain.tester.revert_to_snapshot(snapshot)
    return registry


@pytest.fixture
def actors(reg: Registry):
    """(operator, agent, stranger, next operator)."""
    return tuple(reg.chain.actors[:4])


@pytest.fixture
def registered(reg: Registry, actors) -> bytes:
    """ASSET, registered by the operator with the agent and a 3-way split."""
    operator, agent, _, _ = actors
    reg.register(operator, ASSET, agent)
    return ASSET


def raw_split(beneficiaries: list[str], ppm: list[int]) -> tuple[list[bytes], list[int]]:
    return [to_canonical_address(b) for b in beneficiaries], ppm


# Every custom error of the registry, each asserted by a test below.
TESTED_ERRORS = {
    "AssetRegistryZeroId",
    "AssetRegistryAlreadyRegistered",
    "AssetRegistryUnknownAsset",
    "AssetRegistryNotOperator",
    "AssetRegistryNotAgentOrOperator",
    "AssetRegistryZeroAddress",
    "AssetRegistrySplitLengths",
    "AssetRegistrySplitSize",
    "AssetRegistrySplitSum",
    "AssetRegistryZeroPart",
    "AssetRegistryBeneficiariesNotAscending",
    "AssetRegistryAnchorGap",
    "AssetRegistryAnchorRange",
    "AssetRegistryZeroRoot",
    "AssetRegistryUnknownAnchor",
    "AssetRegistryUnknownSplitVersion",
    # split changes with consent: asserted by test_split_consent.py and test_split_governance.py
    "AssetRegistryNotCurrentSplit",
    "AssetRegistrySplitConsentMissing",
    "AssetRegistrySplitConsentUnneeded",
    "AssetRegistrySplitConsentExpired",
    "AssetRegistrySplitConsentInvalid",
    "AssetRegistrySplitLowersUnrepaidPool",
    # OpenZeppelin EIP712's (ShortStrings): only a name or version over 31 bytes, never "CISE"/"1"
    "StringTooLong",
    "InvalidShortString",
}


# --------------------------------------------------------------------------- constants


def test_constants(reg: Registry) -> None:
    assert reg.f.MAX_BENEFICIARIES().call() == MAX_BENEFICIARIES
    assert reg.f.PPM_TOTAL().call() == PPM_TOTAL


def test_every_custom_error_is_tested(reg: Registry) -> None:
    """A new error must come with a test (and a line in TESTED_ERRORS)."""
    assert {e["name"] for e in reg.contract.abi if e["type"] == "error"} == TESTED_ERRORS


# --------------------------------------------------------------------------- registerAsset


def test_register_stores_the_asset_and_emits_both_events(reg: Registry, actors) -> None:
    operator, agent, _, _ = actors
    beneficiaries, ppm = make_split(4)
    receipt = reg.register(operator, ASSET, agent, (beneficiaries, ppm))

    assert reg.events(receipt, "AssetRegistered") == [
        {
            "assetId": ASSET,
            "operator": operator.address,
            "agent": agent.address,
            "metadataHash": METADATA_HASH,
            "metadataURI": METADATA_URI,
        }
    ]
    assert reg.events(receipt, "SplitChanged") == [
        {"assetId": ASSET, "version": 1, "beneficiaries": beneficiaries, "ppm": ppm}
    ]
    # AssetRegistered comes first, then split version 1.
    assert [bytes(log["topics"][0]) for log in receipt.logs] == [
        keccak(b"AssetRegistered(bytes32,address,address,bytes32,string)"),
        keccak(b"SplitChanged(bytes32,uint32,address[],uint32[])"),
    ]
    assert reg.asset(ASSET) == {
        "operator": operator.address,
        "agent": agent.address,
        "splitVersion": 1,
        "anchoredSeq": 0,
        "anchorCount": 0,
    }


def test_split_hash_is_keccak_of_abi_encode(reg: Registry, actors) -> None:
    beneficiaries, ppm = make_split(5)
    reg.register(actors[0], ASSET, split=(beneficiaries, ppm))
    stored = reg.f.splitHashOf(ASSET, 1).call()
    raw_beneficiaries, _ = raw_split(beneficiaries, ppm)
    assert stored == keccak(encode(["address[]", "uint32[]"], [beneficiaries, ppm]))
    assert stored == split_hash(raw_beneficiaries, ppm)


@pytest.mark.parametrize("n", [1, 2, MAX_BENEFICIARIES])
def test_register_accepts_1_to_32_beneficiaries(reg: Registry, actors, n: int) -> None:
    beneficiaries, ppm = make_split(n)
    receipt = reg.register(actors[0], ASSET, split=(beneficiaries, ppm))
    assert reg.events(receipt, "SplitChanged")[0]["beneficiaries"] == beneficiaries
    assert reg.f.splitHashOf(ASSET, 1).call() == split_hash(*raw_split(beneficiaries, ppm))


def test_register_rejects_a_zero_id(reg: Registry, actors) -> None:
    operator = actors[0]
    beneficiaries, ppm = make_split(2)
    reg.assert_reverts(
        reg.f.registerAsset(
            b"\0" * 32, operator.address, METADATA_HASH, METADATA_URI, beneficiaries, ppm
        ),
        operator,
        "AssetRegistryZeroId",
    )


def test_register_rejects_a_used_id_even_after_transfer(
    reg: Registry, actors, registered: bytes
) -> None:
    operator, _, stranger, new_operator = actors
    beneficiaries, ppm = make_split(2)
    for who in (operator, stranger):
        reg.assert_reverts(
            reg.f.registerAsset(
                registered, who.address, METADATA_HASH, METADATA_URI, beneficiaries, ppm
            ),
            who,
            "AssetRegistryAlreadyRegistered",
            registered,
        )
    reg.tx(reg.f.transferAsset(registered, new_operator.address), operator)
    reg.assert_reverts(
        reg.f.registerAsset(
            registered, operator.address, METADATA_HASH, METADATA_URI, beneficiaries, ppm
        ),
        operator,
        "AssetRegistryAlreadyRegistered",
        registered,
    )


def test_register_rejects_a_zero_agent(reg: Registry, actors) -> None:
    beneficiaries, ppm = make_split(2)
    reg.assert_reverts(
        reg.f.registerAsset(ASSET, ZERO_ADDRESS, METADATA_HASH, METADATA_URI, beneficiaries, ppm),
        actors[0],
        "AssetRegistryZeroAddress",
    )


def _bad_splits() -> list[Any]:
    """(beneficiaries, ppm, error, args) for every split rule, checked in the contract's order."""
    two, _ = make_split(2)
    three, _ = make_split(3)
    many, _ = make_split(MAX_BENEFICIARIES + 1)
    a, b, c = three
    return [
        pytest.param(two, [PPM_TOTAL], "AssetRegistrySplitLengths", (2, 1), id="lengths"),
        pytest.param([], [], "AssetRegistrySplitSize", (0,), id="empty"),
        pytest.param(many, equal_ppm(33), "AssetRegistrySplitSize", (33,), id="33"),
        pytest.param([ZERO_ADDRESS, a], [1, 999_999], "AssetRegistryZeroAddress", (), id="zero"),
        pytest.param(
            [a, ZERO_ADDRESS], [1, 999_999], "AssetRegistryZeroAddress", (), id="zero-late"
        ),
        pytest.param(
            [a, c, b], equal_ppm(3), "AssetRegistryBeneficiariesNotAscending", (2,), id="order"
        ),
        pytest.param(
            [a, a], [500_000, 500_000], "AssetRegistryBeneficiariesNotAscending", (1,), id="dup"
        ),
        pytest.param(
            [a, b, c], [0, 500_000, 500_000], "AssetRegistryZeroPart", (0,), id="zero-part"
        ),
        pytest.param(
            [a, b, c], [500_000, 500_000, 0], "AssetRegistryZeroPart", (2,), id="zero-last"
        ),
        pytest.param([a, b], [500_000, 499_999], "AssetRegistrySplitSum", (999_999,), id="short"),
        pytest.param([a, b], [500_000, 500_001], "AssetRegistrySplitSum", (1_000_001,), id="over"),
        pytest.param(
            [a, b], [2**32 - 1, 2**32 - 1], "AssetRegistrySplitSum", (2 * (2**32 - 1),), id="huge"
        ),
    ]


@pytest.mark.parametrize(("beneficiaries", "ppm", "error", "args"), _bad_splits())
def test_register_rejects_bad_splits(
    reg: Registry, actors, beneficiaries, ppm, error: str, args: tuple
) -> None:
    operator = actors[0]
    reg.assert_reverts(
        reg.f.registerAsset(
            ASSET, operator.address, METADATA_HASH, METADATA_URI, beneficiaries, ppm
        ),
        operator,
        error,
        *args,
    )


# --------------------------------------------------------------------------- changeSplit


def test_change_split_adds_a_version(reg: Registry, actors) -> None:
    # Each version adds a beneficiary at the operator's expense: the operator alone decides.
    operator, agent = actors[0], actors[1]
    reg.register(operator, ASSET, agent, ([operator.address], [PPM_TOTAL]))
    first = reg.f.splitHashOf(ASSET, 1).call()
    parts = {operator.address: PPM_TOTAL}
    for version in (2, 3):
        parts[operator.address] -= 300_000
        parts[address_of(f"v{version}")] = 300_000
        beneficiaries = ascending(list(parts))
        ppm = [parts[b] for b in beneficiaries]
        receipt = reg.tx(reg.change(ASSET, beneficiaries, ppm), operator)
        assert reg.events(receipt, "SplitChanged") == [
            {"assetId": ASSET, "version": version, "beneficiaries": beneficiaries, "ppm": ppm}
        ]
        assert reg.asset(ASSET)["splitVersion"] == version
        assert reg.f.splitHashOf(ASSET, version).call() == split_hash(
            *raw_split(beneficiaries, ppm)
        )
    assert reg.f.splitHashOf(ASSET, 1).call() == first


def test_change_split_is_for_the_operator_only(reg: Registry, actors, registered: bytes) -> None:
    _, agent, stranger, _ = actors
    beneficiaries, ppm = make_split(2)
    for who in (agent, stranger):
        reg.assert_reverts(
            reg.change(registered, beneficiaries, ppm),
            who,
            "AssetRegistryNotOperator",
            who.address,
        )


def test_change_split_of_an_unknown_asset(reg: Registry, actors) -> None:
    beneficiaries, ppm = make_split(2)
    reg.assert_reverts(
        reg.change(OTHER, beneficiaries, ppm, current=make_split(3)),
        actors[0],
        "AssetRegistryUnknownAsset",
        OTHER,
    )


@pytest.mark.parametrize(("beneficiaries", "ppm", "error", "args"), _bad_splits())
def test_change_split_checks_the_split_rules(
    reg: Registry, actors, registered: bytes, beneficiaries, ppm, error: str, args: tuple
) -> None:
    reg.assert_reverts(reg.change(registered, beneficiaries, ppm), actors[0], error, *args)


# --------------------------------------------------------------------------- setAgent


def test_set_agent(reg: Registry, actors, registered: bytes) -> None:
    operator, agent, stranger, _ = actors
    receipt = reg.tx(reg.f.setAgent(registered, stranger.address), operator)
    assert reg.events(receipt, "AgentChanged") == [
        {"assetId": registered, "agent": stranger.address}
    ]
    assert reg.asset(registered)["agent"] == stranger.address
    # The old agent lost the right to anchor; the new one has it.
    reg.assert_reverts(
        reg.f.anchorLedger(registered, 1, 1, ROOT, HEAD),
        agent,
        "AssetRegistryNotAgentOrOperator",
        agent.address,
    )
    reg.tx(reg.f.anchorLedger(registered, 1, 1, ROOT, HEAD), stranger)


def test_set_agent_errors(reg: Registry, actors, registered: bytes) -> None:
    operator, agent, stranger, _ = actors
    for who in (agent, stranger):
        reg.assert_reverts(
            reg.f.setAgent(registered, who.address), who, "AssetRegistryNotOperator", who.address
        )
    reg.assert_reverts(
        reg.f.setAgent(registered, ZERO_ADDRESS), operator, "AssetRegistryZeroAddress"
    )
    reg.assert_reverts(
        reg.f.setAgent(OTHER, agent.address), operator, "AssetRegistryUnknownAsset", OTHER
    )


# --------------------------------------------------------------------------- setMetadata


def test_set_metadata(reg: Registry, actors, registered: bytes) -> None:
    new_hash, new_uri = keccak(b"v2"), "https://example.org/wm-7.json"
    receipt = reg.tx(reg.f.setMetadata(registered, new_hash, new_uri), actors[0])
    assert reg.events(receipt, "MetadataChanged") == [
        {"assetId": registered, "metadataHash": new_hash, "metadataURI": new_uri}
    ]


def test_set_metadata_errors(reg: Registry, actors, registered: bytes) -> None:
    operator, agent, stranger, _ = actors
    for who in (agent, stranger):
        reg.assert_reverts(
            reg.f.setMetadata(registered, ROOT, "x"), who, "AssetRegistryNotOperator", who.address
        )
    reg.assert_reverts(
        reg.f.setMetadata(OTHER, ROOT, "x"), operator, "AssetRegistryUnknownAsset", OTHER
    )


# --------------------------------------------------------------------------- transferAsset


def test_transfer_asset(reg: Registry, actors, registered: bytes) -> None:
    operator, agent, _, new_operator = actors
    receipt = reg.tx(reg.f.transferAsset(registered, new_operator.address), operator)
    assert reg.events(receipt, "AssetTransferred") == [
        {"assetId": registered, "from": operator.address, "to": new_operator.address}
    ]
    info = reg.asset(registered)
    assert (info["operator"], info["agent"]) == (new_operator.address, agent.address)
    # The new operator manages the asset, the old one no longer does (not even anchoring).
    reg.tx(reg.f.setMetadata(registered, ROOT, "y"), new_operator)
    reg.tx(reg.f.anchorLedger(registered, 1, 2, ROOT, HEAD), new_operator)
    reg.assert_reverts(
        reg.f.setMetadata(registered, ROOT, "z"),
        operator,
        "AssetRegistryNotOperator",
        operator.address,
    )
    reg.assert_reverts(
        reg.f.anchorLedger(registered, 3, 3, ROOT, HEAD),
        operator,
        "AssetRegistryNotAgentOrOperator",
        operator.address,
    )


def test_transfer_asset_errors(reg: Registry, actors, registered: bytes) -> None:
    operator, agent, stranger, new_operator = actors
    for who in (agent, stranger, new_operator):
        reg.assert_reverts(
            reg.f.transferAsset(registered, who.address),
            who,
            "AssetRegistryNotOperator",
            who.address,
        )
    reg.assert_reverts(
        reg.f.transferAsset(registered, ZERO_ADDRESS), operator, "AssetRegistryZeroAddress"
    )
    reg.assert_reverts(
        reg.f.transferAsset(OTHER, new_operator.address),
        operator,
        "AssetRegistryUnknownAsset",
        OTHER,
    )


# --------------------------------------------------------------------------- anchorLedger


def test_anchor_ledger_by_agent_and_operator(reg: Registry, actors, registered: bytes) -> None:
    operator, agent, _, _ = actors
    ranges = [(1, 4, agent), (5, 5, operator), (6, 100, agent)]
    for index, (from_seq, to_seq, who) in enumerate(ranges):
        root, head = keccak(f"root {index}".encode()), keccak(f"head {index}".encode())
        receipt = reg.tx(reg.f.anchorLedger(registered, from_seq, to_seq, root, head), who)
        assert reg.events(receipt, "LedgerAnchored") == [
            {
                "assetId": registered,
                "index": index,
                "fromSeq": from_seq,
                "toSeq": to_seq,
                "root": root,
                "headHash": head,
            }
        ]
        assert reg.f.anchorOf(registered, index).call() == [from_seq, to_seq, root]
        info = reg.asset(registered)
        assert (info["anchoredSeq"], info["anchorCount"]) == (to_seq, index + 1)


def test_anchor_ledger_auth_and_unknown(reg: Registry, actors, registered: bytes) -> None:
    stranger = actors[2]
    reg.assert_reverts(
        reg.f.anchorLedger(registered, 1, 1, ROOT, HEAD),
        stranger,
        "AssetRegistryNotAgentOrOperator",
        stranger.address,
    )
    reg.assert_reverts(
        reg.f.anchorLedger(OTHER, 1, 1, ROOT, HEAD),
        actors[0],
        "AssetRegistryUnknownAsset",
        OTHER,
    )


def test_anchor_ledger_rejects_a_zero_root(reg: Registry, actors, registered: bytes) -> None:
    reg.assert_reverts(
        reg.f.anchorLedger(registered, 1, 1, b"\0" * 32, HEAD), actors[1], "AssetRegistryZeroRoot"
    )


def test_anchor_ledger_rejects_a_backward_range(reg: Registry, actors, registered: bytes) -> None:
    reg.assert_reverts(
        reg.f.anchorLedger(registered, 2, 1, ROOT, HEAD),
        actors[1],
        "AssetRegistryAnchorRange",
        2,
        1,
    )


@pytest.mark.parametrize("from_seq", [0, 2])
def test_first_anchor_starts_at_1(reg: Registry, actors, registered: bytes, from_seq: int) -> None:
    reg.assert_reverts(
        reg.f.anchorLedger(registered, from_seq, 5, ROOT, HEAD),
        actors[1],
        "AssetRegistryAnchorGap",
        1,
        from_seq,
    )


@pytest.mark.parametrize("from_seq", [1, 10, 11, 12])
def test_anchors_leave_no_gap_and_no_overlap(
    reg: Registry, actors, registered: bytes, from_seq: int
) -> None:
    agent = actors[1]
    reg.tx(reg.f.anchorLedger(registered, 1, 10, ROOT, HEAD), agent)
    if from_seq == 11:
        reg.tx(reg.f.anchorLedger(registered, 11, 11, ROOT, HEAD), agent)
        return
    reg.assert_reverts(
        reg.f.anchorLedger(registered, from_seq, 20, ROOT, HEAD),
        agent,
        "AssetRegistryAnchorGap",
        11,
        from_seq,
    )


def test_a_ledger_anchored_to_the_last_seq_is_full(
    reg: Registry, actors, registered: bytes
) -> None:
    agent = actors[1]
    reg.tx(reg.f.anchorLedger(registered, 1, UINT64_MAX, ROOT, HEAD), agent)
    info = reg.asset(registered)
    assert (info["anchoredSeq"], info["anchorCount"]) == (UINT64_MAX, 1)
    # seq + 1 would wrap to 0: nothing may follow, not even a range starting at 0.
    for from_seq in (0, 1, UINT64_MAX):
        reg.assert_reverts(
            reg.f.anchorLedger(registered, from_seq, UINT64_MAX, ROOT, HEAD),
            agent,
            "AssetRegistryAnchorGap",
            0,
            from_seq,
        )


# --------------------------------------------------------------------------- views


def test_views_of_an_unknown_asset(reg: Registry, actors) -> None:
    sender = actors[0]
    for fn in (
        reg.f.assetOf(OTHER),
        reg.f.splitHashOf(OTHER, 1),
        reg.f.anchorOf(OTHER, 0),
        reg.f.verifyEntry(OTHER, 0, ROOT, []),
    ):
        reg.assert_reverts(fn, sender, "AssetRegistryUnknownAsset", OTHER)


def test_split_hash_of_an_unknown_version(reg: Registry, actors, registered: bytes) -> None:
    for version in (0, 2):
        reg.assert_reverts(
            reg.f.splitHashOf(registered, version),
            actors[0],
            "AssetRegistryUnknownSplitVersion",
            registered,
            version,
        )


def test_unknown_anchor(reg: Registry, actors, registered: bytes) -> None:
    sender = actors[0]
    for index in (0, UINT64_MAX):
        reg.assert_reverts(
            reg.f.anchorOf(registered, index),
            sender,
            "AssetRegistryUnknownAnchor",
            registered,
            index,
        )
    reg.tx(reg.f.anchorLedger(registered, 1, 1, ROOT, HEAD), sender)
    reg.assert_reverts(
        reg.f.verifyEntry(registered, 1, ROOT, []),
        sender,
        "AssetRegistryUnknownAnchor",
        registered,
        1,
    )


# --------------------------------------------------------------------------- Merkle agreement

TREE_SIZES = range(1, 18)


def leaves_of(n: int) -> list[bytes]:
    return [keccak(f"ledger entry {n}/{i}".encode()) for i in range(n)]


def test_verify_entry_agrees_with_channels_codec_merkle(
    reg: Registry, actors, registered: bytes
) -> None:
    """One anchor per tree size 1..17; every leaf of every tree verifies on chain and in Python."""
    agent = actors[1]
    verify = reg.f.verifyEntry
    seq = 1
    trees: list[list[bytes]] = []
    for n in TREE_SIZES:
        leaves = leaves_of(n)
        root = merkle_root(leaves)
        reg.tx(reg.f.anchorLedger(registered, seq, seq + n - 1, root, leaves[-1]), agent)
        seq += n
        trees.append(leaves)
    assert reg.asset(registered)["anchorCount"] == len(TREE_SIZES)

    stranger = keccak(b"an entry that was never anchored")
    for index, leaves in enumerate(trees):
        root = reg.f.anchorOf(registered, index).call()[2]
        assert root == merkle_root(leaves)
        for i, leaf in enumerate(leaves):
            proof = merkle_proof(leaves, i)
            assert verify_proof(proof, root, leaf)
            assert verify(registered, index, leaf, proof).call() is True
            # A wrong leaf with a right proof, and the leaf hashed once more (it is not re-hashed).
            assert verify(registered, index, stranger, proof).call() is False
            assert verify(registered, index, keccak(leaf), proof).call() is False
            if len(leaves) > 1:
                # Another leaf of the same tree with this leaf's proof.
                other = leaves[(i + 1) % len(leaves)]
                assert verify(registered, index, other, proof).call() is False
                # One sibling dropped.
                assert verify(registered, index, leaf, proof[:-1]).call() is False
            # The right leaf and proof against the wrong anchor.
            wrong = (index + 1) % len(trees)
            assert verify(registered, wrong, leaf, proof).call() is False


def test_a_one_leaf_tree_is_its_leaf(reg: Registry, actors, registered: bytes) -> None:
    leaf = leaves_of(1)[0]
    reg.tx(reg.f.anchorLedger(registered, 1, 1, leaf, leaf), actors[1])
    assert reg.f.verifyEntry(registered, 0, leaf, []).call() is True
    assert reg.f.verifyEntry(registered, 0, keccak(leaf), []).call() is False


# --------------------------------------------------------------------------- gas


def test_gas(reg: Registry, actors) -> None:
    """Gas of registerAsset (4 and 5 beneficiaries) and anchorLedger. Run with -s to see the table."""
    operator, agent, _, _ = actors
    gas: dict[str, int] = {}
    for n in (4, 5):
        asset = asset_id(f"gas {n}")
        beneficiaries = ascending([address_of(f"gas {n} {i}") for i in range(n)])
        receipt = reg.register(operator, asset, agent, (beneficiaries, equal_ppm(n)))
        gas[f"register_asset_{n}_beneficiaries"] = receipt.gasUsed
    asset = asset_id("gas 4")
    leaves = leaves_of(16)
    root = merkle_root(leaves)
    gas["anchor_ledger_first"] = reg.tx(
        reg.f.anchorLedger(asset, 1, 16, root, leaves[-1]), agent
    ).gasUsed
    gas["anchor_ledger_next_by_agent"] = reg.tx(
        reg.f.anchorLedger(asset, 17, 32, root, leaves[-1]), agent
    ).gasUsed
    gas["anchor_ledger_next_by_operator"] = reg.tx(
        reg.f.anchorLedger(asset, 33, 48, root, leaves[-1]), operator
    ).gasUsed
    # Lowers nobody (the same beneficiaries, the same parts): no consent needed.
    beneficiaries = ascending([address_of(f"gas 4 {i}") for i in range(4)])
    gas["change_split_4_beneficiaries"] = reg.tx(
        reg.change(asset, beneficiaries, equal_ppm(4)), operator
    ).gasUsed
    gas["set_agent"] = reg.tx(reg.f.setAgent(asset, operator.address), operator).gasUsed
    gas["transfer_asset"] = reg.tx(reg.f.transferAsset(asset, agent.address), operator).gasUsed

    print("\nasset registry gas (tx gasUsed):")
    for name, used in gas.items():
        print(f"  {name:34} {used:>8,}")
    assert gas["register_asset_4_beneficiaries"] <= REGISTER_4_MAX
    assert gas["anchor_ledger_next_by_agent"] <= ANCHOR_MAX

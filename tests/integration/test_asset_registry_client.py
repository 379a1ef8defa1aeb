"""`AssetRegistryClient` on a real chain: transactions, views, events rebuilt into history, reverts.

The lifecycle runs on every backend (embedded py-evm always; anvil and ganache as `node` tests), the
rest on the embedded chain. Ledger roots and proofs come from channels.codec.merkle.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from eth_account import Account

from channels.chain.assets import (
    AgentChanged,
    Anchor,
    AssetInfo,
    AssetRegistered,
    AssetRegistryClient,
    AssetTransferred,
    LedgerAnchored,
    MetadataChanged,
    SplitChanged,
    canonical_split,
    split_hash,
)
from channels.chain.errors import ChainError
from channels.codec.keccak import keccak
from channels.codec.merkle import merkle_proof, merkle_root
from channels.core.types import Address
from cise.network import Network, NetworkFileError, load_network
from tests.integration.chain_env import ChainEnv

ASSET = keccak(b"asset washing machine WM-7 #0042")
OTHER = keccak(b"asset milk robot MR-2 #0007")
META = keccak(b"metadata v1")
URI = "ipfs://bafy-wm7-0042"


def clients(env: ChainEnv) -> tuple[AssetRegistryClient, AssetRegistryClient, AssetRegistryClient]:
    """(operator, agent, next operator): accounts 1, 2 and 3 of the dev keys."""
    keys = env.connection.dev_keys

    def client(i: int) -> AssetRegistryClient:
        return AssetRegistryClient.from_key(env.connection, env.deployment, keys[i])

    return client(1), client(2), client(3)


def beneficiary(label: str) -> Address:
    return Address(keccak(f"beneficiary {label}".encode())[12:])


def entries(n: int, label: str = "") -> list[bytes]:
    return [keccak(f"ledger entry {label}{i}".encode()) for i in range(n)]


def test_registry_lifecycle_and_history(chain: ChainEnv) -> None:
    operator, agent, successor = clients(chain)
    assert chain.deployment.asset_registry is not None

    # Split version 1, given in any order: canonical_split puts it in the contract's order.
    parts_v1 = {beneficiary("maker"): 600_000, beneficiary("servicer"): 300_000}
    parts_v1[operator.address] = 100_000  # the platform's share: the operator's own
    b1, p1 = canonical_split(parts_v1)
    receipt = operator.register_asset(ASSET, agent.address, META, URI, b1, p1)
    assert [e.name for e in receipt.events] == ["AssetRegistered", "SplitChanged"]
    assert operator.asset_of(ASSET) == AssetInfo(ASSET, operator.address, agent.address, 1, 0, 0)
    assert operator.split_hash_of(ASSET, 1) == split_hash(b1, p1)

    # At the operator's expense only: no consent needed (tests/integration/test_split_consent_client.py).
    parts_v2 = {beneficiary("maker"): 600_000, beneficiary("servicer"): 300_000}
    b2, p2 = canonical_split({**parts_v2, beneficiary("financier"): 100_000})
    version, _ = operator.change_split(ASSET, b2, p2)
    assert version == 2
    assert operator.split_hash_of(ASSET, 2) == split_hash(b2, p2)

    # The agent anchors two batches of ledger entries; the operator a third.
    first, second, third = entries(5, "a"), entries(3, "b"), entries(1, "c")
    anchor0, _ = agent.anchor_ledger(ASSET, 1, 5, merkle_root(first), first[-1])
    anchor1, _ = agent.anchor_ledger(ASSET, 6, 8, merkle_root(second), second[-1])
    anchor2, _ = operator.anchor_ledger(ASSET, 9, 9, merkle_root(third), third[-1])
    assert anchor0 == Anchor(0, 1, 5, merkle_root(first))
    assert (anchor1.index, anchor2.index) == (1, 2)
    assert operator.anchors(ASSET) == (anchor0, anchor1, anchor2)
    assert agent.anchor_of(ASSET, 1) == anchor1
    for index, leaves in enumerate((first, second, third)):
        for i, leaf in enumerate(leaves):
            assert agent.verify_entry(ASSET, index, leaf, merkle_proof(leaves, i))
    assert not agent.verify_entry(ASSET, 0, second[0], merkle_proof(first, 0))
    assert not agent.verify_entry(ASSET, 1, first[0], merkle_proof(first, 0))

    new_meta, new_uri = keccak(b"metadata v2"), "https://example.org/wm-7.json"
    operator.set_metadata(ASSET, new_meta, new_uri)
    operator.set_agent(ASSET, successor.address)
    operator.transfer_asset(ASSET, successor.address)
    info = successor.asset_of(ASSET)
    assert (info.operator, info.agent) == (successor.address, successor.address)
    assert (info.split_version, info.anchored_seq, info.anchor_count) == (2, 9, 3)

    # Everything again, from the chain's logs alone.
    events = operator.asset_events(ASSET)
    assert [type(e) for e in events] == [
        AssetRegistered,
        SplitChanged,
        SplitChanged,
        LedgerAnchored,
        LedgerAnchored,
        LedgerAnchored,
        MetadataChanged,
        AgentChanged,
        AssetTransferred,
    ]
    assert all(e.asset_id == ASSET for e in events)
    blocks = [(e.block_number, e.log_index) for e in events]
    assert blocks == sorted(blocks)
    registered = events[0]
    assert isinstance(registered, AssetRegistered)
    assert (registered.operator, registered.agent) == (operator.address, agent.address)
    assert (registered.metadata_hash, registered.metadata_uri) == (META, URI)

    history = successor.asset_history(ASSET)
    v1, v2 = history.split(1), history.split(2)
    assert (v1.beneficiaries, v1.ppm) == (b1, p1)
    assert all(isinstance(b, bytes) and len(b) == 20 for b in v1.beneficiaries)
    assert v1.parts() == parts_v1
    assert (v2.beneficiaries, v2.ppm) == (b2, p2)
    for version, split in history.splits().items():
        assert split.split_hash == operator.split_hash_of(ASSET, version)
    with pytest.raises(LookupError, match="no split version 3"):
        history.split(3)
    assert history.operators() == (operator.address, successor.address)
    assert history.agents() == (agent.address, successor.address)
    assert history.metadata() == (new_meta, new_uri)
    assert history.anchors() == operator.anchors(ASSET)
    transferred = events[-1]
    assert isinstance(transferred, AssetTransferred)
    assert (transferred.from_operator, transferred.to_operator) == (
        operator.address,
        successor.address,
    )
    anchored = events[3]
    assert isinstance(anchored, LedgerAnchored)
    assert anchored.head_hash == first[-1]


def test_asset_events_are_per_asset_and_by_range(embedded_chain: ChainEnv) -> None:
    operator, agent, _ = clients(embedded_chain)
    split = canonical_split({beneficiary("a"): 1_000_000})
    operator.register_asset(ASSET, agent.address, META, URI, *split)
    start = operator.register_asset(OTHER, agent.address, META, URI, *split).block_number
    for seq in range(1, 4):
        agent.anchor_ledger(ASSET, seq, seq, keccak(bytes([seq])), keccak(bytes([seq])))
        agent.anchor_ledger(OTHER, seq, seq, keccak(bytes([seq])), keccak(bytes([seq])))

    mine, theirs = operator.asset_events(ASSET), operator.asset_events(OTHER)
    assert len(mine) == len(theirs) == 2 + 3
    assert {e.asset_id for e in mine} == {ASSET}
    assert {e.asset_id for e in theirs} == {OTHER}
    # Read one block at a time, the same events come back.
    key = embedded_chain.connection.dev_keys[1]
    one_block = AssetRegistryClient(
        operator.connection, operator.deployment, Account.from_key(key), max_range=1
    )
    assert one_block.asset_events(ASSET) == mine
    # From a block on / up to a block.
    later = operator.asset_events(ASSET, from_block=start + 1)
    assert [type(e) for e in later] == [LedgerAnchored] * 3
    assert operator.asset_events(ASSET, to_block=start) == mine[:2]
    assert operator.asset_events(keccak(b"nobody's asset")) == ()


def test_reverts_name_the_contract_error(embedded_chain: ChainEnv) -> None:
    operator, agent, stranger = clients(embedded_chain)
    split = canonical_split({beneficiary("a"): 400_000, beneficiary("b"): 600_000})

    with pytest.raises(ChainError) as raised:
        operator.asset_of(ASSET)
    assert raised.value.name == "AssetRegistryUnknownAsset"
    assert raised.value.error_args == (ASSET,)
    assert str(raised.value) == f"AssetRegistry.assetOf: AssetRegistryUnknownAsset(0x{ASSET.hex()})"

    bad = canonical_split({beneficiary("a"): 400_000, beneficiary("b"): 500_000})
    with pytest.raises(ChainError) as raised:
        operator.register_asset(ASSET, agent.address, META, URI, *bad)
    assert (raised.value.name, raised.value.error_args) == ("AssetRegistrySplitSum", (900_000,))
    assert raised.value.function == "AssetRegistry.registerAsset"

    unordered = (tuple(reversed(split[0])), tuple(reversed(split[1])))
    with pytest.raises(ChainError) as raised:
        operator.register_asset(ASSET, agent.address, META, URI, *unordered)
    assert raised.value.name == "AssetRegistryBeneficiariesNotAscending"
    assert raised.value.error_args == (1,)

    operator.register_asset(ASSET, agent.address, META, URI, *split)
    with pytest.raises(ChainError) as raised:
        stranger.change_split(ASSET, *split)
    assert (raised.value.name, raised.value.error_args) == (
        "AssetRegistryNotOperator",
        (stranger.address,),
    )
    assert "AssetRegistry.changeSplit: AssetRegistryNotOperator(0x" in str(raised.value)

    with pytest.raises(ChainError) as raised:
        stranger.anchor_ledger(ASSET, 1, 1, META, META)
    assert raised.value.name == "AssetRegistryNotAgentOrOperator"

    agent.anchor_ledger(ASSET, 1, 4, META, META)
    with pytest.raises(ChainError) as raised:
        agent.anchor_ledger(ASSET, 4, 6, META, META)
    assert (raised.value.name, raised.value.error_args) == ("AssetRegistryAnchorGap", (5, 4))

    with pytest.raises(ChainError) as raised:
        agent.anchor_of(ASSET, 1)
    assert (raised.value.name, raised.value.error_args) == (
        "AssetRegistryUnknownAnchor",
        (ASSET, 1),
    )

    with pytest.raises(ChainError) as raised:
        agent.split_hash_of(ASSET, 2)
    assert raised.value.name == "AssetRegistryUnknownSplitVersion"

    with pytest.raises(ChainError) as raised:
        operator.transfer_asset(ASSET, Address(b"\0" * 20))
    assert raised.value.name == "AssetRegistryZeroAddress"


def test_bytes32_arguments_must_be_32_bytes(embedded_chain: ChainEnv) -> None:
    operator, agent, _ = clients(embedded_chain)
    split = canonical_split({beneficiary("a"): 1_000_000})
    # eth_abi would right-pad a short value into some other asset's id; the client refuses.
    with pytest.raises(ValueError, match="asset_id must be 32 bytes, got 20"):
        operator.register_asset(ASSET[:20], agent.address, META, URI, *split)
    with pytest.raises(ValueError, match="root must be 32 bytes"):
        agent.anchor_ledger(ASSET, 1, 1, b"\x01", META)


def test_split_hash_and_canonical_split() -> None:
    a, b, c = Address(b"\x01" * 20), Address(b"\x02" * 20), Address(b"\xff" * 20)
    assert canonical_split({c: 1, a: 2, b: 3}) == ((a, b, c), (2, 3, 1))
    # keccak256(abi.encode(address[], uint32[])): two offsets, then each length-prefixed array.
    encoded = (
        (64).to_bytes(32, "big")
        + (160).to_bytes(32, "big")
        + (2).to_bytes(32, "big")
        + a.rjust(32, b"\0")
        + b.rjust(32, b"\0")
        + (2).to_bytes(32, "big")
        + (999_999).to_bytes(32, "big")
        + (1).to_bytes(32, "big")
    )
    assert split_hash([a, b], [999_999, 1]) == keccak(encoded)


def test_a_deployment_without_registry_is_refused(embedded_chain: ChainEnv) -> None:
    old = dataclasses.replace(embedded_chain.deployment, asset_registry=None)
    with pytest.raises(ValueError, match="no asset registry"):
        AssetRegistryClient.from_key(
            embedded_chain.connection, old, embedded_chain.connection.dev_keys[1]
        )


def test_network_file_keeps_the_registry(embedded_chain: ChainEnv, tmp_path: Path) -> None:
    deployment = embedded_chain.deployment
    path = tmp_path / "network.json"
    network = Network("http://127.0.0.1:8545", deployment, embedded_chain.connection.dev_keys[:2])
    path.write_text(network.to_json())
    assert load_network(path) == network

    # A file written before the registry existed still loads, without one.
    raw = json.loads(path.read_text())
    del raw["asset_registry"]
    path.write_text(json.dumps(raw))
    assert load_network(path).deployment == dataclasses.replace(deployment, asset_registry=None)
    raw["asset_registry"] = None
    path.write_text(json.dumps(raw))
    assert load_network(path).deployment.asset_registry is None

    raw["asset_registry"] = "0x1234"
    path.write_text(json.dumps(raw))
    with pytest.raises(NetworkFileError, match="not an address"):
        load_network(path)

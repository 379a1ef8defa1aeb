"""The asset registry binding: `AssetRegistryClient`, its records, events and the split hash.

One typed method per function of `contracts_solidity/AssetRegistry.sol`, built like
`Web3ChainClient`: each transaction is signed locally with this client's account and sent through
the `Connection` pipeline, and a revert raises `ChainError` naming the contract's custom error
(`AssetRegistryNotOperator`, ...). Its events decode into frozen records, and `asset_events` /
`asset_history` read one asset's events back from the chain's logs, so a client can rebuild every
split version, the chain of operators and the anchors from the chain alone.

`split_hash` mirrors the contract's `keccak256(abi.encode(beneficiaries, ppm))`; split changes with
consent (who a change lowers, the signed `SplitConsent`s, a pool put in the split, the governance
calls) are `channels.chain.split_changes` plus the client's `change_split`, `split_change_plan`,
`put_pool_in_split` and `split_change_call`; the ledger's
Merkle construction is `channels.codec.merkle`. Synchronous (the trio shell calls it via
`trio.to_thread.run_sync`).

It must never decide anything about splits or ledgers (the asset agent does), never check a split
in place of the contract (a bad one must come back as the contract's own error), and never hold
more than one account's key.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_typing import ChecksumAddress, HexAddress, HexStr
from web3.types import FilterParams

from channels.chain.abi import ContractAbi, DecodedEvent
from channels.chain.artifacts import load_artifact
from channels.chain.connection import Connection, Receipt
from channels.chain.deploy import Deployment
from channels.chain.events import DEFAULT_MAX_RANGE
from channels.chain.governance import Call
from channels.chain.split_changes import (
    LoweredBy,
    LoweredShare,
    SplitConsent,
    lowered_shares,
    sign_split_consent,
    split_hash,
    split_with_pool,
)
from channels.codec.eip712 import Domain
from channels.core.types import Address, BlockNumber, to_checksum
from channels.signer import LocalSigner

MAX_BENEFICIARIES = 32  # AssetRegistry.MAX_BENEFICIARIES
PPM_TOTAL = 1_000_000  # AssetRegistry.PPM_TOTAL: parts per million (DESIGN §2)
CONTRACT = "AssetRegistry"  # how errors name it
ABI_ARTIFACT = "GovernedAssetRegistry"  # the plain registry's ABI plus the governed network's
POOL_FAILED = 2  # IFinancingPool.Status.Failed


# --------------------------------------------------------------------------- pure helpers


def canonical_split(parts: Mapping[Address, int]) -> tuple[tuple[Address, ...], tuple[int, ...]]:
    """(beneficiaries, ppm) in the order the contract wants: ascending by address.

    Only orders; whether the parts are a valid split is the contract's to say.
    """
    ordered = sorted(parts.items(), key=lambda item: int.from_bytes(item[0], "big"))
    return tuple(b for b, _ in ordered), tuple(p for _, p in ordered)


def _bytes32(value: bytes, what: str) -> bytes:
    # eth_abi right-pads a short bytes32 silently: a 20-byte id would become another asset.
    if len(value) != 32:
        raise ValueError(f"{what} must be 32 bytes, got {len(value)}")
    return bytes(value)


# --------------------------------------------------------------------------- records


@dataclass(frozen=True, slots=True)
class AssetInfo:
    """`assetOf(assetId)`: the asset's current on-chain state."""

    asset_id: bytes
    operator: Address
    agent: Address
    split_version: int  # 1 after registration, + 1 per changeSplit
    anchored_seq: int  # the last anchored ledger entry; 0 before the first anchor
    anchor_count: int  # anchors are numbered 0 .. anchor_count - 1


@dataclass(frozen=True, slots=True)
class Anchor:
    """Anchor number `index` of an asset: ledger entries `from_seq..to_seq` (inclusive) -> `root`."""

    index: int
    from_seq: int
    to_seq: int
    root: bytes


# --------------------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class RegistryEvent:
    """What every asset registry event carries: the asset and where the log is."""

    asset_id: bytes
    block_number: BlockNumber
    transaction_hash: bytes
    log_index: int


@dataclass(frozen=True, slots=True)
class AssetRegistered(RegistryEvent):
    """The asset was registered (split version 1 follows as `SplitChanged`)."""

    operator: Address
    agent: Address
    metadata_hash: bytes
    metadata_uri: str


@dataclass(frozen=True, slots=True)
class SplitChanged(RegistryEvent):
    """The asset's split is now `version`: `beneficiaries[i]` gets `ppm[i]` per million."""

    version: int
    beneficiaries: tuple[Address, ...]
    ppm: tuple[int, ...]

    @property
    def split_hash(self) -> bytes:
        """The hash the contract stored for this version (`splitHashOf(asset_id, version)`)."""
        return split_hash(self.beneficiaries, self.ppm)

    def parts(self) -> dict[Address, int]:
        """Beneficiary -> ppm."""
        return dict(zip(self.beneficiaries, self.ppm, strict=True))


@dataclass(frozen=True, slots=True)
class AgentChanged(RegistryEvent):
    """The asset's agent key is now `agent`."""

    agent: Address


@dataclass(frozen=True, slots=True)
class MetadataChanged(RegistryEvent):
    """The asset's metadata document is now the one at `metadata_uri`, of hash `metadata_hash`."""

    metadata_hash: bytes
    metadata_uri: str


@dataclass(frozen=True, slots=True)
class AssetTransferred(RegistryEvent):
    """The asset is now operated by `to_operator` (was `from_operator`)."""

    from_operator: Address
    to_operator: Address


@dataclass(frozen=True, slots=True)
class LedgerAnchored(RegistryEvent):
    """Anchor number `index`; `head_hash` is the hash of entry `to_seq`."""

    index: int
    from_seq: int
    to_seq: int
    root: bytes
    head_hash: bytes

    @property
    def anchor(self) -> Anchor:
        """The anchor as `anchorOf` returns it."""
        return Anchor(self.index, self.from_seq, self.to_seq, self.root)


AssetEvent = (
    AssetRegistered
    | SplitChanged
    | AgentChanged
    | MetadataChanged
    | AssetTransferred
    | LedgerAnchored
)


def _where(e: DecodedEvent) -> dict[str, Any]:
    return {
        "asset_id": bytes(e.args["assetId"]),
        "block_number": BlockNumber(e.block_number),
        "transaction_hash": e.transaction_hash,
        "log_index": e.log_index,
    }


def _registered(e: DecodedEvent) -> AssetRegistered:
    return AssetRegistered(
        **_where(e),
        operator=Address(e.args["operator"]),
        agent=Address(e.args["agent"]),
        metadata_hash=bytes(e.args["metadataHash"]),
        metadata_uri=str(e.args["metadataURI"]),
    )


def _split_changed(e: DecodedEvent) -> SplitChanged:
    return SplitChanged(
        **_where(e),
        version=int(e.args["version"]),
        beneficiaries=tuple(Address(b) for b in e.args["beneficiaries"]),
        ppm=tuple(int(p) for p in e.args["ppm"]),
    )


def _agent_changed(e: DecodedEvent) -> AgentChanged:
    return AgentChanged(**_where(e), agent=Address(e.args["agent"]))


def _metadata_changed(e: DecodedEvent) -> MetadataChanged:
    return MetadataChanged(
        **_where(e),
        metadata_hash=bytes(e.args["metadataHash"]),
        metadata_uri=str(e.args["metadataURI"]),
    )


def _transferred(e: DecodedEvent) -> AssetTransferred:
    return AssetTransferred(
        **_where(e), from_operator=Address(e.args["from"]), to_operator=Address(e.args["to"])
    )


def _anchored(e: DecodedEvent) -> LedgerAnchored:
    return LedgerAnchored(
        **_where(e),
        index=int(e.args["index"]),
        from_seq=int(e.args["fromSeq"]),
        to_seq=int(e.args["toSeq"]),
        root=bytes(e.args["root"]),
        head_hash=bytes(e.args["headHash"]),
    )


DECODERS: Mapping[str, Callable[[DecodedEvent], AssetEvent]] = {
    "AssetRegistered": _registered,
    "SplitChanged": _split_changed,
    "AgentChanged": _agent_changed,
    "MetadataChanged": _metadata_changed,
    "AssetTransferred": _transferred,
    "LedgerAnchored": _anchored,
}
"""Event name -> decoder, for every event of the asset registry."""


def to_asset_event(event: DecodedEvent) -> AssetEvent | None:
    """The record of one decoded asset registry event; None for an event of another contract."""
    decoder = DECODERS.get(event.name)
    return None if decoder is None else decoder(event)


@dataclass(frozen=True, slots=True)
class AssetHistory:
    """One asset's events in chain order, and what they say about its past.

    Built from the logs alone: it trusts the chain, not this process's memory.
    """

    asset_id: bytes
    events: tuple[AssetEvent, ...]

    def splits(self) -> dict[int, SplitChanged]:
        """Every split version -> the event that set it."""
        return {e.version: e for e in self.events if isinstance(e, SplitChanged)}

    def split(self, version: int) -> SplitChanged:
        """Split `version`; LookupError when the events hold none."""
        found = self.splits().get(version)
        if found is None:
            raise LookupError(f"asset 0x{self.asset_id.hex()} has no split version {version}")
        return found

    def operators(self) -> tuple[Address, ...]:
        """The registering operator, then each operator it was transferred to, in order."""
        chain: list[Address] = []
        for e in self.events:
            if isinstance(e, AssetRegistered):
                chain.append(e.operator)
            elif isinstance(e, AssetTransferred):
                chain.append(e.to_operator)
        return tuple(chain)

    def agents(self) -> tuple[Address, ...]:
        """The agent at registration, then each agent it was changed to, in order."""
        chain: list[Address] = []
        for e in self.events:
            if isinstance(e, AssetRegistered | AgentChanged):
                chain.append(e.agent)
        return tuple(chain)

    def metadata(self) -> tuple[bytes, str] | None:
        """The latest (metadata hash, URI); None when the events hold no registration."""
        latest: tuple[bytes, str] | None = None
        for e in self.events:
            if isinstance(e, AssetRegistered | MetadataChanged):
                latest = (e.metadata_hash, e.metadata_uri)
        return latest

    def anchors(self) -> tuple[Anchor, ...]:
        """Every anchor, by index."""
        return tuple(e.anchor for e in self.events if isinstance(e, LedgerAnchored))


# --------------------------------------------------------------------------- the port


class AssetRegistryPort(Protocol):
    """What the shell uses to act on and read the asset registry (as one account: `address`)."""

    @property
    def address(self) -> Address: ...
    def register_asset(
        self,
        asset_id: bytes,
        agent: Address,
        metadata_hash: bytes,
        metadata_uri: str,
        beneficiaries: Sequence[Address],
        ppm: Sequence[int],
    ) -> Receipt: ...
    def change_split(
        self,
        asset_id: bytes,
        beneficiaries: Sequence[Address],
        ppm: Sequence[int],
        consents: Sequence[SplitConsent] = (),
    ) -> tuple[int, Receipt]: ...
    def set_agent(self, asset_id: bytes, agent: Address) -> Receipt: ...
    def set_metadata(self, asset_id: bytes, metadata_hash: bytes, metadata_uri: str) -> Receipt: ...
    def transfer_asset(self, asset_id: bytes, new_operator: Address) -> Receipt: ...
    def anchor_ledger(
        self, asset_id: bytes, from_seq: int, to_seq: int, root: bytes, head_hash: bytes
    ) -> tuple[Anchor, Receipt]: ...
    def asset_of(self, asset_id: bytes) -> AssetInfo: ...
    def split_hash_of(self, asset_id: bytes, version: int) -> bytes: ...
    def anchor_of(self, asset_id: bytes, index: int) -> Anchor: ...
    def anchors(self, asset_id: bytes) -> tuple[Anchor, ...]: ...
    def verify_entry(
        self, asset_id: bytes, index: int, entry_hash: bytes, proof: Sequence[bytes]
    ) -> bool: ...
    def asset_events(
        self, asset_id: bytes, from_block: int | None = None, to_block: int | None = None
    ) -> tuple[AssetEvent, ...]: ...
    def asset_history(self, asset_id: bytes, from_block: int | None = None) -> AssetHistory: ...


# --------------------------------------------------------------------------- the client


class AssetRegistryClient:
    """`AssetRegistryPort` over a `Connection`, acting as `account`, on `deployment`'s registry."""

    def __init__(
        self,
        connection: Connection,
        deployment: Deployment,
        account: LocalAccount,
        max_range: int = DEFAULT_MAX_RANGE,
    ) -> None:
        if deployment.asset_registry is None:
            raise ValueError("this deployment has no asset registry (deployed before it existed)")
        if max_range < 1:
            raise ValueError("max_range must be >= 1")
        self.connection = connection
        self._deployment = deployment
        self._registry: Address = deployment.asset_registry
        self._account = account
        self.max_range = max_range
        self.abi: ContractAbi = load_artifact(ABI_ARTIFACT).abi

    @classmethod
    def from_key(
        cls, connection: Connection, deployment: Deployment, private_key: bytes
    ) -> AssetRegistryClient:
        """A client acting as the account of `private_key`."""
        return cls(connection, deployment, Account.from_key(private_key))

    def for_account(self, account: LocalAccount) -> AssetRegistryClient:
        """A client on the same connection and deployment acting as another account."""
        return AssetRegistryClient(self.connection, self._deployment, account, self.max_range)

    @property
    def address(self) -> Address:
        """The account this client sends transactions as."""
        return Address(bytes.fromhex(self._account.address[2:]))

    @property
    def deployment(self) -> Deployment:
        """The contracts this client talks to."""
        return self._deployment

    @property
    def registry(self) -> Address:
        """The asset registry's address."""
        return self._registry

    # ------------------------------------------------------------------ plumbing

    def _send(self, function: str, *args: Any) -> Receipt:
        data = self.abi.function(function).encode_call(args)
        return self.connection.transact(
            self._account, self._registry, data, self.abi, f"{CONTRACT}.{function}"
        )

    def _view(self, function: str, *args: Any) -> tuple[Any, ...]:
        spec = self.abi.function(function)
        raw = self.connection.call(
            self._registry, spec.encode_call(args), self.abi, f"{CONTRACT}.{function}"
        )
        return spec.decode_result(raw)

    # ------------------------------------------------------------------ transactions

    def register_asset(
        self,
        asset_id: bytes,
        agent: Address,
        metadata_hash: bytes,
        metadata_uri: str,
        beneficiaries: Sequence[Address],
        ppm: Sequence[int],
    ) -> Receipt:
        """registerAsset(...): a new asset operated by us, split version 1 (see `canonical_split`)."""
        return self._send(
            "registerAsset",
            _bytes32(asset_id, "asset_id"),
            agent,
            _bytes32(metadata_hash, "metadata_hash"),
            metadata_uri,
            list(beneficiaries),
            list(ppm),
        )

    def change_split(
        self,
        asset_id: bytes,
        beneficiaries: Sequence[Address],
        ppm: Sequence[int],
        consents: Sequence[SplitConsent] = (),
        current: SplitChanged | None = None,
    ) -> tuple[int, Receipt]:
        """changeSplit(...) (operator only): returns the new split version (from SplitChanged).

        `current` is the split in force (read from the chain when not given); `consents` are those of
        the beneficiaries whose share goes down (see `split_change_plan`), in any order.
        """
        asset_id = _bytes32(asset_id, "asset_id")
        current = current or self.current_split(asset_id)
        ordered = sorted(consents, key=lambda c: int.from_bytes(c.beneficiary, "big"))
        receipt = self._send(
            "changeSplit",
            asset_id,
            (list(current.beneficiaries), list(current.ppm)),
            (list(beneficiaries), list(ppm)),
            [c.as_abi() for c in ordered],
        )
        return int(receipt.event("SplitChanged").args["version"]), receipt

    def sign_split_consent(
        self,
        asset_id: bytes,
        beneficiaries: Sequence[Address],
        ppm: Sequence[int],
        expiry: int,
        version: int | None = None,
    ) -> SplitConsent:
        """This client's account's consent to (beneficiaries, ppm) becoming the asset's split
        `version` (default: the next one), valid up to block `expiry`. Signs only; sends nothing."""
        asset_id = _bytes32(asset_id, "asset_id")
        if version is None:
            version = self.asset_of(asset_id).split_version + 1
        return sign_split_consent(
            LocalSigner(bytes(self._account.key)).sign_digest,
            self.address,
            self.consent_domain(),
            asset_id,
            beneficiaries,
            ppm,
            version,
            expiry,
        )

    def put_pool_in_split(
        self,
        asset_id: bytes,
        pool: Address,
        ppm: int,
        taken_from: Address | None = None,
        consents: Sequence[SplitConsent] = (),
    ) -> tuple[int, Receipt]:
        """Put financing pool `pool` in the asset's split with `ppm` parts (added to its share if it
        has one), taken from `taken_from`'s share (default: the asset's operator, who alone decides
        that); returns the new split version. Taking from another beneficiary needs its consent
        (`consents`, for the split `pool_split` returns) or an ordinary proposal
        (`split_change_call`). Operator only; ValueError when `taken_from` has fewer parts.
        """
        beneficiaries, parts = self.pool_split(asset_id, pool, ppm, taken_from)
        return self.change_split(asset_id, beneficiaries, parts, consents)

    def pool_split(
        self, asset_id: bytes, pool: Address, ppm: int, taken_from: Address | None = None
    ) -> tuple[tuple[Address, ...], tuple[int, ...]]:
        """The split `put_pool_in_split` would make: (beneficiaries, ppm) in the contract's order."""
        taken_from = taken_from or self.asset_of(asset_id).operator
        current = self.current_split(asset_id)
        return canonical_split(split_with_pool(current.parts(), pool, ppm, taken_from))

    def split_change_call(
        self,
        asset_id: bytes,
        beneficiaries: Sequence[Address],
        ppm: Sequence[int],
        constitutional: bool = False,
        current: SplitChanged | None = None,
    ) -> Call:
        """The proposal call that changes the asset's split without consents: an ordinary one
        (`changeSplitByGovernance`, refused on execution when it lowers a financing pool not yet
        repaid its cap), or with `constitutional` the one that may (`changeSplitByConstitution`,
        which makes its proposal constitutional). `current` is pinned into the call: the members
        vote on a change of the split they saw."""
        asset_id = _bytes32(asset_id, "asset_id")
        current = current or self.current_split(asset_id)
        function = "changeSplitByConstitution" if constitutional else "changeSplitByGovernance"
        data = self.abi.function(function).encode_call(
            (
                asset_id,
                (list(current.beneficiaries), list(current.ppm)),
                (list(beneficiaries), list(ppm)),
            )
        )
        return Call(self._registry, 0, data)

    def set_agent(self, asset_id: bytes, agent: Address) -> Receipt:
        """setAgent(assetId, agent) (operator only)."""
        return self._send("setAgent", _bytes32(asset_id, "asset_id"), agent)

    def set_metadata(self, asset_id: bytes, metadata_hash: bytes, metadata_uri: str) -> Receipt:
        """setMetadata(assetId, metadataHash, metadataURI) (operator only)."""
        return self._send(
            "setMetadata",
            _bytes32(asset_id, "asset_id"),
            _bytes32(metadata_hash, "metadata_hash"),
            metadata_uri,
        )

    def transfer_asset(self, asset_id: bytes, new_operator: Address) -> Receipt:
        """transferAsset(assetId, newOperator) (operator only)."""
        return self._send("transferAsset", _bytes32(asset_id, "asset_id"), new_operator)

    def anchor_ledger(
        self, asset_id: bytes, from_seq: int, to_seq: int, root: bytes, head_hash: bytes
    ) -> tuple[Anchor, Receipt]:
        """anchorLedger(...) (agent or operator): returns the new anchor (from LedgerAnchored)."""
        receipt = self._send(
            "anchorLedger",
            _bytes32(asset_id, "asset_id"),
            from_seq,
            to_seq,
            _bytes32(root, "root"),
            _bytes32(head_hash, "head_hash"),
        )
        anchored = to_asset_event(receipt.event("LedgerAnchored"))
        assert isinstance(anchored, LedgerAnchored)
        return anchored.anchor, receipt

    # ------------------------------------------------------------------ views

    def asset_of(self, asset_id: bytes) -> AssetInfo:
        """assetOf(assetId); `ChainError` AssetRegistryUnknownAsset for an unknown id."""
        operator, agent, version, anchored_seq, count = self._view(
            "assetOf", _bytes32(asset_id, "asset_id")
        )
        return AssetInfo(
            bytes(asset_id),
            Address(operator),
            Address(agent),
            int(version),
            int(anchored_seq),
            int(count),
        )

    def split_hash_of(self, asset_id: bytes, version: int) -> bytes:
        """splitHashOf(assetId, version): equals `split_hash` of that version's split."""
        return bytes(self._view("splitHashOf", _bytes32(asset_id, "asset_id"), version)[0])

    def current_split(self, asset_id: bytes) -> SplitChanged:
        """The split in force: the `SplitChanged` of the current version, checked against the
        stored split hash (LookupError when the logs hold no such split)."""
        version = self.asset_of(asset_id).split_version
        stored = self.split_hash_of(asset_id, version)
        for event in reversed(self.asset_events(asset_id)):
            if isinstance(event, SplitChanged) and event.version == version:
                if event.split_hash != stored:
                    break
                return event
        raise LookupError(
            f"asset 0x{bytes(asset_id).hex()}: no SplitChanged log of split version {version} "
            "with the stored split hash"
        )

    def consent_domain(self) -> Domain:
        """The EIP-712 domain of split consents (and ledger entries): this registry."""
        return Domain(self.connection.chain_id, self._registry)

    def split_change_plan(
        self,
        asset_id: bytes,
        beneficiaries: Sequence[Address],
        ppm: Sequence[int],
        current: SplitChanged | None = None,
    ) -> tuple[LoweredShare, ...]:
        """Who a change to (beneficiaries, ppm) lowers, ascending, and what each takes
        (`LoweredBy`): the operator's own share and a settled pool's take nothing, a financing pool
        not yet repaid its cap a constitutional proposal, anyone else its consent."""
        current = current or self.current_split(asset_id)
        operator = self.asset_of(asset_id).operator
        new = dict(zip(beneficiaries, ppm, strict=True))

        def needs(beneficiary: Address) -> LoweredBy:
            if beneficiary == operator:
                # the contract checks the pool first; the operator is never a pool
                return LoweredBy.OPERATOR
            return self.pool_standing(beneficiary) or LoweredBy.CONSENT

        return lowered_shares(current.parts(), new, needs)

    def pool_factory(self) -> Address | None:
        """poolFactory(): the factory whose pools are protected; None when zero."""
        factory = Address(self._view("poolFactory")[0])
        return None if factory == bytes(20) else factory

    def pool_standing(self, beneficiary: Address) -> LoweredBy | None:
        """None when `beneficiary` is not a pool of the registry's factory; else whether it is a
        pool not yet repaid its cap (`UNREPAID_POOL`) or repaid or failed (`SETTLED_POOL`), as the
        contract reads it."""
        factory = self.pool_factory()
        if factory is None:
            return None
        factory_abi = load_artifact("FinancingPoolFactory").abi
        spec = factory_abi.function("isPool")
        raw = self.connection.call(factory, spec.encode_call((beneficiary,)), factory_abi, "isPool")
        if not spec.decode_result(raw)[0]:
            return None
        pool_abi = load_artifact("FinancingPool").abi
        state, cap = (pool_abi.function(name) for name in ("poolState", "cap"))
        status, _, repaid, *_ = state.decode_result(
            self.connection.call(beneficiary, state.encode_call(()), pool_abi, "poolState")
        )
        if int(status) == POOL_FAILED:
            return LoweredBy.SETTLED_POOL
        owed = cap.decode_result(
            self.connection.call(beneficiary, cap.encode_call(()), pool_abi, "cap")
        )[0]
        return LoweredBy.UNREPAID_POOL if int(repaid) < int(owed) else LoweredBy.SETTLED_POOL

    def anchor_of(self, asset_id: bytes, index: int) -> Anchor:
        """anchorOf(assetId, index)."""
        from_seq, to_seq, root = self._view("anchorOf", _bytes32(asset_id, "asset_id"), index)
        return Anchor(index, int(from_seq), int(to_seq), bytes(root))

    def anchors(self, asset_id: bytes) -> tuple[Anchor, ...]:
        """Every anchor of the asset, by index (read from storage, one call each)."""
        count = self.asset_of(asset_id).anchor_count
        return tuple(self.anchor_of(asset_id, index) for index in range(count))

    def verify_entry(
        self, asset_id: bytes, index: int, entry_hash: bytes, proof: Sequence[bytes]
    ) -> bool:
        """verifyEntry(...): whether `proof` leads from `entry_hash` to anchor `index`'s root."""
        return bool(
            self._view(
                "verifyEntry",
                _bytes32(asset_id, "asset_id"),
                index,
                _bytes32(entry_hash, "entry_hash"),
                [_bytes32(p, "proof element") for p in proof],
            )[0]
        )

    # ------------------------------------------------------------------ events

    def asset_events(
        self, asset_id: bytes, from_block: int | None = None, to_block: int | None = None
    ) -> tuple[AssetEvent, ...]:
        """The asset's events in chain order, in blocks [from_block, to_block].

        `from_block` defaults to the deployment block, `to_block` to the head; the logs are read
        in ranges of at most `max_range` blocks (nodes cap both ranges and result sizes).
        """
        asset_topic = _bytes32(asset_id, "asset_id")
        start = self._deployment.block_number if from_block is None else from_block
        end = self.connection.block_number() if to_block is None else to_block
        found: list[AssetEvent] = []
        while start <= end:
            stop = min(end, start + self.max_range - 1)
            for decoded in self._asset_logs(asset_topic, start, stop):
                event = to_asset_event(decoded)
                if event is not None and event.asset_id == asset_topic:
                    found.append(event)
            start = stop + 1
        return tuple(found)

    def asset_history(self, asset_id: bytes, from_block: int | None = None) -> AssetHistory:
        """`asset_events` up to the head, as an `AssetHistory`."""
        return AssetHistory(bytes(asset_id), self.asset_events(asset_id, from_block))

    def _asset_logs(
        self, asset_topic: bytes, from_block: int, to_block: int
    ) -> tuple[DecodedEvent, ...]:
        # Connection.get_logs filters by address only; every registry event has the asset id as
        # its first indexed argument (topic 1), so let the node filter on it too.
        params: FilterParams = {
            "address": ChecksumAddress(HexAddress(HexStr(to_checksum(self._registry)))),
            "fromBlock": from_block,
            "toBlock": to_block,
            "topics": [None, "0x" + asset_topic.hex()],
        }
        logs = self.connection.w3.eth.get_logs(params)
        ordered = sorted(logs, key=lambda log: (int(log["blockNumber"]), int(log["logIndex"])))
        return self.connection.decode_logs(ordered, self.abi)


def _conforms(client: AssetRegistryClient) -> AssetRegistryPort:
    return client  # mypy proves AssetRegistryClient implements the AssetRegistryPort


__all__ = [
    "MAX_BENEFICIARIES",
    "PPM_TOTAL",
    "AgentChanged",
    "Anchor",
    "AssetEvent",
    "AssetHistory",
    "AssetInfo",
    "AssetRegistered",
    "AssetRegistryClient",
    "AssetRegistryPort",
    "AssetTransferred",
    "LedgerAnchored",
    "LoweredBy",
    "LoweredShare",
    "MetadataChanged",
    "RegistryEvent",
    "SplitChanged",
    "SplitConsent",
    "canonical_split",
    "split_hash",
    "split_with_pool",
    "to_asset_event",
]

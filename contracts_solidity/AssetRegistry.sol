// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";

import {IAssetRegistry} from "./interfaces/IAssetRegistry.sol";

/// @title CISE asset registry
/// @notice The on-chain record of every pay-per-use asset (DESIGN §4): who operates it, which key its
/// machine signs with, how its use fees are split (versioned), and the Merkle roots of its revenue
/// ledger, anchored periodically so that any single ledger entry can be proven on chain.
/// @dev Storage per asset, keyed by its `assetId`:
///  - `_assets[assetId]`: two slots. Slot 0 = agent (160 bits) ‖ anchorCount (64) ‖ splitVersion (32),
///    the slot `anchorLedger` reads and writes; slot 1 = operator. A registered asset always has a
///    nonzero operator and a nonzero agent (both checked on every write), so either tells a registered
///    id from an unknown one; ids are never deleted, so never reused.
///  - `_splitHashes[assetId][version]`: one slot per split version (1, 2, ...).
///  - `_anchors[assetId][index]`: two slots per anchor (0, 1, ...): fromSeq ‖ toSeq, then the root.
///    The last anchored seq is not stored apart: it is the `toSeq` of the last anchor (0 before the
///    first), which `anchorLedger` reads anyway to check for gaps.
/// Metadata (hash and URI) and the split itself (beneficiaries and ppm) live only in the events; the
/// split hash stored per version lets a contract check a split given to it in calldata.
///
/// Split changes with consent (docs/decisions/2026-12-07-split-changes-with-consent.md): the operator's
/// change lowers nobody's share without that beneficiary's EIP-712 `SplitConsent`, except its own and a
/// settled pool's; a financing pool not yet repaid its cap is never lowered here (the governed registry
/// adds the governance paths).
contract AssetRegistry is IAssetRegistry, EIP712 {
    // ------------------------------------------------------------------ constants

    /// @notice Most beneficiaries one split may list.
    uint256 public constant MAX_BENEFICIARIES = 32;
    /// @notice What the parts of a split sum to: parts per million (DESIGN §2).
    uint256 public constant PPM_TOTAL = 1_000_000;
    /// @notice The EIP-712 type hash of a beneficiary's consent to a split change (docs/protocol.md).
    bytes32 public constant SPLIT_CONSENT_TYPEHASH =
        keccak256("SplitConsent(bytes32 assetId,bytes32 splitHash,uint256 version,uint256 expiry)");

    /// @dev Who changes a split, which decides whose consent it needs (see `_checkLowered`).
    enum ChangeBy {
        Operator,
        Governance,
        Constitution
    }

    /// @dev What a beneficiary is as a financing pool (see `_poolStanding`).
    enum PoolStanding {
        NotPool,
        Unrepaid,
        Settled
    }

    // ------------------------------------------------------------------ storage

    /// @dev Two slots: agent, anchorCount and splitVersion (160 + 64 + 32 = 256 bits), then operator.
    struct Asset {
        address agent;
        uint64 anchorCount;
        uint32 splitVersion;
        address operator;
    }

    /// @dev Two slots: 64 + 64 bits, then the root.
    struct Anchor {
        uint64 fromSeq;
        uint64 toSeq;
        bytes32 root;
    }

    mapping(bytes32 assetId => Asset) private _assets;
    mapping(bytes32 assetId => mapping(uint32 version => bytes32)) private _splitHashes;
    mapping(bytes32 assetId => mapping(uint64 index => Anchor)) private _anchors;

    /// @dev The EIP-712 domain of the asset ledger's and the split consents' types: `CISE`/`1`.
    constructor() EIP712("CISE", "1") {}

    // ------------------------------------------------------------------ assets

    /// @inheritdoc IAssetRegistry
    function registerAsset(
        bytes32 assetId,
        address agent,
        bytes32 metadataHash,
        string calldata metadataURI,
        address[] calldata beneficiaries,
        uint32[] calldata ppm
    ) external {
        if (assetId == bytes32(0)) revert AssetRegistryZeroId();
        if (_assets[assetId].operator != address(0)) revert AssetRegistryAlreadyRegistered(assetId);
        if (agent == address(0)) revert AssetRegistryZeroAddress();
        _checkMembership(msg.sender);
        bytes32 splitHash = _checkedSplitHash(beneficiaries, ppm);

        _assets[assetId] = Asset({agent: agent, anchorCount: 0, splitVersion: 1, operator: msg.sender});
        _splitHashes[assetId][1] = splitHash;
        emit AssetRegistered(assetId, msg.sender, agent, metadataHash, metadataURI);
        emit SplitChanged(assetId, 1, beneficiaries, ppm);
    }

    /// @inheritdoc IAssetRegistry
    function changeSplit(bytes32 assetId, Split calldata current, Split calldata next, SplitConsent[] calldata consents)
        external
    {
        _changeSplit(assetId, _requireOperator(assetId), current, next, consents, ChangeBy.Operator);
    }

    /// @inheritdoc IAssetRegistry
    function setAgent(bytes32 assetId, address agent) external {
        Asset storage asset = _requireOperator(assetId);
        if (agent == address(0)) revert AssetRegistryZeroAddress();
        asset.agent = agent;
        emit AgentChanged(assetId, agent);
    }

    /// @inheritdoc IAssetRegistry
    function setMetadata(bytes32 assetId, bytes32 metadataHash, string calldata metadataURI) external {
        _requireOperator(assetId);
        emit MetadataChanged(assetId, metadataHash, metadataURI);
    }

    /// @inheritdoc IAssetRegistry
    function transferAsset(bytes32 assetId, address newOperator) external {
        Asset storage asset = _requireOperator(assetId);
        if (newOperator == address(0)) revert AssetRegistryZeroAddress();
        _checkMembership(newOperator);
        asset.operator = newOperator;
        emit AssetTransferred(assetId, msg.sender, newOperator);
    }

    // ------------------------------------------------------------------ ledger anchors

    /// @inheritdoc IAssetRegistry
    function anchorLedger(bytes32 assetId, uint64 fromSeq, uint64 toSeq, bytes32 root, bytes32 headHash)
        external
    {
        Asset storage asset = _assets[assetId];
        address agent = asset.agent;
        // A registered asset always has a nonzero agent: reading it spares the agent's path the
        // operator's slot.
        if (agent == address(0)) revert AssetRegistryUnknownAsset(assetId);
        if (msg.sender != agent && msg.sender != asset.operator) {
            revert AssetRegistryNotAgentOrOperator(msg.sender);
        }
        if (root == bytes32(0)) revert AssetRegistryZeroRoot();
        if (toSeq < fromSeq) revert AssetRegistryAnchorRange(fromSeq, toSeq);
        uint64 count = asset.anchorCount;
        uint64 expected;
        // Wraps to 0 only when the ledger was anchored up to type(uint64).max: then nothing can follow.
        unchecked {
            expected = _anchoredSeq(assetId, count) + 1;
        }
        if (expected == 0 || fromSeq != expected) revert AssetRegistryAnchorGap(expected, fromSeq);

        _anchors[assetId][count] = Anchor({fromSeq: fromSeq, toSeq: toSeq, root: root});
        // Each anchor covers at least one new seq, so count <= anchoredSeq < type(uint64).max here
        // (expected != 0 was checked): count + 1 cannot overflow.
        unchecked {
            asset.anchorCount = count + 1;
        }
        emit LedgerAnchored(assetId, count, fromSeq, toSeq, root, headHash);
    }

    // ------------------------------------------------------------------ views

    /// @inheritdoc IAssetRegistry
    function assetOf(bytes32 assetId)
        external
        view
        returns (address operator, address agent, uint32 splitVersion, uint64 anchoredSeq, uint64 anchorCount)
    {
        Asset memory asset = _requireKnown(assetId);
        return (
            asset.operator,
            asset.agent,
            asset.splitVersion,
            _anchoredSeq(assetId, asset.anchorCount),
            asset.anchorCount
        );
    }

    /// @inheritdoc IAssetRegistry
    function splitHashOf(bytes32 assetId, uint32 version) external view returns (bytes32) {
        Asset storage asset = _requireKnown(assetId);
        if (version == 0 || version > asset.splitVersion) {
            revert AssetRegistryUnknownSplitVersion(assetId, version);
        }
        return _splitHashes[assetId][version];
    }

    /// @inheritdoc IAssetRegistry
    function splitConsentDigest(bytes32 assetId, bytes32 splitHash, uint256 version, uint256 expiry)
        public
        view
        returns (bytes32)
    {
        return _hashTypedDataV4(keccak256(abi.encode(SPLIT_CONSENT_TYPEHASH, assetId, splitHash, version, expiry)));
    }

    /// @inheritdoc IAssetRegistry
    function anchorOf(bytes32 assetId, uint64 index)
        external
        view
        returns (uint64 fromSeq, uint64 toSeq, bytes32 root)
    {
        Anchor storage anchor = _requireAnchor(assetId, index);
        return (anchor.fromSeq, anchor.toSeq, anchor.root);
    }

    /// @inheritdoc IAssetRegistry
    function verifyEntry(bytes32 assetId, uint64 index, bytes32 entryHash, bytes32[] calldata proof)
        external
        view
        returns (bool)
    {
        // MerkleProof.verify for a calldata proof: the same sorted-pair construction, without copying.
        return MerkleProof.verifyCalldata(proof, _requireAnchor(assetId, index).root, entryHash);
    }

    // ------------------------------------------------------------------ hooks

    /// @dev Membership hook: DESIGN §4 admits only members. Called for the operator of every
    /// registration and the new operator of every transfer; an asset already registered keeps its
    /// split changes and anchors whatever its operator's membership becomes. A no-op here (this
    /// contract alone is an open registry, which the contract tests exercise); `GovernedAssetRegistry`,
    /// the registry a network deploys, overrides it to revert `AssetRegistryNotMember(account)` for
    /// anyone who is not an active member.
    function _checkMembership(address account) internal view virtual {}

    /// @dev Pool hook: whether `beneficiary` is a financing pool, and if so whether it still waits for
    /// (part of) its cap. `NotPool` here (this contract alone knows no pools); `GovernedAssetRegistry`
    /// asks the network's pool factory and the pool.
    function _poolStanding(address /* beneficiary */ ) internal view virtual returns (PoolStanding) {
        return PoolStanding.NotPool;
    }

    /// @dev What `_checkLowered` needs to know of one change besides the splits.
    struct Change {
        bytes32 assetId;
        address operator;
        bytes32 splitHash;
        uint32 version;
        ChangeBy by;
    }

    /// @dev Replaces the split of a known asset by the next version after checking that `current` is the
    /// split in force, the split rules for `next`, and every lowered share (`_checkLowered`).
    function _changeSplit(
        bytes32 assetId,
        Asset storage asset,
        Split calldata current,
        Split calldata next,
        SplitConsent[] calldata consents,
        ChangeBy by
    ) internal {
        uint32 version = asset.splitVersion;
        if (keccak256(abi.encode(current.beneficiaries, current.ppm)) != _splitHashes[assetId][version]) {
            revert AssetRegistryNotCurrentSplit(assetId, version);
        }
        bytes32 splitHash = _checkedSplitHash(next.beneficiaries, next.ppm);
        // Checked: only 2^32 - 1 changes of one asset's split could overflow it, and only its operator
        // or the network's governance can make them.
        ++version;
        _checkLowered(Change(assetId, asset.operator, splitHash, version, by), current, next, consents);

        asset.splitVersion = version;
        _splitHashes[assetId][version] = splitHash;
        emit SplitChanged(assetId, version, next.beneficiaries, next.ppm);
    }

    /// @dev Walks the current and the new split together (both ascending) and, for every beneficiary
    /// whose share goes down or away, applies `_needsConsent`; a consent it needs must be next in
    /// `consents`. Every consent given must be used.
    function _checkLowered(
        Change memory change,
        Split calldata current,
        Split calldata next,
        SplitConsent[] calldata consents
    ) private view {
        uint256 n = next.beneficiaries.length;
        uint256 j = 0;
        uint256 used = 0;
        for (uint256 i; i < current.beneficiaries.length; ++i) {
            address beneficiary = current.beneficiaries[i];
            while (j < n && next.beneficiaries[j] < beneficiary) ++j;
            uint32 kept = j < n && next.beneficiaries[j] == beneficiary ? next.ppm[j] : 0;
            if (kept >= current.ppm[i] || !_needsConsent(beneficiary, change.operator, change.by)) continue;
            if (used < consents.length && consents[used].beneficiary < beneficiary) {
                revert AssetRegistrySplitConsentUnneeded(consents[used].beneficiary);
            }
            if (used == consents.length || consents[used].beneficiary != beneficiary) {
                revert AssetRegistrySplitConsentMissing(beneficiary);
            }
            _checkConsent(change, consents[used]);
            ++used;
        }
        if (used < consents.length) revert AssetRegistrySplitConsentUnneeded(consents[used].beneficiary);
    }

    /// @dev Whether lowering `beneficiary`'s share needs its consent; reverts when nobody but a
    /// constitutional proposal may lower it (a financing pool not yet repaid its cap).
    function _needsConsent(address beneficiary, address operator, ChangeBy by) private view returns (bool) {
        if (by == ChangeBy.Constitution) return false;
        PoolStanding standing = _poolStanding(beneficiary);
        if (standing == PoolStanding.Unrepaid) revert AssetRegistrySplitLowersUnrepaidPool(beneficiary);
        // Governance decides for a beneficiary that cannot or does not sign; a settled pool's receipts
        // go on to the operator, so its share is the operator's to give.
        return by == ChangeBy.Operator && beneficiary != operator && standing == PoolStanding.NotPool;
    }

    /// @dev Reverts unless `consent` is its beneficiary's unexpired signature of this change.
    function _checkConsent(Change memory change, SplitConsent calldata consent) private view {
        address beneficiary = consent.beneficiary;
        // Expiries are block numbers, like every deadline of the protocol.
        if (block.number > consent.expiry) revert AssetRegistrySplitConsentExpired(beneficiary, consent.expiry);
        bytes32 digest = splitConsentDigest(change.assetId, change.splitHash, change.version, consent.expiry);
        // tryRecover refuses a signature that is not 65 bytes, has a high s or recovers to nobody; its
        // third value only details the failure, which the error below does not report.
        // slither-disable-next-line unused-return
        (address signer, ECDSA.RecoverError failure,) = ECDSA.tryRecover(digest, consent.signature);
        if (failure != ECDSA.RecoverError.NoError || signer != beneficiary) {
            revert AssetRegistrySplitConsentInvalid(beneficiary);
        }
    }

    // ------------------------------------------------------------------ internals

    function _requireKnown(bytes32 assetId) internal view returns (Asset storage asset) {
        asset = _assets[assetId];
        if (asset.operator == address(0)) revert AssetRegistryUnknownAsset(assetId);
    }

    function _requireOperator(bytes32 assetId) internal view returns (Asset storage asset) {
        asset = _requireKnown(assetId);
        if (msg.sender != asset.operator) revert AssetRegistryNotOperator(msg.sender);
    }

    function _requireAnchor(bytes32 assetId, uint64 index) private view returns (Anchor storage) {
        if (index >= _requireKnown(assetId).anchorCount) revert AssetRegistryUnknownAnchor(assetId, index);
        return _anchors[assetId][index];
    }

    /// @dev The last anchored seq of an asset with `count` anchors: the last anchor's `toSeq`, 0 if none.
    function _anchoredSeq(bytes32 assetId, uint64 count) private view returns (uint64) {
        return count == 0 ? 0 : _anchors[assetId][count - 1].toSeq;
    }

    /// @dev Checks the split rules (see `registerAsset`) and returns the split hash.
    function _checkedSplitHash(address[] calldata beneficiaries, uint32[] calldata ppm)
        private
        pure
        returns (bytes32)
    {
        uint256 n = beneficiaries.length;
        if (n != ppm.length) revert AssetRegistrySplitLengths(n, ppm.length);
        if (n == 0 || n > MAX_BENEFICIARIES) revert AssetRegistrySplitSize(n);
        uint256 sum = 0;
        address previous = address(0);
        for (uint256 i; i < n; ++i) {
            address beneficiary = beneficiaries[i];
            if (beneficiary == address(0)) revert AssetRegistryZeroAddress();
            if (beneficiary <= previous) revert AssetRegistryBeneficiariesNotAscending(i);
            uint32 part = ppm[i];
            if (part == 0) revert AssetRegistryZeroPart(i);
            sum += part;
            previous = beneficiary;
        }
        if (sum != PPM_TOTAL) revert AssetRegistrySplitSum(sum);
        return keccak256(abi.encode(beneficiaries, ppm));
    }
}

// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @title Custom errors of the CISE asset registry.
/// @notice Every rejection of the asset registry is one of these; the off-chain client maps them.
interface IAssetRegistryErrors {
    /// @notice The asset id is zero (zero is reserved as "no asset").
    error AssetRegistryZeroId();
    /// @notice An asset with this id was registered before (ids are never reused, not even after a
    /// transfer).
    error AssetRegistryAlreadyRegistered(bytes32 assetId);
    /// @notice No asset with this id was ever registered.
    error AssetRegistryUnknownAsset(bytes32 assetId);
    /// @notice The caller is not the asset's operator.
    error AssetRegistryNotOperator(address caller);
    /// @notice The caller is neither the asset's agent nor its operator.
    error AssetRegistryNotAgentOrOperator(address caller);
    /// @notice An agent, new operator or beneficiary is the zero address.
    error AssetRegistryZeroAddress();
    /// @notice The beneficiaries and ppm arrays differ in length.
    error AssetRegistrySplitLengths(uint256 beneficiaries, uint256 parts);
    /// @notice A split has no beneficiary or more than `MAX_BENEFICIARIES`.
    error AssetRegistrySplitSize(uint256 beneficiaries);
    /// @notice The ppm of a split do not sum to exactly `PPM_TOTAL` (1,000,000).
    error AssetRegistrySplitSum(uint256 sum);
    /// @notice The part at `index` is zero (a beneficiary with no share must not be listed).
    error AssetRegistryZeroPart(uint256 index);
    /// @notice The beneficiary at `index` is not above the one before it (duplicate or not in the
    /// canonical ascending order).
    error AssetRegistryBeneficiariesNotAscending(uint256 index);
    /// @notice An anchor does not start right after the last anchored entry: `expected` is
    /// `anchoredSeq + 1` (0 once `type(uint64).max` was anchored: the ledger is full).
    error AssetRegistryAnchorGap(uint64 expected, uint64 got);
    /// @notice An anchor whose last entry comes before its first (`toSeq < fromSeq`).
    error AssetRegistryAnchorRange(uint64 fromSeq, uint64 toSeq);
    /// @notice An anchor with a zero Merkle root (no tree has that root: the leaves are hashes).
    error AssetRegistryZeroRoot();
    /// @notice The asset has no anchor number `index` (anchors are numbered 0, 1, 2, ...).
    error AssetRegistryUnknownAnchor(bytes32 assetId, uint64 index);
    /// @notice The asset has no split version `version` (versions are numbered 1, 2, 3, ...).
    error AssetRegistryUnknownSplitVersion(bytes32 assetId, uint32 version);
    /// @notice The split given as the asset's current one is not its split version `version` (its hash
    /// differs from `splitHashOf(assetId, version)`): a change applies to the split in force only.
    error AssetRegistryNotCurrentSplit(bytes32 assetId, uint32 version);
    /// @notice The change lowers or removes `beneficiary`'s share and carries no consent of it at the
    /// place due (consents are listed in the ascending order of the beneficiaries they are for).
    error AssetRegistrySplitConsentMissing(address beneficiary);
    /// @notice A consent was given for `beneficiary`, whose share the change does not lower (or a
    /// consent beyond the last one needed).
    error AssetRegistrySplitConsentUnneeded(address beneficiary);
    /// @notice `beneficiary`'s consent expired: `block.number > expiry`.
    error AssetRegistrySplitConsentExpired(address beneficiary, uint256 expiry);
    /// @notice `beneficiary`'s consent is not its signature of `SplitConsent(assetId, splitHash,
    /// version, expiry)` for this asset, this new split and the next split version (a consent for
    /// another split or asset, a replayed one, or a malformed or high-s signature).
    error AssetRegistrySplitConsentInvalid(address beneficiary);
    /// @notice The change lowers or removes the share of `pool`, a financing pool not yet repaid its cap:
    /// only a constitutional proposal may (`GovernedAssetRegistry.changeSplitByConstitution`).
    error AssetRegistrySplitLowersUnrepaidPool(address pool);
}

/// @title Events of the CISE asset registry (past tense, emitted right after the state change).
/// @notice Together they are the asset's full history: an off-chain client rebuilds every split
/// version, the metadata and the chain of operators from them.
interface IAssetRegistryEvents {
    /// @notice `operator` registered the asset, with `agent` as the machine's key. Followed in the same
    /// transaction by `SplitChanged` for split version 1.
    event AssetRegistered(
        bytes32 indexed assetId,
        address indexed operator,
        address agent,
        bytes32 metadataHash,
        string metadataURI
    );
    /// @notice The asset's split is now `version`: `beneficiaries[i]` gets `ppm[i]` parts per million of
    /// every use fee. `keccak256(abi.encode(beneficiaries, ppm))` is stored as its split hash.
    event SplitChanged(bytes32 indexed assetId, uint32 version, address[] beneficiaries, uint32[] ppm);
    /// @notice The asset's agent (the key that signs its ledger entries and may anchor) is now `agent`.
    event AgentChanged(bytes32 indexed assetId, address agent);
    /// @notice The asset's metadata document is now the one at `metadataURI`, of hash `metadataHash`.
    event MetadataChanged(bytes32 indexed assetId, bytes32 metadataHash, string metadataURI);
    /// @notice The asset is now operated by `to` (was `from`).
    event AssetTransferred(bytes32 indexed assetId, address indexed from, address indexed to);
    /// @notice Anchor number `index` commits the ledger entries `fromSeq..toSeq` (inclusive) to `root`;
    /// `headHash` is the hash of entry `toSeq` (the ledger's head when anchored).
    event LedgerAnchored(
        bytes32 indexed assetId,
        uint64 index,
        uint64 fromSeq,
        uint64 toSeq,
        bytes32 root,
        bytes32 headHash
    );
}

/// @title The CISE asset registry: assets, their revenue splits and their anchored revenue ledgers.
interface IAssetRegistry is IAssetRegistryErrors, IAssetRegistryEvents {
    /// @notice A split as a change names it: beneficiaries ascending, and the ppm of each.
    struct Split {
        /// @dev Who shares the use fees, ascending.
        address[] beneficiaries;
        /// @dev Each one's share in parts per million.
        uint32[] ppm;
    }

    /// @notice One beneficiary's consent to a split change that lowers or removes its share: its EIP-712
    /// signature of `SplitConsent(bytes32 assetId,bytes32 splitHash,uint256 version,uint256 expiry)`
    /// (domain `CISE`/`1`/chainId/this registry), `splitHash` the new split's, `version` the new split
    /// version (the current one + 1, so a consent is used at most once).
    struct SplitConsent {
        /// @dev Whose consent: the beneficiary whose share is lowered.
        address beneficiary;
        /// @dev The last block the consent is valid in.
        uint256 expiry;
        /// @dev 65 bytes r || s || v, low-s.
        bytes signature;
    }

    // ----------------------------------------------------------------- assets

    /// @notice Register a new asset operated by the caller, with split version 1.
    /// @dev Split rules: 1..`MAX_BENEFICIARIES` beneficiaries, as many ppm as beneficiaries, each ppm
    /// > 0, summing to exactly `PPM_TOTAL`; beneficiaries strictly ascending by address (canonical order,
    /// no duplicates), none zero.
    /// @param assetId The asset's id, chosen by the operator: nonzero and never registered before.
    /// @param agent The machine's key (signs ledger entries, may anchor), not zero.
    /// @param metadataHash Hash of the asset's metadata document (only logged).
    /// @param metadataURI Where that document is (only logged).
    /// @param beneficiaries Who shares the use fees, ascending.
    /// @param ppm Each beneficiary's share in parts per million.
    function registerAsset(
        bytes32 assetId,
        address agent,
        bytes32 metadataHash,
        string calldata metadataURI,
        address[] calldata beneficiaries,
        uint32[] calldata ppm
    ) external;

    /// @notice Replace the asset's split by a new version (the current one + 1); operator only, with the
    /// consent of every beneficiary whose share it lowers or removes.
    /// @dev The split rules of `registerAsset` apply to the new split. The current split is given in full
    /// (only its hash is stored) and must hash to the current version's. A beneficiary whose share goes
    /// down (or away) must have signed a `SplitConsent`, except: the operator itself (raising others or
    /// adding a beneficiary at the operator's expense needs only the operator), and a financing pool that
    /// was repaid its cap or failed (what it receives goes on to the operator anyway). A financing pool
    /// not yet repaid its cap cannot be lowered by the operator at all
    /// (`AssetRegistrySplitLowersUnrepaidPool`). Consents come in the ascending order of their
    /// beneficiaries, exactly one per beneficiary that needs one.
    /// @param assetId The asset.
    /// @param current The current split (as its `SplitChanged` logged it).
    /// @param next The new split.
    /// @param consents The consents of the beneficiaries whose share goes down, ascending.
    function changeSplit(bytes32 assetId, Split calldata current, Split calldata next, SplitConsent[] calldata consents)
        external;

    /// @notice Replace the asset's agent key; operator only.
    /// @param assetId The asset.
    /// @param agent The new agent, not zero.
    function setAgent(bytes32 assetId, address agent) external;

    /// @notice Point the asset at a new metadata document; operator only. Only logged.
    /// @param assetId The asset.
    /// @param metadataHash Hash of the document.
    /// @param metadataURI Where the document is.
    function setMetadata(bytes32 assetId, bytes32 metadataHash, string calldata metadataURI) external;

    /// @notice Hand the asset over to another operator; operator only.
    /// @param assetId The asset.
    /// @param newOperator The new operator, not zero.
    function transferAsset(bytes32 assetId, address newOperator) external;

    // ----------------------------------------------------------------- ledger anchors

    /// @notice Anchor the Merkle root of the asset's revenue-ledger entries `fromSeq..toSeq`; by its
    /// agent or its operator.
    /// @dev Anchors cover the ledger without gap or overlap: `fromSeq` is the last anchored seq + 1
    /// (1 for the first anchor). The tree is OpenZeppelin's `MerkleProof` construction (sorted pairs,
    /// the leaves are the entry hashes, in seq order): see channels/codec/merkle.py.
    /// @param assetId The asset.
    /// @param fromSeq The first entry covered.
    /// @param toSeq The last entry covered, >= `fromSeq`.
    /// @param root The Merkle root over the entry hashes `fromSeq..toSeq`, not zero.
    /// @param headHash The hash of entry `toSeq` (only logged).
    function anchorLedger(bytes32 assetId, uint64 fromSeq, uint64 toSeq, bytes32 root, bytes32 headHash)
        external;

    // ----------------------------------------------------------------- views

    /// @notice The asset's state; reverts `AssetRegistryUnknownAsset` for an unknown id.
    /// @param assetId The asset.
    /// @return operator Who manages the asset.
    /// @return agent The machine's key.
    /// @return splitVersion The current split version (1 after registration).
    /// @return anchoredSeq The last anchored ledger entry (0: none yet).
    /// @return anchorCount How many anchors exist (they are numbered 0..anchorCount - 1).
    function assetOf(bytes32 assetId)
        external
        view
        returns (address operator, address agent, uint32 splitVersion, uint64 anchoredSeq, uint64 anchorCount);

    /// @notice `keccak256(abi.encode(beneficiaries, ppm))` of split `version` of the asset.
    /// @param assetId The asset.
    /// @param version A split version, 1..splitVersion.
    /// @return The split hash.
    function splitHashOf(bytes32 assetId, uint32 version) external view returns (bytes32);

    /// @notice The EIP-712 digest a beneficiary signs to consent to the asset's split becoming the split of
    /// hash `splitHash` as split version `version`, valid up to block `expiry`.
    /// @param assetId The asset.
    /// @param splitHash The new split's hash (`keccak256(abi.encode(beneficiaries, ppm))`).
    /// @param version The new split version (the current one + 1).
    /// @param expiry The last block the consent is valid in.
    /// @return The digest (`keccak256(0x1901 || domainSeparator || hashStruct(SplitConsent))`).
    function splitConsentDigest(bytes32 assetId, bytes32 splitHash, uint256 version, uint256 expiry)
        external
        view
        returns (bytes32);

    /// @notice Anchor number `index` of the asset.
    /// @param assetId The asset.
    /// @param index The anchor's number, 0..anchorCount - 1.
    /// @return fromSeq The first entry covered.
    /// @return toSeq The last entry covered.
    /// @return root The Merkle root over the entry hashes.
    function anchorOf(bytes32 assetId, uint64 index)
        external
        view
        returns (uint64 fromSeq, uint64 toSeq, bytes32 root);

    /// @notice Whether `proof` shows that `entryHash` is a leaf of anchor number `index` of the asset.
    /// @dev The leaf is the entry hash itself (not hashed again); it says nothing about the entry's seq,
    /// which the entry itself carries.
    /// @param assetId The asset.
    /// @param index The anchor's number.
    /// @param entryHash The ledger entry's hash.
    /// @param proof The sibling hashes from the leaf up to the root.
    /// @return True when the proof leads from `entryHash` to the anchor's root.
    function verifyEntry(bytes32 assetId, uint64 index, bytes32 entryHash, bytes32[] calldata proof)
        external
        view
        returns (bool);
}

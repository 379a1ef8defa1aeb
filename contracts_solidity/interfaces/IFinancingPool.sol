// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @title Custom errors of a CISE financing pool (and of its factory).
/// @notice Every rejection of a pool is one of these (a token or registry error may bubble up through
/// it); the off-chain client maps them. A rejected call moves nothing.
interface IFinancingPoolErrors {
    /// @notice The token or the registry given at creation is the zero address.
    error FinancingPoolZeroAddress();
    /// @notice The creator is not the asset's operator in the registry.
    error FinancingPoolNotOperator(address caller);
    /// @notice The target is zero or above `MAX_TARGET` (2^96 - 1 units).
    error FinancingPoolInvalidTarget(uint256 target);
    /// @notice The agreed return is below `MIN_RETURN_PPM` (1.0x) or above `MAX_RETURN_PPM` (10x).
    error FinancingPoolInvalidReturn(uint256 returnPpm);
    /// @notice The deadline (a block number) is not in the future.
    error FinancingPoolDeadlineNotInFuture(uint64 deadline, uint256 blockNumber);
    /// @notice An amount (target or contribution) that is not a multiple of the pool's `granule`: its
    /// agreed return `amount * returnPpm / 1e6` would not be a whole number of units (dust).
    error FinancingPoolInexactAmount(uint256 amount, uint256 granule);
    /// @notice A zero contribution or claim.
    error FinancingPoolZeroAmount();
    /// @notice The contributor is not an active member of the network (pools with a membership only).
    error FinancingPoolNotMember(address account);
    /// @notice A contribution after the deadline (`block.number > deadline`).
    error FinancingPoolDeadlinePassed(uint64 deadline, uint256 blockNumber);
    /// @notice A contribution to a pool that already reached its target.
    error FinancingPoolAlreadyFunded();
    /// @notice Repayments cannot be claimed: the pool was never funded.
    error FinancingPoolNotFunded();
    /// @notice A refund or `sync` before the outcome is known (open, before the deadline).
    error FinancingPoolStillOpen(uint64 deadline);
    /// @notice A refund from a pool that was funded.
    error FinancingPoolNotFailed();
    /// @notice The caller has no contribution left to refund.
    error FinancingPoolNothingToRefund(address account);
    /// @notice A pool's agreed share of the split is above `PPM_TOTAL`, or a named operator without one.
    error FinancingPoolInvalidShare(uint32 sharePpm);
    /// @notice A contribution to a pool with a share that raised its target and waits to be bound.
    error FinancingPoolTargetReached(bytes32 assetId);
    /// @notice `bind` on a pool without an agreed share (it was paid out at its target).
    error FinancingPoolNothingToBind();
    /// @notice `bind` on a pool already bound (to `assetId`).
    error FinancingPoolAlreadyBound(bytes32 assetId);
    /// @notice `bind` names another asset than the pool's.
    error FinancingPoolWrongAsset(bytes32 expected, bytes32 got);
    /// @notice `bind` before the pool raised its target.
    error FinancingPoolNotRaised(uint256 raised, uint256 target);
    /// @notice The split given to `bind` is not the asset's current split `version`.
    error FinancingPoolSplitMismatch(bytes32 assetId, uint32 version);
    /// @notice The asset's current split pays the pool `found` ppm, less than its agreed `sharePpm`.
    error FinancingPoolShareMissing(uint256 found, uint32 sharePpm);
    /// @notice A claim above what the caller is entitled to now.
    error FinancingPoolClaimAboveEntitlement(uint256 requested, uint256 entitled);
}

/// @title Events of a CISE financing pool (past tense, emitted right after the state change).
/// @notice Every event names the asset as its first indexed topic, like the asset registry's, so the
/// asset's history reads them by `(pool address, assetId)`; the factory's `FinancingPoolCreated` tells
/// which pools belong to an asset.
interface IFinancingPoolEvents {
    /// @notice `contributor` put in `amount` units; the pool has raised `raised` of its target.
    event PoolContributed(bytes32 indexed assetId, address indexed contributor, uint256 amount, uint256 raised);
    /// @notice The pool reached its target: `amount` (= the target) went to `recipient`.
    event PoolFunded(bytes32 indexed assetId, address indexed recipient, uint256 amount);
    /// @notice The pool failed (deadline passed below target): `contributor` took back `amount`.
    event PoolRefunded(bytes32 indexed assetId, address indexed contributor, uint256 amount);
    /// @notice `sync` accounted newly arrived tokens: `toContributors` became claimable pro rata,
    /// `toOperator` (beyond the cap, or anything arriving at a failed pool) went to `operator`;
    /// `repaid` is the running total owed to contributors (at most `cap`).
    event PoolSynced(
        bytes32 indexed assetId, uint256 toContributors, uint256 toOperator, address operator, uint256 repaid
    );
    /// @notice The contributors' cap (principal x agreed return) is reached: later receipts go to the operator.
    event PoolRepaid(bytes32 indexed assetId, uint256 cap);
    /// @notice `operator` bound the registered asset to the pool: its split `version` pays the pool
    /// `sharePpm` (at least the agreed share); `PoolFunded` follows in the same transaction.
    event PoolBound(bytes32 indexed assetId, address indexed operator, uint32 version, uint256 sharePpm);
    /// @notice `contributor` claimed `amount` units of repayment (its total claimed is `claimed`).
    event PoolClaimed(bytes32 indexed assetId, address indexed contributor, uint256 amount, uint256 claimed);
}

/// @title A CISE financing pool: members co-finance one asset and are repaid from its use fees.
interface IFinancingPool is IFinancingPoolErrors, IFinancingPoolEvents {
    /// @notice Where a pool stands: 0 open (raising), 1 funded (repaying), 2 failed (refunding),
    /// 3 raised (a pool with a share: target reached, waiting to be bound before its deadline).
    enum Status {
        Open,
        Funded,
        Failed,
        Raised
    }

    /// @notice A pool's terms, as the factory passes them to its constructor.
    /// @param assetId The asset financed (registered, or planned: its id as it will be registered).
    /// @param supplier Who receives the funds; zero for the asset's operator.
    /// @param operator Who must operate the asset and bind it (a pool with a share); zero otherwise.
    /// @param target Units to raise.
    /// @param deadline The last block a contribution (or the binding) is accepted in.
    /// @param returnPpm The agreed return in ppm of the principal.
    /// @param sharePpm The pool's agreed share of the asset's split; zero: paid out at the target.
    struct Terms {
        bytes32 assetId;
        address supplier;
        address operator;
        uint256 target;
        uint64 deadline;
        uint32 returnPpm;
        uint32 sharePpm;
    }

    /// @notice Contribute up to `amount` units (ERC20 `transferFrom` the caller: approve the pool first).
    /// @dev Takes `min(amount, target - raised)`; while `block.number <= deadline` and the target is not
    /// reached; an active member only when the pool has a membership. The contribution that reaches the
    /// target sends the whole target to the recipient (the supplier, or the asset's operator now).
    /// @param amount A positive multiple of `granule`.
    /// @return taken What was taken (the same multiple of `granule`, possibly less than `amount`).
    function contribute(uint256 amount) external returns (uint256 taken);

    /// @notice Bind the registered asset to a pool with a share (its named operator, the asset's operator
    /// now): the asset's current split must pay the pool at least `sharePpm`. The raised target goes to
    /// the recipient (the supplier, or the operator); the pool is funded and repaid like any other.
    /// @dev Before the deadline, once the target is raised, once. The split is given in full and checked
    /// against the registry's hash of the current version.
    /// @param assetId_ The pool's asset (a confirmation: another id reverts `FinancingPoolWrongAsset`).
    /// @param beneficiaries The asset's current split, as registered (ascending).
    /// @param ppm Each beneficiary's share.
    function bind(bytes32 assetId_, address[] calldata beneficiaries, uint32[] calldata ppm) external;

    /// @notice Take back the caller's whole contribution from a failed pool (deadline passed below target).
    /// @return amount What was paid back.
    function refund() external returns (uint256 amount);

    /// @notice Account the tokens that arrived since the last sync (the pool's shares of the asset's
    /// fees, paid as plain transfers). Anyone may call it; a call with nothing new does nothing.
    /// @dev Funded pool: up to `cap - repaid` become claimable by the contributors, the rest goes to the
    /// asset's current operator. Failed pool: everything beyond the unrefunded contributions goes to
    /// the operator (for a pool with a share, never bound: its named operator, as the asset may not
    /// exist). Reverts `FinancingPoolStillOpen` while the pool is open.
    /// @return toContributors Units added to the contributors' repayment.
    /// @return toOperator Units paid to the operator.
    function sync() external returns (uint256 toContributors, uint256 toOperator);

    /// @notice Claim `amount` units of the caller's repayment; never more than `claimable(caller)`.
    /// @param amount Positive, at most `claimable(msg.sender)`.
    function claim(uint256 amount) external;

    /// @notice What `account` may claim now: `repaid * contribution / target` (rounded down) minus what
    /// it claimed; 0 unless funded.
    /// @param account Any address.
    /// @return The units claimable.
    function claimable(address account) external view returns (uint256);

    /// @notice `account`'s position.
    /// @param account Any address.
    /// @return contributed Its contribution (kept after a refund, for the record).
    /// @return claimed Repayment claimed (funded pool) or refunded (failed pool).
    /// @return entitled Its total repayment so far (funded) or its refundable contribution (failed).
    /// @return cap Its total repayment at the cap: `contributed * returnPpm / 1e6`, exact.
    function positionOf(address account)
        external
        view
        returns (uint256 contributed, uint256 claimed, uint256 entitled, uint256 cap);

    /// @notice What the asset still owes the contributors: `cap - repaid` once funded, 0 before (and
    /// for a failed pool).
    /// @return The units still owed.
    function outstanding() external view returns (uint256);

    /// @notice The pool's state.
    /// @return status `Status` as uint8.
    /// @return raised Units contributed (the target once funded).
    /// @return repaid Units owed to contributors so far (<= `cap`).
    /// @return toOperator Units paid to the operator by `sync`.
    /// @return contributors How many accounts contributed.
    /// @return pending Units arrived and not yet synced.
    function poolState()
        external
        view
        returns (uint8 status, uint256 raised, uint256 repaid, uint256 toOperator, uint256 contributors, uint256 pending);
}

/// @title Custom errors of the CISE financing pool factory.
interface IFinancingPoolFactoryErrors {
    /// @notice The registry given at deployment is the zero address.
    error FinancingPoolFactoryZeroAddress();
    /// @notice The asset has no pool number `index`.
    error FinancingPoolFactoryUnknownPool(bytes32 assetId, uint256 index);
    /// @notice The caller is not an active member with the financier role (networks with a membership).
    error FinancingPoolFactoryNotFinancier(address caller);
    /// @notice `createPlannedPool` with a zero share (use `createPool`).
    error FinancingPoolFactoryZeroShare();
}

/// @title Events of the CISE financing pool factory.
interface IFinancingPoolFactoryEvents {
    /// @notice `creator` (the asset's operator) created `pool` for the asset: raising `target` units by
    /// block `deadline`, for `supplier` (zero: the operator), repaying `returnPpm` / 1e6 x principal.
    event FinancingPoolCreated(
        bytes32 indexed assetId,
        address indexed pool,
        address indexed creator,
        address supplier,
        uint256 target,
        uint64 deadline,
        uint32 returnPpm
    );
    /// @notice The pool just created (`FinancingPoolCreated` before it) is paid out only when `operator`
    /// binds the asset with at least `sharePpm` of its split for the pool.
    event PlannedPoolCreated(bytes32 indexed assetId, address indexed pool, address indexed operator, uint32 sharePpm);
}

/// @title The CISE financing pool factory: one per network, the record of which pools an asset has.
interface IFinancingPoolFactory is IFinancingPoolFactoryErrors, IFinancingPoolFactoryEvents {
    /// @notice Create a financing pool for an asset the caller operates, paid out when it reaches its
    /// target (the pool must then be put in the asset's split).
    /// @dev A financier only (with a membership: `FinancingPoolFactoryNotFinancier`). The pool's
    /// constructor checks everything else (`IFinancingPoolErrors`); its errors bubble up.
    /// @param assetId A registered asset operated by the caller.
    /// @param supplier Who receives the funds at the target; zero for the asset's operator at that time.
    /// @param target Units to raise: positive, <= 2^96 - 1, a multiple of the return's granule.
    /// @param deadline The last block a contribution is accepted in (> the current block).
    /// @param returnPpm Agreed return in ppm of the principal, 1,000,000 (1x) .. 10,000,000 (10x).
    /// @return pool The new pool's address (make it a beneficiary of the asset's split).
    function createPool(bytes32 assetId, address supplier, uint256 target, uint64 deadline, uint32 returnPpm)
        external
        returns (address pool);

    /// @notice Create a pool with an agreed share of the asset's split, for an asset registered or not
    /// yet (a planned asset): what it raises is held until `operator`, operating the registered asset,
    /// binds it (`IFinancingPool.bind`) before `deadline`; unbound at the deadline, it refunds.
    /// @dev A financier only. The pool's constructor checks the terms (errors as for `createPool`).
    /// @param assetId The asset's id, as it is or will be registered.
    /// @param operator Who must operate the asset and bind it, not zero.
    /// @param supplier Who receives the funds at binding; zero for the operator.
    /// @param target Units to raise (as for `createPool`).
    /// @param deadline The last block a contribution or the binding is accepted in.
    /// @param returnPpm Agreed return (as for `createPool`).
    /// @param sharePpm The pool's share of the asset's split, 1 .. 1,000,000 ppm.
    /// @return pool The new pool's address (put it in the asset's split with `sharePpm`).
    function createPlannedPool(
        bytes32 assetId,
        address operator,
        address supplier,
        uint256 target,
        uint64 deadline,
        uint32 returnPpm,
        uint32 sharePpm
    ) external returns (address pool);

    /// @notice How many pools the asset has had.
    /// @param assetId Any asset id.
    /// @return The count.
    function poolCount(bytes32 assetId) external view returns (uint256);

    /// @notice The asset's pool number `index` (0 .. poolCount - 1), in creation order.
    /// @param assetId The asset.
    /// @param index The pool's number.
    /// @return The pool's address.
    function poolOf(bytes32 assetId, uint256 index) external view returns (address);

    /// @notice Whether `pool` was created by this factory.
    /// @param pool Any address.
    /// @return True for a pool of this factory.
    function isPool(address pool) external view returns (bool);
}

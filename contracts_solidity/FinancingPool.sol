// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";

import {IAssetRegistry} from "./interfaces/IAssetRegistry.sol";
import {IFinancingPool, IFinancingPoolFactory} from "./interfaces/IFinancingPool.sol";
import {IMembership} from "./interfaces/IMembership.sol";

/// @title CISE financing pool
/// @notice Co-financing of one asset (issue 5, DESIGN §1 "financier"): members contribute towards a
/// target until a deadline (a block number); at the target the whole target goes to the supplier (or the
/// asset's operator); below it after the deadline every contributor takes its contribution back. A funded
/// pool is a beneficiary in the asset's split: its shares arrive as plain token transfers, `sync` accounts
/// them, and the contributors claim them pro rata up to the cap (principal x agreed return); beyond the
/// cap, `sync` sends receipts on to the asset's operator.
/// A pool with an agreed share (`sharePpm > 0`, created by `createPlannedPool`; decision note
/// 2026-12-07-financing-innovations.md) may finance an asset that is not registered yet (a planned asset):
/// reaching the target only holds the funds (status Raised); they go to the supplier when the named
/// operator binds the registered asset, whose current split must pay the pool at least `sharePpm`. Not
/// bound by the deadline, the pool fails and every contributor takes its contribution back.
/// @dev Rounding (decision note 2026-11-26-financing-pool.md), no unit is ever created or lost:
///  - The target and every contribution are multiples of `granule` = 1e6 / gcd(returnPpm, 1e6), so each
///    contributor's cap `contribution * returnPpm / 1e6` and the pool's `cap` are whole numbers and the
///    caps sum to `cap` exactly; an amount that is not is rejected (`FinancingPoolInexactAmount`).
///  - A contributor's repayment so far is `repaid * contribution / target`, rounded down. The units
///    rounded away (fewer than the number of contributors) stay in the pool, owed: they become claimable
///    as `repaid` grows, and at `repaid == cap` every floor is exact, so the claims sum to `cap`.
///  - `_tracked` is the pool's token balance as accounted; `sync` accounts `balanceOf(this) - _tracked`.
///    Invariant: tokens held = `_tracked` + not yet synced; `_tracked` = unrefunded contributions (open or
///    failed), or `repaid - claimed` in total (funded).
/// Storage: slot 0 raised (128) ‖ contributors (64) ‖ funded (8); slot 1 repaid (128) ‖ toOperator (128);
/// slot 2 tracked; one slot per contributor: contributed (128) ‖ claimed (128).
contract FinancingPool is IFinancingPool {
    using SafeERC20 for IERC20;

    /// @notice Parts per million of the principal (DESIGN §2).
    uint256 public constant PPM_TOTAL = 1_000_000;
    /// @notice Lowest agreed return: the principal back (1x).
    uint256 public constant MIN_RETURN_PPM = 1_000_000;
    /// @notice Highest agreed return: 10x.
    uint256 public constant MAX_RETURN_PPM = 10_000_000;
    /// @notice Largest target, so that every product below fits easily.
    uint256 public constant MAX_TARGET = type(uint96).max;

    struct Position {
        uint128 contributed;
        uint128 claimed;
    }

    /// @notice The network's token (6 decimals).
    IERC20 public immutable token;
    /// @notice The asset registry that knows the asset's operator.
    IAssetRegistry public immutable registry;
    /// @notice The membership contract whose active members may contribute; zero: anyone.
    IMembership public immutable membership;
    /// @notice The asset financed.
    bytes32 public immutable assetId;
    /// @notice Who receives the target when reached; zero: the asset's operator at that time.
    address public immutable supplier;
    /// @notice Units to raise.
    uint256 public immutable target;
    /// @notice The last block in which a contribution is accepted.
    uint64 public immutable deadline;
    /// @notice The agreed return in ppm of the principal (1,080,000 = 1.08x).
    uint256 public immutable returnPpm;
    /// @notice The pool's agreed share of the asset's split in ppm; zero for a pool paid out at its
    /// target without binding (`createPool`).
    uint32 public immutable sharePpm;
    /// @notice Who must operate the asset and bind it (pools with a share); zero otherwise.
    address public immutable plannedOperator;
    /// @notice What the contributors get back in total: `target * returnPpm / 1e6` (exact).
    uint256 public immutable cap;
    /// @notice Every amount is a multiple of this: 1e6 / gcd(returnPpm, 1e6).
    uint256 public immutable granule;

    uint128 private _raised;
    uint64 private _contributors;
    bool private _funded;
    uint128 private _repaid;
    uint128 private _toOperator;
    uint256 private _tracked;
    mapping(address account => Position) private _positions;

    /// @param token_ The network's token.
    /// @param registry_ The asset registry.
    /// @param membership_ The membership contract; zero for a pool open to anyone.
    /// @param creator Who creates the pool (the factory passes its caller): for a pool without a share,
    /// the asset's operator.
    /// @param terms The pool's terms (see `IFinancingPoolFactory.createPool` and `createPlannedPool`).
    constructor(
        IERC20 token_,
        IAssetRegistry registry_,
        IMembership membership_,
        address creator,
        Terms memory terms
    ) {
        if (address(token_) == address(0) || address(registry_) == address(0)) revert FinancingPoolZeroAddress();
        if (terms.sharePpm == 0) {
            // Paid out at the target: only the operator may open it (an unknown asset reverts
            // AssetRegistryUnknownAsset).
            // slither-disable-next-line unused-return
            (address operator,,,,) = registry_.assetOf(terms.assetId);
            if (creator != operator) revert FinancingPoolNotOperator(creator);
            if (terms.operator != address(0)) revert FinancingPoolInvalidShare(terms.sharePpm);
        } else {
            // Paid out at binding: the asset may not exist yet; its operator-to-be is named.
            if (terms.sharePpm > PPM_TOTAL) revert FinancingPoolInvalidShare(terms.sharePpm);
            if (terms.operator == address(0)) revert FinancingPoolZeroAddress();
        }
        if (terms.target == 0 || terms.target > MAX_TARGET) revert FinancingPoolInvalidTarget(terms.target);
        if (terms.returnPpm < MIN_RETURN_PPM || terms.returnPpm > MAX_RETURN_PPM) {
            revert FinancingPoolInvalidReturn(terms.returnPpm);
        }
        if (terms.deadline <= block.number) revert FinancingPoolDeadlineNotInFuture(terms.deadline, block.number);
        uint256 granule_ = PPM_TOTAL / _gcd(terms.returnPpm, PPM_TOTAL);
        if (terms.target % granule_ != 0) revert FinancingPoolInexactAmount(terms.target, granule_);

        token = token_;
        registry = registry_;
        membership = membership_;
        assetId = terms.assetId;
        // Zero is meaningful: the asset's operator receives the funds.
        // slither-disable-next-line missing-zero-check
        supplier = terms.supplier;
        target = terms.target;
        deadline = terms.deadline;
        returnPpm = terms.returnPpm;
        sharePpm = terms.sharePpm;
        plannedOperator = terms.operator;
        cap = terms.target * terms.returnPpm / PPM_TOTAL;
        granule = granule_;
    }

    // ------------------------------------------------------------------ raising

    /// @inheritdoc IFinancingPool
    function contribute(uint256 amount) external returns (uint256 taken) {
        if (_funded) revert FinancingPoolAlreadyFunded();
        if (block.number > deadline) revert FinancingPoolDeadlinePassed(deadline, block.number);
        // Only a pool with a share stops here: one without is funded when it reaches the target.
        if (_raised == target) revert FinancingPoolTargetReached(assetId);
        if (amount == 0) revert FinancingPoolZeroAmount();
        if (amount % granule != 0) revert FinancingPoolInexactAmount(amount, granule);
        _checkMember(msg.sender);
        uint256 raised = _raised;
        uint256 remaining = target - raised;
        taken = amount < remaining ? amount : remaining;
        raised += taken;
        // A pool with a share holds what it raised until it is bound (`bind` pays the recipient).
        bool reached = raised == target && sharePpm == 0;
        address recipient = reached ? _recipient() : address(0);

        Position storage position = _positions[msg.sender];
        if (position.contributed == 0) ++_contributors;
        // Fits: contributed <= raised <= target <= 2^96 - 1.
        position.contributed += uint128(taken);
        _raised = uint128(raised);
        _tracked += taken;
        emit PoolContributed(assetId, msg.sender, taken, raised);
        if (reached) {
            _funded = true;
            _tracked -= raised;
            emit PoolFunded(assetId, recipient, raised);
        }

        token.safeTransferFrom(msg.sender, address(this), taken);
        if (reached) token.safeTransfer(recipient, raised);
    }

    /// @inheritdoc IFinancingPool
    function refund() external returns (uint256 amount) {
        if (_funded) revert FinancingPoolNotFailed();
        if (block.number <= deadline) revert FinancingPoolStillOpen(deadline);
        Position storage position = _positions[msg.sender];
        amount = position.contributed - position.claimed;
        if (amount == 0) revert FinancingPoolNothingToRefund(msg.sender);

        position.claimed = position.contributed;
        _tracked -= amount;
        emit PoolRefunded(assetId, msg.sender, amount);

        token.safeTransfer(msg.sender, amount);
    }

    /// @inheritdoc IFinancingPool
    function bind(bytes32 assetId_, address[] calldata beneficiaries, uint32[] calldata ppm) external {
        uint32 share = sharePpm;
        if (share == 0) revert FinancingPoolNothingToBind();
        if (_funded) revert FinancingPoolAlreadyBound(assetId);
        if (assetId_ != assetId) revert FinancingPoolWrongAsset(assetId, assetId_);
        if (block.number > deadline) revert FinancingPoolDeadlinePassed(deadline, block.number);
        uint256 raised = _raised;
        if (raised != target) revert FinancingPoolNotRaised(raised, target);
        // An unknown asset reverts AssetRegistryUnknownAsset.
        // slither-disable-next-line unused-return
        (address operator,, uint32 version,,) = registry.assetOf(assetId_);
        if (msg.sender != operator || operator != plannedOperator) revert FinancingPoolNotOperator(msg.sender);
        if (registry.splitHashOf(assetId_, version) != keccak256(abi.encode(beneficiaries, ppm))) {
            revert FinancingPoolSplitMismatch(assetId_, version);
        }
        uint256 found = 0;
        for (uint256 i = 0; i < beneficiaries.length && i < ppm.length; ++i) {
            if (beneficiaries[i] == address(this)) found = ppm[i];
        }
        if (found < share) revert FinancingPoolShareMissing(found, share);

        address recipient = _recipient();
        _funded = true;
        _tracked -= raised;
        emit PoolBound(assetId_, operator, version, found);
        emit PoolFunded(assetId_, recipient, raised);

        token.safeTransfer(recipient, raised);
    }

    // ------------------------------------------------------------------ repaying

    /// @inheritdoc IFinancingPool
    function sync() external returns (uint256 toContributors, uint256 toOperator) {
        bool funded = _funded;
        if (!funded && block.number <= deadline) revert FinancingPoolStillOpen(deadline);
        uint256 balance = token.balanceOf(address(this));
        uint256 tracked = _tracked;
        if (balance <= tracked) return (0, 0);
        uint256 arrived = balance - tracked;
        uint256 repaid = _repaid;
        if (funded) {
            uint256 room = cap - repaid;
            toContributors = arrived < room ? arrived : room;
        }
        toOperator = arrived - toContributors;
        address operator = toOperator > 0 ? _operator() : address(0);

        repaid += toContributors;
        _repaid = uint128(repaid); // <= cap < 2^100
        // Bounded by the token's supply; SafeCast reverts rather than wrap.
        _toOperator = SafeCast.toUint128(_toOperator + toOperator);
        _tracked = tracked + toContributors;
        emit PoolSynced(assetId, toContributors, toOperator, operator, repaid);
        // repaid <= cap always: `>=` is `==` here.
        if (toContributors > 0 && repaid >= cap) emit PoolRepaid(assetId, repaid);

        if (toOperator > 0) token.safeTransfer(operator, toOperator);
    }

    /// @inheritdoc IFinancingPool
    function claim(uint256 amount) external {
        if (!_funded) revert FinancingPoolNotFunded();
        if (amount == 0) revert FinancingPoolZeroAmount();
        Position storage position = _positions[msg.sender];
        uint256 claimed = position.claimed;
        uint256 entitled = _entitlement(position.contributed) - claimed;
        if (amount > entitled) revert FinancingPoolClaimAboveEntitlement(amount, entitled);

        claimed += amount;
        position.claimed = uint128(claimed); // <= the contributor's cap < 2^100
        _tracked -= amount;
        emit PoolClaimed(assetId, msg.sender, amount, claimed);

        token.safeTransfer(msg.sender, amount);
    }

    // ------------------------------------------------------------------ views

    /// @inheritdoc IFinancingPool
    function claimable(address account) external view returns (uint256) {
        if (!_funded) return 0;
        Position storage position = _positions[account];
        return _entitlement(position.contributed) - position.claimed;
    }

    /// @inheritdoc IFinancingPool
    function positionOf(address account)
        external
        view
        returns (uint256 contributed, uint256 claimed, uint256 entitled, uint256 cap_)
    {
        Position storage position = _positions[account];
        contributed = position.contributed;
        claimed = position.claimed;
        if (_funded) entitled = _entitlement(contributed);
        else if (block.number > deadline) entitled = contributed;
        cap_ = contributed * returnPpm / PPM_TOTAL;
    }

    /// @inheritdoc IFinancingPool
    function outstanding() external view returns (uint256) {
        return _funded ? cap - _repaid : 0;
    }

    /// @inheritdoc IFinancingPool
    function poolState()
        external
        view
        returns (
            uint8 status,
            uint256 raised,
            uint256 repaid,
            uint256 toOperator,
            uint256 contributors,
            uint256 pending
        )
    {
        if (_funded) status = uint8(Status.Funded);
        else if (block.number > deadline) status = uint8(Status.Failed);
        else if (_raised == target) status = uint8(Status.Raised);
        else status = uint8(Status.Open);
        uint256 balance = token.balanceOf(address(this));
        uint256 tracked = _tracked;
        return (status, _raised, _repaid, _toOperator, _contributors, balance > tracked ? balance - tracked : 0);
    }

    // ------------------------------------------------------------------ internals

    /// @dev A contributor's total repayment so far: floor(repaid * contributed / target).
    function _entitlement(uint256 contributed) private view returns (uint256) {
        return uint256(_repaid) * contributed / target;
    }

    /// @dev The asset's operator now (it may have been transferred since the pool was created); for a
    /// pool with a share not bound (its asset may never have been registered), the named operator.
    function _operator() private view returns (address operator) {
        if (sharePpm != 0 && !_funded) return plannedOperator;
        // slither-disable-next-line unused-return
        (operator,,,,) = registry.assetOf(assetId);
    }

    /// @dev A pool with a membership admits its active members only.
    function _checkMember(address account) private view {
        IMembership members = membership;
        if (address(members) != address(0) && !members.isActiveMember(account)) {
            revert FinancingPoolNotMember(account);
        }
    }

    function _recipient() private view returns (address) {
        address supplier_ = supplier;
        return supplier_ == address(0) ? _operator() : supplier_;
    }

    function _gcd(uint256 a, uint256 b) private pure returns (uint256) {
        while (b != 0) (a, b) = (b, a % b);
        return a;
    }
}

/// @title CISE financing pool factory
/// @notice One per network: creates an asset's financing pools and records them, so that an asset's
/// history knows its pools from one address (`FinancingPoolCreated`, `poolOf`). With a membership, only
/// active members holding the financier role may create pools (issue 19).
/// @dev Pools are full contracts (`new`), not clones: their parameters are immutables, which keeps
/// `contribute`, `sync` and `claim` cheap; creating one costs about a million gas, once per financing.
contract FinancingPoolFactory is IFinancingPoolFactory {
    /// @notice `Membership.ROLE_FINANCIER`: the role a member needs to create pools.
    uint16 public constant ROLE_FINANCIER = 32;
    /// @notice `Membership.Status.Active` as stored.
    uint8 private constant _ACTIVE = 2;

    /// @notice The network's token.
    IERC20 public immutable token;
    /// @notice The network's asset registry.
    IAssetRegistry public immutable registry;
    /// @notice The network's membership contract (zero: pools open to anyone).
    IMembership public immutable membership;

    mapping(bytes32 assetId => address[]) private _pools;
    mapping(address pool => bool) private _isPool;

    /// @param token_ The network's token.
    /// @param registry_ The network's asset registry.
    /// @param membership_ The network's membership contract, or zero for pools open to anyone.
    constructor(IERC20 token_, IAssetRegistry registry_, IMembership membership_) {
        if (address(token_) == address(0) || address(registry_) == address(0)) {
            revert FinancingPoolFactoryZeroAddress();
        }
        token = token_;
        registry = registry_;
        membership = membership_;
    }

    /// @inheritdoc IFinancingPoolFactory
    function createPool(bytes32 assetId, address supplier, uint256 target, uint64 deadline, uint32 returnPpm)
        external
        returns (address pool)
    {
        pool = _create(IFinancingPool.Terms(assetId, supplier, address(0), target, deadline, returnPpm, 0));
    }

    /// @inheritdoc IFinancingPoolFactory
    function createPlannedPool(
        bytes32 assetId,
        address operator,
        address supplier,
        uint256 target,
        uint64 deadline,
        uint32 returnPpm,
        uint32 sharePpm
    ) external returns (address pool) {
        if (sharePpm == 0) revert FinancingPoolFactoryZeroShare();
        pool = _create(IFinancingPool.Terms(assetId, supplier, operator, target, deadline, returnPpm, sharePpm));
        emit PlannedPoolCreated(assetId, pool, operator, sharePpm);
    }

    /// @dev The role check, then the pool (its constructor checks the terms), recorded.
    function _create(IFinancingPool.Terms memory terms) private returns (address pool) {
        IMembership members = membership;
        if (address(members) != address(0)) {
            // slither-disable-next-line unused-return
            (uint8 status, uint16 roles,,) = members.memberOf(msg.sender);
            if (status != _ACTIVE || roles & ROLE_FINANCIER == 0) revert FinancingPoolFactoryNotFinancier(msg.sender);
        }
        pool = address(new FinancingPool(token, registry, members, msg.sender, terms));
        _pools[terms.assetId].push(pool);
        _isPool[pool] = true;
        emit FinancingPoolCreated(
            terms.assetId, pool, msg.sender, terms.supplier, terms.target, terms.deadline, terms.returnPpm
        );
    }

    /// @inheritdoc IFinancingPoolFactory
    function poolCount(bytes32 assetId) external view returns (uint256) {
        return _pools[assetId].length;
    }

    /// @inheritdoc IFinancingPoolFactory
    function poolOf(bytes32 assetId, uint256 index) external view returns (address) {
        address[] storage pools = _pools[assetId];
        if (index >= pools.length) revert FinancingPoolFactoryUnknownPool(assetId, index);
        return pools[index];
    }

    /// @inheritdoc IFinancingPoolFactory
    function isPool(address pool) external view returns (bool) {
        return _isPool[pool];
    }
}

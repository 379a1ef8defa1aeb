// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {AssetRegistry} from "./AssetRegistry.sol";
import {IGovernedAssetRegistry, IPoolFactoryView, IPoolRepaymentView} from "./interfaces/IGovernedAssetRegistry.sol";
import {IMembership} from "./interfaces/IMembership.sol";

/// @title CISE asset registry of a governed network
/// @notice The asset registry a CISE network deploys: every rule of `AssetRegistry`, plus DESIGN §4's
/// membership: only an active member registers an asset or receives one by transfer. An asset already
/// registered keeps changing its split and anchoring its ledger whatever its operator's membership
/// becomes (its beneficiaries' revenue record must not stop). Split changes: the network's financing
/// pools not yet repaid their cap are protected from the operator, and the members (the timelock) may
/// change any asset's split without consents: by an ordinary proposal (`changeSplitByGovernance`, on the
/// governor's ordinary list) except lowering such a pool, which only a constitutional proposal may
/// (`changeSplitByConstitution`, not on the list).
/// @dev Reads the membership contract at each registration (~5k gas, on a ~110k operation) rather than
/// keeping a mirror as the channel manager does for its far more frequent opens.
contract GovernedAssetRegistry is AssetRegistry, IGovernedAssetRegistry {
    /// @notice The network's membership contract.
    IMembership public immutable membership;
    /// @notice Who may change any split without consents: the network's timelock.
    address public immutable governance;

    /// @dev `IFinancingPool.Status.Failed`: the deadline passed below the target.
    uint8 private constant POOL_FAILED = 2;

    IPoolFactoryView private _poolFactory;

    /// @param membership_ The network's membership contract.
    /// @param governance_ The network's timelock.
    /// @param poolFactory_ The network's financing pool factory (zero: none yet; see `setPoolFactory`).
    constructor(IMembership membership_, address governance_, IPoolFactoryView poolFactory_) {
        if (address(membership_) == address(0)) revert AssetRegistryZeroMembership();
        if (governance_ == address(0)) revert AssetRegistryZeroGovernance();
        membership = membership_;
        governance = governance_;
        _poolFactory = poolFactory_;
    }

    /// @inheritdoc IGovernedAssetRegistry
    function changeSplitByGovernance(bytes32 assetId, Split calldata current, Split calldata next) external {
        _changeSplitAsGovernance(assetId, current, next, ChangeBy.Governance);
    }

    /// @inheritdoc IGovernedAssetRegistry
    function changeSplitByConstitution(bytes32 assetId, Split calldata current, Split calldata next) external {
        _changeSplitAsGovernance(assetId, current, next, ChangeBy.Constitution);
    }

    /// @inheritdoc IGovernedAssetRegistry
    function setPoolFactory(IPoolFactoryView poolFactory_) external {
        if (msg.sender != governance) revert AssetRegistryNotGovernance(msg.sender);
        _poolFactory = poolFactory_;
        emit PoolFactorySet(address(poolFactory_));
    }

    /// @inheritdoc IGovernedAssetRegistry
    function poolFactory() external view returns (IPoolFactoryView) {
        return _poolFactory;
    }

    /// @dev Only active members register assets or take them over.
    function _checkMembership(address account) internal view override {
        if (!membership.isActiveMember(account)) revert AssetRegistryNotMember(account);
    }

    /// @dev A pool of the network's factory is `Unrepaid` until its synced repayments reach its cap,
    /// unless it failed (a failed pool repays nobody: what it receives goes to the operator); an open
    /// pool (still raising) is `Unrepaid`.
    function _poolStanding(address beneficiary) internal view override returns (PoolStanding) {
        IPoolFactoryView factory = _poolFactory;
        // Called once per lowered beneficiary (at most 32), on the network's own factory and pools.
        // slither-disable-next-line calls-loop
        if (address(factory) == address(0) || !factory.isPool(beneficiary)) return PoolStanding.NotPool;
        IPoolRepaymentView pool = IPoolRepaymentView(beneficiary);
        // Only the status and what was repaid tell whether the pool still waits for its cap.
        // slither-disable-next-line calls-loop,unused-return
        (uint8 status,, uint256 repaid,,,) = pool.poolState();
        if (status == POOL_FAILED) return PoolStanding.Settled;
        // slither-disable-next-line calls-loop
        return repaid < pool.cap() ? PoolStanding.Unrepaid : PoolStanding.Settled;
    }

    function _changeSplitAsGovernance(bytes32 assetId, Split calldata current, Split calldata next, ChangeBy by)
        private
    {
        if (msg.sender != governance) revert AssetRegistryNotGovernance(msg.sender);
        SplitConsent[] calldata none;
        // A governance change takes no consents: an empty calldata array (offset and length 0).
        assembly ("memory-safe") {
            none.offset := 0
            none.length := 0
        }
        _changeSplit(assetId, _requireKnown(assetId), current, next, none, by);
    }
}

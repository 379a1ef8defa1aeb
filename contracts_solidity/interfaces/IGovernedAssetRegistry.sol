// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {IAssetRegistry} from "./IAssetRegistry.sol";

/// @title What the registry reads of the network's financing pool factory (`IPoolFactoryView`).
/// @notice Declared here, not imported, so that the registry's code does not change with the pool's.
interface IPoolFactoryView {
    /// @notice Whether `pool` was created by this factory.
    /// @param pool Any address.
    /// @return True for a pool of this factory.
    function isPool(address pool) external view returns (bool);
}

/// @title What the registry reads of a financing pool (`IFinancingPool.poolState` and `cap`).
interface IPoolRepaymentView {
    /// @notice The pool's state (see `IFinancingPool.poolState`).
    /// @return status 0 open, 1 funded, 2 failed (3 raised, waiting to be bound).
    /// @return raised Units contributed.
    /// @return repaid Units owed to contributors so far (<= `cap`).
    /// @return toOperator Units paid to the operator by `sync`.
    /// @return contributors How many accounts contributed.
    /// @return pending Units arrived and not yet synced.
    function poolState()
        external
        view
        returns (uint8 status, uint256 raised, uint256 repaid, uint256 toOperator, uint256 contributors, uint256 pending);

    /// @notice What the contributors get back in total: target x agreed return.
    /// @return The cap.
    function cap() external view returns (uint256);
}

/// @title Custom errors a governed network's asset registry adds to the asset registry's.
/// @notice Apart from `IAssetRegistryErrors` so that the plain registry's error set stays its own; a
/// client of a governed network decodes with the `GovernedAssetRegistry` ABI, which has both.
interface IGovernedAssetRegistryErrors {
    /// @notice `account` is not an active member of the network (never admitted, suspended or expelled):
    /// it cannot register an asset nor receive one by transfer.
    error AssetRegistryNotMember(address account);
    /// @notice The membership address given at deployment is zero.
    error AssetRegistryZeroMembership();
    /// @notice The governance (timelock) address given at deployment is zero.
    error AssetRegistryZeroGovernance();
    /// @notice `caller` is not the network's governance (its timelock).
    error AssetRegistryNotGovernance(address caller);
}

/// @title Events a governed network's asset registry adds.
interface IGovernedAssetRegistryEvents {
    /// @notice The registry now asks `factory` which beneficiaries are financing pools (zero: none).
    event PoolFactorySet(address indexed factory);
}

/// @title What a governed network's asset registry adds: membership, pool protection, governance.
interface IGovernedAssetRegistry is IAssetRegistry, IGovernedAssetRegistryErrors, IGovernedAssetRegistryEvents {
    /// @notice Replace an asset's split without consents, by an ordinary proposal (the timelock only):
    /// for a beneficiary that is a contract or does not answer. Lowering a financing pool not yet repaid
    /// its cap is refused (`AssetRegistrySplitLowersUnrepaidPool`).
    /// @param assetId The asset.
    /// @param current The current split (checked against the stored hash: the members vote on a change
    /// of the split they saw).
    /// @param next The new split (the split rules apply).
    function changeSplitByGovernance(bytes32 assetId, Split calldata current, Split calldata next) external;

    /// @notice Replace an asset's split without consents and without pool protection, by a constitutional
    /// proposal (the timelock only; this call is not on the governor's ordinary list).
    /// @param assetId The asset.
    /// @param current The current split.
    /// @param next The new split (the split rules apply).
    function changeSplitByConstitution(bytes32 assetId, Split calldata current, Split calldata next) external;

    /// @notice Name the network's financing pool factory (the timelock only; constitutional, since it
    /// decides which beneficiaries are protected).
    /// @param poolFactory_ The factory; zero for none.
    function setPoolFactory(IPoolFactoryView poolFactory_) external;

    /// @notice The financing pool factory whose pools are protected (zero: none).
    /// @return The factory.
    function poolFactory() external view returns (IPoolFactoryView);
}

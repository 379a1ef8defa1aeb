// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @title Custom errors a governed network's asset registry adds to the asset registry's.
/// @notice Apart from `IAssetRegistryErrors` so that the plain registry's error set stays its own; a
/// client of a governed network decodes with the `GovernedAssetRegistry` ABI, which has both.
interface IGovernedAssetRegistryErrors {
    /// @notice `account` is not an active member of the network (never admitted, suspended or expelled):
    /// it cannot register an asset nor receive one by transfer.
    error AssetRegistryNotMember(address account);
    /// @notice The membership address given at deployment is zero.
    error AssetRegistryZeroMembership();
}

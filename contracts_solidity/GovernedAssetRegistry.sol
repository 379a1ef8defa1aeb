// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {AssetRegistry} from "./AssetRegistry.sol";
import {IGovernedAssetRegistryErrors} from "./interfaces/IGovernedAssetRegistry.sol";
import {IMembership} from "./interfaces/IMembership.sol";

/// @title CISE asset registry of a governed network
/// @notice The asset registry a CISE network deploys: every rule of `AssetRegistry`, plus DESIGN §4's
/// membership: only an active member registers an asset or receives one by transfer. An asset already
/// registered keeps changing its split and anchoring its ledger whatever its operator's membership
/// becomes (its beneficiaries' revenue record must not stop).
/// @dev Reads the membership contract at each registration (~5k gas, on a ~110k operation) rather than
/// keeping a mirror as the channel manager does for its far more frequent opens.
contract GovernedAssetRegistry is AssetRegistry, IGovernedAssetRegistryErrors {
    /// @notice The network's membership contract.
    IMembership public immutable membership;

    /// @param membership_ The network's membership contract.
    constructor(IMembership membership_) {
        if (address(membership_) == address(0)) revert AssetRegistryZeroMembership();
        membership = membership_;
    }

    /// @dev Only active members register assets or take them over.
    function _checkMembership(address account) internal view override {
        if (!membership.isActiveMember(account)) revert AssetRegistryNotMember(account);
    }
}

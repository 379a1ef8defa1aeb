// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";

import {ChannelManager} from "./ChannelManager.sol";
import {IGovernedChannelManager} from "./interfaces/IGovernedChannelManager.sol";

/// @title CISE channel manager of a governed network
/// @notice The channel manager a CISE network deploys: every rule of `ChannelManager`, plus DESIGN §4's
/// membership (both participants of an open must be active members) and a challenge period the members
/// set through governance, within the manager's hard bounds. Deposits, withdraws, closes, settles and
/// unlocks never look at membership: a suspended or expelled member gets all its funds out.
/// @dev Membership is mirrored here rather than read from the membership contract at each open: the
/// membership contract (immutable `membership`) pushes every change of an account's active status in the
/// same transaction as the change, so an open reads one slot of this contract per participant (2 x 2.1k
/// gas) instead of calling out (~7.5k gas for both).
contract GovernedChannelManager is ChannelManager, IGovernedChannelManager {
    /// @inheritdoc IGovernedChannelManager
    address public immutable membership;
    /// @inheritdoc IGovernedChannelManager
    address public immutable governance;

    mapping(address account => bool) private _activeMembers;

    /// @param token_ The network's ERC20 token.
    /// @param settleTimeout_ The initial challenge period in blocks, within the hard bounds.
    /// @param membership_ The membership contract (deployed after this one: its address is precomputed).
    /// @param governance_ The timelock that executes the network's passed proposals.
    constructor(IERC20 token_, uint256 settleTimeout_, address membership_, address governance_)
        ChannelManager(token_, settleTimeout_)
    {
        if (membership_ == address(0) || governance_ == address(0)) revert ChannelManagerZeroGovernance();
        membership = membership_;
        governance = governance_;
    }

    /// @inheritdoc IGovernedChannelManager
    function setSettleTimeout(uint256 newSettleTimeout) external {
        if (msg.sender != governance) revert ChannelManagerNotGovernance(msg.sender);
        _setSettleTimeout(newSettleTimeout);
    }

    /// @inheritdoc IGovernedChannelManager
    function setMemberActive(address account, bool active) external {
        if (msg.sender != membership) revert ChannelManagerNotMembership(msg.sender);
        // The membership contract emits the event that says why (admitted, suspended, ...).
        _activeMembers[account] = active;
    }

    /// @inheritdoc IGovernedChannelManager
    function isMember(address account) external view returns (bool) {
        return _activeMembers[account];
    }

    /// @dev Only active members open channels, and only to active members.
    function _checkMembership(address account) internal view override {
        if (!_activeMembers[account]) revert ChannelManagerNotMember(account);
    }
}

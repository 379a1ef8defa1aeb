// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";

import {ITreasury} from "./interfaces/ITreasury.sol";

/// @title CISE community treasury
/// @notice Holds the community's proceeds: the governed part (`NetworkParameters.treasuryFeePpm`) of
/// every hub's fee income, which hubs send at each settlement round as plain token transfers. Only the
/// network's timelock pays out, so every payout is a passed proposal.
/// @dev No deposit function: a token transfer is the deposit (the token's Transfer event records it).
/// The balance is the token's `balanceOf(this)`; nothing is accounted separately, so no unit can be
/// stranded by a transfer that bypassed an accounting function.
contract Treasury is ITreasury {
    using SafeERC20 for IERC20;

    /// @inheritdoc ITreasury
    IERC20 public immutable token;
    /// @inheritdoc ITreasury
    address public immutable governance;

    /// @param token_ The network's token.
    /// @param governance_ The timelock that executes the network's passed proposals.
    constructor(IERC20 token_, address governance_) {
        if (address(token_) == address(0) || governance_ == address(0)) revert TreasuryZeroAddress();
        token = token_;
        governance = governance_;
    }

    /// @inheritdoc ITreasury
    function payOut(address to, uint256 amount, string calldata reason) external {
        if (msg.sender != governance) revert TreasuryNotGovernance(msg.sender);
        if (to == address(0)) revert TreasuryZeroRecipient();
        if (amount == 0) revert TreasuryZeroAmount();
        uint256 held = token.balanceOf(address(this));
        if (amount > held) revert TreasuryAmountAboveBalance(amount, held);
        token.safeTransfer(to, amount);
        emit PaidOut(to, amount, reason);
    }

    /// @inheritdoc ITreasury
    function balance() external view returns (uint256) {
        return token.balanceOf(address(this));
    }
}

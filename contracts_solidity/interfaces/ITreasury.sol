// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";

/// @title Custom errors of the CISE community treasury.
interface ITreasuryErrors {
    /// @notice The token or the owner given at deployment is the zero address.
    error TreasuryZeroAddress();
    /// @notice Only the network's governance (its timelock) may pay out.
    error TreasuryNotGovernance(address caller);
    /// @notice A payout names the zero address as recipient.
    error TreasuryZeroRecipient();
    /// @notice A payout of zero units.
    error TreasuryZeroAmount();
    /// @notice A payout above what the treasury holds.
    error TreasuryAmountAboveBalance(uint256 amount, uint256 balance);
}

/// @title Events of the CISE community treasury (past tense, emitted right after the transfer).
interface ITreasuryEvents {
    /// @notice `amount` token units were paid to `to` by a passed proposal, for `reason`.
    event PaidOut(address indexed to, uint256 amount, string reason);
}

/// @title The community treasury: the governed part of the hubs' fee income, paid out only by
/// passed proposals.
/// @notice Deposits are plain token transfers to the treasury's address (hubs pay their share at
/// each settlement round with `transfer`); nothing is emitted for them (the token's Transfer is).
interface ITreasury is ITreasuryErrors, ITreasuryEvents {
    /// @notice Pay `amount` token units to `to` (governance only).
    /// @param to The recipient, not zero.
    /// @param amount Token units, more than zero and at most the balance.
    /// @param reason Why (shown by `cise gov treasury`).
    function payOut(address to, uint256 amount, string calldata reason) external;

    /// @notice The token the treasury holds (the network's).
    /// @return The token.
    function token() external view returns (IERC20);

    /// @notice The network's governance: the timelock that executes passed proposals.
    /// @return The timelock's address.
    function governance() external view returns (address);

    /// @notice What the treasury holds now.
    /// @return Token units.
    function balance() external view returns (uint256);
}

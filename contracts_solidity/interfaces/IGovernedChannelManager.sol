// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @title What a governed network adds to the channel manager: membership and a governed challenge period.
/// @notice Its errors are declared with the channel manager's (`IChannelManagerErrors`), so that every
/// client of the manager decodes them.
interface IGovernedChannelManager {
    /// @notice Set the challenge period of future closes (governance only: a passed proposal).
    /// @dev Within `[MIN_SETTLE_TIMEOUT, MAX_SETTLE_TIMEOUT]`; emits `SettleTimeoutSet`. Channels closed
    /// before keep the settle block they got.
    /// @param newSettleTimeout The challenge period in blocks.
    function setSettleTimeout(uint256 newSettleTimeout) external;

    /// @notice Record whether `account` is an active member (the membership contract only, in the same
    /// transaction as the status change it mirrors).
    /// @param account The member.
    /// @param active Whether it is admitted and neither suspended nor expelled.
    function setMemberActive(address account, bool active) external;

    /// @notice Whether `account` may open channels and be opened to (an active member).
    /// @param account Any address.
    /// @return True for an active member.
    function isMember(address account) external view returns (bool);

    /// @notice The membership contract, the only writer of `setMemberActive`.
    /// @return Its address.
    function membership() external view returns (address);

    /// @notice The network's governance (its timelock), the only caller of `setSettleTimeout`.
    /// @return Its address.
    function governance() external view returns (address);
}

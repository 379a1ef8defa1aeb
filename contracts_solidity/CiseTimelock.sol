// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {TimelockController} from "@openzeppelin/contracts/governance/TimelockController.sol";

/// @title CISE timelock
/// @notice OpenZeppelin's TimelockController, unchanged: it owns the network's parameters and membership
/// decisions and executes passed proposals after its delay (DESIGN §4). A network deploys it with the
/// governor as its only proposer, canceller and executor and no admin (it administers itself), so every
/// change goes through a vote, and a constitutional proposal cannot be executed around the governor's
/// longer delay. Declared here only so that the pinned compiler emits its artifact.
contract CiseTimelock is TimelockController {
    /// @param minDelay Seconds between queue and execution of an ordinary proposal.
    /// @param proposers Accounts that may schedule (and cancel): the governor.
    /// @param executors Accounts that may execute: the governor.
    /// @param admin An optional admin for set-up (zero: none).
    constructor(uint256 minDelay, address[] memory proposers, address[] memory executors, address admin)
        TimelockController(minDelay, proposers, executors, admin)
    {}
}

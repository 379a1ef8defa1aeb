// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @title Custom errors of the CISE governor (besides OpenZeppelin's `Governor*` errors).
interface ICiseGovernorErrors {
    /// @notice The ordinary-call list given at deployment has targets and selectors of different lengths.
    error CiseGovernorOrdinaryListMismatch(uint256 targets, uint256 selectors);
    /// @notice Calls to the governor itself and to its timelock change the rules of governance: they are
    /// always constitutional and cannot be listed as ordinary.
    error CiseGovernorProtectedCall(address target, bytes4 selector);
    /// @notice The constitutional quorum numerator is above the denominator (100).
    error CiseGovernorInvalidConstitutionalQuorum(uint256 numerator, uint256 denominator);
    /// @notice The constitutional delay is above `MAX_CONSTITUTIONAL_DELAY`.
    error CiseGovernorConstitutionalDelayTooLong(uint256 delay, uint256 max);
    /// @notice The proposal's delay has not passed: it cannot be executed before `eta` (a timestamp).
    error CiseGovernorProposalNotReady(uint256 proposalId, uint256 eta);
}

/// @title Events of the CISE governor (past tense, emitted right after the state change).
interface ICiseGovernorEvents {
    /// @notice Proposal `proposalId` (just created) is constitutional (higher quorum, longer delay) or
    /// ordinary.
    event ProposalClassified(uint256 proposalId, bool constitutional);
    /// @notice Calls of `selector` on `target` are now ordinary (`ordinary`) or constitutional.
    event OrdinaryCallSet(address indexed target, bytes4 indexed selector, bool ordinary);
    /// @notice The constitutional quorum is now `newNumerator`% of the active members.
    event ConstitutionalQuorumNumeratorSet(uint256 oldNumerator, uint256 newNumerator);
    /// @notice A constitutional proposal now waits `delay` seconds between queue and execution.
    event ConstitutionalDelaySet(uint256 delay);
}

/// @title What the CISE governor adds to OpenZeppelin's Governor: ordinary and constitutional proposals.
/// @notice A proposal is ordinary when every one of its calls is on the ordinary list (a target and a
/// function selector, with no ether sent), and constitutional otherwise. A constitutional proposal needs
/// the constitutional quorum (never below the ordinary one) and waits the constitutional delay (never
/// shorter than the timelock's) between queue and execution.
interface ICiseGovernor is ICiseGovernorErrors, ICiseGovernorEvents {
    /// @notice List or unlist calls of `selector` on `target` as ordinary (governance only; such a
    /// proposal is itself constitutional: it targets the governor).
    /// @param target A contract the timelock governs; not the governor nor the timelock.
    /// @param selector A function selector of `target`.
    /// @param ordinary True to make such calls ordinary, false to make them constitutional.
    function setOrdinaryCall(address target, bytes4 selector, bool ordinary) external;

    /// @notice Set the constitutional quorum (governance only, constitutional).
    /// @param newNumerator Percent of the active members at the snapshot, at most 100.
    function setConstitutionalQuorumNumerator(uint256 newNumerator) external;

    /// @notice Set the constitutional delay (governance only, constitutional).
    /// @param newDelay Seconds between queue and execution, at most `MAX_CONSTITUTIONAL_DELAY`.
    function setConstitutionalDelay(uint256 newDelay) external;

    /// @notice Whether calls of `selector` on `target` are ordinary.
    /// @param target Any address.
    /// @param selector Any selector.
    /// @return True when ordinary.
    function isOrdinaryCall(address target, bytes4 selector) external view returns (bool);

    /// @notice Whether a proposal with these calls would be constitutional.
    /// @param targets The targets.
    /// @param values The ether values.
    /// @param calldatas The calldatas.
    /// @return True when any call is not ordinary (or sends ether).
    function classify(address[] memory targets, uint256[] memory values, bytes[] memory calldatas)
        external
        view
        returns (bool);

    /// @notice Whether proposal `proposalId` is constitutional.
    /// @param proposalId A proposal id.
    /// @return True for a constitutional proposal (false also for an unknown id).
    function isConstitutional(uint256 proposalId) external view returns (bool);

    /// @notice The quorum proposal `proposalId` needs: for + abstain votes at least this.
    /// @param proposalId A proposal id.
    /// @return The ordinary or constitutional quorum at its snapshot.
    function proposalQuorum(uint256 proposalId) external view returns (uint256);

    /// @notice The constitutional quorum at `timepoint` (a block number): the larger of the ordinary quorum
    /// and `constitutionalQuorumNumerator` percent of the active members.
    /// @param timepoint A past block number.
    /// @return The quorum, in votes.
    function constitutionalQuorum(uint256 timepoint) external view returns (uint256);

    /// @notice The current constitutional quorum numerator (percent).
    /// @return The numerator.
    function constitutionalQuorumNumerator() external view returns (uint256);

    /// @notice Seconds a constitutional proposal waits between queue and execution (at least the
    /// timelock's own delay).
    /// @return The delay.
    function constitutionalDelay() external view returns (uint256);
}

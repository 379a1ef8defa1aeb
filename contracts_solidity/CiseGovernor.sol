// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {IGovernor, Governor} from "@openzeppelin/contracts/governance/Governor.sol";
import {TimelockController} from "@openzeppelin/contracts/governance/TimelockController.sol";
import {GovernorCountingSimple} from "@openzeppelin/contracts/governance/extensions/GovernorCountingSimple.sol";
import {GovernorSettings} from "@openzeppelin/contracts/governance/extensions/GovernorSettings.sol";
import {GovernorTimelockControl} from "@openzeppelin/contracts/governance/extensions/GovernorTimelockControl.sol";
import {GovernorVotes} from "@openzeppelin/contracts/governance/extensions/GovernorVotes.sol";
import {GovernorVotesQuorumFraction} from
    "@openzeppelin/contracts/governance/extensions/GovernorVotesQuorumFraction.sol";
import {IVotes} from "@openzeppelin/contracts/governance/utils/IVotes.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {Checkpoints} from "@openzeppelin/contracts/utils/structs/Checkpoints.sol";

import {ICiseGovernor} from "./interfaces/ICiseGovernor.sol";

/// @title CISE governor
/// @notice The members decide (DESIGN §4): OpenZeppelin's Governor over the membership token (one active
/// member, one vote; only members propose), with simple counting (for, against, abstain), a quorum that
/// is a fraction of the active members, and a TimelockController that executes what passed. Proposals
/// come in two classes: ordinary (every call on the ordinary list: admissions, suspensions, the challenge
/// period, the hub fee cap, the settlement period) and constitutional (anything else: expulsions, the code
/// of conduct, the admission rules, the rules of governance themselves), which need a higher quorum and
/// wait longer between queue and execution, so that members who disagree have time to leave.
/// @dev The class is fixed when the proposal is created (`_propose`), from its calls. The longer delay is
/// enforced here (`_executeOperations` refuses before the proposal's eta), which holds because the
/// timelock's only executor is this governor; the timelock itself still enforces its own, shorter delay.
contract CiseGovernor is
    Governor,
    GovernorSettings,
    GovernorCountingSimple,
    GovernorVotes,
    GovernorVotesQuorumFraction,
    GovernorTimelockControl,
    ICiseGovernor
{
    using Checkpoints for Checkpoints.Trace208;

    /// @notice The longest constitutional delay: one year.
    uint256 public constant MAX_CONSTITUTIONAL_DELAY = 365 days;

    Checkpoints.Trace208 private _constitutionalQuorumHistory;
    uint256 private _constitutionalDelay;
    mapping(uint256 proposalId => bool) private _constitutional;
    mapping(address target => mapping(bytes4 selector => bool)) private _ordinary;

    /// @param token_ The membership token (votes).
    /// @param timelock_ The timelock that executes passed proposals.
    /// @param votingDelay_ Blocks between a proposal and the start of its vote.
    /// @param votingPeriod_ Blocks the vote lasts.
    /// @param quorumNumerator_ Ordinary quorum: percent of the active members at the snapshot.
    /// @param constitutionalQuorumNumerator_ Constitutional quorum: percent of the active members.
    /// @param constitutionalDelay_ Seconds a constitutional proposal waits between queue and execution.
    /// @param ordinaryTargets With `ordinarySelectors`: the calls that are ordinary.
    /// @param ordinarySelectors The selector of each ordinary call.
    constructor(
        IVotes token_,
        TimelockController timelock_,
        uint48 votingDelay_,
        uint32 votingPeriod_,
        uint256 quorumNumerator_,
        uint256 constitutionalQuorumNumerator_,
        uint256 constitutionalDelay_,
        address[] memory ordinaryTargets,
        bytes4[] memory ordinarySelectors
    )
        Governor("CISE Governor")
        GovernorSettings(votingDelay_, votingPeriod_, 1)
        GovernorVotes(token_)
        GovernorVotesQuorumFraction(quorumNumerator_)
        GovernorTimelockControl(timelock_)
    {
        if (ordinaryTargets.length != ordinarySelectors.length) {
            revert CiseGovernorOrdinaryListMismatch(ordinaryTargets.length, ordinarySelectors.length);
        }
        _setConstitutionalQuorumNumerator(constitutionalQuorumNumerator_);
        _setConstitutionalDelay(constitutionalDelay_);
        for (uint256 i; i < ordinaryTargets.length; ++i) {
            _setOrdinaryCall(ordinaryTargets[i], ordinarySelectors[i], true);
        }
    }

    // ------------------------------------------------------------------ governance of the classes

    /// @inheritdoc ICiseGovernor
    function setOrdinaryCall(address target, bytes4 selector, bool ordinary) external onlyGovernance {
        _setOrdinaryCall(target, selector, ordinary);
    }

    /// @inheritdoc ICiseGovernor
    function setConstitutionalQuorumNumerator(uint256 newNumerator) external onlyGovernance {
        _setConstitutionalQuorumNumerator(newNumerator);
    }

    /// @inheritdoc ICiseGovernor
    function setConstitutionalDelay(uint256 newDelay) external onlyGovernance {
        _setConstitutionalDelay(newDelay);
    }

    // ------------------------------------------------------------------ views

    /// @inheritdoc ICiseGovernor
    function isOrdinaryCall(address target, bytes4 selector) external view returns (bool) {
        return _ordinary[target][selector];
    }

    /// @inheritdoc ICiseGovernor
    function classify(address[] memory targets, uint256[] memory values, bytes[] memory calldatas)
        public
        view
        returns (bool)
    {
        for (uint256 i; i < targets.length; ++i) {
            bytes memory data = calldatas[i];
            if (values[i] != 0 || data.length < 4 || !_ordinary[targets[i]][bytes4(data)]) return true;
        }
        return false;
    }

    /// @inheritdoc ICiseGovernor
    function isConstitutional(uint256 proposalId) external view returns (bool) {
        return _constitutional[proposalId];
    }

    /// @inheritdoc ICiseGovernor
    function proposalQuorum(uint256 proposalId) public view returns (uint256) {
        uint256 snapshot = proposalSnapshot(proposalId);
        return _constitutional[proposalId] ? constitutionalQuorum(snapshot) : quorum(snapshot);
    }

    /// @inheritdoc ICiseGovernor
    function constitutionalQuorum(uint256 timepoint) public view returns (uint256) {
        uint256 numerator = _optimisticUpperLookupRecent(_constitutionalQuorumHistory, timepoint);
        uint256 constitutional =
            Math.mulDiv(token().getPastTotalSupply(timepoint), numerator, quorumDenominator());
        return Math.max(constitutional, quorum(timepoint));
    }

    /// @inheritdoc ICiseGovernor
    function constitutionalQuorumNumerator() external view returns (uint256) {
        return _constitutionalQuorumHistory.latest();
    }

    /// @inheritdoc ICiseGovernor
    function constitutionalDelay() external view returns (uint256) {
        return _constitutionalDelay;
    }

    // ------------------------------------------------------------------ the two classes

    /// @dev Creates the proposal (OpenZeppelin checks it), then fixes its class from its calls.
    function _propose(
        address[] memory targets,
        uint256[] memory values,
        bytes[] memory calldatas,
        string memory description,
        address proposer
    ) internal override returns (uint256 proposalId) {
        proposalId = super._propose(targets, values, calldatas, description, proposer);
        bool constitutional = classify(targets, values, calldatas);
        if (constitutional) _constitutional[proposalId] = true;
        emit ProposalClassified(proposalId, constitutional);
    }

    /// @dev A constitutional proposal needs the constitutional quorum. (Called by `Governor.state`.)
    // slither-disable-next-line dead-code
    function _quorumReached(uint256 proposalId)
        internal
        view
        override(Governor, GovernorCountingSimple)
        returns (bool)
    {
        if (!_constitutional[proposalId]) return super._quorumReached(proposalId);
        (, uint256 forVotes, uint256 abstainVotes) = proposalVotes(proposalId);
        return constitutionalQuorum(proposalSnapshot(proposalId)) <= forVotes + abstainVotes;
    }

    /// @dev Schedules on the timelock (at its delay); a constitutional proposal's eta is pushed out to the
    /// constitutional delay, which `_executeOperations` enforces.
    function _queueOperations(
        uint256 proposalId,
        address[] memory targets,
        uint256[] memory values,
        bytes[] memory calldatas,
        bytes32 descriptionHash
    ) internal override(Governor, GovernorTimelockControl) returns (uint48 eta) {
        eta = super._queueOperations(proposalId, targets, values, calldatas, descriptionHash);
        if (_constitutional[proposalId]) {
            uint256 constitutionalEta = block.timestamp + _constitutionalDelay;
            // Delays are minutes to days; a validator's leeway on the timestamp is seconds.
            // slither-disable-next-line timestamp
            if (constitutionalEta > eta) eta = SafeCast.toUint48(constitutionalEta);
        }
    }

    /// @dev Refuses before the proposal's eta (the timelock would refuse an ordinary one too, with a less
    /// telling error), then has the timelock execute.
    function _executeOperations(
        uint256 proposalId,
        address[] memory targets,
        uint256[] memory values,
        bytes[] memory calldatas,
        bytes32 descriptionHash
    ) internal override(Governor, GovernorTimelockControl) {
        uint256 eta = proposalEta(proposalId);
        // The timelock's own check is against block.timestamp too; a validator's leeway on the timestamp
        // is seconds, delays are minutes to days.
        // slither-disable-next-line timestamp
        if (block.timestamp < eta) revert CiseGovernorProposalNotReady(proposalId, eta);
        super._executeOperations(proposalId, targets, values, calldatas, descriptionHash);
    }

    // ------------------------------------------------------------------ internals

    function _setOrdinaryCall(address target, bytes4 selector, bool ordinary) private {
        if (target == address(this) || target == timelock()) revert CiseGovernorProtectedCall(target, selector);
        _ordinary[target][selector] = ordinary;
        emit OrdinaryCallSet(target, selector, ordinary);
    }

    function _setConstitutionalQuorumNumerator(uint256 newNumerator) private {
        uint256 denominator = quorumDenominator();
        if (newNumerator > denominator) revert CiseGovernorInvalidConstitutionalQuorum(newNumerator, denominator);
        (uint208 oldNumerator, uint208 stored) =
            _constitutionalQuorumHistory.push(clock(), SafeCast.toUint208(newNumerator));
        emit ConstitutionalQuorumNumeratorSet(oldNumerator, stored);
    }

    function _setConstitutionalDelay(uint256 newDelay) private {
        if (newDelay > MAX_CONSTITUTIONAL_DELAY) {
            revert CiseGovernorConstitutionalDelayTooLong(newDelay, MAX_CONSTITUTIONAL_DELAY);
        }
        _constitutionalDelay = newDelay;
        emit ConstitutionalDelaySet(newDelay);
    }

    // ------------------------------------------------------------------ required by Solidity (multiple bases)

    /// @inheritdoc Governor
    function votingDelay() public view override(Governor, GovernorSettings) returns (uint256) {
        return super.votingDelay();
    }

    /// @inheritdoc Governor
    function votingPeriod() public view override(Governor, GovernorSettings) returns (uint256) {
        return super.votingPeriod();
    }

    /// @inheritdoc Governor
    function quorum(uint256 timepoint)
        public
        view
        override(Governor, GovernorVotesQuorumFraction)
        returns (uint256)
    {
        return super.quorum(timepoint);
    }

    /// @inheritdoc Governor
    function state(uint256 proposalId)
        public
        view
        override(Governor, GovernorTimelockControl)
        returns (ProposalState)
    {
        return super.state(proposalId);
    }

    /// @inheritdoc Governor
    function proposalNeedsQueuing(uint256 proposalId)
        public
        view
        override(Governor, GovernorTimelockControl)
        returns (bool)
    {
        return super.proposalNeedsQueuing(proposalId);
    }

    /// @inheritdoc Governor
    function proposalThreshold() public view override(Governor, GovernorSettings) returns (uint256) {
        return super.proposalThreshold();
    }

    function _cancel(
        address[] memory targets,
        uint256[] memory values,
        bytes[] memory calldatas,
        bytes32 descriptionHash
    ) internal override(Governor, GovernorTimelockControl) returns (uint256) {
        return super._cancel(targets, values, calldatas, descriptionHash);
    }

    function _executor() internal view override(Governor, GovernorTimelockControl) returns (address) {
        return super._executor();
    }
}

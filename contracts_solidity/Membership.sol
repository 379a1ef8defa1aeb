// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {ERC721} from "@openzeppelin/contracts/token/ERC721/ERC721.sol";
import {ERC721Votes} from "@openzeppelin/contracts/token/ERC721/extensions/ERC721Votes.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";

import {IGovernedChannelManager} from "./interfaces/IGovernedChannelManager.sol";
import {IMembership} from "./interfaces/IMembership.sol";
import {INetworkParameters} from "./interfaces/INetworkParameters.sol";

/// @title CISE membership
/// @notice Who belongs to the network (DESIGN §4): one non-transferable ERC721Votes token and exactly one
/// vote per active member, with roles (user, asset operator, servicer, hub, watchtower, financier). An
/// account applies, accepting the current code of conduct; the members admit, reject, suspend, reinstate
/// and expel by proposals that the network's timelock (`governance`) executes. The founding members are
/// admitted at deployment.
/// @dev Votes: each member delegates to itself when admitted and can never delegate elsewhere, so voting
/// power is one per active member. A suspension takes the member's voting unit away
/// (`_transferVotingUnits(account, 0, 1)`, which also lowers the total supply the quorum is a fraction
/// of) and a reinstatement gives it back; an expulsion burns the token. The voting clock is the block
/// number (OpenZeppelin's default), like every deadline of the channel manager.
/// Every change of an account's active status is pushed to the channel manager (`setMemberActive`) in the
/// same transaction, last (checks-effects-interactions), so the manager's mirror never disagrees.
contract Membership is ERC721Votes, IMembership {
    /// @notice Role bit: pays for uses.
    uint16 public constant ROLE_USER = 1;
    /// @notice Role bit: operates assets (registers them, runs their agents).
    uint16 public constant ROLE_ASSET_OPERATOR = 2;
    /// @notice Role bit: services assets (maintenance, consumables, manufacturing).
    uint16 public constant ROLE_SERVICER = 4;
    /// @notice Role bit: runs a routing hub.
    uint16 public constant ROLE_HUB = 8;
    /// @notice Role bit: runs a watchtower.
    uint16 public constant ROLE_WATCHTOWER = 16;
    /// @notice Role bit: finances assets.
    uint16 public constant ROLE_FINANCIER = 32;
    /// @notice Every role bit.
    uint16 public constant ALL_ROLES = 63;

    /// @dev One slot: 8 + 16 + 48 + 64 bits.
    struct Member {
        Status status;
        uint16 roles;
        uint48 since;
        uint64 tokenId;
    }

    /// @notice The timelock that executes the network's passed proposals: the only caller of the
    /// admission, suspension and expulsion functions.
    address public immutable governance;
    /// @notice The channel manager, which mirrors who is active.
    IGovernedChannelManager public immutable channelManager;
    /// @notice The network parameters, which hold the code of conduct applicants accept.
    INetworkParameters public immutable parameters;

    uint64 private _lastTokenId;
    mapping(address account => Member) private _members;

    /// @param governance_ The network's timelock.
    /// @param channelManager_ The network's channel manager (deployed before: it names this contract).
    /// @param parameters_ The network's parameters.
    /// @param founders The founding members, admitted now (distinct, none zero).
    /// @param founderRoles Each founder's roles.
    constructor(
        address governance_,
        IGovernedChannelManager channelManager_,
        INetworkParameters parameters_,
        address[] memory founders,
        uint16[] memory founderRoles
    ) ERC721("CISE Membership", "CISEM") EIP712("CISE Membership", "1") {
        if (
            governance_ == address(0) || address(channelManager_) == address(0)
                || address(parameters_) == address(0)
        ) revert MembershipZeroAddress();
        if (founders.length != founderRoles.length) {
            revert MembershipFoundersMismatch(founders.length, founderRoles.length);
        }
        governance = governance_;
        channelManager = channelManager_;
        parameters = parameters_;
        for (uint256 i; i < founders.length; ++i) {
            address founder = founders[i];
            if (founder == address(0)) revert MembershipZeroAddress();
            _checkRoles(founderRoles[i]);
            Status status = _members[founder].status;
            if (status != Status.None) revert MembershipUnexpectedStatus(founder, uint8(status));
            // The founders get tokens 1..n.
            _admit(founder, founderRoles[i], uint64(i + 1));
        }
        _lastTokenId = uint64(founders.length);
    }

    modifier onlyGovernance() {
        if (msg.sender != governance) revert MembershipNotGovernance(msg.sender);
        _;
    }

    // ------------------------------------------------------------------ applying

    /// @inheritdoc IMembership
    function applyForMembership(uint16 roles, bytes32 codeOfConductHash) external {
        _checkRoles(roles);
        bytes32 current = parameters.codeOfConductHash();
        if (codeOfConductHash != current) revert MembershipCodeOfConductMismatch(codeOfConductHash, current);
        Member storage member = _members[msg.sender];
        Status status = member.status;
        if (status != Status.None && status != Status.Applied) {
            revert MembershipUnexpectedStatus(msg.sender, uint8(status));
        }
        member.status = Status.Applied;
        member.roles = roles;
        member.since = uint48(block.timestamp);
        emit MembershipApplied(msg.sender, roles, codeOfConductHash);
    }

    // ------------------------------------------------------------------ decisions of the members

    /// @inheritdoc IMembership
    function admit(address account) external onlyGovernance {
        uint16 roles = _requireStatus(account, Status.Applied).roles;
        // One token per admission, and admissions are governance decisions: 2^64 is out of reach.
        uint64 tokenId = ++_lastTokenId;
        _admit(account, roles, tokenId);
    }

    /// @inheritdoc IMembership
    function rejectApplication(address account) external onlyGovernance {
        _requireStatus(account, Status.Applied);
        delete _members[account];
        emit MembershipRejected(account);
    }

    /// @inheritdoc IMembership
    function suspend(address account) external onlyGovernance {
        Member storage member = _requireStatus(account, Status.Active);
        member.status = Status.Suspended;
        member.since = uint48(block.timestamp);
        _transferVotingUnits(account, address(0), 1);
        emit MemberSuspended(account);
        channelManager.setMemberActive(account, false);
    }

    /// @inheritdoc IMembership
    function reinstate(address account) external onlyGovernance {
        Member storage member = _requireStatus(account, Status.Suspended);
        member.status = Status.Active;
        member.since = uint48(block.timestamp);
        _transferVotingUnits(address(0), account, 1);
        emit MemberReinstated(account);
        channelManager.setMemberActive(account, true);
    }

    /// @inheritdoc IMembership
    function expel(address account) external onlyGovernance {
        Member storage member = _members[account];
        Status status = member.status;
        if (status != Status.Active && status != Status.Suspended) {
            revert MembershipUnexpectedStatus(account, uint8(status));
        }
        member.status = Status.Expelled;
        member.since = uint48(block.timestamp);
        // A suspended member's unit was already taken away; give it back so that the burn takes it.
        if (status == Status.Suspended) _transferVotingUnits(address(0), account, 1);
        uint256 tokenId = member.tokenId;
        _burn(tokenId);
        emit MemberExpelled(account, tokenId);
        if (status == Status.Active) channelManager.setMemberActive(account, false);
    }

    /// @inheritdoc IMembership
    function setRoles(address account, uint16 roles) external onlyGovernance {
        _checkRoles(roles);
        Member storage member = _members[account];
        Status status = member.status;
        if (status != Status.Active && status != Status.Suspended) {
            revert MembershipUnexpectedStatus(account, uint8(status));
        }
        member.roles = roles;
        emit MemberRolesChanged(account, roles);
    }

    // ------------------------------------------------------------------ views

    /// @inheritdoc IMembership
    function memberOf(address account)
        external
        view
        returns (uint8 status, uint16 roles, uint256 tokenId, uint48 since)
    {
        Member memory member = _members[account];
        return (uint8(member.status), member.roles, member.tokenId, member.since);
    }

    /// @inheritdoc IMembership
    function isActiveMember(address account) external view returns (bool) {
        // An enum compared with one of its values (Slither takes the slot's `since` for the status).
        // slither-disable-next-line incorrect-equality,timestamp
        return _members[account].status == Status.Active;
    }

    /// @inheritdoc IMembership
    function activeMembers() external view returns (uint256) {
        return _getTotalSupply();
    }

    // ------------------------------------------------------------------ personal: no transfers, no delegation

    /// @notice Always reverts: membership tokens cannot be approved (nor transferred).
    function approve(address, uint256) public pure override {
        revert MembershipNotTransferable();
    }

    /// @notice Always reverts: membership tokens cannot be approved (nor transferred).
    function setApprovalForAll(address, bool) public pure override {
        revert MembershipNotTransferable();
    }

    /// @notice Always reverts: each member votes itself (it delegated to itself when admitted).
    function delegate(address) public pure override {
        revert MembershipDelegationDisabled();
    }

    /// @notice Always reverts: each member votes itself (it delegated to itself when admitted).
    function delegateBySig(address, uint256, uint256, uint8, bytes32, bytes32) public pure override {
        revert MembershipDelegationDisabled();
    }

    /// @dev Mints (admission) and burns (expulsion) only: a transfer between two accounts reverts.
    function _update(address to, uint256 tokenId, address auth) internal override returns (address) {
        if (to != address(0) && _ownerOf(tokenId) != address(0)) revert MembershipNotTransferable();
        return super._update(to, tokenId, auth);
    }

    // ------------------------------------------------------------------ internals

    function _admit(address account, uint16 roles, uint64 tokenId) private {
        _members[account] =
            Member({status: Status.Active, roles: roles, since: uint48(block.timestamp), tokenId: tokenId});
        // Self-delegation first (it moves no votes: the account holds no token yet), then the mint moves
        // its one voting unit to itself.
        _delegate(account, account);
        _mint(account, tokenId);
        emit MemberAdmitted(account, tokenId, roles);
        // In a loop only in the constructor (the founders: a list the deployer bounds), and only to the
        // channel manager deployed for this contract.
        // slither-disable-next-line calls-loop
        channelManager.setMemberActive(account, true);
    }

    function _requireStatus(address account, Status expected) private view returns (Member storage member) {
        member = _members[account];
        Status status = member.status;
        if (status != expected) revert MembershipUnexpectedStatus(account, uint8(status));
    }

    function _checkRoles(uint16 roles) private pure {
        if (roles == 0 || roles & ~ALL_ROLES != 0) revert MembershipInvalidRoles(roles);
    }
}

// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @title Custom errors of the CISE membership token.
/// @notice Every rejection of the membership contract is one of these; the off-chain client maps them.
interface IMembershipErrors {
    /// @notice An address given at deployment (governance, channel manager, parameters) is zero.
    error MembershipZeroAddress();
    /// @notice Only the network's governance (its timelock) may call this.
    error MembershipNotGovernance(address caller);
    /// @notice `roles` is empty or has bits outside `ALL_ROLES`.
    error MembershipInvalidRoles(uint16 roles);
    /// @notice The founders and their roles are lists of different lengths.
    error MembershipFoundersMismatch(uint256 founders, uint256 roles);
    /// @notice The applicant accepted another code of conduct than the network's current one.
    error MembershipCodeOfConductMismatch(bytes32 accepted, bytes32 current);
    /// @notice `account` is not in a status that allows this (see `Status`; 4 = expelled is final).
    error MembershipUnexpectedStatus(address account, uint8 status);
    /// @notice Membership tokens cannot be transferred nor approved: membership is personal.
    error MembershipNotTransferable();
    /// @notice Votes cannot be delegated: one member, one vote, cast by the member itself.
    error MembershipDelegationDisabled();
}

/// @title Events of the CISE membership token (past tense, emitted right after the state change).
/// @notice Together with the ERC721 `Transfer` and ERC5805 vote events they are the full membership
/// history: an off-chain client lists members and applicants from them.
interface IMembershipEvents {
    /// @notice `account` applied for membership with `roles`, accepting the code of conduct of hash
    /// `codeOfConductHash`.
    event MembershipApplied(address indexed account, uint16 roles, bytes32 codeOfConductHash);
    /// @notice The members admitted `account` (a founder: at deployment) with `roles`; it holds
    /// membership token `tokenId` and one vote.
    event MemberAdmitted(address indexed account, uint256 indexed tokenId, uint16 roles);
    /// @notice The members rejected `account`'s application; it may apply again.
    event MembershipRejected(address indexed account);
    /// @notice The members suspended `account`: no vote, no new channels or assets; it can still close,
    /// settle and withdraw.
    event MemberSuspended(address indexed account);
    /// @notice The members lifted `account`'s suspension.
    event MemberReinstated(address indexed account);
    /// @notice The members expelled `account` (final): its token `tokenId` was burnt; it can still
    /// close, settle and withdraw.
    event MemberExpelled(address indexed account, uint256 indexed tokenId);
    /// @notice `account`'s roles are now `roles`.
    event MemberRolesChanged(address indexed account, uint16 roles);
}

/// @title The CISE membership token: one non-transferable ERC721Votes token and one vote per member.
interface IMembership is IMembershipErrors, IMembershipEvents {
    /// @notice Where an account stands. Stored as uint8: 0 none, 1 applied, 2 active, 3 suspended,
    /// 4 expelled (final).
    enum Status {
        None,
        Applied,
        Active,
        Suspended,
        Expelled
    }

    /// @notice Apply for membership: the members then decide by a proposal that calls `admit`.
    /// @dev Allowed from `None` (never applied, or rejected) and `Applied` (updates the roles asked for).
    /// @param roles The roles applied for (bits of `ALL_ROLES`: user, asset operator, servicer, hub,
    /// watchtower, financier), not empty.
    /// @param codeOfConductHash The hash of the code of conduct the applicant accepts: must be the
    /// network's current one (`NetworkParameters.codeOfConductHash`).
    function applyForMembership(uint16 roles, bytes32 codeOfConductHash) external;

    /// @notice Admit an applicant with the roles it applied for (governance only: a passed proposal).
    /// @param account An account whose status is `Applied`.
    function admit(address account) external;

    /// @notice Reject an application (governance only); the account may apply again.
    /// @param account An account whose status is `Applied`.
    function rejectApplication(address account) external;

    /// @notice Suspend an active member (governance only): it loses its vote and cannot open channels
    /// or register assets until reinstated; closing, settling and withdrawing stay open to it.
    /// @param account An account whose status is `Active`.
    function suspend(address account) external;

    /// @notice Lift a suspension (governance only).
    /// @param account An account whose status is `Suspended`.
    function reinstate(address account) external;

    /// @notice Expel a member for good (governance only; a constitutional decision by default): its
    /// token is burnt and it may never apply again; closing, settling and withdrawing stay open to it.
    /// @param account An account whose status is `Active` or `Suspended`.
    function expel(address account) external;

    /// @notice Change a member's roles (governance only).
    /// @param account An account whose status is `Active` or `Suspended`.
    /// @param roles The new roles, not empty, within `ALL_ROLES`.
    function setRoles(address account, uint16 roles) external;

    /// @notice Where `account` stands.
    /// @param account Any address.
    /// @return status Its `Status` as uint8.
    /// @return roles Its roles (applied for while `Applied`, granted once admitted).
    /// @return tokenId Its membership token (0 unless admitted; kept after expulsion for the record).
    /// @return since The timestamp of its last status change.
    function memberOf(address account)
        external
        view
        returns (uint8 status, uint16 roles, uint256 tokenId, uint48 since);

    /// @notice Whether `account` is an active member (admitted, neither suspended nor expelled).
    /// @param account Any address.
    /// @return True for an active member.
    function isActiveMember(address account) external view returns (bool);

    /// @notice How many members are active now (= the total of votes).
    /// @return The count.
    function activeMembers() external view returns (uint256);
}

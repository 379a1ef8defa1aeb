// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @title Custom errors of the CISE network parameters.
interface INetworkParametersErrors {
    /// @notice The governance address given at deployment is zero.
    error NetworkParametersZeroGovernance();
    /// @notice Only the network's governance (its timelock) may call this.
    error NetworkParametersNotGovernance(address caller);
    /// @notice The hub fee cap is above `MAX_HUB_FEE_CAP`.
    error NetworkParametersHubFeeCapOutOfRange(uint256 hubFeeCap, uint256 max);
    /// @notice The settlement period is outside `[MIN_SETTLEMENT_PERIOD, MAX_SETTLEMENT_PERIOD]`.
    error NetworkParametersSettlementPeriodOutOfRange(uint256 settlementPeriod, uint256 min, uint256 max);
    /// @notice The treasury's part of hub fee income is above `MAX_TREASURY_FEE_PPM`.
    error NetworkParametersTreasuryFeeOutOfRange(uint256 treasuryFeePpm, uint256 max);
    /// @notice A document hash is zero (a document is always named by the hash of its text).
    error NetworkParametersZeroDocumentHash();
}

/// @title Events of the CISE network parameters (past tense, emitted right after the state change).
interface INetworkParametersEvents {
    /// @notice The most a hub may charge for routing one payment is now `hubFeeCap` token units.
    event HubFeeCapSet(uint256 hubFeeCap);
    /// @notice Channels are now settled on chain every `settlementPeriod` seconds.
    event SettlementPeriodSet(uint256 settlementPeriod);
    /// @notice Hubs now pay `treasuryFeePpm` millionths of their fee income to the treasury each round.
    event TreasuryFeePpmSet(uint256 treasuryFeePpm);
    /// @notice The code of conduct is now the document of hash `documentHash` found at `uri`.
    event CodeOfConductSet(bytes32 documentHash, string uri);
    /// @notice The admission rules are now the document of hash `documentHash` found at `uri`.
    event AdmissionRulesSet(bytes32 documentHash, string uri);
}

/// @title The network parameters the members govern (besides the challenge period, which the channel
/// manager holds itself).
interface INetworkParameters is INetworkParametersErrors, INetworkParametersEvents {
    /// @notice Set the hub fee cap (governance only).
    /// @param newHubFeeCap The most a hub may charge for routing one payment, in token units, at most
    /// `MAX_HUB_FEE_CAP`.
    function setHubFeeCap(uint256 newHubFeeCap) external;

    /// @notice Set the settlement period (governance only).
    /// @param newSettlementPeriod Seconds between periodic net settlements, within the hard bounds.
    function setSettlementPeriod(uint256 newSettlementPeriod) external;

    /// @notice Set the treasury's part of every hub's fee income (governance only).
    /// @param newTreasuryFeePpm Millionths of the fee income a hub pays to the treasury each settlement
    /// round, at most `MAX_TREASURY_FEE_PPM`.
    function setTreasuryFeePpm(uint256 newTreasuryFeePpm) external;

    /// @notice Replace the code of conduct (governance only; constitutional by default).
    /// @param documentHash keccak256 of the document's text, not zero.
    /// @param uri Where the document is.
    function setCodeOfConduct(bytes32 documentHash, string calldata uri) external;

    /// @notice Replace the admission rules (governance only; constitutional by default).
    /// @param documentHash keccak256 of the document's text, not zero.
    /// @param uri Where the document is.
    function setAdmissionRules(bytes32 documentHash, string calldata uri) external;

    /// @notice The network's governance: the timelock that executes passed proposals.
    /// @return The timelock's address.
    function governance() external view returns (address);

    /// @notice The most a hub may charge for routing one payment, in token units.
    /// @return The cap.
    function hubFeeCap() external view returns (uint256);

    /// @notice Seconds between periodic net settlements.
    /// @return The period.
    function settlementPeriod() external view returns (uint256);

    /// @notice Millionths of its fee income a hub pays to the community treasury each settlement round.
    /// @return The part, in ppm (0 at deployment).
    function treasuryFeePpm() external view returns (uint256);

    /// @notice The hash of the current code of conduct (what applicants accept).
    /// @return The hash.
    function codeOfConductHash() external view returns (bytes32);

    /// @notice Where the current code of conduct is.
    /// @return The URI.
    function codeOfConductURI() external view returns (string memory);

    /// @notice The hash of the current admission rules.
    /// @return The hash.
    function admissionRulesHash() external view returns (bytes32);

    /// @notice Where the current admission rules are.
    /// @return The URI.
    function admissionRulesURI() external view returns (string memory);
}

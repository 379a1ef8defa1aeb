// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {INetworkParameters} from "./interfaces/INetworkParameters.sol";

/// @title CISE network parameters
/// @notice The parameters the members govern (DESIGN §4) that no other contract holds: the hub fee cap,
/// the settlement period, the treasury's part of hub fee income (0 at deployment), and the two founding documents, the code of conduct and the admission rules
/// (each by the hash of its text and a URI). Only the network's timelock changes them, so every change
/// is a passed proposal; which changes are constitutional is the governor's classification.
/// @dev The challenge period lives in the channel manager (`GovernedChannelManager.setSettleTimeout`),
/// where closes read it without an external call.
contract NetworkParameters is INetworkParameters {
    /// @notice The highest hub fee cap the members can set: EUR 1 (10^6 units) per routed payment.
    uint256 public constant MAX_HUB_FEE_CAP = 1_000_000;
    /// @notice The shortest settlement period: one hour.
    uint256 public constant MIN_SETTLEMENT_PERIOD = 1 hours;
    /// @notice The longest settlement period: 90 days.
    uint256 public constant MAX_SETTLEMENT_PERIOD = 90 days;
    /// @notice The largest governed part of a hub's fee income paid to the treasury: 20%.
    uint256 public constant MAX_TREASURY_FEE_PPM = 200_000;

    /// @inheritdoc INetworkParameters
    address public immutable governance;

    /// @inheritdoc INetworkParameters
    uint256 public hubFeeCap;
    /// @inheritdoc INetworkParameters
    uint256 public settlementPeriod;
    /// @inheritdoc INetworkParameters
    bytes32 public codeOfConductHash;
    /// @inheritdoc INetworkParameters
    string public codeOfConductURI;
    /// @inheritdoc INetworkParameters
    bytes32 public admissionRulesHash;
    /// @inheritdoc INetworkParameters
    string public admissionRulesURI;
    /// @inheritdoc INetworkParameters
    uint256 public treasuryFeePpm;

    /// @param governance_ The timelock that executes the network's passed proposals.
    /// @param hubFeeCap_ The initial hub fee cap.
    /// @param settlementPeriod_ The initial settlement period.
    /// @param codeOfConductHash_ keccak256 of the founding code of conduct.
    /// @param codeOfConductURI_ Where it is.
    /// @param admissionRulesHash_ keccak256 of the founding admission rules.
    /// @param admissionRulesURI_ Where they are.
    constructor(
        address governance_,
        uint256 hubFeeCap_,
        uint256 settlementPeriod_,
        bytes32 codeOfConductHash_,
        string memory codeOfConductURI_,
        bytes32 admissionRulesHash_,
        string memory admissionRulesURI_
    ) {
        if (governance_ == address(0)) revert NetworkParametersZeroGovernance();
        governance = governance_;
        _setHubFeeCap(hubFeeCap_);
        _setSettlementPeriod(settlementPeriod_);
        _setCodeOfConduct(codeOfConductHash_, codeOfConductURI_);
        _setAdmissionRules(admissionRulesHash_, admissionRulesURI_);
    }

    modifier onlyGovernance() {
        if (msg.sender != governance) revert NetworkParametersNotGovernance(msg.sender);
        _;
    }

    /// @inheritdoc INetworkParameters
    function setHubFeeCap(uint256 newHubFeeCap) external onlyGovernance {
        _setHubFeeCap(newHubFeeCap);
    }

    /// @inheritdoc INetworkParameters
    function setSettlementPeriod(uint256 newSettlementPeriod) external onlyGovernance {
        _setSettlementPeriod(newSettlementPeriod);
    }

    /// @inheritdoc INetworkParameters
    function setTreasuryFeePpm(uint256 newTreasuryFeePpm) external onlyGovernance {
        if (newTreasuryFeePpm > MAX_TREASURY_FEE_PPM) {
            revert NetworkParametersTreasuryFeeOutOfRange(newTreasuryFeePpm, MAX_TREASURY_FEE_PPM);
        }
        treasuryFeePpm = newTreasuryFeePpm;
        emit TreasuryFeePpmSet(newTreasuryFeePpm);
    }

    /// @inheritdoc INetworkParameters
    function setCodeOfConduct(bytes32 documentHash, string calldata uri) external onlyGovernance {
        _setCodeOfConduct(documentHash, uri);
    }

    /// @inheritdoc INetworkParameters
    function setAdmissionRules(bytes32 documentHash, string calldata uri) external onlyGovernance {
        _setAdmissionRules(documentHash, uri);
    }

    function _setHubFeeCap(uint256 hubFeeCap_) private {
        if (hubFeeCap_ > MAX_HUB_FEE_CAP) revert NetworkParametersHubFeeCapOutOfRange(hubFeeCap_, MAX_HUB_FEE_CAP);
        hubFeeCap = hubFeeCap_;
        emit HubFeeCapSet(hubFeeCap_);
    }

    function _setSettlementPeriod(uint256 settlementPeriod_) private {
        if (settlementPeriod_ < MIN_SETTLEMENT_PERIOD || settlementPeriod_ > MAX_SETTLEMENT_PERIOD) {
            revert NetworkParametersSettlementPeriodOutOfRange(
                settlementPeriod_, MIN_SETTLEMENT_PERIOD, MAX_SETTLEMENT_PERIOD
            );
        }
        settlementPeriod = settlementPeriod_;
        emit SettlementPeriodSet(settlementPeriod_);
    }

    function _setCodeOfConduct(bytes32 documentHash, string memory uri) private {
        if (documentHash == bytes32(0)) revert NetworkParametersZeroDocumentHash();
        codeOfConductHash = documentHash;
        codeOfConductURI = uri;
        emit CodeOfConductSet(documentHash, uri);
    }

    function _setAdmissionRules(bytes32 documentHash, string memory uri) private {
        if (documentHash == bytes32(0)) revert NetworkParametersZeroDocumentHash();
        admissionRulesHash = documentHash;
        admissionRulesURI = uri;
        emit AdmissionRulesSet(documentHash, uri);
    }
}

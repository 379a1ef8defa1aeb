// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";

import {ChannelManager} from "../ChannelManager.sol";

/// @title Test harness: the channel manager plus its EIP-712 and locks-tree internals as views
/// @notice Test-only. Lets the Python tests compare the contract's digests, struct hashes and locks-tree
/// proof verification with channels.codec.eip712 / channels.core.locktree byte for byte.
contract ChannelManagerHarness is ChannelManager {
    bytes32 internal constant SETTLEMENT_BATCH_TYPEHASH = keccak256("SettlementBatch(bytes32 itemsHash,uint256 expiry)");

    /// @param token_ The token.
    /// @param settleTimeout_ The challenge period.
    constructor(IERC20 token_, uint256 settleTimeout_) ChannelManager(token_, settleTimeout_) {}

    /// @notice Exposes `_setSettleTimeout` (the future governance path) for tests.
    /// @param newSettleTimeout The new challenge period.
    function setSettleTimeoutForTest(uint256 newSettleTimeout) external {
        _setSettleTimeout(newSettleTimeout);
    }

    /// @notice EIP-712 `hashStruct(BalanceProof)`.
    /// @param channelId The channel id.
    /// @param nonce The nonce.
    /// @param transferredAmount The transferred amount.
    /// @param lockedAmount The locked amount.
    /// @param locksRoot The locks root.
    /// @return The struct hash.
    function balanceProofStructHash(
        uint256 channelId,
        uint256 nonce,
        uint256 transferredAmount,
        uint256 lockedAmount,
        bytes32 locksRoot
    ) external pure returns (bytes32) {
        return _balanceProofStructHash(channelId, nonce, transferredAmount, lockedAmount, locksRoot);
    }

    /// @notice EIP-712 digest of a `BalanceProof`.
    /// @param channelId The channel id.
    /// @param nonce The nonce.
    /// @param transferredAmount The transferred amount.
    /// @param lockedAmount The locked amount.
    /// @param locksRoot The locks root.
    /// @return The digest.
    function balanceProofDigest(
        uint256 channelId,
        uint256 nonce,
        uint256 transferredAmount,
        uint256 lockedAmount,
        bytes32 locksRoot
    ) external view returns (bytes32) {
        return _hashTypedDataV4(_balanceProofStructHash(channelId, nonce, transferredAmount, lockedAmount, locksRoot));
    }

    /// @notice EIP-712 `hashStruct(Lock)`, the locks-tree leaf.
    /// @param amount The amount.
    /// @param expiration The expiration block.
    /// @param secrethash The secret hash.
    /// @return The leaf.
    function lockHash(uint256 amount, uint256 expiration, bytes32 secrethash) external pure returns (bytes32) {
        return _lockHash(amount, expiration, secrethash);
    }

    /// @notice EIP-712 digest of a `Withdraw`.
    /// @param channelId The channel id.
    /// @param participant Who withdraws.
    /// @param totalWithdraw The withdrawn total.
    /// @param expiry The expiry block.
    /// @return The digest.
    function withdrawDigest(uint256 channelId, address participant, uint256 totalWithdraw, uint256 expiry)
        external
        view
        returns (bytes32)
    {
        return _hashTypedDataV4(keccak256(abi.encode(WITHDRAW_TYPEHASH, channelId, participant, totalWithdraw, expiry)));
    }

    /// @notice EIP-712 digest of a `CooperativeClose`.
    /// @param channelId The channel id.
    /// @param balance1 participant1's balance.
    /// @param balance2 participant2's balance.
    /// @return The digest.
    function cooperativeCloseDigest(uint256 channelId, uint256 balance1, uint256 balance2)
        external
        view
        returns (bytes32)
    {
        return _hashTypedDataV4(keccak256(abi.encode(COOPERATIVE_CLOSE_TYPEHASH, channelId, balance1, balance2)));
    }

    /// @notice EIP-712 digest of a `MonitorRequest`.
    /// @param channelId The channel id.
    /// @param balanceProofHash The struct hash of the covered balance proof.
    /// @param reward The reward.
    /// @param watchtower The watchtower (zero: anyone).
    /// @return The digest.
    function monitorRequestDigest(uint256 channelId, bytes32 balanceProofHash, uint256 reward, address watchtower)
        external
        view
        returns (bytes32)
    {
        return _hashTypedDataV4(
            keccak256(abi.encode(MONITOR_REQUEST_TYPEHASH, channelId, balanceProofHash, reward, watchtower))
        );
    }

    /// @notice EIP-712 digest of a `SettlementBatch`.
    /// @param itemsHash Hash of the batch items.
    /// @param expiry The expiry block.
    /// @return The digest.
    function settlementBatchDigest(bytes32 itemsHash, uint256 expiry) external view returns (bytes32) {
        return _hashTypedDataV4(keccak256(abi.encode(SETTLEMENT_BATCH_TYPEHASH, itemsHash, expiry)));
    }

    /// @notice The locks root that `proof` leads to from `leaf` at `slot` (what `unlock` compares).
    /// @param leaf The leaf (0 for an empty slot).
    /// @param slot The slot, < 512.
    /// @param proof The 9 siblings, leaf level first.
    /// @return The root.
    function locksRootFromProof(bytes32 leaf, uint256 slot, bytes32[9] calldata proof)
        external
        pure
        returns (bytes32)
    {
        return _locksRootFromProof(leaf, slot, proof);
    }
}

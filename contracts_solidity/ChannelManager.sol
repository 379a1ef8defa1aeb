// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {MessageHashUtils} from "@openzeppelin/contracts/utils/cryptography/MessageHashUtils.sol";

import {IChannelManager} from "./interfaces/IChannelManager.sol";

/// @title CISE channel manager
/// @notice Two-party payment channels with cumulative per-direction balance proofs (Raiden style),
/// hashlocked transfers in a fixed-depth locks tree, and internal balances so that tokens move as ERC20
/// only on the way in and out. docs/protocol.md is the normative specification of this contract.
/// @dev Storage per channel, all keyed by `key = keccak256(abi.encode(channelId, participant1,
/// participant2))` (participants ascending, never stored):
///  - `_channels[key]`: one slot, written at open, on deposits and at close; deleted at settle or
///    cooperative close.
///  - `_withdrawn[key]`: one slot, written only by withdraws (flagged in the channel slot so that open,
///    deposit and close paths do not read it): both withdrawn totals and the channel's *headroom*, a
///    lower bound of what it still holds (`D1 + D2 - W1 - W2`), zero unless the channel is open. A
///    withdraw within the headroom is checked and applied on this slot alone: a settled-before channel
///    costs one cold slot per batch item, not two (docs/decisions/2026-11-26-withdraw-headroom.md).
///  - `_proofs[key][sender]`: two slots per direction, written at close/update; after settle they hold
///    the pending lock pool and locks root until the last lock is resolved.
///  - `_rewards[key]`: one slot, written only by `updateBalanceProofFor`.
contract ChannelManager is IChannelManager, EIP712 {
    using SafeERC20 for IERC20;

    // ------------------------------------------------------------------ constants

    /// @notice Lower bound of the challenge period, in blocks.
    uint256 public constant MIN_SETTLE_TIMEOUT = 5;
    /// @notice Upper bound of the challenge period, in blocks.
    uint256 public constant MAX_SETTLE_TIMEOUT = 1_000_000;
    /// @notice Depth of the locks tree.
    uint256 public constant LOCKS_TREE_DEPTH = 9;
    /// @notice Slots of the locks tree = cap of pending locks per direction.
    uint256 public constant MAX_PENDING_LOCKS = 512;

    bytes32 internal constant BALANCE_PROOF_TYPEHASH = keccak256(
        "BalanceProof(uint256 channelId,uint256 nonce,uint256 transferredAmount,uint256 lockedAmount,bytes32 locksRoot)"
    );
    bytes32 internal constant LOCK_TYPEHASH = keccak256("Lock(uint256 amount,uint256 expiration,bytes32 secrethash)");
    bytes32 internal constant WITHDRAW_TYPEHASH =
        keccak256("Withdraw(uint256 channelId,address participant,uint256 totalWithdraw,uint256 expiry)");
    bytes32 internal constant COOPERATIVE_CLOSE_TYPEHASH =
        keccak256("CooperativeClose(uint256 channelId,uint256 balance1,uint256 balance2)");
    // Named apart from ChannelManagerHarness's own `SETTLEMENT_BATCH_TYPEHASH` (same value).
    bytes32 private constant BATCH_TYPEHASH = keccak256("SettlementBatch(bytes32 itemsHash,uint256 expiry)");
    bytes32 internal constant MONITOR_REQUEST_TYPEHASH =
        keccak256("MonitorRequest(uint256 channelId,bytes32 balanceProofHash,uint256 reward,address watchtower)");

    /// @notice Bytes of one `settleBatch` withdraw item: channelId (8) participant (20) partner (20)
    /// totalWithdraw (12) participantSig (65) partnerSig (65).
    uint256 public constant BATCH_ITEM_SIZE = 190;
    /// @notice Bytes of one `settleHubBatch` withdraw item: channelId (8) counterparty (20)
    /// hubWithdraws (1) totalWithdraw (12) counterpartySig (65).
    uint256 public constant HUB_BATCH_ITEM_SIZE = 106;
    /// @notice Bytes of one re-deposit item of a batch: channelId (8) partner (20) totalDeposit (12).
    uint256 public constant BATCH_DEPOSIT_SIZE = 40;

    uint256 private constant UINT96_MASK = (1 << 96) - 1;
    uint256 private constant UINT64_MAX = (1 << 64) - 1;

    uint8 internal constant STATE_NONE = 0;
    uint8 internal constant STATE_OPEN = 1;
    uint8 internal constant STATE_CLOSED = 2;

    // ------------------------------------------------------------------ storage

    /// @dev Exactly one storage slot: 8 + 40 + 8 + 8 + 96 + 96 = 256 bits.
    struct Channel {
        uint8 state;
        uint40 settleBlock;
        bool closedByParticipant1;
        bool hasWithdrawn;
        uint96 deposit1;
        uint96 deposit2;
    }

    /// @dev One slot, written only on withdraw: 96 + 96 + 64 bits. `headroom` is a cache, never a total:
    /// invariant `headroom <= deposit1 + deposit2 - withdrawn1 - withdrawn2`, and `headroom == 0` unless
    /// the channel is open. Every withdraw that reads the channel slot sets it to the exact amount left
    /// (saturated at `type(uint64).max`); a withdraw within it lowers it by the increase; deposits leave it
    /// (it stays a lower bound); `closeChannel` zeroes it; cooperative close and settle delete the slot.
    struct Withdrawn {
        uint96 withdrawn1;
        uint96 withdrawn2;
        uint64 headroom;
    }

    /// @dev Two slots: 64 + 96 + 96 = 256 bits, then the root.
    struct ProofData {
        uint64 nonce;
        uint96 transferred;
        uint96 locked;
        bytes32 locksRoot;
    }

    /// @dev A credit not yet written: consecutive batch items crediting the same account write its
    /// balance once.
    struct PendingCredit {
        address account;
        uint256 amount;
    }

    /// @dev What every item of a settlement batch shares (`hub`: zero in `settleBatch`).
    struct BatchContext {
        address hub;
        uint256 expiry;
        bytes32 separator;
    }

    /// @dev One slot: 160 + 96 bits.
    struct MonitorReward {
        address watchtower;
        uint96 amount;
    }

    /// @notice The network's ERC20 token.
    IERC20 public immutable token;

    /// @inheritdoc IChannelManager
    uint256 public settleTimeout;

    /// @inheritdoc IChannelManager
    uint256 public channelCount;

    mapping(address account => uint256) private _balances;
    mapping(bytes32 key => Channel) private _channels;
    mapping(bytes32 key => Withdrawn) private _withdrawn;
    mapping(bytes32 key => mapping(address sender => ProofData)) private _proofs;
    mapping(bytes32 key => MonitorReward) private _rewards;
    mapping(bytes32 key => mapping(address sender => mapping(uint256 word => uint256))) private _resolvedLocks;
    mapping(bytes32 secrethash => uint256) private _secretRevealBlock;

    /// @param token_ The network's ERC20 token.
    /// @param settleTimeout_ The challenge period in blocks, within the hard bounds.
    constructor(IERC20 token_, uint256 settleTimeout_) EIP712("CISE", "1") {
        if (address(token_) == address(0)) revert ChannelManagerZeroToken();
        token = token_;
        _setSettleTimeout(settleTimeout_);
    }

    // ------------------------------------------------------------------ internal balances

    /// @inheritdoc IChannelManager
    function depositToBalance(uint256 amount) external {
        if (amount == 0) revert ChannelManagerZeroAmount();
        _balances[msg.sender] += amount;
        emit BalanceDeposited(msg.sender, amount);
        token.safeTransferFrom(msg.sender, address(this), amount);
    }

    /// @inheritdoc IChannelManager
    function withdrawFromBalance(uint256 amount, address to) external {
        if (amount == 0) revert ChannelManagerZeroAmount();
        if (to == address(0)) revert ChannelManagerZeroAddress();
        _debit(msg.sender, amount);
        emit BalanceWithdrawn(msg.sender, to, amount);
        token.safeTransfer(to, amount);
    }

    /// @inheritdoc IChannelManager
    function balanceOf(address account) external view returns (uint256) {
        return _balances[account];
    }

    // ------------------------------------------------------------------ open and deposit

    /// @inheritdoc IChannelManager
    function openChannel(address partner, uint256 amount) external returns (uint256 channelId) {
        channelId = _open(partner, amount);
        if (amount != 0) token.safeTransferFrom(msg.sender, address(this), amount);
    }

    /// @inheritdoc IChannelManager
    function openChannelFromBalance(address partner, uint256 amount) external returns (uint256 channelId) {
        if (amount != 0) _debit(msg.sender, amount);
        channelId = _open(partner, amount);
    }

    /// @inheritdoc IChannelManager
    function setTotalDeposit(uint256 channelId, address partner, uint256 totalDeposit) external {
        uint256 increase = _setTotalDeposit(channelId, partner, totalDeposit, false);
        token.safeTransferFrom(msg.sender, address(this), increase);
    }

    /// @inheritdoc IChannelManager
    function setTotalDepositFromBalance(uint256 channelId, address partner, uint256 totalDeposit) external {
        _setTotalDeposit(channelId, partner, totalDeposit, true);
    }

    // ------------------------------------------------------------------ withdraw while open

    /// @inheritdoc IChannelManager
    function withdraw(
        uint256 channelId,
        address participant,
        address partner,
        uint256 totalWithdraw,
        uint256 expiry,
        bytes calldata participantSig,
        bytes calldata partnerSig
    ) external {
        if (block.number > expiry) revert ChannelManagerWithdrawExpired(expiry);
        if (totalWithdraw > type(uint96).max) revert ChannelManagerAmountTooLarge(totalWithdraw);
        (uint256 increase, uint256 withdrawn) = _checkWithdraw(channelId, participant, partner, totalWithdraw);
        bytes32 digest = _hashTypedDataV4(
            keccak256(abi.encode(WITHDRAW_TYPEHASH, channelId, participant, totalWithdraw, expiry))
        );
        _requireSigner(digest, participantSig, participant);
        _requireSigner(digest, partnerSig, partner);
        _applyWithdraw(channelId, participant, partner, totalWithdraw, increase, withdrawn);
    }

    // ------------------------------------------------------------------ batch settlement

    /// @inheritdoc IChannelManager
    function settleBatch(uint256 expiry, bytes calldata withdraws, bytes calldata deposits) external {
        if (block.number > expiry) revert ChannelManagerWithdrawExpired(expiry);
        uint256 n = _batchItems(withdraws.length, BATCH_ITEM_SIZE, deposits.length);
        bytes32 separator = _domainSeparatorV4();
        PendingCredit memory pending = PendingCredit({account: address(0), amount: 0});
        BatchContext memory context = BatchContext({hub: address(0), expiry: expiry, separator: separator});
        for (uint256 start; start < n * BATCH_ITEM_SIZE; start += BATCH_ITEM_SIZE) {
            _batchItem(context, withdraws, start, pending);
        }
        _credit(pending.account, pending.amount);
        _batchDeposits(deposits);
    }

    /// @inheritdoc IChannelManager
    function settleHubBatch(
        address hub,
        uint256 expiry,
        bytes calldata hubSig,
        bytes calldata withdraws,
        bytes calldata deposits
    ) external {
        if (block.number > expiry) revert ChannelManagerWithdrawExpired(expiry);
        uint256 n = _batchItems(withdraws.length, HUB_BATCH_ITEM_SIZE, deposits.length);
        bytes32 separator = _domainSeparatorV4();
        PendingCredit memory pending = PendingCredit({account: address(0), amount: 0});
        bytes32[] memory structHashes = new bytes32[](n);
        BatchContext memory context = BatchContext({hub: hub, expiry: expiry, separator: separator});
        for (uint256 i; i < n; ++i) {
            structHashes[i] = _hubBatchItem(context, withdraws, i * HUB_BATCH_ITEM_SIZE, pending);
        }
        _credit(pending.account, pending.amount);
        // A wrong batch signature reverts the whole transaction, the items applied above included.
        _requireBatchSigner(hub, expiry, separator, structHashes, hubSig);
        _batchDeposits(deposits);
    }

    // ------------------------------------------------------------------ cooperative close

    /// @inheritdoc IChannelManager
    function cooperativeClose(
        uint256 channelId,
        address participant1,
        address participant2,
        uint256 balance1,
        uint256 balance2,
        bytes calldata sig1,
        bytes calldata sig2
    ) external {
        if (participant1 >= participant2) revert ChannelManagerInvalidParticipants(participant1, participant2);
        bytes32 key = _channelKey(channelId, participant1, participant2);
        Channel memory channel = _channels[key];
        _requireOpen(channel.state, channelId, participant1, participant2);

        uint256 total = _channelTotal(key, channel);
        if (balance1 > total || balance2 != total - balance1) {
            revert ChannelManagerBalancesMismatch(balance1, balance2, total);
        }
        bytes32 digest =
            _hashTypedDataV4(keccak256(abi.encode(COOPERATIVE_CLOSE_TYPEHASH, channelId, balance1, balance2)));
        _requireSigner(digest, sig1, participant1);
        _requireSigner(digest, sig2, participant2);

        delete _channels[key];
        if (channel.hasWithdrawn) delete _withdrawn[key];
        _credit(participant1, balance1);
        _credit(participant2, balance2);
        emit ChannelCooperativelyClosed(channelId, balance1, balance2);
    }

    // ------------------------------------------------------------------ unilateral close

    /// @inheritdoc IChannelManager
    function closeChannel(
        uint256 channelId,
        address partner,
        uint256 nonce,
        uint256 transferredAmount,
        uint256 lockedAmount,
        bytes32 locksRoot,
        bytes calldata partnerSig
    ) external {
        (bytes32 key, bool closerIsParticipant1) = _key(channelId, msg.sender, partner);
        Channel storage channel = _channels[key];
        _requireOpen(channel.state, channelId, msg.sender, partner);

        if (nonce != 0) {
            _checkProofRanges(nonce, transferredAmount, lockedAmount);
            bytes32 digest = _hashTypedDataV4(
                _balanceProofStructHash(channelId, nonce, transferredAmount, lockedAmount, locksRoot)
            );
            _requireSigner(digest, partnerSig, partner);
            _proofs[key][partner] = ProofData({
                nonce: uint64(nonce),
                transferred: uint96(transferredAmount),
                locked: uint96(lockedAmount),
                locksRoot: locksRoot
            });
        }

        // settleTimeout <= MAX_SETTLE_TIMEOUT, so the cast only truncates after block 2^40 - 10^6
        // (tens of thousands of years at one block a second).
        uint256 settleBlock = block.number + settleTimeout;
        channel.state = STATE_CLOSED;
        channel.settleBlock = uint40(settleBlock);
        channel.closedByParticipant1 = closerIsParticipant1;
        // No withdraw may pass on the withdrawn slot alone once closed (see `Withdrawn`).
        if (channel.hasWithdrawn) _withdrawn[key].headroom = 0;
        emit ChannelClosed(channelId, msg.sender, nonce, settleBlock);
    }

    /// @inheritdoc IChannelManager
    function updateBalanceProof(
        uint256 channelId,
        address closer,
        uint256 nonce,
        uint256 transferredAmount,
        uint256 lockedAmount,
        bytes32 locksRoot,
        bytes calldata closerSig
    ) external {
        bytes32 key =
            _verifyUpdate(channelId, closer, msg.sender, nonce, transferredAmount, lockedAmount, locksRoot, closerSig);
        _storeUpdate(key, channelId, closer, nonce, transferredAmount, lockedAmount, locksRoot);
    }

    /// @inheritdoc IChannelManager
    function updateBalanceProofFor(
        uint256 channelId,
        address closer,
        address nonCloser,
        uint256 nonce,
        uint256 transferredAmount,
        uint256 lockedAmount,
        bytes32 locksRoot,
        bytes calldata closerSig,
        uint256 reward,
        bytes calldata monitorSig
    ) external {
        if (reward > type(uint96).max) revert ChannelManagerAmountTooLarge(reward);
        _requireMonitorSigner(
            channelId,
            _balanceProofStructHash(channelId, nonce, transferredAmount, lockedAmount, locksRoot),
            reward,
            monitorSig,
            nonCloser
        );
        bytes32 key = _verifyUpdate(channelId, closer, nonCloser, nonce, transferredAmount, lockedAmount, locksRoot, closerSig);
        _rewards[key] = MonitorReward({watchtower: msg.sender, amount: uint96(reward)});
        _storeUpdate(key, channelId, closer, nonce, transferredAmount, lockedAmount, locksRoot);
    }

    // ------------------------------------------------------------------ settle

    /// @inheritdoc IChannelManager
    function settleChannel(uint256 channelId, address participant1, address participant2) external {
        if (participant1 >= participant2) revert ChannelManagerInvalidParticipants(participant1, participant2);
        bytes32 key = _channelKey(channelId, participant1, participant2);
        Channel memory channel = _channels[key];
        if (channel.state == STATE_NONE) revert ChannelManagerUnknownChannel(channelId, participant1, participant2);
        if (channel.state != STATE_CLOSED) revert ChannelManagerChannelNotClosed(channelId);
        if (block.number <= channel.settleBlock) revert ChannelManagerChallengePeriodNotOver(channel.settleBlock);

        ProofData memory proof1 = _proofs[key][participant1];
        ProofData memory proof2 = _proofs[key][participant2];
        (uint256 balance1, uint256 balance2, uint256 locked1, uint256 locked2) =
            _settlementAmounts(key, channel, proof1, proof2);

        (address watchtower, uint256 rewardPaid) = _takeReward(key, channel.closedByParticipant1, balance1, balance2);
        if (rewardPaid != 0) {
            // rewardPaid <= the non-closer's balance (capped in _takeReward).
            if (channel.closedByParticipant1) balance2 -= rewardPaid;
            else balance1 -= rewardPaid;
        }

        delete _channels[key];
        if (channel.hasWithdrawn) delete _withdrawn[key];
        _keepLockPool(key, participant1, proof1, locked1);
        _keepLockPool(key, participant2, proof2, locked2);
        _credit(participant1, balance1);
        _credit(participant2, balance2);
        _credit(watchtower, rewardPaid);
        emit ChannelSettled(channelId, balance1, balance2, locked1, locked2);
        if (rewardPaid != 0) emit ChannelMonitorRewarded(channelId, watchtower, rewardPaid);
    }

    // ------------------------------------------------------------------ secrets and locks

    /// @inheritdoc IChannelManager
    function registerSecret(bytes32 secret) external {
        bytes32 secrethash = keccak256(abi.encode(secret));
        uint256 revealBlock = _secretRevealBlock[secrethash];
        if (revealBlock != 0) revert ChannelManagerSecretAlreadyRegistered(secrethash, revealBlock);
        _secretRevealBlock[secrethash] = block.number;
        emit SecretRegistered(secrethash, secret);
    }

    /// @inheritdoc IChannelManager
    function unlock(
        uint256 channelId,
        address sender,
        address receiver,
        Lock calldata lock,
        uint256 slot,
        bytes32[9] calldata proof
    ) external {
        if (slot >= MAX_PENDING_LOCKS) revert ChannelManagerInvalidLockSlot(slot);
        (bytes32 key,) = _key(channelId, sender, receiver);
        if (_channels[key].state != STATE_NONE) revert ChannelManagerChannelNotSettled(channelId);
        bytes32 locksRoot = _proofs[key][sender].locksRoot;
        // After settle a direction keeps its root only while its pool is non-zero (see _keepLockPool);
        // a direction that was never closed with locks never had one.
        if (locksRoot == bytes32(0)) revert ChannelManagerNoPendingLocks(channelId, sender);
        if (_isResolved(key, sender, slot)) revert ChannelManagerLockAlreadyResolved(slot);
        bytes32 computed = _locksRootFromProof(_lockHash(lock.amount, lock.expiration, lock.secrethash), slot, proof);
        if (computed != locksRoot) revert ChannelManagerInvalidLockProof(computed, locksRoot);
        address beneficiary = _lockBeneficiary(lock, sender, receiver);

        _resolvedLocks[key][sender][slot >> 8] |= 1 << (slot & 255);
        uint256 amount = _takeFromPool(key, sender, lock.amount);
        _balances[beneficiary] += amount;
        emit LockUnlocked(channelId, sender, beneficiary, slot, lock.secrethash, amount);
    }

    // ------------------------------------------------------------------ views

    /// @inheritdoc IChannelManager
    function domainSeparator() external view returns (bytes32) {
        return _domainSeparatorV4();
    }

    /// @inheritdoc IChannelManager
    function getChannel(uint256 channelId, address participant, address partner)
        external
        view
        returns (
            uint8 state,
            uint256 settleBlock,
            address closer,
            uint256 deposit1,
            uint256 deposit2,
            uint256 withdrawn1,
            uint256 withdrawn2
        )
    {
        (address participant1, address participant2) = _sort(participant, partner);
        bytes32 key = _channelKey(channelId, participant1, participant2);
        Channel memory channel = _channels[key];
        Withdrawn memory w = _withdrawn[key];
        if (channel.state == STATE_CLOSED) closer = channel.closedByParticipant1 ? participant1 : participant2;
        return (
            channel.state,
            channel.settleBlock,
            closer,
            channel.deposit1,
            channel.deposit2,
            w.withdrawn1,
            w.withdrawn2
        );
    }

    /// @inheritdoc IChannelManager
    function getBalanceProof(uint256 channelId, address sender, address receiver)
        external
        view
        returns (uint256 nonce, uint256 transferredAmount, uint256 lockedAmount, bytes32 locksRoot)
    {
        (bytes32 key,) = _key(channelId, sender, receiver);
        ProofData memory proof = _proofs[key][sender];
        return (proof.nonce, proof.transferred, proof.locked, proof.locksRoot);
    }

    /// @inheritdoc IChannelManager
    function getMonitorReward(uint256 channelId, address participant, address partner)
        external
        view
        returns (address watchtower, uint256 reward)
    {
        (bytes32 key,) = _key(channelId, participant, partner);
        MonitorReward memory r = _rewards[key];
        return (r.watchtower, r.amount);
    }

    /// @inheritdoc IChannelManager
    function secretRevealBlock(bytes32 secrethash) external view returns (uint256) {
        return _secretRevealBlock[secrethash];
    }

    /// @inheritdoc IChannelManager
    function isLockResolved(uint256 channelId, address sender, address receiver, uint256 slot)
        external
        view
        returns (bool)
    {
        if (slot >= MAX_PENDING_LOCKS) return false;
        (bytes32 key,) = _key(channelId, sender, receiver);
        return _isResolved(key, sender, slot);
    }

    // ------------------------------------------------------------------ hooks and setters

    /// @dev Membership hook: DESIGN §4 admits only members to open channels. Called for both
    /// participants in every open, and nowhere else: deposits, withdraws, closes, settles and unlocks
    /// never look at membership, so funds are never trapped by governance. A no-op here (this contract
    /// alone is an open manager, which the contract tests exercise); `GovernedChannelManager`, the
    /// manager a network deploys, overrides it to revert `ChannelManagerNotMember(account)` for anyone
    /// who is not an active member.
    function _checkMembership(address account) internal view virtual {}

    /// @dev Sets the challenge period for future closes. Internal so that governance can expose it
    /// behind its own access control without touching the rest of the contract
    /// (`GovernedChannelManager.setSettleTimeout`, called by the network's timelock).
    function _setSettleTimeout(uint256 newSettleTimeout) internal {
        if (newSettleTimeout < MIN_SETTLE_TIMEOUT || newSettleTimeout > MAX_SETTLE_TIMEOUT) {
            revert ChannelManagerSettleTimeoutOutOfRange(newSettleTimeout, MIN_SETTLE_TIMEOUT, MAX_SETTLE_TIMEOUT);
        }
        settleTimeout = newSettleTimeout;
        emit SettleTimeoutSet(newSettleTimeout);
    }

    // ------------------------------------------------------------------ EIP-712 and the locks tree

    /// @dev EIP-712 `hashStruct(BalanceProof)`.
    function _balanceProofStructHash(
        uint256 channelId,
        uint256 nonce,
        uint256 transferredAmount,
        uint256 lockedAmount,
        bytes32 locksRoot
    ) internal pure returns (bytes32) {
        return keccak256(
            abi.encode(BALANCE_PROOF_TYPEHASH, channelId, nonce, transferredAmount, lockedAmount, locksRoot)
        );
    }

    /// @dev EIP-712 `hashStruct(Lock)`: the leaf of an occupied slot of the locks tree.
    function _lockHash(uint256 amount, uint256 expiration, bytes32 secrethash) internal pure returns (bytes32) {
        return keccak256(abi.encode(LOCK_TYPEHASH, amount, expiration, secrethash));
    }

    /// @dev Root of the depth-9 zero-collapsing locks tree from `leaf` at `slot` and its 9 siblings
    /// (leaf level first); bit k of `slot` set = the level-k node is a right child.
    /// node(l, r) = 0 if l == r == 0, else keccak256(l ‖ r).
    function _locksRootFromProof(bytes32 leaf, uint256 slot, bytes32[9] calldata proof)
        internal
        pure
        returns (bytes32 node)
    {
        node = leaf;
        for (uint256 level; level < LOCKS_TREE_DEPTH; ++level) {
            bytes32 sibling = proof[level];
            (bytes32 left, bytes32 right) = (slot >> level) & 1 == 1 ? (sibling, node) : (node, sibling);
            if (left == bytes32(0) && right == bytes32(0)) {
                node = bytes32(0);
            } else {
                assembly ("memory-safe") {
                    mstore(0x00, left)
                    mstore(0x20, right)
                    node := keccak256(0x00, 0x40)
                }
            }
        }
    }

    // ------------------------------------------------------------------ internals

    function _open(address partner, uint256 amount) private returns (uint256 channelId) {
        if (partner == msg.sender || partner == address(0)) {
            revert ChannelManagerInvalidParticipants(msg.sender, partner);
        }
        if (amount > type(uint96).max) revert ChannelManagerAmountTooLarge(amount);
        _checkMembership(msg.sender);
        _checkMembership(partner);
        channelId = ++channelCount;
        (bytes32 key, bool openerIsParticipant1) = _key(channelId, msg.sender, partner);
        // Equivalent to `_channels[key] = Channel({state: STATE_OPEN, settleBlock: 0,
        // closedByParticipant1: false, hasWithdrawn: false, deposit1: .., deposit2: ..})`, written as one
        // SSTORE (the struct assignment costs ~540 gas more in the legacy pipeline). Layout of `Channel`,
        // low bits first: state 0-7, settleBlock 8-47, closedByParticipant1 48-55, hasWithdrawn 56-63,
        // deposit1 64-159, deposit2 160-255. `amount < 2^96` was checked above, so it fits its field;
        // tests/contracts read every field back through getChannel.
        uint256 packed = (openerIsParticipant1 ? amount << 64 : amount << 160) | STATE_OPEN;
        Channel storage channel = _channels[key];
        assembly ("memory-safe") {
            sstore(channel.slot, packed)
        }
        (address participant1, address participant2) =
            openerIsParticipant1 ? (msg.sender, partner) : (partner, msg.sender);
        emit ChannelOpened(channelId, participant1, participant2, msg.sender, amount);
    }

    /// @dev Raises the caller's total deposit; with `fromBalance` the increase is debited from its
    /// internal balance here, otherwise the caller pulls it in as ERC20 afterwards.
    function _setTotalDeposit(uint256 channelId, address partner, uint256 totalDeposit, bool fromBalance)
        private
        returns (uint256 increase)
    {
        (bytes32 key, bool isParticipant1) = _key(channelId, msg.sender, partner);
        Channel storage channel = _channels[key];
        _requireOpen(channel.state, channelId, msg.sender, partner);
        if (totalDeposit > type(uint96).max) revert ChannelManagerAmountTooLarge(totalDeposit);
        uint256 current = isParticipant1 ? channel.deposit1 : channel.deposit2;
        if (totalDeposit <= current) revert ChannelManagerDepositNotIncreasing(totalDeposit, current);
        increase = totalDeposit - current;
        if (fromBalance) _debit(msg.sender, increase);
        // totalDeposit <= type(uint96).max was checked above.
        if (isParticipant1) {
            channel.deposit1 = uint96(totalDeposit);
        } else {
            channel.deposit2 = uint96(totalDeposit);
        }
        emit ChannelDeposited(channelId, msg.sender, totalDeposit);
    }

    /// @dev The checks of `withdraw` (channel open, then `_nextWithdrawn`); returns the increase of the
    /// withdrawn total and the withdrawn slot's next word.
    function _checkWithdraw(uint256 channelId, address participant, address partner, uint256 totalWithdraw)
        private
        view
        returns (uint256 increase, uint256 withdrawn)
    {
        (bytes32 key, bool isParticipant1) = _key(channelId, participant, partner);
        uint256 record = _channelRecord(key);
        _requireOpen(uint8(record), channelId, participant, partner);
        return _nextWithdrawn(record, _withdrawnWord(key), isParticipant1, totalWithdraw);
    }

    /// @dev The effects of `withdraw` (all checks done): the withdrawn slot, the flag, the credit.
    function _applyWithdraw(
        uint256 channelId,
        address participant,
        address partner,
        uint256 totalWithdraw,
        uint256 increase,
        uint256 withdrawn
    ) private {
        (bytes32 key,) = _key(channelId, participant, partner);
        _storeWithdrawn(key, _channelRecord(key), withdrawn);
        _balances[participant] += increase;
        emit ChannelWithdrawn(channelId, participant, totalWithdraw);
    }

    /// @dev The number of withdraw items of a batch; reverts on a malformed or empty batch.
    function _batchItems(uint256 length, uint256 itemSize, uint256 depositsLength) private pure returns (uint256) {
        if (length % itemSize != 0) revert ChannelManagerMalformedBatch(length, itemSize);
        if (depositsLength % BATCH_DEPOSIT_SIZE != 0) {
            revert ChannelManagerMalformedBatch(depositsLength, BATCH_DEPOSIT_SIZE);
        }
        if (length == 0 && depositsLength == 0) revert ChannelManagerEmptyBatch();
        return length / itemSize;
    }

    /// @dev One `settleBatch` item at byte `start`: both participants' signatures, then the withdraw.
    function _batchItem(
        BatchContext memory context,
        bytes calldata items,
        uint256 start,
        PendingCredit memory pending
    ) private {
        uint256 channelId = _word(items, start) >> 192;
        address participant = address(uint160(_word(items, start + 8) >> 96));
        address partner = address(uint160(_word(items, start + 28) >> 96));
        uint256 totalWithdraw = _word(items, start + 48) >> 160;
        bytes32 digest = MessageHashUtils.toTypedDataHash(
            context.separator, _withdrawStructHash(channelId, participant, totalWithdraw, context.expiry)
        );
        _requireSignerAt(digest, items, start + 60, participant);
        _requireSignerAt(digest, items, start + 125, partner);
        _accrue(pending, participant, _batchWithdraw(channelId, participant, partner, totalWithdraw));
    }

    /// @dev One `settleHubBatch` item at byte `start`: the counterparty's signature, then the withdraw;
    /// returns the item's `hashStruct(Withdraw)` for the batch's `itemsHash`.
    function _hubBatchItem(
        BatchContext memory context,
        bytes calldata items,
        uint256 start,
        PendingCredit memory pending
    ) private returns (bytes32 structHash) {
        (uint256 channelId, address participant, address partner, uint256 totalWithdraw) =
            _hubBatchFields(context.hub, items, start);
        structHash = _withdrawStructHash(channelId, participant, totalWithdraw, context.expiry);
        _requireSignerAt(
            MessageHashUtils.toTypedDataHash(context.separator, structHash),
            items,
            start + 41,
            participant == context.hub ? partner : participant
        );
        _accrue(pending, participant, _batchWithdraw(channelId, participant, partner, totalWithdraw));
    }

    /// @dev The fields of the `settleHubBatch` item at byte `start`, with the withdrawing participant first.
    function _hubBatchFields(address hub, bytes calldata items, uint256 start)
        private
        pure
        returns (uint256 channelId, address participant, address partner, uint256 totalWithdraw)
    {
        channelId = _word(items, start) >> 192;
        address counterparty = address(uint160(_word(items, start + 8) >> 96));
        (participant, partner) = _word(items, start + 28) >> 248 != 0 ? (hub, counterparty) : (counterparty, hub);
        totalWithdraw = _word(items, start + 29) >> 160;
    }

    /// @dev The checks and effects of one batch withdraw (those of `withdraw`), except the credit,
    /// which the caller accrues; returns the increase of the withdrawn total. Fast path: a non-zero
    /// headroom means the channel is open and holds at least that much, so a withdraw within it reads and
    /// writes the withdrawn slot only (one SLOAD, one SSTORE). Otherwise (first withdraw, after a close,
    /// past the headroom, or any revert) it reads the channel slot and runs `withdraw`'s checks in
    /// `withdraw`'s order, so the errors are the same, and refreshes the headroom to the exact amount left.
    function _batchWithdraw(uint256 channelId, address participant, address partner, uint256 totalWithdraw)
        private
        returns (uint256 increase)
    {
        (bytes32 key, bool isParticipant1) = _batchKey(channelId, participant, partner);
        uint256 withdrawn = _withdrawnWord(key);
        uint256 headroom = withdrawn >> 192;
        uint256 shift = isParticipant1 ? 0 : 96;
        uint256 current = (withdrawn >> shift) & UINT96_MASK;
        // totalWithdraw was read from 12 bytes (< 2^96); the subtraction runs only when it is above current.
        unchecked {
            if (totalWithdraw > current && totalWithdraw - current <= headroom) {
                increase = totalWithdraw - current;
                // Replace this participant's total and lower the headroom by the increase.
                withdrawn = (((headroom - increase) << 192) | (withdrawn & ~(UINT64_MAX << 192)))
                    ^ ((current ^ totalWithdraw) << shift);
                _setWithdrawnWord(key, withdrawn);
                emit ChannelWithdrawn(channelId, participant, totalWithdraw);
                return increase;
            }
        }
        uint256 record = _channelRecord(key);
        _requireOpen(uint8(record), channelId, participant, partner);
        (increase, withdrawn) = _nextWithdrawn(record, withdrawn, isParticipant1, totalWithdraw);
        _storeWithdrawn(key, record, withdrawn);
        emit ChannelWithdrawn(channelId, participant, totalWithdraw);
    }

    /// @dev `withdraw`'s checks after the channel is known to be open, on the channel slot's word `record`
    /// (layout at `_open`) and the withdrawn slot's word `withdrawn` (low bits first: withdrawn1 0-95,
    /// withdrawn2 96-191, headroom 192-255; the `Withdrawn` struct). Returns the increase of the withdrawn
    /// total and the withdrawn slot's next word, with the headroom set to what the channel holds after the
    /// withdraw (saturated at 2^64 - 1). `totalWithdraw < 2^96` is the caller's to check.
    function _nextWithdrawn(uint256 record, uint256 withdrawn, bool isParticipant1, uint256 totalWithdraw)
        private
        pure
        returns (uint256 increase, uint256 next)
    {
        uint256 w1 = withdrawn & UINT96_MASK;
        uint256 w2 = (withdrawn >> 96) & UINT96_MASK;
        uint256 current = isParticipant1 ? w1 : w2;
        if (totalWithdraw <= current) revert ChannelManagerWithdrawNotIncreasing(totalWithdraw, current);
        // Invariant: withdrawn1 + withdrawn2 <= deposit1 + deposit2 (every withdraw checks the line
        // below, deposits only grow), so `available` cannot underflow; totalWithdraw > current was just
        // checked; totalWithdraw < 2^96 fits its field.
        unchecked {
            increase = totalWithdraw - current;
            uint256 available = ((record >> 64) & UINT96_MASK) + (record >> 160) - w1 - w2;
            if (increase > available) revert ChannelManagerWithdrawExceedsChannel(increase, available);
            uint256 headroom = available - increase;
            if (headroom > UINT64_MAX) headroom = UINT64_MAX;
            next = isParticipant1 ? (headroom << 192) | (w2 << 96) | totalWithdraw
                : (headroom << 192) | (totalWithdraw << 96) | w1;
        }
    }

    /// @dev Writes the withdrawn slot and, on a channel's first withdraw, its `hasWithdrawn` flag
    /// (bit 56 of the channel slot's word `record`).
    function _storeWithdrawn(bytes32 key, uint256 record, uint256 withdrawn) private {
        _setWithdrawnWord(key, withdrawn);
        if ((record >> 56) & 0xff == 0) _channels[key].hasWithdrawn = true;
    }

    /// @dev The channel slot as one word (layout at `_open`).
    function _channelRecord(bytes32 key) private view returns (uint256 record) {
        Channel storage channel = _channels[key];
        assembly ("memory-safe") {
            record := sload(channel.slot)
        }
    }

    /// @dev The withdrawn slot as one word (layout at `_nextWithdrawn`).
    function _withdrawnWord(bytes32 key) private view returns (uint256 withdrawn) {
        Withdrawn storage ref = _withdrawn[key];
        assembly ("memory-safe") {
            withdrawn := sload(ref.slot)
        }
    }

    /// @dev Writes the withdrawn slot as one word (layout at `_nextWithdrawn`).
    function _setWithdrawnWord(bytes32 key, uint256 withdrawn) private {
        Withdrawn storage ref = _withdrawn[key];
        assembly ("memory-safe") {
            sstore(ref.slot, withdrawn)
        }
    }

    /// @dev `_key`, hashed in scratch memory past the free memory pointer.
    function _batchKey(uint256 channelId, address a, address b) private pure returns (bytes32 key, bool aIsParticipant1) {
        aIsParticipant1 = a < b;
        (address participant1, address participant2) = aIsParticipant1 ? (a, b) : (b, a);
        assembly ("memory-safe") {
            let ptr := mload(0x40)
            mstore(ptr, channelId)
            mstore(add(ptr, 0x20), participant1)
            mstore(add(ptr, 0x40), participant2)
            key := keccak256(ptr, 0x60)
        }
    }

    /// @dev Reverts unless `hubSig` is `hub`'s signature of `SettlementBatch(itemsHash, expiry)`,
    /// `itemsHash` = keccak256 of the items' struct hashes concatenated.
    function _requireBatchSigner(
        address hub,
        uint256 expiry,
        bytes32 separator,
        bytes32[] memory structHashes,
        bytes calldata hubSig
    ) private pure {
        bytes32 itemsHash;
        assembly ("memory-safe") {
            itemsHash := keccak256(add(structHashes, 0x20), mul(mload(structHashes), 0x20))
        }
        address recovered = _recover(
            MessageHashUtils.toTypedDataHash(separator, keccak256(abi.encode(BATCH_TYPEHASH, itemsHash, expiry))),
            hubSig
        );
        if (recovered != hub) revert ChannelManagerWrongBatchSigner(hub, recovered);
    }

    /// @dev Adds `amount` to the pending credit, writing the previous one when the account changes.
    function _accrue(PendingCredit memory pending, address account, uint256 amount) private {
        if (account == pending.account) {
            pending.amount += amount;
        } else {
            _credit(pending.account, pending.amount);
            pending.account = account;
            pending.amount = amount;
        }
    }

    /// @dev The re-deposits of a batch, each like `setTotalDepositFromBalance` by the caller.
    function _batchDeposits(bytes calldata deposits) private {
        for (uint256 start; start < deposits.length; start += BATCH_DEPOSIT_SIZE) {
            _setTotalDeposit(
                _word(deposits, start) >> 192,
                address(uint160(_word(deposits, start + 8) >> 96)),
                _word(deposits, start + 28) >> 160,
                true
            );
        }
    }

    /// @dev The 32 bytes of `data` from byte `start` (zero-padded past its end).
    function _word(bytes calldata data, uint256 start) private pure returns (uint256 word) {
        assembly ("memory-safe") {
            word := calldataload(add(data.offset, start))
        }
    }

    /// @dev hashStruct(Withdraw), hashed in scratch memory past the free memory pointer.
    function _withdrawStructHash(uint256 channelId, address participant, uint256 totalWithdraw, uint256 expiry)
        private
        pure
        returns (bytes32 structHash)
    {
        bytes32 typehash = WITHDRAW_TYPEHASH;
        assembly ("memory-safe") {
            let ptr := mload(0x40)
            mstore(ptr, typehash)
            mstore(add(ptr, 0x20), channelId)
            mstore(add(ptr, 0x40), participant)
            mstore(add(ptr, 0x60), totalWithdraw)
            mstore(add(ptr, 0x80), expiry)
            structHash := keccak256(ptr, 0xa0)
        }
    }

    /// @dev `_requireSigner` for the packed 65-byte signature r ‖ s ‖ v at byte `start` of `data`, with
    /// the same rules (v in {27, 28}, low s, recoverable), calling the ecrecover precompile directly.
    function _requireSignerAt(bytes32 digest, bytes calldata data, uint256 start, address expected) private view {
        address recovered;
        bool highS;
        assembly ("memory-safe") {
            let sig := add(data.offset, start)
            let s := calldataload(add(sig, 0x20))
            highS := gt(s, 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0)
            let ptr := mload(0x40)
            mstore(ptr, digest)
            mstore(add(ptr, 0x20), byte(0, calldataload(add(sig, 0x40))))
            mstore(add(ptr, 0x40), calldataload(sig))
            mstore(add(ptr, 0x60), s)
            mstore(0, 0)
            // The precompile returns no data for a bad v or an unrecoverable signature: 0 stays.
            pop(staticcall(gas(), 1, ptr, 0x80, 0, 0x20))
            recovered := mload(0)
        }
        if (highS || recovered == address(0)) revert ChannelManagerInvalidSignature();
        if (recovered != expected) revert ChannelManagerWrongSigner(expected, recovered);
    }

    function _isResolved(bytes32 key, address sender, uint256 slot) private view returns (bool) {
        return _resolvedLocks[key][sender][slot >> 8] & (1 << (slot & 255)) != 0;
    }

    /// @dev Who gets a lock: the receiver if its secret was registered at a block <= its expiration,
    /// else the sender once it expired; before that nobody.
    function _lockBeneficiary(Lock calldata lock, address sender, address receiver) private view returns (address) {
        uint256 revealBlock = _secretRevealBlock[lock.secrethash];
        if (revealBlock != 0 && revealBlock <= lock.expiration) return receiver;
        if (block.number > lock.expiration) return sender;
        revert ChannelManagerLockPending(lock.secrethash, lock.expiration);
    }

    /// @dev Takes `min(wanted, pool)` out of `sender`'s lock pool, freeing the pool when it empties.
    function _takeFromPool(bytes32 key, address sender, uint256 wanted) private returns (uint256 amount) {
        ProofData storage pool = _proofs[key][sender];
        uint256 remaining = pool.locked;
        if (wanted < remaining) {
            amount = wanted;
            // wanted < remaining <= type(uint96).max, so the difference fits.
            pool.locked = uint96(remaining - wanted);
        } else {
            amount = remaining;
            delete _proofs[key][sender];
        }
    }

    /// @dev The checks shared by both update paths; returns the channel key.
    function _checkUpdate(
        uint256 channelId,
        address closer,
        address nonCloser,
        uint256 nonce,
        uint256 transferredAmount,
        uint256 lockedAmount
    ) private view returns (bytes32 key) {
        bool closerIsParticipant1;
        (key, closerIsParticipant1) = _key(channelId, closer, nonCloser);
        Channel memory channel = _channels[key];
        if (channel.state == STATE_NONE) revert ChannelManagerUnknownChannel(channelId, closer, nonCloser);
        if (channel.state != STATE_CLOSED) revert ChannelManagerChannelNotClosed(channelId);
        if (block.number > channel.settleBlock) revert ChannelManagerChallengePeriodOver(channel.settleBlock);
        if (channel.closedByParticipant1 != closerIsParticipant1) revert ChannelManagerNotCloser(closer);
        _checkProofRanges(nonce, transferredAmount, lockedAmount);
        uint256 stored = _proofs[key][closer].nonce;
        if (nonce <= stored) revert ChannelManagerNonceTooLow(nonce, stored);
    }

    /// @dev All checks of an update, including the closer's signature; returns the channel key.
    function _verifyUpdate(
        uint256 channelId,
        address closer,
        address nonCloser,
        uint256 nonce,
        uint256 transferredAmount,
        uint256 lockedAmount,
        bytes32 locksRoot,
        bytes calldata closerSig
    ) private view returns (bytes32 key) {
        key = _checkUpdate(channelId, closer, nonCloser, nonce, transferredAmount, lockedAmount);
        _requireSigner(
            _hashTypedDataV4(_balanceProofStructHash(channelId, nonce, transferredAmount, lockedAmount, locksRoot)),
            closerSig,
            closer
        );
    }

    /// @dev Stores a verified update and emits its event.
    function _storeUpdate(
        bytes32 key,
        uint256 channelId,
        address closer,
        uint256 nonce,
        uint256 transferredAmount,
        uint256 lockedAmount,
        bytes32 locksRoot
    ) private {
        // The ranges were checked in _checkUpdate.
        _proofs[key][closer] = ProofData({
            nonce: uint64(nonce),
            transferred: uint96(transferredAmount),
            locked: uint96(lockedAmount),
            locksRoot: locksRoot
        });
        emit ChannelBalanceProofUpdated(channelId, closer, nonce, msg.sender);
    }

    /// @dev The settlement arithmetic of docs/protocol.md.
    function _settlementAmounts(
        bytes32 key,
        Channel memory channel,
        ProofData memory proof1,
        ProofData memory proof2
    ) private view returns (uint256 balance1, uint256 balance2, uint256 locked1, uint256 locked2) {
        Withdrawn memory w = Withdrawn({withdrawn1: 0, withdrawn2: 0, headroom: 0});
        if (channel.hasWithdrawn) w = _withdrawn[key];
        uint256 total = uint256(channel.deposit1) + channel.deposit2 - w.withdrawn1 - w.withdrawn2;
        // Every term is below 2^96, so the signed sum cannot overflow int256.
        int256 raw = int256(uint256(channel.deposit1)) - int256(uint256(w.withdrawn1))
            + int256(uint256(proof2.transferred)) - int256(uint256(proof1.transferred));
        if (raw < 0) {
            balance1 = 0;
        } else if (uint256(raw) > total) {
            balance1 = total;
        } else {
            balance1 = uint256(raw);
        }
        balance2 = total - balance1;
        // A locked amount without a locks root could never be unlocked: it stays with its sender.
        if (proof1.locksRoot != bytes32(0)) {
            locked1 = proof1.locked < balance1 ? proof1.locked : balance1;
            balance1 -= locked1;
        }
        if (proof2.locksRoot != bytes32(0)) {
            locked2 = proof2.locked < balance2 ? proof2.locked : balance2;
            balance2 -= locked2;
        }
    }

    /// @dev At settle: frees the reward slot and returns who gets how much: the recorded reward, capped
    /// by the non-closer's settled balance (the reward is paid out of it).
    function _takeReward(bytes32 key, bool closedByParticipant1, uint256 balance1, uint256 balance2)
        private
        returns (address watchtower, uint256 amount)
    {
        MonitorReward memory reward = _rewards[key];
        if (reward.watchtower == address(0)) return (address(0), 0);
        delete _rewards[key];
        uint256 nonCloserBalance = closedByParticipant1 ? balance2 : balance1;
        return (reward.watchtower, reward.amount < nonCloserBalance ? reward.amount : nonCloserBalance);
    }

    /// @dev At settle: keep a direction's locks root and pool while something is locked, else free it.
    function _keepLockPool(bytes32 key, address sender, ProofData memory proof, uint256 locked) private {
        if (locked != 0) {
            // locked <= proof.locked < 2^96.
            _proofs[key][sender] = ProofData({nonce: 0, transferred: 0, locked: uint96(locked), locksRoot: proof.locksRoot});
        } else if (proof.nonce != 0) {
            delete _proofs[key][sender];
        }
    }

    function _channelTotal(bytes32 key, Channel memory channel) private view returns (uint256 total) {
        total = uint256(channel.deposit1) + channel.deposit2;
        if (channel.hasWithdrawn) {
            Withdrawn memory w = _withdrawn[key];
            total -= uint256(w.withdrawn1) + w.withdrawn2;
        }
    }

    function _checkProofRanges(uint256 nonce, uint256 transferredAmount, uint256 lockedAmount) private pure {
        if (nonce > type(uint64).max) revert ChannelManagerNonceTooLarge(nonce);
        if (transferredAmount > type(uint96).max) revert ChannelManagerAmountTooLarge(transferredAmount);
        if (lockedAmount > type(uint96).max) revert ChannelManagerAmountTooLarge(lockedAmount);
    }

    function _requireOpen(uint8 state, uint256 channelId, address participant, address partner) private pure {
        if (state == STATE_NONE) revert ChannelManagerUnknownChannel(channelId, participant, partner);
        if (state != STATE_OPEN) revert ChannelManagerChannelNotOpen(channelId);
    }

    /// @dev Adds `amount` to an internal balance; skips the storage write for 0 (saves ~2.2k gas).
    function _credit(address account, uint256 amount) private {
        if (amount != 0) _balances[account] += amount;
    }

    function _debit(address account, uint256 amount) private {
        uint256 balance = _balances[account];
        if (balance < amount) revert ChannelManagerInsufficientBalance(account, balance, amount);
        // balance >= amount was just checked.
        unchecked {
            _balances[account] = balance - amount;
        }
    }

    /// @dev Reverts unless `signature` is a well-formed (65 bytes, v in {27, 28}, low s) signature of
    /// `digest` by `expected`.
    function _requireSigner(bytes32 digest, bytes calldata signature, address expected) private pure {
        address recovered = _recover(digest, signature);
        if (recovered != expected) revert ChannelManagerWrongSigner(expected, recovered);
    }

    function _recover(bytes32 digest, bytes calldata signature) private pure returns (address recovered) {
        ECDSA.RecoverError err;
        // The third value only details the error (the bad length or s), which this contract does not report.
        // slither-disable-next-line unused-return
        (recovered, err,) = ECDSA.tryRecover(digest, signature);
        if (err != ECDSA.RecoverError.NoError) revert ChannelManagerInvalidSignature();
    }

    /// @dev The `MonitorRequest` names either the caller or `address(0)` (anyone) as the watchtower;
    /// the contract is not told which, so it tries the caller first.
    function _requireMonitorSigner(
        uint256 channelId,
        bytes32 balanceProofHash,
        uint256 reward,
        bytes calldata signature,
        address nonCloser
    ) private view {
        address recovered = _recover(
            _hashTypedDataV4(
                keccak256(abi.encode(MONITOR_REQUEST_TYPEHASH, channelId, balanceProofHash, reward, msg.sender))
            ),
            signature
        );
        if (recovered == nonCloser) return;
        address anyone = _recover(
            _hashTypedDataV4(
                keccak256(abi.encode(MONITOR_REQUEST_TYPEHASH, channelId, balanceProofHash, reward, address(0)))
            ),
            signature
        );
        if (anyone != nonCloser) revert ChannelManagerWrongSigner(nonCloser, recovered);
    }

    function _sort(address a, address b) private pure returns (address, address) {
        return a < b ? (a, b) : (b, a);
    }

    /// @dev The channel key of (`channelId`, {a, b}) and whether `a` is participant1.
    function _key(uint256 channelId, address a, address b) private pure returns (bytes32 key, bool aIsParticipant1) {
        aIsParticipant1 = a < b;
        key = aIsParticipant1 ? _channelKey(channelId, a, b) : _channelKey(channelId, b, a);
    }

    function _channelKey(uint256 channelId, address participant1, address participant2)
        private
        pure
        returns (bytes32)
    {
        return keccak256(abi.encode(channelId, participant1, participant2));
    }
}

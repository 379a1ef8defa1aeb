// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @title Custom errors of the CISE channel manager.
/// @notice Every rejection of the channel manager is one of these; the off-chain client maps them.
interface IChannelManagerErrors {
    /// @notice An amount (deposit, withdraw total, transferred, locked, reward) exceeds `type(uint96).max`.
    error ChannelManagerAmountTooLarge(uint256 amount);
    /// @notice A balance proof nonce exceeds `type(uint64).max`, the width the contract stores.
    error ChannelManagerNonceTooLarge(uint256 nonce);
    /// @notice The settle timeout is outside `[MIN_SETTLE_TIMEOUT, MAX_SETTLE_TIMEOUT]`.
    error ChannelManagerSettleTimeoutOutOfRange(uint256 settleTimeout, uint256 min, uint256 max);
    /// @notice The token address is zero.
    error ChannelManagerZeroToken();
    /// @notice The two participants are equal, zero, or (where order matters) not ascending.
    error ChannelManagerInvalidParticipants(address participant1, address participant2);
    /// @notice No channel `channelId` exists between these two addresses (never opened, already gone,
    /// or the caller is not a participant).
    error ChannelManagerUnknownChannel(uint256 channelId, address participant, address partner);
    /// @notice The channel exists but is not open (it was closed).
    error ChannelManagerChannelNotOpen(uint256 channelId);
    /// @notice The channel exists but has not been closed.
    error ChannelManagerChannelNotClosed(uint256 channelId);
    /// @notice The channel still exists (open or closed): locks are resolved only after settle.
    error ChannelManagerChannelNotSettled(uint256 channelId);
    /// @notice The challenge period is over: `block.number > settleBlock`.
    error ChannelManagerChallengePeriodOver(uint256 settleBlock);
    /// @notice The challenge period is not over yet: `block.number <= settleBlock`.
    error ChannelManagerChallengePeriodNotOver(uint256 settleBlock);
    /// @notice The caller's internal balance is smaller than the amount asked for.
    error ChannelManagerInsufficientBalance(address account, uint256 balance, uint256 needed);
    /// @notice A zero amount where a positive one is required.
    error ChannelManagerZeroAmount();
    /// @notice The recipient of a token transfer is the zero address.
    error ChannelManagerZeroAddress();
    /// @notice `setTotalDeposit` with a total that is not above the current one.
    error ChannelManagerDepositNotIncreasing(uint256 totalDeposit, uint256 currentTotalDeposit);
    /// @notice `withdraw` with a total that is not above the participant's current withdrawn total.
    error ChannelManagerWithdrawNotIncreasing(uint256 totalWithdraw, uint256 currentTotalWithdraw);
    /// @notice `withdraw` after its signed expiry block.
    error ChannelManagerWithdrawExpired(uint256 expiry);
    /// @notice `withdraw` would take more than the channel holds (`D1 + D2 - W1 - W2`).
    error ChannelManagerWithdrawExceedsChannel(uint256 increase, uint256 available);
    /// @notice A settlement batch's packed items are not a whole number of items of `itemSize` bytes.
    error ChannelManagerMalformedBatch(uint256 length, uint256 itemSize);
    /// @notice A settlement batch with neither withdraw nor re-deposit items.
    error ChannelManagerEmptyBatch();
    /// @notice The `SettlementBatch` signature of `settleHubBatch` does not recover to `hub`.
    error ChannelManagerWrongBatchSigner(address hub, address recovered);
    /// @notice `cooperativeClose` balances do not sum to the channel's total.
    error ChannelManagerBalancesMismatch(uint256 balance1, uint256 balance2, uint256 channelTotal);
    /// @notice A signature is malformed: not 65 bytes, `v` not 27/28, high `s`, or unrecoverable.
    error ChannelManagerInvalidSignature();
    /// @notice A well-formed signature recovers to somebody other than the expected signer (forged,
    /// or signed for another message, channel, chain or contract).
    error ChannelManagerWrongSigner(address expected, address recovered);
    /// @notice A balance proof with a nonce not above the stored one.
    error ChannelManagerNonceTooLow(uint256 nonce, uint256 storedNonce);
    /// @notice `updateBalanceProof*` naming an address that did not close the channel.
    error ChannelManagerNotCloser(address closer);
    /// @notice The secret was already registered.
    error ChannelManagerSecretAlreadyRegistered(bytes32 secrethash, uint256 revealBlock);
    /// @notice No pending locks remain for this direction of this (settled) channel.
    error ChannelManagerNoPendingLocks(uint256 channelId, address sender);
    /// @notice The lock slot is not below `MAX_PENDING_LOCKS`.
    error ChannelManagerInvalidLockSlot(uint256 slot);
    /// @notice The lock slot was already resolved.
    error ChannelManagerLockAlreadyResolved(uint256 slot);
    /// @notice The Merkle proof does not lead from the lock to the settled `locksRoot`.
    error ChannelManagerInvalidLockProof(bytes32 computedRoot, bytes32 locksRoot);
    /// @notice The lock has not expired and its secret was not registered in time: nobody can take it yet.
    error ChannelManagerLockPending(bytes32 secrethash, uint256 expiration);
    /// @notice `account` is not an active member of the network (never admitted, suspended or expelled):
    /// it cannot open a channel, nor be opened to (`GovernedChannelManager`).
    error ChannelManagerNotMember(address account);
    /// @notice Only the network's governance (its timelock) may call this (`GovernedChannelManager`).
    error ChannelManagerNotGovernance(address caller);
    /// @notice Only the network's membership contract may call this (`GovernedChannelManager`).
    error ChannelManagerNotMembership(address caller);
    /// @notice The membership or governance address given at deployment is zero (`GovernedChannelManager`).
    error ChannelManagerZeroGovernance();
}

/// @title Events of the CISE channel manager (past tense, emitted right after the state change).
interface IChannelManagerEvents {
    /// @notice The challenge period for future closes was set.
    event SettleTimeoutSet(uint256 settleTimeout);
    /// @notice Tokens entered `account`'s internal balance from its ERC20 balance.
    event BalanceDeposited(address indexed account, uint256 amount);
    /// @notice Tokens left `account`'s internal balance to `to`'s ERC20 balance.
    event BalanceWithdrawn(address indexed account, address indexed to, uint256 amount);
    /// @notice A channel was opened by `opener` with an initial deposit of `deposit`.
    event ChannelOpened(
        uint256 indexed channelId,
        address indexed participant1,
        address indexed participant2,
        address opener,
        uint256 deposit
    );
    /// @notice `participant`'s total deposit in the channel is now `totalDeposit`.
    event ChannelDeposited(uint256 indexed channelId, address indexed participant, uint256 totalDeposit);
    /// @notice `participant`'s withdrawn total from the channel is now `totalWithdraw`; the increase
    /// went to its internal balance.
    event ChannelWithdrawn(uint256 indexed channelId, address indexed participant, uint256 totalWithdraw);
    /// @notice The channel was closed by `closer` with the partner's proof of nonce `nonce` (0: none).
    event ChannelClosed(uint256 indexed channelId, address indexed closer, uint256 nonce, uint256 settleBlock);
    /// @notice The closer's proof was replaced by the one of nonce `nonce`, submitted by `submitter`.
    event ChannelBalanceProofUpdated(
        uint256 indexed channelId,
        address indexed closer,
        uint256 nonce,
        address submitter
    );
    /// @notice The channel was settled: `balance1`/`balance2` credited to the internal balances,
    /// `locked1`/`locked2` (outgoing locks of participant1/2) wait for `unlock`.
    event ChannelSettled(
        uint256 indexed channelId,
        uint256 balance1,
        uint256 balance2,
        uint256 locked1,
        uint256 locked2
    );
    /// @notice A watchtower was paid `amount` out of the guarded party's settled balance.
    event ChannelMonitorRewarded(uint256 indexed channelId, address indexed watchtower, uint256 amount);
    /// @notice The channel was closed by both participants' agreement and its balances credited.
    event ChannelCooperativelyClosed(uint256 indexed channelId, uint256 balance1, uint256 balance2);
    /// @notice `secret` (with `keccak256(secret) == secrethash`) was registered at this block.
    event SecretRegistered(bytes32 indexed secrethash, bytes32 secret);
    /// @notice The lock in `slot` of `sender`'s direction paid `amount` to `beneficiary`.
    event LockUnlocked(
        uint256 indexed channelId,
        address indexed sender,
        address indexed beneficiary,
        uint256 slot,
        bytes32 secrethash,
        uint256 amount
    );
}

/// @title The CISE channel manager (see docs/protocol.md, which is normative).
interface IChannelManager is IChannelManagerErrors, IChannelManagerEvents {
    /// @notice A hashlock of a mediated transfer, as signed (EIP-712 type `Lock`).
    struct Lock {
        uint256 amount;
        uint256 expiration;
        bytes32 secrethash;
    }

    // ----------------------------------------------------------------- internal balances

    /// @notice Move `amount` tokens from the caller's ERC20 balance into its internal balance.
    /// @dev Needs an ERC20 allowance of at least `amount` for this contract.
    /// @param amount Token units to move in, > 0.
    function depositToBalance(uint256 amount) external;

    /// @notice Move `amount` tokens from the caller's internal balance to `to`'s ERC20 balance.
    /// @param amount Token units to move out, > 0 and <= the caller's internal balance.
    /// @param to Receiver of the tokens, not zero.
    function withdrawFromBalance(uint256 amount, address to) external;

    /// @notice The internal balance of `account`.
    /// @param account Any address.
    /// @return The internal balance, in token units.
    function balanceOf(address account) external view returns (uint256);

    // ----------------------------------------------------------------- channels

    /// @notice Open a channel between the caller and `partner`, depositing `amount` ERC20 tokens from
    /// the caller (may be 0).
    /// @param partner The other participant.
    /// @param amount The caller's initial deposit, <= `type(uint96).max`.
    /// @return channelId The new channel's id (a counter from 1, never reused).
    function openChannel(address partner, uint256 amount) external returns (uint256 channelId);

    /// @notice Like `openChannel`, but the deposit comes from the caller's internal balance.
    /// @param partner The other participant.
    /// @param amount The caller's initial deposit.
    /// @return channelId The new channel's id.
    function openChannelFromBalance(address partner, uint256 amount) external returns (uint256 channelId);

    /// @notice Raise the caller's total deposit in an open channel to `totalDeposit`, taking the increase
    /// from its ERC20 balance. Repeating a call is harmless: a total that is not higher reverts.
    /// @param channelId The channel.
    /// @param partner The other participant.
    /// @param totalDeposit The caller's new total deposit, above the current one.
    function setTotalDeposit(uint256 channelId, address partner, uint256 totalDeposit) external;

    /// @notice Like `setTotalDeposit`, but the increase comes from the caller's internal balance.
    /// @param channelId The channel.
    /// @param partner The other participant.
    /// @param totalDeposit The caller's new total deposit.
    function setTotalDepositFromBalance(uint256 channelId, address partner, uint256 totalDeposit) external;

    /// @notice Apply a `Withdraw` signed by both participants: raise `participant`'s withdrawn total to
    /// `totalWithdraw` and credit the increase to its internal balance. The channel stays open.
    /// Anyone may submit it.
    /// @param channelId The channel (open).
    /// @param participant Who withdraws.
    /// @param partner The other participant.
    /// @param totalWithdraw The new withdrawn total of `participant`, above the current one.
    /// @param expiry Last block at which the withdraw is valid.
    /// @param participantSig `participant`'s signature of the `Withdraw`.
    /// @param partnerSig `partner`'s signature of the same `Withdraw`.
    function withdraw(
        uint256 channelId,
        address participant,
        address partner,
        uint256 totalWithdraw,
        uint256 expiry,
        bytes calldata participantSig,
        bytes calldata partnerSig
    ) external;

    /// @notice Apply many `Withdraw`s, each signed by both participants, then the caller's re-deposits,
    /// in one transaction (periodic net settlement). Each withdraw has exactly the checks and effects of
    /// `withdraw` (channel open, total above the participant's withdrawn total, increase within
    /// `D1 + D2 - W1 - W2`, both signatures) and emits `ChannelWithdrawn`; each re-deposit those of
    /// `setTotalDepositFromBalance` by the caller (after the withdraws, so they can fund it) and emits
    /// `ChannelDeposited`. Any rejection reverts the whole batch. Anyone may submit it.
    /// @param expiry Last block of validity; every item's `Withdraw.expiry` is this value.
    /// @param withdraws Packed items of `BATCH_ITEM_SIZE` = 190 bytes: `uint64 channelId ‖ address
    /// participant ‖ address partner ‖ uint96 totalWithdraw ‖ participantSig (65) ‖ partnerSig (65)`.
    /// @param deposits Packed items of `BATCH_DEPOSIT_SIZE` = 40 bytes: `uint64 channelId ‖ address
    /// partner ‖ uint96 totalDeposit` (the caller's new total deposit in that channel).
    function settleBatch(uint256 expiry, bytes calldata withdraws, bytes calldata deposits) external;

    /// @notice Like `settleBatch`, for a batch of channels that all have `hub` as a participant: `hub`
    /// signs `SettlementBatch(itemsHash, expiry)` once, with `itemsHash` = keccak256 of the items'
    /// `hashStruct(Withdraw)` concatenated in order (EIP-712's encoding of a `Withdraw[]`), and each
    /// counterparty signs its own item's `Withdraw`.
    /// @param hub The participant present in every item, signer of the batch.
    /// @param expiry Last block of validity of the batch and of every item's `Withdraw`.
    /// @param hubSig The hub's signature of the `SettlementBatch`.
    /// @param withdraws Packed items of `HUB_BATCH_ITEM_SIZE` = 106 bytes: `uint64 channelId ‖ address
    /// counterparty ‖ uint8 hubWithdraws (0: the counterparty withdraws, else the hub) ‖ uint96
    /// totalWithdraw ‖ counterpartySig (65)`.
    /// @param deposits Re-deposits by the caller, as in `settleBatch`.
    function settleHubBatch(
        address hub,
        uint256 expiry,
        bytes calldata hubSig,
        bytes calldata withdraws,
        bytes calldata deposits
    ) external;

    /// @notice Close an open channel at once with a `CooperativeClose` signed by both participants,
    /// crediting the balances to the internal balances. Anyone may submit it.
    /// @param channelId The channel (open).
    /// @param participant1 The lower address.
    /// @param participant2 The higher address.
    /// @param balance1 participant1's final balance.
    /// @param balance2 participant2's final balance; `balance1 + balance2` = the channel's total.
    /// @param sig1 participant1's signature.
    /// @param sig2 participant2's signature.
    function cooperativeClose(
        uint256 channelId,
        address participant1,
        address participant2,
        uint256 balance1,
        uint256 balance2,
        bytes calldata sig1,
        bytes calldata sig2
    ) external;

    /// @notice Close the channel unilaterally (caller = closer) with the partner's latest balance proof,
    /// starting the challenge period of `settleTimeout` blocks.
    /// @param channelId The channel (open).
    /// @param partner The other participant, signer of the proof.
    /// @param nonce The proof's nonce; 0 means "no proof received" (the other fields and signature
    /// are then ignored).
    /// @param transferredAmount The proof's cumulative transferred amount.
    /// @param lockedAmount The proof's pending locked amount.
    /// @param locksRoot The proof's locks tree root.
    /// @param partnerSig The partner's signature of the `BalanceProof`.
    function closeChannel(
        uint256 channelId,
        address partner,
        uint256 nonce,
        uint256 transferredAmount,
        uint256 lockedAmount,
        bytes32 locksRoot,
        bytes calldata partnerSig
    ) external;

    /// @notice During the challenge period, the non-closer (caller) submits the closer's latest
    /// balance proof; only a higher nonce than the stored one is accepted.
    /// @param channelId The channel (closed).
    /// @param closer The participant that closed, signer of the proof.
    /// @param nonce The proof's nonce.
    /// @param transferredAmount The proof's cumulative transferred amount.
    /// @param lockedAmount The proof's pending locked amount.
    /// @param locksRoot The proof's locks tree root.
    /// @param closerSig The closer's signature of the `BalanceProof`.
    function updateBalanceProof(
        uint256 channelId,
        address closer,
        uint256 nonce,
        uint256 transferredAmount,
        uint256 lockedAmount,
        bytes32 locksRoot,
        bytes calldata closerSig
    ) external;

    /// @notice The same as `updateBalanceProof`, by a watchtower carrying the non-closer's signed
    /// `MonitorRequest` for exactly this proof. The reward is paid at settle out of the non-closer's
    /// settled balance (capped by it) to the caller.
    /// @param channelId The channel (closed).
    /// @param closer The participant that closed, signer of the proof.
    /// @param nonCloser The guarded participant, signer of the `MonitorRequest`.
    /// @param nonce The proof's nonce.
    /// @param transferredAmount The proof's cumulative transferred amount.
    /// @param lockedAmount The proof's pending locked amount.
    /// @param locksRoot The proof's locks tree root.
    /// @param closerSig The closer's signature of the `BalanceProof`.
    /// @param reward The reward named in the `MonitorRequest`.
    /// @param monitorSig The non-closer's signature of `MonitorRequest(channelId, hashStruct(proof),
    /// reward, watchtower)` where `watchtower` is the caller or `address(0)`.
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
    ) external;

    /// @notice After the challenge period, settle the channel: credit both balances to the internal
    /// balances and keep the locked amounts for `unlock`. Anyone may call it.
    /// @param channelId The channel (closed, challenge period over).
    /// @param participant1 The lower address.
    /// @param participant2 The higher address.
    function settleChannel(uint256 channelId, address participant1, address participant2) external;

    /// @notice Register `secret`, recording the block of its first registration under
    /// `keccak256(secret)`.
    /// @param secret The 32-byte secret.
    function registerSecret(bytes32 secret) external;

    /// @notice After settle, resolve one pending lock of `sender`'s direction: to `receiver` if its
    /// secret was registered at a block <= its expiration, else (once expired) back to `sender`.
    /// Pays `min(lock.amount, remaining pool)`. Anyone may call it.
    /// @param channelId The settled channel.
    /// @param sender The participant that sent the lock.
    /// @param receiver The other participant.
    /// @param lock The lock, as signed in the sender's locks tree.
    /// @param slot Its slot in the locks tree (< 512).
    /// @param proof The 9 sibling hashes from the leaf level up.
    function unlock(
        uint256 channelId,
        address sender,
        address receiver,
        Lock calldata lock,
        uint256 slot,
        bytes32[9] calldata proof
    ) external;

    // ----------------------------------------------------------------- views

    /// @notice The id of the last opened channel (0 before the first).
    /// @return The counter; the next channel gets this plus one.
    function channelCount() external view returns (uint256);

    /// @notice The challenge period, in blocks, that a close started now would get.
    /// @return The settle timeout.
    function settleTimeout() external view returns (uint256);

    /// @notice The EIP-712 domain separator (`name="CISE"`, `version="1"`, this chain, this contract).
    /// @return The domain separator.
    function domainSeparator() external view returns (bytes32);

    /// @notice The state of channel `channelId` between `participant` and `partner` (either order).
    /// @param channelId The channel.
    /// @param participant One participant.
    /// @param partner The other participant.
    /// @return state 0 = none (never opened, or settled / cooperatively closed), 1 = open, 2 = closed.
    /// @return settleBlock Last block of the challenge period (0 unless closed).
    /// @return closer The closer (zero unless closed).
    /// @return deposit1 participant1's (lower address) total deposit.
    /// @return deposit2 participant2's total deposit.
    /// @return withdrawn1 participant1's withdrawn total.
    /// @return withdrawn2 participant2's withdrawn total.
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
        );

    /// @notice The balance proof stored for `sender`'s direction (at close/update), or after settle the
    /// pending lock pool (`nonce = transferredAmount = 0`, `lockedAmount` = what is left to unlock).
    /// @param channelId The channel.
    /// @param sender The participant that signed the proof.
    /// @param receiver The other participant.
    /// @return nonce The stored nonce (0: none).
    /// @return transferredAmount The stored transferred amount.
    /// @return lockedAmount The stored locked amount (after settle: the remaining pool).
    /// @return locksRoot The stored locks root.
    function getBalanceProof(uint256 channelId, address sender, address receiver)
        external
        view
        returns (uint256 nonce, uint256 transferredAmount, uint256 lockedAmount, bytes32 locksRoot);

    /// @notice The watchtower reward recorded for a closed channel.
    /// @param channelId The channel.
    /// @param participant One participant.
    /// @param partner The other participant.
    /// @return watchtower Who submitted the last `updateBalanceProofFor` (zero: none).
    /// @return reward The reward it will be paid at settle (capped by the guarded party's balance).
    function getMonitorReward(uint256 channelId, address participant, address partner)
        external
        view
        returns (address watchtower, uint256 reward);

    /// @notice The block at which the secret of `secrethash` was first registered (0: never).
    /// @param secrethash `keccak256(secret)`.
    /// @return The registration block.
    function secretRevealBlock(bytes32 secrethash) external view returns (uint256);

    /// @notice Whether `slot` of `sender`'s direction of a settled channel was already resolved.
    /// @param channelId The channel.
    /// @param sender The participant that sent the locks.
    /// @param receiver The other participant.
    /// @param slot The lock slot.
    /// @return True once `unlock` resolved that slot.
    function isLockResolved(uint256 channelId, address sender, address receiver, uint256 slot)
        external
        view
        returns (bool);
}

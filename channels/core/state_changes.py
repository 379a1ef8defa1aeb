"""Inputs of the channel core, named by origin (DESIGN §5, STYLE 2).

- `Action*`: our own side asks for something (the application, the hub, the CLI).
- `Receive*`: a peer message arrived (already decoded by `channels.wire`; NOT yet checked: the core
  recovers every signature and checks every field, and turns a bad one into an `EventInvalid*`).
  `sender` is the peer the transport says sent it.
- `ContractReceive*`: a channel-manager event seen on chain (mapped from logs by `channels.chain`),
  each with the `transaction_hash` and `block_number` of its log.
- `Block`: the chain head moved.

Plain frozen records: no behaviour, no I/O, no keys.
"""

from __future__ import annotations

import msgspec

from channels.core.state import BalanceProof, BatchedBy, Lock
from channels.core.types import (
    ZERO_AMOUNT,
    Address,
    BlockNumber,
    ChannelId,
    Nonce,
    PaymentId,
    Secret,
    SecretHash,
    Signature,
    TokenAmount,
)

# --------------------------------------------------------------------------- time


class Block(msgspec.Struct, frozen=True):
    """The chain head is now `block_number`."""

    block_number: BlockNumber


# --------------------------------------------------------------------------- Action*


class ActionTransfer(msgspec.Struct, frozen=True):
    """Pay `amount` directly to the partner of `channel_id` (one signed balance proof)."""

    channel_id: ChannelId
    amount: TokenAmount
    payment_id: PaymentId


class ActionLockedTransfer(msgspec.Struct, frozen=True):
    """Send `amount` to the partner under a hashlock (a hop of a mediated payment).

    `target` is the final payee (the partner itself on the last hop); it travels in the message so
    a mediator knows where to forward.
    """

    channel_id: ChannelId
    amount: TokenAmount
    expiration: BlockNumber
    secrethash: SecretHash
    payment_id: PaymentId
    target: Address


class ActionUnlock(msgspec.Struct, frozen=True):
    """We learned `secret` for a lock we sent: give the partner the locked amount (an Unlock)."""

    channel_id: ChannelId
    secret: Secret


class ActionRevealSecret(msgspec.Struct, frozen=True):
    """We know `secret` of a lock the partner sent us: reveal it so the partner unlocks.

    A payee's own secret is never revealed within `reveal_margin` blocks of the lock's expiry (the
    partner would learn it for nothing). A mediator that learned the secret downstream has already
    paid for it (`paid_downstream`): it reveals and keeps the secret however late, since only the
    partner's unlock or its own registration on chain can still pay it back.
    """

    channel_id: ChannelId
    secret: Secret
    paid_downstream: bool = False


class ActionRequestSecret(msgspec.Struct, frozen=True):
    """Ask the partner for the secret of a payment (SecretRequest); plain message, not signed."""

    channel_id: ChannelId
    payment_id: PaymentId
    secrethash: SecretHash
    amount: TokenAmount


class ActionDeposit(msgspec.Struct, frozen=True):
    """Raise our total deposit in the channel to `total_deposit` (a transaction); the increase
    comes from our ERC20 wallet, or with `from_balance` from our internal balance in the channel
    manager (no token transfer: how a hub tops up a channel with what other channels paid it)."""

    channel_id: ChannelId
    total_deposit: TokenAmount
    from_balance: bool = False


class ActionWithdraw(msgspec.Struct, frozen=True):
    """Withdraw to our internal balance while the channel stays open: ask the partner to co-sign.

    `batched_by` US: a settlement batch of ours applies it once the partner confirms (no
    transaction of its own); PARTNER: the partner's batch applies it (the request carries our
    signature and asks for no confirmation).
    """

    channel_id: ChannelId
    total_withdraw: TokenAmount
    expiry: BlockNumber
    batched_by: BatchedBy = BatchedBy.NOBODY


class ActionCooperativeClose(msgspec.Struct, frozen=True):
    """Propose closing now at the current balances (needs no pending locks either way)."""

    channel_id: ChannelId


class ActionClose(msgspec.Struct, frozen=True):
    """Close unilaterally with the partner's latest balance proof."""

    channel_id: ChannelId


class ActionRefuseLock(msgspec.Struct, frozen=True):
    """Refuse the partner's pending lock `secrethash` before it expires (a refund, LockRefused).

    For a hub that cannot route the payment, or a payee that will not accept it. Only a lock whose
    secret we do not know can be refused; once refused we never claim it (no reveal, no secret
    registration, no on-chain claim), even if its secret becomes known later.
    """

    channel_id: ChannelId
    secrethash: SecretHash
    reason: str


# --------------------------------------------------------------------------- Receive*


class ReceiveBalanceProof(msgspec.Struct, frozen=True):
    """A direct transfer: the partner's new proof raises `transferred` (amount = the increase)."""

    sender: Address
    balance_proof: BalanceProof  # with the sender's signature
    payment_id: PaymentId


class ReceiveLockedTransfer(msgspec.Struct, frozen=True):
    """The partner's new proof adds `lock` in tree slot `slot`."""

    sender: Address
    balance_proof: BalanceProof
    lock: Lock
    slot: int
    payment_id: PaymentId
    target: Address


class ReceiveUnlock(msgspec.Struct, frozen=True):
    """The partner's new proof moves the lock in `slot` (whose secret is `secret`) into transferred."""

    sender: Address
    balance_proof: BalanceProof
    secret: Secret
    slot: int


class ReceiveLockExpired(msgspec.Struct, frozen=True):
    """The partner's new proof removes its expired lock from `slot`."""

    sender: Address
    balance_proof: BalanceProof
    secrethash: SecretHash
    slot: int


class ReceiveLockRefused(msgspec.Struct, frozen=True):
    """The partner refuses our pending lock `secrethash` (unsigned): remove it before it expires."""

    sender: Address
    channel_id: ChannelId
    secrethash: SecretHash
    reason: str


class ReceiveSecretRequest(msgspec.Struct, frozen=True):
    """The partner asks for the secret of `secrethash` (unsigned)."""

    sender: Address
    channel_id: ChannelId
    payment_id: PaymentId
    secrethash: SecretHash
    amount: TokenAmount


class ReceiveSecretReveal(msgspec.Struct, frozen=True):
    """The partner revealed `secret` (self-authenticating: keccak256(secret) is the secrethash)."""

    sender: Address
    channel_id: ChannelId
    secret: Secret


class ReceiveWithdrawRequest(msgspec.Struct, frozen=True):
    """The partner asks us to co-sign `Withdraw(channel_id, participant, total_withdraw, expiry)`."""

    sender: Address
    channel_id: ChannelId
    participant: Address
    total_withdraw: TokenAmount
    expiry: BlockNumber
    signature: Signature  # the participant's
    batch: bool = False  # for our settlement batch: keep the signature, send no confirmation


class ReceiveWithdrawConfirmation(msgspec.Struct, frozen=True):
    """The partner co-signed our `Withdraw` request."""

    sender: Address
    channel_id: ChannelId
    participant: Address
    total_withdraw: TokenAmount
    expiry: BlockNumber
    signature: Signature  # the partner's


class ReceiveCooperativeCloseRequest(msgspec.Struct, frozen=True):
    """The partner proposes `CooperativeClose(channel_id, balance1, balance2)`, signed by it."""

    sender: Address
    channel_id: ChannelId
    balance1: TokenAmount
    balance2: TokenAmount
    signature: Signature


class ReceiveCooperativeCloseConfirmation(msgspec.Struct, frozen=True):
    """The partner co-signed our cooperative close proposal."""

    sender: Address
    channel_id: ChannelId
    balance1: TokenAmount
    balance2: TokenAmount
    signature: Signature


# --------------------------------------------------------------------------- ContractReceive*


class ContractReceiveChannelOpened(msgspec.Struct, frozen=True):
    """`ChannelOpened`: a channel between participant1 < participant2 exists (no deposit yet).

    `settle_timeout` is the channel manager's challenge period in blocks (a deployment constant
    when the event does not carry it). A deposit made with the open arrives as a separate
    `ContractReceiveChannelDeposited` (or set `deposit` here to the opener's total deposit).
    """

    transaction_hash: bytes
    block_number: BlockNumber
    channel_id: ChannelId
    participant1: Address
    participant2: Address
    settle_timeout: int
    opener: Address | None = None
    deposit: TokenAmount = ZERO_AMOUNT


class ContractReceiveChannelDeposited(msgspec.Struct, frozen=True):
    """`ChannelDeposited`: `participant`'s total deposit is now `total_deposit`."""

    transaction_hash: bytes
    block_number: BlockNumber
    channel_id: ChannelId
    participant: Address
    total_deposit: TokenAmount


class ContractReceiveChannelWithdrawn(msgspec.Struct, frozen=True):
    """`ChannelWithdrawn`: `participant`'s total withdrawn is now `total_withdraw`."""

    transaction_hash: bytes
    block_number: BlockNumber
    channel_id: ChannelId
    participant: Address
    total_withdraw: TokenAmount


class ContractReceiveChannelClosed(msgspec.Struct, frozen=True):
    """`ChannelClosed`: `closing_participant` closed with its partner's proof of `nonce`."""

    transaction_hash: bytes
    block_number: BlockNumber
    channel_id: ChannelId
    closing_participant: Address
    nonce: Nonce
    settle_block: BlockNumber


class ContractReceiveChannelBalanceProofUpdated(msgspec.Struct, frozen=True):
    """`ChannelBalanceProofUpdated`: the closer's proof stored on chain now has `nonce`."""

    transaction_hash: bytes
    block_number: BlockNumber
    channel_id: ChannelId
    closing_participant: Address
    nonce: Nonce


class ContractReceiveChannelSettled(msgspec.Struct, frozen=True):
    """`ChannelSettled`: balances credited; locked1/locked2 stay for `unlock` (address order)."""

    transaction_hash: bytes
    block_number: BlockNumber
    channel_id: ChannelId
    balance1: TokenAmount
    balance2: TokenAmount
    # None: not known (a test's or an old log's record); 0: nothing locked, no root kept on chain
    locked1: TokenAmount | None = None
    locked2: TokenAmount | None = None


class ContractReceiveChannelCooperativelyClosed(msgspec.Struct, frozen=True):
    """`ChannelCooperativelyClosed`: both credited, the channel record deleted."""

    transaction_hash: bytes
    block_number: BlockNumber
    channel_id: ChannelId
    balance1: TokenAmount
    balance2: TokenAmount


class ContractReceiveSecretRegistered(msgspec.Struct, frozen=True):
    """`SecretRegistered`: `secret` was first registered at `block_number` (not channel-specific)."""

    transaction_hash: bytes
    block_number: BlockNumber
    secrethash: SecretHash
    secret: Secret


class ContractReceiveLockUnlocked(msgspec.Struct, frozen=True):
    """`LockUnlocked`: the lock in `slot` of `sender`'s direction was resolved on chain.

    `returned` went back to the sender (expired / secret unregistered), `claimed` to the receiver.
    """

    transaction_hash: bytes
    block_number: BlockNumber
    channel_id: ChannelId
    sender: Address
    receiver: Address
    slot: int
    secrethash: SecretHash
    claimed: TokenAmount
    returned: TokenAmount


class ContractReceiveUnlockFailed(msgspec.Struct, frozen=True):
    """The chain refused our `unlock` of the lock in `slot` of `sender`'s direction (it reverted
    or was not taken): the shell reports it so the lock stays pending with `reason`, to be tried
    again after the core's backoff. Not an event log: the shell's own report of a transaction."""

    channel_id: ChannelId
    sender: Address
    slot: int
    reason: str


StateChange = (
    Block
    | ActionTransfer
    | ActionLockedTransfer
    | ActionUnlock
    | ActionRevealSecret
    | ActionRequestSecret
    | ActionDeposit
    | ActionWithdraw
    | ActionCooperativeClose
    | ActionClose
    | ActionRefuseLock
    | ReceiveBalanceProof
    | ReceiveLockedTransfer
    | ReceiveUnlock
    | ReceiveLockExpired
    | ReceiveLockRefused
    | ReceiveSecretRequest
    | ReceiveSecretReveal
    | ReceiveWithdrawRequest
    | ReceiveWithdrawConfirmation
    | ReceiveCooperativeCloseRequest
    | ReceiveCooperativeCloseConfirmation
    | ContractReceiveChannelOpened
    | ContractReceiveChannelDeposited
    | ContractReceiveChannelWithdrawn
    | ContractReceiveChannelClosed
    | ContractReceiveChannelBalanceProofUpdated
    | ContractReceiveChannelSettled
    | ContractReceiveChannelCooperativelyClosed
    | ContractReceiveSecretRegistered
    | ContractReceiveLockUnlocked
    | ContractReceiveUnlockFailed
)
"""Every input of the core."""

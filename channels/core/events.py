"""Outputs of the channel core, named by effect (DESIGN §5, STYLE 2).

- `Send*`: a message to the partner. The core holds no keys: a signed message carries the EIP-712
  `digest` the shell must sign with our key (LocalSigner) before `channels.wire` encodes it.
- `ContractSend*`: a transaction for the shell's chain client. Where it needs our own signature
  (co-signed withdraw / cooperative close) it carries the `digest` to sign; the partner's
  signature is already inside.
- `Event*`: something happened the application may care about; `EventInvalid*`: a peer message
  was rejected (state unchanged) with a human-readable `reason`.

Plain frozen records: no behaviour, no I/O, no keys. Persist them with the state change before
acting on any (persist before progress).
"""

from __future__ import annotations

import msgspec

from channels.core.state import BalanceProof, Lock
from channels.core.types import (
    Address,
    BlockNumber,
    ChannelId,
    PaymentId,
    Secret,
    SecretHash,
    Signature,
    TokenAmount,
)

# --------------------------------------------------------------------------- Send*


class SendBalanceProof(msgspec.Struct, frozen=True):
    """A direct transfer of `amount`: our new proof (unsigned) and the digest to sign."""

    recipient: Address
    balance_proof: BalanceProof
    digest: bytes
    payment_id: PaymentId
    amount: TokenAmount


class SendLockedTransfer(msgspec.Struct, frozen=True):
    """Our new proof adding `lock` in tree slot `slot`."""

    recipient: Address
    balance_proof: BalanceProof
    digest: bytes
    lock: Lock
    slot: int
    payment_id: PaymentId
    target: Address


class SendUnlock(msgspec.Struct, frozen=True):
    """Our new proof moving the lock in `slot` into transferred; carries the secret."""

    recipient: Address
    balance_proof: BalanceProof
    digest: bytes
    secret: Secret
    slot: int


class SendLockExpired(msgspec.Struct, frozen=True):
    """Our new proof removing our expired lock from `slot`."""

    recipient: Address
    balance_proof: BalanceProof
    digest: bytes
    secrethash: SecretHash
    slot: int


class SendLockRefused(msgspec.Struct, frozen=True):
    """Refuse the partner's lock `secrethash` (unsigned: it gives up our claim, nothing more)."""

    recipient: Address
    channel_id: ChannelId
    secrethash: SecretHash
    reason: str


class SendSecretRequest(msgspec.Struct, frozen=True):
    """Ask the partner for a secret (unsigned)."""

    recipient: Address
    channel_id: ChannelId
    payment_id: PaymentId
    secrethash: SecretHash
    amount: TokenAmount


class SendSecretReveal(msgspec.Struct, frozen=True):
    """Reveal a secret to the partner (unsigned: the secret authenticates itself)."""

    recipient: Address
    channel_id: ChannelId
    secret: Secret


class SendWithdrawRequest(msgspec.Struct, frozen=True):
    """Ask the partner to co-sign our Withdraw; `digest` is the Withdraw digest we sign.

    `batch`: the partner's settlement batch applies it (it keeps our signature, confirms nothing).
    """

    recipient: Address
    channel_id: ChannelId
    participant: Address
    total_withdraw: TokenAmount
    expiry: BlockNumber
    digest: bytes
    batch: bool = False


class SendWithdrawConfirmation(msgspec.Struct, frozen=True):
    """Co-sign the partner's Withdraw; `digest` is the same Withdraw digest."""

    recipient: Address
    channel_id: ChannelId
    participant: Address
    total_withdraw: TokenAmount
    expiry: BlockNumber
    digest: bytes


class SendCooperativeCloseRequest(msgspec.Struct, frozen=True):
    """Propose a cooperative close; balances in participant-address order."""

    recipient: Address
    channel_id: ChannelId
    balance1: TokenAmount
    balance2: TokenAmount
    digest: bytes


class SendCooperativeCloseConfirmation(msgspec.Struct, frozen=True):
    """Co-sign the partner's cooperative close proposal."""

    recipient: Address
    channel_id: ChannelId
    balance1: TokenAmount
    balance2: TokenAmount
    digest: bytes


# --------------------------------------------------------------------------- ContractSend*


class ContractSendChannelDeposit(msgspec.Struct, frozen=True):
    """`setTotalDeposit(channel_id, partner, total_deposit)`, or `setTotalDepositFromBalance`
    when `from_balance` (the increase comes from our internal balance)."""

    channel_id: ChannelId
    partner: Address
    total_deposit: TokenAmount
    from_balance: bool = False


class ContractSendChannelWithdraw(msgspec.Struct, frozen=True):
    """`withdraw(channel_id, participant, partner, total_withdraw, expiry, participantSig, partnerSig)`.

    `participant` is us: sign `digest` for participantSig; `partner_signature` is the partner's.
    """

    channel_id: ChannelId
    participant: Address
    partner: Address
    total_withdraw: TokenAmount
    expiry: BlockNumber
    partner_signature: Signature
    digest: bytes


class ContractSendChannelCooperativeClose(msgspec.Struct, frozen=True):
    """`cooperativeClose(channel_id, participant1, participant2, balance1, balance2, sig1, sig2)`.

    Sign `digest` for our signature; put it in sig1 when `we_are_participant1`, else sig2.
    """

    channel_id: ChannelId
    participant1: Address
    participant2: Address
    balance1: TokenAmount
    balance2: TokenAmount
    partner_signature: Signature
    we_are_participant1: bool
    digest: bytes


class ContractSendChannelClose(msgspec.Struct, frozen=True):
    """`closeChannel(channel_id, partner, ...)` with the partner's latest signed proof (nonce 0: none)."""

    channel_id: ChannelId
    partner: Address
    balance_proof: BalanceProof


class ContractSendUpdateBalanceProof(msgspec.Struct, frozen=True):
    """`updateBalanceProof(channel_id, closer, ...)` with the CLOSER's latest proof we received."""

    channel_id: ChannelId
    closer: Address
    balance_proof: BalanceProof


class ContractSendChannelSettle(msgspec.Struct, frozen=True):
    """`settleChannel(channel_id, participant1, participant2)`."""

    channel_id: ChannelId
    participant1: Address
    participant2: Address


class ContractSendSecretRegister(msgspec.Struct, frozen=True):
    """`registerSecret(secret)`: a lock we are owed nears expiry and the partner has not unlocked."""

    secret: Secret


class ContractSendUnlock(msgspec.Struct, frozen=True):
    """`unlock(channel_id, sender, receiver, lock, slot, proof)` after settle."""

    channel_id: ChannelId
    sender: Address
    receiver: Address
    lock: Lock
    slot: int
    proof: tuple[bytes, ...]


# --------------------------------------------------------------------------- Event*


class EventChannelOpened(msgspec.Struct, frozen=True):
    channel_id: ChannelId
    partner: Address


class EventPaymentSent(msgspec.Struct, frozen=True):
    """A direct transfer or an unlock left: `amount` is now the partner's."""

    channel_id: ChannelId
    partner: Address
    payment_id: PaymentId
    amount: TokenAmount


class EventPaymentReceived(msgspec.Struct, frozen=True):
    """A valid direct transfer arrived: `amount` is now ours."""

    channel_id: ChannelId
    partner: Address
    payment_id: PaymentId
    amount: TokenAmount


class EventLockedTransferReceived(msgspec.Struct, frozen=True):
    """A valid locked transfer arrived: forward it (mediator) or reveal the secret (target)."""

    channel_id: ChannelId
    partner: Address
    payment_id: PaymentId
    lock: Lock
    slot: int
    target: Address


class EventUnlockReceived(msgspec.Struct, frozen=True):
    """The partner unlocked its lock: `amount` is now ours."""

    channel_id: ChannelId
    partner: Address
    secrethash: SecretHash
    amount: TokenAmount


class EventUnlockSent(msgspec.Struct, frozen=True):
    """We unlocked our lock: `amount` is now the partner's."""

    channel_id: ChannelId
    partner: Address
    secrethash: SecretHash
    amount: TokenAmount


class EventLockExpired(msgspec.Struct, frozen=True):
    """A lock expired and left its tree (`sender` is the direction it was in)."""

    channel_id: ChannelId
    sender: Address
    secrethash: SecretHash
    amount: TokenAmount


class EventLockRefused(msgspec.Struct, frozen=True):
    """The partner refused our lock: it left our tree early (a LockExpired went out) and why."""

    channel_id: ChannelId
    secrethash: SecretHash
    amount: TokenAmount
    reason: str


class EventSecretLearned(msgspec.Struct, frozen=True):
    """A secret became known in this channel (revealed by the partner or registered on chain)."""

    channel_id: ChannelId
    secrethash: SecretHash
    secret: Secret


class EventSecretRequested(msgspec.Struct, frozen=True):
    """The partner asked for a secret."""

    channel_id: ChannelId
    partner: Address
    payment_id: PaymentId
    secrethash: SecretHash
    amount: TokenAmount


class EventWithdrawConfirmed(msgspec.Struct, frozen=True):
    """Our withdraw is co-signed; the ContractSendChannelWithdraw beside it executes it."""

    channel_id: ChannelId
    total_withdraw: TokenAmount


class EventBatchWithdrawSigned(msgspec.Struct, frozen=True):
    """A `Withdraw` our settlement batch applies is signed by the partner: `signature` is the
    partner's over `Withdraw(channel_id, participant, total_withdraw, expiry)` (the participant is
    us for our own withdraw, the partner for its)."""

    channel_id: ChannelId
    participant: Address
    partner: Address
    total_withdraw: TokenAmount
    expiry: BlockNumber
    signature: Signature


class EventChannelStatusChanged(msgspec.Struct, frozen=True):
    """The channel moved to `status` (a ChannelStatus value)."""

    channel_id: ChannelId
    status: str


class EventPaymentSendFailed(msgspec.Struct, frozen=True):
    """Our own transfer could not be made (no channel, closed, over capacity, ...)."""

    channel_id: ChannelId
    payment_id: PaymentId
    reason: str


class EventActionFailed(msgspec.Struct, frozen=True):
    """Another of our own actions could not be done; `action` is the state change's class name."""

    channel_id: ChannelId
    action: str
    reason: str


class EventUnlockFailed(msgspec.Struct, frozen=True):
    """Our on-chain unlock of the lock in `slot` of `sender`'s direction was sent `attempts` times
    and never seen mined; no more automatic tries. The lock stays pending (never forgotten):
    `reason` is the last failure the shell reported."""

    channel_id: ChannelId
    sender: Address
    slot: int
    attempts: int
    reason: str


# --------------------------------------------------------------------------- EventInvalid*


class EventInvalidReceivedBalanceProof(msgspec.Struct, frozen=True):
    channel_id: ChannelId
    sender: Address
    reason: str


class EventInvalidReceivedLockedTransfer(msgspec.Struct, frozen=True):
    channel_id: ChannelId
    sender: Address
    reason: str


class EventInvalidReceivedUnlock(msgspec.Struct, frozen=True):
    channel_id: ChannelId
    sender: Address
    reason: str


class EventInvalidReceivedLockExpired(msgspec.Struct, frozen=True):
    channel_id: ChannelId
    sender: Address
    reason: str


class EventInvalidReceivedLockRefused(msgspec.Struct, frozen=True):
    channel_id: ChannelId
    sender: Address
    reason: str


class EventInvalidReceivedSecretRequest(msgspec.Struct, frozen=True):
    channel_id: ChannelId
    sender: Address
    reason: str


class EventInvalidReceivedSecretReveal(msgspec.Struct, frozen=True):
    channel_id: ChannelId
    sender: Address
    reason: str


class EventInvalidReceivedWithdrawRequest(msgspec.Struct, frozen=True):
    channel_id: ChannelId
    sender: Address
    reason: str


class EventInvalidReceivedWithdrawConfirmation(msgspec.Struct, frozen=True):
    channel_id: ChannelId
    sender: Address
    reason: str


class EventInvalidReceivedCooperativeClose(msgspec.Struct, frozen=True):
    """A bad cooperative-close request or confirmation."""

    channel_id: ChannelId
    sender: Address
    reason: str


class EventInvalidContractEvent(msgspec.Struct, frozen=True):
    """A chain event that does not fit our view (e.g. names another participant); ignored."""

    channel_id: ChannelId
    reason: str


EventInvalid = (
    EventInvalidReceivedBalanceProof
    | EventInvalidReceivedLockedTransfer
    | EventInvalidReceivedUnlock
    | EventInvalidReceivedLockExpired
    | EventInvalidReceivedLockRefused
    | EventInvalidReceivedSecretRequest
    | EventInvalidReceivedSecretReveal
    | EventInvalidReceivedWithdrawRequest
    | EventInvalidReceivedWithdrawConfirmation
    | EventInvalidReceivedCooperativeClose
    | EventInvalidContractEvent
)

EventFailure = EventInvalid | EventPaymentSendFailed | EventActionFailed | EventUnlockFailed
"""What a shell reports as a failure: a rejected peer message, or one of our actions refused."""

SendEvent = (
    SendBalanceProof
    | SendLockedTransfer
    | SendUnlock
    | SendLockExpired
    | SendLockRefused
    | SendSecretRequest
    | SendSecretReveal
    | SendWithdrawRequest
    | SendWithdrawConfirmation
    | SendCooperativeCloseRequest
    | SendCooperativeCloseConfirmation
)

ContractSendEvent = (
    ContractSendChannelDeposit
    | ContractSendChannelWithdraw
    | ContractSendChannelCooperativeClose
    | ContractSendChannelClose
    | ContractSendUpdateBalanceProof
    | ContractSendChannelSettle
    | ContractSendSecretRegister
    | ContractSendUnlock
)

Event = (
    SendEvent
    | ContractSendEvent
    | EventChannelOpened
    | EventPaymentSent
    | EventPaymentReceived
    | EventLockedTransferReceived
    | EventUnlockReceived
    | EventUnlockSent
    | EventLockExpired
    | EventLockRefused
    | EventSecretLearned
    | EventSecretRequested
    | EventWithdrawConfirmed
    | EventBatchWithdrawSigned
    | EventChannelStatusChanged
    | EventPaymentSendFailed
    | EventActionFailed
    | EventUnlockFailed
    | EventInvalid
)
"""Every output of the core."""

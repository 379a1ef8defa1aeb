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

from dataclasses import dataclass

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


@dataclass(frozen=True, slots=True)
class SendBalanceProof:
    """A direct transfer of `amount`: our new proof (unsigned) and the digest to sign."""

    recipient: Address
    balance_proof: BalanceProof
    digest: bytes
    payment_id: PaymentId
    amount: TokenAmount


@dataclass(frozen=True, slots=True)
class SendLockedTransfer:
    """Our new proof adding `lock` in tree slot `slot`."""

    recipient: Address
    balance_proof: BalanceProof
    digest: bytes
    lock: Lock
    slot: int
    payment_id: PaymentId
    target: Address


@dataclass(frozen=True, slots=True)
class SendUnlock:
    """Our new proof moving the lock in `slot` into transferred; carries the secret."""

    recipient: Address
    balance_proof: BalanceProof
    digest: bytes
    secret: Secret
    slot: int


@dataclass(frozen=True, slots=True)
class SendLockExpired:
    """Our new proof removing our expired lock from `slot`."""

    recipient: Address
    balance_proof: BalanceProof
    digest: bytes
    secrethash: SecretHash
    slot: int


@dataclass(frozen=True, slots=True)
class SendSecretRequest:
    """Ask the partner for a secret (unsigned)."""

    recipient: Address
    channel_id: ChannelId
    payment_id: PaymentId
    secrethash: SecretHash
    amount: TokenAmount


@dataclass(frozen=True, slots=True)
class SendSecretReveal:
    """Reveal a secret to the partner (unsigned: the secret authenticates itself)."""

    recipient: Address
    channel_id: ChannelId
    secret: Secret


@dataclass(frozen=True, slots=True)
class SendWithdrawRequest:
    """Ask the partner to co-sign our Withdraw; `digest` is the Withdraw digest we sign."""

    recipient: Address
    channel_id: ChannelId
    participant: Address
    total_withdraw: TokenAmount
    expiry: BlockNumber
    digest: bytes


@dataclass(frozen=True, slots=True)
class SendWithdrawConfirmation:
    """Co-sign the partner's Withdraw; `digest` is the same Withdraw digest."""

    recipient: Address
    channel_id: ChannelId
    participant: Address
    total_withdraw: TokenAmount
    expiry: BlockNumber
    digest: bytes


@dataclass(frozen=True, slots=True)
class SendCooperativeCloseRequest:
    """Propose a cooperative close; balances in participant-address order."""

    recipient: Address
    channel_id: ChannelId
    balance1: TokenAmount
    balance2: TokenAmount
    digest: bytes


@dataclass(frozen=True, slots=True)
class SendCooperativeCloseConfirmation:
    """Co-sign the partner's cooperative close proposal."""

    recipient: Address
    channel_id: ChannelId
    balance1: TokenAmount
    balance2: TokenAmount
    digest: bytes


# --------------------------------------------------------------------------- ContractSend*


@dataclass(frozen=True, slots=True)
class ContractSendChannelDeposit:
    """`setTotalDeposit(channel_id, partner, total_deposit)`."""

    channel_id: ChannelId
    partner: Address
    total_deposit: TokenAmount


@dataclass(frozen=True, slots=True)
class ContractSendChannelWithdraw:
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


@dataclass(frozen=True, slots=True)
class ContractSendChannelCooperativeClose:
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


@dataclass(frozen=True, slots=True)
class ContractSendChannelClose:
    """`closeChannel(channel_id, partner, ...)` with the partner's latest signed proof (nonce 0: none)."""

    channel_id: ChannelId
    partner: Address
    balance_proof: BalanceProof


@dataclass(frozen=True, slots=True)
class ContractSendUpdateBalanceProof:
    """`updateBalanceProof(channel_id, closer, ...)` with the CLOSER's latest proof we received."""

    channel_id: ChannelId
    closer: Address
    balance_proof: BalanceProof


@dataclass(frozen=True, slots=True)
class ContractSendChannelSettle:
    """`settleChannel(channel_id, participant1, participant2)`."""

    channel_id: ChannelId
    participant1: Address
    participant2: Address


@dataclass(frozen=True, slots=True)
class ContractSendSecretRegister:
    """`registerSecret(secret)`: a lock we are owed nears expiry and the partner has not unlocked."""

    secret: Secret


@dataclass(frozen=True, slots=True)
class ContractSendUnlock:
    """`unlock(channel_id, sender, receiver, lock, slot, proof)` after settle."""

    channel_id: ChannelId
    sender: Address
    receiver: Address
    lock: Lock
    slot: int
    proof: tuple[bytes, ...]


# --------------------------------------------------------------------------- Event*


@dataclass(frozen=True, slots=True)
class EventChannelOpened:
    channel_id: ChannelId
    partner: Address


@dataclass(frozen=True, slots=True)
class EventPaymentSent:
    """A direct transfer or an unlock left: `amount` is now the partner's."""

    channel_id: ChannelId
    partner: Address
    payment_id: PaymentId
    amount: TokenAmount


@dataclass(frozen=True, slots=True)
class EventPaymentReceived:
    """A valid direct transfer arrived: `amount` is now ours."""

    channel_id: ChannelId
    partner: Address
    payment_id: PaymentId
    amount: TokenAmount


@dataclass(frozen=True, slots=True)
class EventLockedTransferReceived:
    """A valid locked transfer arrived: forward it (mediator) or reveal the secret (target)."""

    channel_id: ChannelId
    partner: Address
    payment_id: PaymentId
    lock: Lock
    slot: int
    target: Address


@dataclass(frozen=True, slots=True)
class EventUnlockReceived:
    """The partner unlocked its lock: `amount` is now ours."""

    channel_id: ChannelId
    partner: Address
    secrethash: SecretHash
    amount: TokenAmount


@dataclass(frozen=True, slots=True)
class EventUnlockSent:
    """We unlocked our lock: `amount` is now the partner's."""

    channel_id: ChannelId
    partner: Address
    secrethash: SecretHash
    amount: TokenAmount


@dataclass(frozen=True, slots=True)
class EventLockExpired:
    """A lock expired and left its tree (`sender` is the direction it was in)."""

    channel_id: ChannelId
    sender: Address
    secrethash: SecretHash
    amount: TokenAmount


@dataclass(frozen=True, slots=True)
class EventSecretLearned:
    """A secret became known in this channel (revealed by the partner or registered on chain)."""

    channel_id: ChannelId
    secrethash: SecretHash
    secret: Secret


@dataclass(frozen=True, slots=True)
class EventSecretRequested:
    """The partner asked for a secret."""

    channel_id: ChannelId
    partner: Address
    payment_id: PaymentId
    secrethash: SecretHash
    amount: TokenAmount


@dataclass(frozen=True, slots=True)
class EventWithdrawConfirmed:
    """Our withdraw is co-signed; the ContractSendChannelWithdraw beside it executes it."""

    channel_id: ChannelId
    total_withdraw: TokenAmount


@dataclass(frozen=True, slots=True)
class EventChannelStatusChanged:
    """The channel moved to `status` (a ChannelStatus value)."""

    channel_id: ChannelId
    status: str


@dataclass(frozen=True, slots=True)
class EventPaymentSendFailed:
    """Our own transfer could not be made (no channel, closed, over capacity, ...)."""

    channel_id: ChannelId
    payment_id: PaymentId
    reason: str


@dataclass(frozen=True, slots=True)
class EventActionFailed:
    """Another of our own actions could not be done; `action` is the state change's class name."""

    channel_id: ChannelId
    action: str
    reason: str


# --------------------------------------------------------------------------- EventInvalid*


@dataclass(frozen=True, slots=True)
class EventInvalidReceivedBalanceProof:
    channel_id: ChannelId
    sender: Address
    reason: str


@dataclass(frozen=True, slots=True)
class EventInvalidReceivedLockedTransfer:
    channel_id: ChannelId
    sender: Address
    reason: str


@dataclass(frozen=True, slots=True)
class EventInvalidReceivedUnlock:
    channel_id: ChannelId
    sender: Address
    reason: str


@dataclass(frozen=True, slots=True)
class EventInvalidReceivedLockExpired:
    channel_id: ChannelId
    sender: Address
    reason: str


@dataclass(frozen=True, slots=True)
class EventInvalidReceivedSecretRequest:
    channel_id: ChannelId
    sender: Address
    reason: str


@dataclass(frozen=True, slots=True)
class EventInvalidReceivedSecretReveal:
    channel_id: ChannelId
    sender: Address
    reason: str


@dataclass(frozen=True, slots=True)
class EventInvalidReceivedWithdrawRequest:
    channel_id: ChannelId
    sender: Address
    reason: str


@dataclass(frozen=True, slots=True)
class EventInvalidReceivedWithdrawConfirmation:
    channel_id: ChannelId
    sender: Address
    reason: str


@dataclass(frozen=True, slots=True)
class EventInvalidReceivedCooperativeClose:
    """A bad cooperative-close request or confirmation."""

    channel_id: ChannelId
    sender: Address
    reason: str


@dataclass(frozen=True, slots=True)
class EventInvalidContractEvent:
    """A chain event that does not fit our view (e.g. names another participant); ignored."""

    channel_id: ChannelId
    reason: str


EventInvalid = (
    EventInvalidReceivedBalanceProof
    | EventInvalidReceivedLockedTransfer
    | EventInvalidReceivedUnlock
    | EventInvalidReceivedLockExpired
    | EventInvalidReceivedSecretRequest
    | EventInvalidReceivedSecretReveal
    | EventInvalidReceivedWithdrawRequest
    | EventInvalidReceivedWithdrawConfirmation
    | EventInvalidReceivedCooperativeClose
    | EventInvalidContractEvent
)

SendEvent = (
    SendBalanceProof
    | SendLockedTransfer
    | SendUnlock
    | SendLockExpired
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
    | EventSecretLearned
    | EventSecretRequested
    | EventWithdrawConfirmed
    | EventChannelStatusChanged
    | EventPaymentSendFailed
    | EventActionFailed
    | EventInvalid
)
"""Every output of the core."""

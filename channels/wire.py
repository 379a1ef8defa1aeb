"""Peer messages on the wire: msgspec Structs, a tagged union, msgpack-encoded, validated on decode.

What this module is for: turning bytes from a peer into typed, shape-checked messages (and back),
and converting them to the core's `Receive*` state changes and from its `Send*` events.
What it must never do: judge a message. Signatures, nonces, balances and capacity are checked by
the core (`channels.core.channel`), which recovers every signer; here only the shape is checked
(lengths of byte fields, integer ranges), and bad input raises `WireError` naming the field.

Integer encoding: msgpack integers stop at 2**64 - 1, so ids, nonces, block numbers and payment
ids travel as uint64 (channel ids and nonces are counters, block numbers are block numbers; none
can reach 2**64 in practice), and token amounts travel as big-endian byte strings of at most 12
bytes: the channel manager stores amounts as uint96, so every amount it accepts fits, and nothing
larger can be decoded.
"""

from __future__ import annotations

import typing
from typing import Annotated, Any

import msgspec

from channels.core import events as ev
from channels.core import state_changes as sc
from channels.core.locktree import MAX_PENDING_LOCKS
from channels.core.state import BalanceProof, Lock
from channels.core.types import (
    UINT96_MAX,
    Address,
    BlockNumber,
    ChannelId,
    LocksRoot,
    Nonce,
    PaymentId,
    Secret,
    SecretHash,
    Signature,
    TokenAmount,
)
from channels.input_limits import InputError, check_msgpack_depth

MAX_BATCH = 1024  # messages in one Batch
AMOUNT_BYTES = 12  # uint96
MAX_REASON = 500  # characters of an error reason
MAX_INVOICE_BOOK = 256  # open invoices in one InvoiceBook
MAX_RECEIPT = 4096  # bytes of one signed ledger entry carried as a receipt

U64 = Annotated[int, msgspec.Meta(ge=0)]  # msgpack itself caps integers at 2**64 - 1
Slot = Annotated[int, msgspec.Meta(ge=0, le=MAX_PENDING_LOCKS - 1)]
Amount = Annotated[bytes, msgspec.Meta(max_length=AMOUNT_BYTES)]  # big-endian uint96
AddressBytes = Annotated[bytes, msgspec.Meta(min_length=20, max_length=20)]
Bytes32 = Annotated[bytes, msgspec.Meta(min_length=32, max_length=32)]
SignatureBytes = Annotated[bytes, msgspec.Meta(min_length=65, max_length=65)]
Reason = Annotated[str, msgspec.Meta(max_length=MAX_REASON)]


class WireError(ValueError):
    """Bytes that are not a well-formed message; the text names the offending field."""


def amount_to_wire(value: int) -> bytes:
    """Encode a token amount (0 <= value <= 2**96 - 1) as minimal big-endian bytes."""
    if not 0 <= value <= UINT96_MAX:
        raise WireError(f"amount {value} is outside uint96")
    return value.to_bytes((value.bit_length() + 7) // 8, "big")


def amount_from_wire(raw: bytes) -> TokenAmount:
    return TokenAmount(int.from_bytes(raw, "big"))


class _Message(msgspec.Struct, frozen=True, tag=True, forbid_unknown_fields=True):
    """Every message carries the sender-chosen `message_id` that `Processed` acknowledges."""

    message_id: U64


class _BalanceProofFields(_Message, frozen=True):
    channel_id: U64
    nonce: U64
    transferred: Amount
    locked: Amount
    locks_root: Bytes32
    signature: SignatureBytes

    def balance_proof(self) -> BalanceProof:
        return BalanceProof(
            ChannelId(self.channel_id),
            Nonce(self.nonce),
            TokenAmount(int.from_bytes(self.transferred, "big")),  # amount_from_wire, inlined
            TokenAmount(int.from_bytes(self.locked, "big")),
            LocksRoot(self.locks_root),
            Signature(self.signature),
        )


class DirectTransfer(_BalanceProofFields, frozen=True):
    """A direct payment: a balance proof whose transferred amount grew."""

    payment_id: U64


class LockedTransfer(_BalanceProofFields, frozen=True):
    """A balance proof adding a hashlock in tree slot `slot`; `target` is the final payee."""

    payment_id: U64
    amount: Amount
    expiration: U64
    secrethash: Bytes32
    slot: Slot
    target: AddressBytes


class Unlock(_BalanceProofFields, frozen=True):
    """A balance proof moving the lock in `slot` into transferred; `secret` opens it."""

    secret: Bytes32
    slot: Slot


class LockExpired(_BalanceProofFields, frozen=True):
    """A balance proof removing the sender's expired lock from `slot`."""

    secrethash: Bytes32
    slot: Slot


class LockRefused(_Message, frozen=True):
    """The receiver of the lock `secrethash` refuses it (unsigned): the sender removes it early.

    The transport authenticates the sender, and a refusal only gives up the refuser's own claim.
    """

    channel_id: U64
    secrethash: Bytes32
    reason: Reason


class SecretRequest(_Message, frozen=True):
    channel_id: U64
    payment_id: U64
    secrethash: Bytes32
    amount: Amount


class SecretReveal(_Message, frozen=True):
    channel_id: U64
    secret: Bytes32


class WithdrawRequest(_Message, frozen=True):
    channel_id: U64
    participant: AddressBytes
    total_withdraw: Amount
    expiry: U64
    signature: SignatureBytes
    batch: bool = False  # for the recipient's settlement batch: it confirms nothing


class WithdrawConfirmation(_Message, frozen=True):
    channel_id: U64
    participant: AddressBytes
    total_withdraw: Amount
    expiry: U64
    signature: SignatureBytes


class CooperativeCloseRequest(_Message, frozen=True):
    channel_id: U64
    balance1: Amount
    balance2: Amount
    signature: SignatureBytes


class CooperativeCloseConfirmation(_Message, frozen=True):
    channel_id: U64
    balance1: Amount
    balance2: Amount
    signature: SignatureBytes


class Processed(msgspec.Struct, frozen=True, tag=True, forbid_unknown_fields=True):
    """Acknowledges messages by id once their effects are persisted (persist before progress)."""

    message_ids: Annotated[list[U64], msgspec.Meta(max_length=MAX_BATCH)]


class InvoiceRequest(msgspec.Struct, frozen=True, tag=True, forbid_unknown_fields=True):
    """A payer asks `payee` (through the hub, which relays it) for an invoice for `amount`, or
    with `count` > 1 for an `InvoiceBook` of open-amount invoices (amount 0) for the payment ids
    `payment_id .. payment_id + count - 1`, so its next payments need no round trip."""

    payment_id: U64
    payer: AddressBytes
    payee: AddressBytes
    amount: Amount
    count: Annotated[int, msgspec.Meta(ge=1, le=MAX_INVOICE_BOOK)] = 1


class Invoice(msgspec.Struct, frozen=True, tag=True, forbid_unknown_fields=True):
    """The payee's secrethash for a payment: lock `amount` (plus the hub's fee) under it.

    Sent in answer to an `InvoiceRequest`, or unsolicited when a machine charges its user.
    """

    payment_id: U64
    payer: AddressBytes
    payee: AddressBytes
    amount: Amount
    secrethash: Bytes32


class InvoiceBook(msgspec.Struct, frozen=True, tag=True, forbid_unknown_fields=True):
    """Open-amount invoices from `payee` for `payer`'s payment ids `first_payment_id` on: the
    i-th secrethash is for payment id `first_payment_id + i`, whatever amount the payer pays."""

    payer: AddressBytes
    payee: AddressBytes
    first_payment_id: U64
    secrethashes: Annotated[list[Bytes32], msgspec.Meta(min_length=1, max_length=MAX_INVOICE_BOOK)]


class InvoiceRefused(msgspec.Struct, frozen=True, tag=True, forbid_unknown_fields=True):
    """The payee (or the hub) will not issue an invoice for this payment, and why."""

    payment_id: U64
    payer: AddressBytes
    payee: AddressBytes
    reason: Reason


class HubTerms(msgspec.Struct, frozen=True, tag=True, forbid_unknown_fields=True):
    """What the hub announces to every peer on connecting, before anyone pays through it.

    The fee of routing `amount` is `min(flat_fee + amount * fee_ppm // 1_000_000, fee_cap)`;
    `lock_timeout` is how many blocks a payer's lock should live, and `reveal_timeout` how many
    blocks before a lock's expiry the hub stops forwarding it.
    """

    flat_fee: Amount
    fee_ppm: Annotated[int, msgspec.Meta(ge=0, le=1_000_000)]
    fee_cap: Amount
    lock_timeout: U64
    reveal_timeout: U64
    block_number: U64


class ErrorReply(msgspec.Struct, frozen=True, tag=True, forbid_unknown_fields=True):
    """Our answer to a message we did not accept: its id (0 when it had none) and why."""

    message_id: U64
    reason: Reason


class UseReceipt(msgspec.Struct, frozen=True, tag=True, forbid_unknown_fields=True):
    """An asset's receipt for one charged use, sent to its user through the hub: `entry` is the
    asset's signed revenue-ledger entry for the use (opaque here; `assets.ledger` decodes it), and
    `payment_id` the charge it records, so the user keeps receipts only for charges it paid."""

    asset: AddressBytes
    user: AddressBytes
    payment_id: U64
    entry: Annotated[bytes, msgspec.Meta(min_length=1, max_length=MAX_RECEIPT)]


class SettlementInvite(msgspec.Struct, frozen=True, tag=True, forbid_unknown_fields=True):
    """The hub asks a party to withdraw its earnings in channel `channel_id` to its internal
    balance on the channel manager, in the hub's settlement batch: the party answers with a
    `WithdrawRequest` marked `batch` (its signature of `Withdraw(channel_id, party,
    total_withdraw, expiry)`), or not at all."""

    channel_id: U64
    total_withdraw: Amount
    expiry: U64


RoutingMessage = (
    InvoiceRequest
    | Invoice
    | InvoiceBook
    | InvoiceRefused
    | HubTerms
    | ErrorReply
    | UseReceipt
    | SettlementInvite
)
"""Messages between agents and the hub that change no channel (no message id, no ack)."""


PeerMessage = (
    DirectTransfer
    | LockedTransfer
    | Unlock
    | LockExpired
    | LockRefused
    | SecretRequest
    | SecretReveal
    | WithdrawRequest
    | WithdrawConfirmation
    | CooperativeCloseRequest
    | CooperativeCloseConfirmation
)
"""A message the core processes (has a message id)."""

PEER_MESSAGE_KINDS: tuple[type, ...] = typing.get_args(PeerMessage)
ROUTING_KINDS: tuple[type, ...] = typing.get_args(RoutingMessage)


def is_peer_message(message: object) -> typing.TypeGuard[PeerMessage]:
    """True for the messages the core processes (not acknowledgements or routing messages)."""
    return isinstance(message, PEER_MESSAGE_KINDS)


class Batch(msgspec.Struct, frozen=True, tag=True, forbid_unknown_fields=True):
    """Several messages in one frame (no nesting)."""

    messages: Annotated[
        list[PeerMessage | Processed | RoutingMessage], msgspec.Meta(max_length=MAX_BATCH)
    ]


FrameItem = PeerMessage | Processed | RoutingMessage
"""What a Batch may hold."""

Message = FrameItem | Batch

_encoder = msgspec.msgpack.Encoder()
_decoder: msgspec.msgpack.Decoder[Message] = msgspec.msgpack.Decoder(Message)


def encode(message: Message) -> bytes:
    """msgpack bytes of a message."""
    return _encoder.encode(message)


# Typed decoding refuses a container where a struct field wants none; only skipping a value
# (an unknown field, or the fields before a struct's tag) recurses, a few dozen bytes of C stack a
# level. Frames that could nest deeper than this are scanned first (`channels.input_limits`), so a
# frame can never exhaust the stack, whatever the interpreter's recursion limit (py_ecc raises it to
# 100,000; at 200,000 a 1 MiB frame nested 300,000 deep ended the process).
_UNSCANNED_DEPTH = 10_000


def decode(data: bytes) -> Message:
    """Parse and shape-check one message; WireError (naming the field) on anything malformed."""
    try:
        check_msgpack_depth(data, unscanned_up_to=_UNSCANNED_DEPTH, what="the message")
        return _decoder.decode(data)
    except InputError as exc:
        raise WireError(str(exc)) from None
    except RecursionError:
        raise WireError("undecodable message: nested too deep") from None
    except msgspec.ValidationError as exc:
        raise WireError(f"invalid message: {exc}") from None
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise WireError(f"undecodable message: {exc}") from None


_BATCH_HEAD = _encoder.encode(Batch(messages=[]))[:-1]  # up to the (empty) array header


def encode_batch(payloads: list[bytes]) -> bytes:
    """The encoding of `Batch(messages=[decode(p) for p in payloads])`, built from the encoded
    messages without decoding them (a msgpack array is its header + its elements' bytes)."""
    count = len(payloads)
    if not 0 < count <= MAX_BATCH:
        raise WireError(f"a batch holds 1..{MAX_BATCH} messages, not {count}")
    header = bytes((0x90 | count,)) if count < 16 else b"\xdc" + count.to_bytes(2, "big")
    return _BATCH_HEAD + header + b"".join(payloads)


def unpack(message: Message) -> list[FrameItem]:
    """The messages of a frame: a Batch's contents, or the message itself."""
    if isinstance(message, Batch):
        return message.messages
    return [message]


# --------------------------------------------------------------------------- to the core


def to_state_change(message: PeerMessage, sender: Address) -> sc.StateChange:
    """The core's `Receive*` for a message `sender` (as the transport knows it) sent."""
    if isinstance(message, DirectTransfer):
        return sc.ReceiveBalanceProof(
            sender, message.balance_proof(), PaymentId(message.payment_id)
        )
    if isinstance(message, LockedTransfer):
        lock = Lock(
            amount_from_wire(message.amount),
            BlockNumber(message.expiration),
            SecretHash(message.secrethash),
        )
        return sc.ReceiveLockedTransfer(
            sender,
            message.balance_proof(),
            lock,
            message.slot,
            PaymentId(message.payment_id),
            Address(message.target),
        )
    if isinstance(message, Unlock):
        return sc.ReceiveUnlock(
            sender, message.balance_proof(), Secret(message.secret), message.slot
        )
    if isinstance(message, LockExpired):
        return sc.ReceiveLockExpired(
            sender, message.balance_proof(), SecretHash(message.secrethash), message.slot
        )
    if isinstance(message, LockRefused):
        return sc.ReceiveLockRefused(
            sender, ChannelId(message.channel_id), SecretHash(message.secrethash), message.reason
        )
    if isinstance(message, SecretRequest):
        return sc.ReceiveSecretRequest(
            sender,
            ChannelId(message.channel_id),
            PaymentId(message.payment_id),
            SecretHash(message.secrethash),
            amount_from_wire(message.amount),
        )
    if isinstance(message, SecretReveal):
        return sc.ReceiveSecretReveal(sender, ChannelId(message.channel_id), Secret(message.secret))
    if isinstance(message, WithdrawRequest | WithdrawConfirmation):
        fields = (
            sender,
            ChannelId(message.channel_id),
            Address(message.participant),
            amount_from_wire(message.total_withdraw),
            BlockNumber(message.expiry),
            Signature(message.signature),
        )
        if isinstance(message, WithdrawRequest):
            return sc.ReceiveWithdrawRequest(*fields, batch=message.batch)
        return sc.ReceiveWithdrawConfirmation(*fields)
    if isinstance(message, CooperativeCloseRequest):
        return sc.ReceiveCooperativeCloseRequest(
            sender,
            ChannelId(message.channel_id),
            amount_from_wire(message.balance1),
            amount_from_wire(message.balance2),
            Signature(message.signature),
        )
    return sc.ReceiveCooperativeCloseConfirmation(
        sender,
        ChannelId(message.channel_id),
        amount_from_wire(message.balance1),
        amount_from_wire(message.balance2),
        Signature(message.signature),
    )


# --------------------------------------------------------------------------- from the core


def _proof_fields(proof: BalanceProof) -> dict[str, Any]:
    return {
        "channel_id": proof.channel_id,
        "nonce": proof.nonce,
        "transferred": amount_to_wire(proof.transferred),
        "locked": amount_to_wire(proof.locked),
        "locks_root": proof.locks_root,
    }


def from_event(event: ev.SendEvent, message_id: int, signature: bytes = b"") -> PeerMessage:
    """The wire message for a core `Send*` event; `signature` is ours over `event.digest`.

    SecretRequest, SecretReveal and LockRefused are not signed (pass no signature). A refusal's
    reason longer than the wire allows is cut to `MAX_REASON` characters.
    """
    if isinstance(event, ev.SendBalanceProof):
        return DirectTransfer(
            message_id=message_id,
            signature=signature,
            payment_id=event.payment_id,
            **_proof_fields(event.balance_proof),
        )
    if isinstance(event, ev.SendLockedTransfer):
        return LockedTransfer(
            message_id=message_id,
            signature=signature,
            payment_id=event.payment_id,
            amount=amount_to_wire(event.lock.amount),
            expiration=event.lock.expiration,
            secrethash=event.lock.secrethash,
            slot=event.slot,
            target=event.target,
            **_proof_fields(event.balance_proof),
        )
    if isinstance(event, ev.SendUnlock):
        return Unlock(
            message_id=message_id,
            signature=signature,
            secret=event.secret,
            slot=event.slot,
            **_proof_fields(event.balance_proof),
        )
    if isinstance(event, ev.SendLockExpired):
        return LockExpired(
            message_id=message_id,
            signature=signature,
            secrethash=event.secrethash,
            slot=event.slot,
            **_proof_fields(event.balance_proof),
        )
    if isinstance(event, ev.SendLockRefused):
        return LockRefused(
            message_id=message_id,
            channel_id=event.channel_id,
            secrethash=event.secrethash,
            reason=event.reason[:MAX_REASON],
        )
    if isinstance(event, ev.SendSecretRequest):
        return SecretRequest(
            message_id=message_id,
            channel_id=event.channel_id,
            payment_id=event.payment_id,
            secrethash=event.secrethash,
            amount=amount_to_wire(event.amount),
        )
    if isinstance(event, ev.SendSecretReveal):
        return SecretReveal(message_id=message_id, channel_id=event.channel_id, secret=event.secret)
    if isinstance(event, ev.SendWithdrawRequest | ev.SendWithdrawConfirmation):
        withdraw_fields: dict[str, Any] = {
            "message_id": message_id,
            "channel_id": event.channel_id,
            "participant": event.participant,
            "total_withdraw": amount_to_wire(event.total_withdraw),
            "expiry": event.expiry,
            "signature": signature,
        }
        if isinstance(event, ev.SendWithdrawRequest):
            return WithdrawRequest(**withdraw_fields, batch=event.batch)
        return WithdrawConfirmation(**withdraw_fields)
    close_cls: Any = (
        CooperativeCloseRequest
        if isinstance(event, ev.SendCooperativeCloseRequest)
        else CooperativeCloseConfirmation
    )
    close: PeerMessage = close_cls(
        message_id=message_id,
        channel_id=event.channel_id,
        balance1=amount_to_wire(event.balance1),
        balance2=amount_to_wire(event.balance2),
        signature=signature,
    )
    return close

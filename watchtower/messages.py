"""The watchtower's local API on the wire: msgspec structs, msgpack-encoded, shape-checked on decode.

What it is for: the frames a guarded party (or anyone carrying its signed request) exchanges with a
tower over `channels.transport` (length-framed, challenge-authenticated TCP on 127.0.0.1):

- `MonitorRequests`: up to `MAX_REQUESTS` `MonitorRequest`s, each the partner's signed balance proof
  and the guarded party's EIP-712 `MonitorRequest(channelId, balanceProofHash, reward, watchtower)`
  signature over it (DESIGN §3); answered by one `MonitorAnswers` holding a signed `MonitorReceipt`
  or a `MonitorRefused` (a code and a reason) per request, sent only once accepted ones are durable.
- `StatusRequest` / `StatusReply`: what the tower holds for the connected party's channels.

The receipt is the tower's EIP-712 signature (same `CISE` domain as the channel manager) over
`MonitorReceipt(uint256 channelId,address guarded,uint256 nonce,bytes32 requestDigest)`, where
`requestDigest` is the digest the guarded party signed: proof that this tower holds that request.

It must never judge a request (`watchtower.core` does: signatures, nonces, the chain's channel); here
only shapes are checked, with the field types of `channels.wire` (uint96 amounts as bytes, uint64
ids and nonces, 20-byte addresses, 65-byte signatures).
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from channels.codec.eip712 import Domain, addr, b32, u256
from channels.codec.keccak import keccak
from channels.wire import (
    U64,
    AddressBytes,
    Amount,
    Bytes32,
    Reason,
    SignatureBytes,
    WireError,
    amount_from_wire,
    amount_to_wire,
)

MAX_REQUESTS = 1024  # requests in one frame
MAX_STATUS_ENTRIES = 4096  # entries in one status reply (the newest channels first)

MONITOR_RECEIPT_TYPE = (
    "MonitorReceipt(uint256 channelId,address guarded,uint256 nonce,bytes32 requestDigest)"
)
MONITOR_RECEIPT_TYPEHASH = keccak(MONITOR_RECEIPT_TYPE.encode())

__all__ = [
    "MAX_REQUESTS",
    "MONITOR_RECEIPT_TYPE",
    "MonitorAnswers",
    "MonitorReceipt",
    "MonitorRefused",
    "MonitorRequest",
    "MonitorRequests",
    "StatusEntry",
    "StatusReply",
    "StatusRequest",
    "TowerMessage",
    "WireError",
    "amount_from_wire",
    "amount_to_wire",
    "decode",
    "encode",
    "receipt_digest",
]


class _Frame(msgspec.Struct, frozen=True, tag=True, forbid_unknown_fields=True):
    pass


class MonitorRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One request: guard `guarded` in `channel_id` with `partner`'s balance proof.

    `partner_signature` is the partner's over `BalanceProof(channel_id, nonce, transferred, locked,
    locks_root)`; `monitor_signature` is the guarded party's over `MonitorRequest(channel_id,
    hashStruct(that proof), reward, watchtower)`, `watchtower` being this tower or zero (any tower).
    `request_id` is the sender's, echoed in the answer.
    """

    request_id: U64
    channel_id: U64
    guarded: AddressBytes
    partner: AddressBytes
    nonce: U64
    transferred: Amount
    locked: Amount
    locks_root: Bytes32
    partner_signature: SignatureBytes
    reward: Amount
    watchtower: AddressBytes
    monitor_signature: SignatureBytes


class MonitorRequests(_Frame, frozen=True):
    """Several requests in one frame; the tower answers them with one `MonitorAnswers`."""

    requests: Annotated[list[MonitorRequest], msgspec.Meta(min_length=1, max_length=MAX_REQUESTS)]


class MonitorReceipt(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The tower holds (durably) the request `request_digest` for `guarded` in `channel_id`."""

    request_id: U64
    channel_id: U64
    guarded: AddressBytes
    nonce: U64
    request_digest: Bytes32
    signature: SignatureBytes


class MonitorRefused(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The tower did not take request `request_id`: `code` (see `watchtower.core.Refusal`) and why.

    `held_nonce` is the nonce the tower holds for that channel and party (0: none), so that a
    client whose request was stale knows how far it is guarded.
    """

    request_id: U64
    channel_id: U64
    code: Annotated[str, msgspec.Meta(max_length=40)]
    reason: Reason
    held_nonce: U64 = 0


class MonitorAnswers(_Frame, frozen=True):
    """The answers to one `MonitorRequests` frame, in request order within each list."""

    receipts: Annotated[list[MonitorReceipt], msgspec.Meta(max_length=MAX_REQUESTS)]
    refused: Annotated[list[MonitorRefused], msgspec.Meta(max_length=MAX_REQUESTS)]


class StatusRequest(_Frame, frozen=True):
    """What does the tower hold for the authenticated peer (as the guarded party)?"""


class StatusEntry(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One guarded (channel, party): the nonce held and where the channel is on chain."""

    channel_id: U64
    guarded: AddressBytes
    partner: AddressBytes
    nonce: U64
    reward: Amount
    state: Annotated[str, msgspec.Meta(max_length=40)]  # open | closed | ...: see core.guard_state
    settle_block: U64 = 0


class StatusReply(_Frame, frozen=True):
    """The tower's chain view (`block_number`, confirmed) and its entries for the peer."""

    tower: AddressBytes
    block_number: U64
    entries: Annotated[list[StatusEntry], msgspec.Meta(max_length=MAX_STATUS_ENTRIES)]


TowerMessage = MonitorRequests | MonitorAnswers | StatusRequest | StatusReply

_encoder = msgspec.msgpack.Encoder()
_decoder: msgspec.msgpack.Decoder[TowerMessage] = msgspec.msgpack.Decoder(TowerMessage)


def encode(message: TowerMessage) -> bytes:
    """msgpack bytes of a tower message."""
    return _encoder.encode(message)


def decode(data: bytes) -> TowerMessage:
    """Parse and shape-check one message; WireError (naming the field) on anything malformed."""
    try:
        return _decoder.decode(data)
    except msgspec.ValidationError as exc:
        raise WireError(f"invalid watchtower message: {exc}") from None
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise WireError(f"undecodable watchtower message: {exc}") from None


def receipt_digest(
    domain: Domain, channel_id: int, guarded: bytes, nonce: int, request_digest: bytes
) -> bytes:
    """EIP-712 digest of a `MonitorReceipt`, signed by the tower."""
    return domain.digest(
        keccak(
            MONITOR_RECEIPT_TYPEHASH
            + u256(channel_id)
            + addr(guarded)
            + u256(nonce)
            + b32(request_digest)
        )
    )

"""Wire messages: round trips, validation errors naming the field, converters to and from the core."""

from __future__ import annotations

import msgspec
import pytest
from core_pair import CHANNEL_ID, Pair
from hypothesis import given, settings
from hypothesis import strategies as st

from channels import wire
from channels.codec.eip712 import secrethash_of
from channels.core import events as ev
from channels.core import state_changes as sc
from channels.core.state import BatchedBy
from channels.core.types import (
    UINT96_MAX,
    Address,
    BlockNumber,
    ChannelId,
    PaymentId,
    Secret,
    SecretHash,
    TokenAmount,
)

SIG = b"\x01" * 65


def _direct(**changes: object) -> wire.DirectTransfer:
    message = wire.DirectTransfer(
        message_id=1,
        channel_id=1,
        nonce=2,
        transferred=wire.amount_to_wire(10),
        locked=b"",
        locks_root=b"\x00" * 32,
        signature=SIG,
        payment_id=3,
    )
    return msgspec.structs.replace(message, **changes)


def test_roundtrip_and_batch() -> None:
    message = _direct()
    assert wire.decode(wire.encode(message)) == message
    batch = wire.Batch([message, wire.Processed([1, 2])])
    decoded = wire.decode(wire.encode(batch))
    assert wire.unpack(decoded) == [message, wire.Processed([1, 2])]
    assert wire.unpack(message) == [message]


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("signature", b"\x01" * 64, "$.signature"),
        ("locks_root", b"\x00" * 31, "$.locks_root"),
        ("transferred", b"\x01" * 13, "$.transferred"),
        ("channel_id", -1, "$.channel_id"),
        ("nonce", "7", "$.nonce"),
    ],
)
def test_bad_fields_raise_wire_error_naming_them(field: str, value: object, expected: str) -> None:
    raw = msgspec.msgpack.encode(
        {**msgspec.structs.asdict(_direct()), "type": "DirectTransfer", field: value}
    )
    with pytest.raises(wire.WireError, match=expected.replace("$", r"\$")):
        wire.decode(raw)


def test_garbage_unknown_tags_and_fields() -> None:
    with pytest.raises(wire.WireError):
        wire.decode(b"\xc1\xff")
    with pytest.raises(wire.WireError, match="type"):
        wire.decode(msgspec.msgpack.encode({"type": "Nope", "message_id": 1}))
    extra = {**msgspec.structs.asdict(_direct()), "type": "DirectTransfer", "extra": 1}
    with pytest.raises(wire.WireError, match="extra"):
        wire.decode(msgspec.msgpack.encode(extra))
    with pytest.raises(wire.WireError, match="slot"):
        wire.decode(
            msgspec.msgpack.encode(
                {
                    "type": "LockExpired",
                    "message_id": 1,
                    "channel_id": 1,
                    "nonce": 1,
                    "transferred": b"",
                    "locked": b"",
                    "locks_root": b"\x00" * 32,
                    "signature": SIG,
                    "secrethash": b"\x00" * 32,
                    "slot": 512,
                }
            )
        )
    nested = msgspec.msgpack.encode(
        {"type": "Batch", "messages": [{"type": "Batch", "messages": []}]}
    )
    with pytest.raises(wire.WireError):
        wire.decode(nested)


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=0, max_value=UINT96_MAX))
def test_amounts_roundtrip_up_to_uint96(value: int) -> None:
    assert wire.amount_from_wire(wire.amount_to_wire(value)) == value


def test_amount_out_of_range() -> None:
    with pytest.raises(wire.WireError):
        wire.amount_to_wire(UINT96_MAX + 1)
    with pytest.raises(wire.WireError):
        wire.amount_to_wire(-1)


def test_every_send_event_converts_to_the_matching_receive() -> None:
    pair = Pair()
    secret = Secret(b"\x05" * 32)
    secrethash = SecretHash(secrethash_of(secret))
    refused = SecretHash(secrethash_of(b"\x06" * 32))
    actions: list[tuple[bytes, sc.StateChange, type]] = [
        (
            pair.a,
            sc.ActionTransfer(CHANNEL_ID, TokenAmount(3), PaymentId(1)),
            sc.ReceiveBalanceProof,
        ),
        (
            pair.a,
            sc.ActionLockedTransfer(
                CHANNEL_ID, TokenAmount(4), BlockNumber(150), secrethash, PaymentId(2), pair.b
            ),
            sc.ReceiveLockedTransfer,
        ),
        (pair.b, sc.ActionRevealSecret(CHANNEL_ID, secret), sc.ReceiveSecretReveal),
        (
            pair.a,
            sc.ActionRequestSecret(CHANNEL_ID, PaymentId(9), secrethash, TokenAmount(4)),
            sc.ReceiveSecretRequest,
        ),
        (
            pair.a,
            sc.ActionLockedTransfer(
                CHANNEL_ID, TokenAmount(2), BlockNumber(150), refused, PaymentId(3), pair.b
            ),
            sc.ReceiveLockedTransfer,
        ),
        (pair.b, sc.ActionRefuseLock(CHANNEL_ID, refused, "no route"), sc.ReceiveLockRefused),
        (
            pair.a,
            sc.ActionWithdraw(CHANNEL_ID, TokenAmount(5), BlockNumber(150)),
            sc.ReceiveWithdrawRequest,
        ),
    ]
    seen = set()
    closing = Pair()
    for sender, action, expected in actions:
        if isinstance(action, sc.ActionWithdraw):  # a pending withdraw blocks a cooperative close
            _exchange(closing, pair.a, sc.ActionCooperativeClose(CHANNEL_ID), seen)
            seen.add(sc.ReceiveCooperativeCloseRequest)
        _exchange(pair, sender, action, seen)
        seen.add(expected)
    assert sc.ReceiveUnlock in seen  # Alice's reply to the reveal
    assert sc.ReceiveLockExpired in seen  # Alice's reply to the refusal
    assert sc.ReceiveWithdrawConfirmation in seen
    assert sc.ReceiveCooperativeCloseConfirmation in seen


def _exchange(pair: Pair, sender: bytes, action: sc.StateChange, seen: set[type]) -> None:
    """Run `action` at `sender`, deliver its message and the replies; record Receive* types."""
    events = pair.step(sender, action)
    send = next(e for e in events if isinstance(e, ev.SendEvent))
    change = pair.receive(sender, send)
    seen.add(type(change))
    replies = pair.step(pair.other(sender), change)
    assert not [e for e in replies if type(e).__name__.startswith("EventInvalid")], replies
    for reply in replies:
        if isinstance(reply, ev.SendEvent):
            seen.add(type(pair.receive(pair.other(sender), reply)))
            pair.deliver(pair.other(sender), reply)


def _lock_refused(**changes: object) -> wire.LockRefused:
    message = wire.LockRefused(
        message_id=4, channel_id=1, secrethash=b"\x02" * 32, reason="no route to the payee"
    )
    return msgspec.structs.replace(message, **changes)


def test_lock_refused_roundtrip_and_conversions() -> None:
    message = _lock_refused()
    decoded = wire.decode(wire.encode(message))
    assert decoded == message and wire.is_peer_message(decoded)
    sender = Address(b"\x03" * 20)
    assert wire.to_state_change(message, sender) == sc.ReceiveLockRefused(
        sender, ChannelId(1), SecretHash(b"\x02" * 32), "no route to the payee"
    )
    event = ev.SendLockRefused(
        sender, ChannelId(1), SecretHash(b"\x02" * 32), "no route to the payee"
    )
    assert wire.from_event(event, 4) == message
    # a reason longer than the wire allows is cut, so the message still decodes at the peer
    long = wire.from_event(msgspec.structs.replace(event, reason="x" * 600), 5)
    assert isinstance(long, wire.LockRefused) and long.reason == "x" * wire.MAX_REASON
    assert wire.decode(wire.encode(long)) == long


@pytest.mark.parametrize(
    ("field", "value"),
    [("reason", "x" * (wire.MAX_REASON + 1)), ("secrethash", b"\x02" * 31), ("channel_id", -1)],
)
def test_bad_lock_refused_fields_raise_wire_error_naming_them(field: str, value: object) -> None:
    raw = msgspec.msgpack.encode(
        {**msgspec.structs.asdict(_lock_refused()), "type": "LockRefused", field: value}
    )
    with pytest.raises(wire.WireError, match=rf"\$\.{field}"):
        wire.decode(raw)


def test_a_batch_built_from_encoded_messages_equals_the_encoded_batch() -> None:
    for count in (1, 2, 15, 16, 17, 300, wire.MAX_BATCH):
        payloads = [
            wire.encode(wire.ErrorReply(message_id=i, reason="r" * (i % 400))) for i in range(count)
        ]
        batch = wire.Batch(messages=[wire.decode(p) for p in payloads])
        assert wire.encode_batch(payloads) == wire.encode(batch)
    with pytest.raises(wire.WireError, match=r"1\.\.1024"):
        wire.encode_batch([])


def test_a_batch_withdraw_request_keeps_its_flag_across_the_wire() -> None:
    pair = Pair()
    action = sc.ActionWithdraw(
        CHANNEL_ID, TokenAmount(5), BlockNumber(150), batched_by=BatchedBy.PARTNER
    )
    send = next(e for e in pair.step(pair.b, action) if isinstance(e, ev.SendWithdrawRequest))
    change = pair.receive(pair.b, send)
    assert isinstance(change, sc.ReceiveWithdrawRequest) and change.batch
    plain = next(
        e
        for e in Pair().step(
            pair.a, sc.ActionWithdraw(CHANNEL_ID, TokenAmount(5), BlockNumber(150))
        )
        if isinstance(e, ev.SendWithdrawRequest)
    )
    assert not Pair().receive(pair.a, plain).batch  # type: ignore[union-attr]


def test_settlement_invite_roundtrip_and_bad_fields() -> None:
    invite = wire.SettlementInvite(channel_id=3, total_withdraw=wire.amount_to_wire(7), expiry=99)
    assert wire.decode(wire.encode(invite)) == invite
    raw = msgspec.msgpack.encode(
        {**msgspec.structs.asdict(invite), "type": "SettlementInvite", "expiry": -1}
    )
    with pytest.raises(wire.WireError, match=r"\$\.expiry"):
        wire.decode(raw)

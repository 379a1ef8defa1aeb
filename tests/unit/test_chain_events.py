"""Decoded channel-manager events map onto the core's ContractReceive* state changes."""

from __future__ import annotations

from typing import Any

from channels.chain.abi import DecodedEvent
from channels.chain.artifacts import load_artifact
from channels.chain.events import CONVERTERS, FollowContext, to_state_change
from channels.core import state_changes as sc
from channels.core.types import Address

A, B = Address(b"\x01" * 20), Address(b"\x02" * 20)
TX = b"\xee" * 32


def event(name: str, **args: Any) -> DecodedEvent:
    return DecodedEvent(name, args, b"\x09" * 20, 50, TX, 0)


def test_every_manager_event_with_a_state_change_has_a_converter() -> None:
    names = set(load_artifact("ChannelManager").abi.events_by_name)
    assert set(CONVERTERS) <= names
    no_state = {
        "BalanceDeposited",
        "BalanceWithdrawn",
        "ChannelMonitorRewarded",
        "EIP712DomainChanged",
    }
    assert names - set(CONVERTERS) <= no_state


def test_opened_uses_and_feeds_the_context() -> None:
    ctx = FollowContext(settle_timeout=5)
    assert to_state_change(event("SettleTimeoutSet", settleTimeout=9), ctx) is None
    change = to_state_change(
        event("ChannelOpened", channelId=3, participant1=A, participant2=B, opener=B, deposit=7),
        ctx,
    )
    assert change == sc.ContractReceiveChannelOpened(TX, 50, 3, A, B, 9, B, 7)  # type: ignore[arg-type]
    assert ctx.participants[3] == (A, B)


def test_lock_unlocked_claim_and_refund() -> None:
    ctx = FollowContext(settle_timeout=5, participants={3: (A, B)})
    claim = to_state_change(
        event("LockUnlocked", channelId=3, sender=A, beneficiary=B, slot=4,
              secrethash=b"\x05" * 32, amount=10),
        ctx,
    )  # fmt: skip
    assert isinstance(claim, sc.ContractReceiveLockUnlocked)
    assert (claim.receiver, claim.claimed, claim.returned) == (B, 10, 0)
    refund = to_state_change(
        event("LockUnlocked", channelId=3, sender=B, beneficiary=B, slot=0,
              secrethash=b"\x05" * 32, amount=10),
        ctx,
    )  # fmt: skip
    assert isinstance(refund, sc.ContractReceiveLockUnlocked)
    assert (refund.sender, refund.receiver, refund.claimed, refund.returned) == (B, A, 0, 10)


def test_close_update_settle() -> None:
    ctx = FollowContext(settle_timeout=5)
    closed = to_state_change(
        event("ChannelClosed", channelId=1, closer=A, nonce=4, settleBlock=60), ctx
    )
    assert closed == sc.ContractReceiveChannelClosed(TX, 50, 1, A, 4, 60)  # type: ignore[arg-type]
    settled = to_state_change(
        event("ChannelSettled", channelId=1, balance1=1, balance2=2, locked1=3, locked2=4), ctx
    )
    assert settled == sc.ContractReceiveChannelSettled(TX, 50, 1, 1, 2, 3, 4)  # type: ignore[arg-type]
    assert to_state_change(event("BalanceDeposited", account=A, amount=1), ctx) is None

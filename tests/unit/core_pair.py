"""A tiny test shell around the pure channel core: two views of one channel (Alice's and Bob's).

It plays the imperative shell: signs `Send*` digests with LocalSigner, carries messages through
the real wire encoding (`channels.wire`), and feeds them to the other side's core.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import msgspec

from channels import wire
from channels.codec.eip712 import Domain
from channels.core import events as ev
from channels.core import state_changes as sc
from channels.core.channel import TransitionContext, channel_transition, new_channel_state
from channels.core.state import ChannelState
from channels.core.types import Address, BlockNumber, ChannelId, PaymentId, TokenAmount
from channels.signer import LocalSigner

ALICE_KEY = bytes.fromhex("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")
BOB_KEY = bytes.fromhex("6370fd033278c143179d81c5526140625662b8daa446c22ee2d73db3707e620c")
MALLORY_KEY = b"\x07" * 32
DOMAIN = Domain(1337, b"\x11" * 20)
CHANNEL_ID = ChannelId(1)
SETTLE_TIMEOUT = 50


@dataclass
class Pair:
    """Alice and Bob, each with its own view of channel 1, and a shared block number."""

    deposit_a: int = 1000
    deposit_b: int = 1000
    block: int = 100
    alice: LocalSigner = field(default_factory=lambda: LocalSigner(ALICE_KEY))
    bob: LocalSigner = field(default_factory=lambda: LocalSigner(BOB_KEY))
    views: dict[bytes, ChannelState] = field(default_factory=dict)
    message_id: int = 0

    def __post_init__(self) -> None:
        a, b = Address(self.alice.address), Address(self.bob.address)
        self.views[a] = new_channel_state(
            CHANNEL_ID,
            a,
            b,
            SETTLE_TIMEOUT,
            TokenAmount(self.deposit_a),
            TokenAmount(self.deposit_b),
        )
        self.views[b] = new_channel_state(
            CHANNEL_ID,
            b,
            a,
            SETTLE_TIMEOUT,
            TokenAmount(self.deposit_b),
            TokenAmount(self.deposit_a),
        )

    @property
    def a(self) -> Address:
        return Address(self.alice.address)

    @property
    def b(self) -> Address:
        return Address(self.bob.address)

    def signer(self, who: bytes) -> LocalSigner:
        return self.alice if who == self.alice.address else self.bob

    def other(self, who: bytes) -> Address:
        return self.b if who == self.a else self.a

    def ctx(self, who: bytes, domain: Domain = DOMAIN) -> TransitionContext:
        return TransitionContext(Address(who), domain, BlockNumber(self.block), reveal_timeout=5)

    def step(self, who: bytes, change: sc.StateChange) -> list[ev.Event]:
        """Apply `change` to `who`'s view; return the events."""
        result = channel_transition(self.views[who], change, self.ctx(who))
        self.views[who] = result.new_state
        return result.events

    def to_message(
        self, sender: bytes, event: ev.SendEvent, signer: LocalSigner | None = None
    ) -> wire.PeerMessage:
        """Sign (with `signer`, default the sender's key) and encode-decode through the wire."""
        self.message_id += 1
        digest = getattr(event, "digest", None)
        signature = (signer or self.signer(sender)).sign_digest(digest) if digest else b""
        message = wire.from_event(event, self.message_id, signature)
        decoded = wire.decode(wire.encode(message))
        assert isinstance(decoded, wire.PeerMessage)
        return decoded

    def receive(self, sender: bytes, event: ev.SendEvent, **tamper: object) -> sc.StateChange:
        """The receiver's state change for `event` sent by `sender`, optionally with fields changed
        after signing (`tamper`)."""
        message = self.to_message(sender, event)
        if tamper:
            message = _tamper(message, tamper)
        return wire.to_state_change(message, Address(sender))

    def deliver(self, sender: bytes, event: ev.SendEvent) -> list[ev.Event]:
        receiver = self.other(sender)
        return self.step(receiver, self.receive(sender, event))

    def send(self, sender: bytes, change: sc.StateChange) -> list[ev.Event]:
        """Apply an action at `sender`, then deliver every Send* event back and forth until none
        is left; return all events of both sides in order."""
        events = self.step(sender, change)
        out: list[ev.Event] = list(events)
        queue = [(sender, event) for event in events if isinstance(event, ev.SendEvent)]
        while queue:
            origin, event = queue.pop(0)
            replies = self.deliver(origin, event)
            out.extend(replies)
            receiver = self.other(origin)
            queue.extend((receiver, r) for r in replies if isinstance(r, ev.SendEvent))
        return out

    def pay(self, sender: bytes, amount: int, payment_id: int = 1) -> list[ev.Event]:
        action = sc.ActionTransfer(CHANNEL_ID, TokenAmount(amount), PaymentId(payment_id))
        return self.send(sender, action)

    def new_block(self, block: int) -> dict[bytes, list[ev.Event]]:
        self.block = block
        return {who: self.step(who, sc.Block(BlockNumber(block))) for who in (self.a, self.b)}

    def chain(self, change: sc.StateChange) -> dict[bytes, list[ev.Event]]:
        """A chain event seen by both."""
        return {who: self.step(who, change) for who in (self.a, self.b)}


def _tamper(message: wire.PeerMessage, changes: dict[str, object]) -> wire.PeerMessage:
    fixed = {
        key: wire.amount_to_wire(value)
        if key in ("transferred", "locked", "amount") and isinstance(value, int)
        else value
        for key, value in changes.items()
    }
    return msgspec.structs.replace(message, **fixed)


def invalid_reasons(events: list[ev.Event]) -> list[str]:
    return [e.reason for e in events if type(e).__name__.startswith("EventInvalid")]

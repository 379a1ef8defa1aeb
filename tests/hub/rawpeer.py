"""A running hub with agents *and* raw peers, for the bad-input and fuzz tests.

`running_hub` opens the synthetic channels (channel i+1 between the hub and `names[i]`, as
`channels.bench.synthetic.hub_channels` does) and starts an `Agent` for every name except the
raw ones: a raw peer has a channel with the hub but no service; the test drives it through a
`RawPeer`, which runs its own copy of the core to build correctly signed messages, can send
arbitrary bytes as a frame, and collects everything the hub sends back.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio
from msgspec.structs import replace

from channels import wire
from channels.agent import Agent, ChargePolicy
from channels.bench.synthetic import address_of, domain, key_of
from channels.core import events as ev
from channels.core import state_changes as sc
from channels.core.channel import (
    TransitionContext,
    channel_transition,
    get_balance,
)
from channels.core.node import context_of, node_transition
from channels.core.state import ChannelState, NodeState
from channels.core.types import (
    Address,
    BlockNumber,
    ChannelId,
    PaymentId,
    SecretHash,
    TokenAmount,
)
from channels.signer import LocalSigner
from channels.transport import Connection, DispatchTable, TcpTransport
from hub.service import Hub
from tests.hub.netfix import running_net

RAW_MAX_FRAME = 4 << 20  # a raw peer may send (and accept) frames above the hub's 1 MiB limit


def refuse_charges(payee: Address, amount: int, payment_id: int) -> bool:
    """Agents here never pay an invoice they did not ask for (a raw peer could send any)."""
    return False


class RawCodec:
    """The wire codec, except that `bytes` are sent as they are (a hand-made frame payload)."""

    @staticmethod
    def encode(message: Any) -> bytes:
        if isinstance(message, bytes | bytearray):
            return bytes(message)
        return wire.encode(message)

    @staticmethod
    def decode(payload: bytes) -> Any:
        return wire.decode(payload)


class RawPeer:
    """A peer without a service: hand-made frames out, everything the hub says collected."""

    def __init__(self, name: str, opening: Sequence[sc.StateChange], hub: Address) -> None:
        self.name = name
        self.signer = LocalSigner(key_of(name))
        self.address = Address(self.signer.address)
        self.hub = hub
        node = NodeState(self.address, domain(), BlockNumber(0))
        for change in opening:
            node = node_transition(node, change).new_state
        self.node = node
        channels = [c for c in node.channels.values() if c.partner.address == hub]
        self.channel: ChannelState | None = channels[0] if channels else None
        self.received: list[Any] = []  # every item the hub sent, in order
        self._send, self.inbox = trio.open_memory_channel[Any](math.inf)
        self._next_id = 1

    # -- building messages ----------------------------------------------------------------------

    @property
    def channel_id(self) -> ChannelId:
        assert self.channel is not None
        return self.channel.channel_id

    def message_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def ctx(self, block_number: int | None = None) -> TransitionContext:
        ctx = context_of(self.node)
        if block_number is not None:
            ctx = replace(ctx, block_number=BlockNumber(block_number))
        return ctx

    def locked_transfer(
        self,
        amount: int,
        secrethash: bytes,
        *,
        expiration: int,
        target: Address,
        payment_id: int = 1,
        block_number: int | None = None,
        channel: ChannelState | None = None,
        signer: LocalSigner | None = None,
        commit: bool = True,
    ) -> wire.LockedTransfer:
        """A LockedTransfer our core makes (from `channel`, default ours), signed by `signer`
        (default ours); `commit` keeps the new channel state as ours."""
        state = channel if channel is not None else self.channel
        assert state is not None
        result = channel_transition(
            state,
            sc.ActionLockedTransfer(
                state.channel_id,
                TokenAmount(amount),
                BlockNumber(expiration),
                SecretHash(secrethash),
                PaymentId(payment_id),
                target,
            ),
            self.ctx(block_number),
        )
        [send] = result.events
        assert isinstance(send, ev.SendLockedTransfer), send
        if commit:
            self.channel = result.new_state
        signature = (signer or self.signer).sign_digest(send.digest)
        message = wire.from_event(send, self.message_id(), signature)
        assert isinstance(message, wire.LockedTransfer)
        return message

    # -- receiving ------------------------------------------------------------------------------

    def dispatch_table(self) -> DispatchTable:
        table = DispatchTable()

        async def collect(connection: Connection, message: Any) -> None:
            for item in wire.unpack(message):
                self.received.append(item)
                self._send.send_nowait(item)

        for kind in (wire.Batch, wire.Processed, *wire.PEER_MESSAGE_KINDS, *wire.ROUTING_KINDS):
            table.register(kind, collect)
        return table

    def transport(self) -> TcpTransport:
        return TcpTransport(
            self.signer, RawCodec(), self.dispatch_table().lookup(), max_frame_size=RAW_MAX_FRAME
        )

    def connect(self, port: int) -> Any:
        """`async with peer.connect(port) as connection:` an authenticated hub connection."""
        return self.transport().open_connection("127.0.0.1", port, expected_peer=self.hub)

    async def expect(self, predicate: Callable[[Any], bool], within: float = 10.0) -> Any:
        """The next new item from the hub matching `predicate` (others are skipped, still kept
        in `received`)."""
        with trio.fail_after(within):
            while True:
                item = await self.inbox.receive()
                if predicate(item):
                    return item

    async def seen(self, predicate: Callable[[Any], bool], within: float = 10.0) -> Any:
        """The first item the hub sent (before now, or from now on) matching `predicate`."""
        for item in self.received:
            if predicate(item):
                return item
        return await self.expect(predicate, within)

    async def error_reply(self, message_id: int, within: float = 10.0) -> wire.ErrorReply:
        reply: wire.ErrorReply = await self.expect(
            lambda m: isinstance(m, wire.ErrorReply) and m.message_id == message_id, within
        )
        return reply

    async def processed(self, message_id: int, within: float = 10.0) -> wire.Processed:
        reply: wire.Processed = await self.expect(
            lambda m: isinstance(m, wire.Processed) and message_id in m.message_ids, within
        )
        return reply


@dataclass
class RawNet:
    hub: Hub
    port: int
    agents: dict[str, Agent]
    raw: dict[str, RawPeer]
    nursery: trio.Nursery
    opening: list[sc.StateChange]
    names: list[str]

    def address(self, name: str) -> Address:
        return address_of(name)

    def channel_id(self, name: str) -> ChannelId:
        return ChannelId(self.names.index(name) + 1)

    def hub_channel(self, name: str) -> ChannelState:
        return self.hub.service.channels[self.channel_id(name)]

    def snapshot(self) -> dict[ChannelId, ChannelState]:
        """The hub's channels now (the states are immutable: a copy of the mapping suffices)."""
        return dict(self.hub.service.channels)

    def hub_balances(self) -> dict[ChannelId, tuple[int, int]]:
        """(hub's, partner's) balance of every hub channel, pending locks included."""
        return {
            channel_id: (
                get_balance(channel.our, channel.partner),
                get_balance(channel.partner, channel.our),
            )
            for channel_id, channel in self.hub.service.channels.items()
        }

    async def wait_no_locks(self, *names: str, within: float = 10.0) -> None:
        """Until the hub's channels with `names` hold no pending lock either way (a payer's
        Unlock reaches the hub after the payer's `pay` returned)."""
        with trio.fail_after(within):
            while any(  # noqa: ASYNC110  # waiting for other tasks' effects
                self.hub_channel(name).our.locks or self.hub_channel(name).partner.locks
                for name in names
            ):
                await trio.sleep(0.005)

    def total_deposits(self) -> int:
        return sum(
            c.our.deposit - c.our.withdrawn + c.partner.deposit - c.partner.withdrawn
            for c in self.hub.service.channels.values()
        )


@asynccontextmanager
async def running_hub(
    tmp: Path,
    names: Sequence[str],
    *,
    raw: Sequence[str] = ("mallory",),
    accept_charge: ChargePolicy = refuse_charges,
) -> AsyncIterator[RawNet]:
    """A hub with a channel to every name in `names`; an Agent runs for each name not in `raw`.

    A name in `raw` but not in `names` is a peer without a channel.
    """
    async with running_net(tmp, names, accept_charge=accept_charge, without_agent=raw) as net:
        peers = {name: RawPeer(name, net.opening, address_of("hub")) for name in raw}
        yield RawNet(net.hub, net.port, net.agents, peers, net.nursery, net.opening, list(names))

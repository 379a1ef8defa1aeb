"""The hub's trio service: accepts agents, announces its terms, mediates, relays invoices.

`Hub` wires a `NodeService` (durable core + peers) to the `Mediator` (forwarding decisions) and
to the transport: only a peer that has an open channel with the hub on chain (as the hub's core
knows it) is served; it first receives the hub's `HubTerms` (fees and timing, before anyone
pays), then its unacknowledged messages. Invoice messages are relayed between payer and payee,
each only from the party it names (a payer cannot forge a payee's invoice). After each commit the
hub checks the outgoing capacity of the channels it used and reports the ones running low
(`low_capacity`), and tops them up from its internal balance on the channel manager when a
liquidity policy is set (no ERC20 transfer). The network's governed hub fee cap binds the hub
while it runs: `apply_governed_fee_cap` lowers the announced fee to it (never above the operator's
own) and announces the new terms to every connected peer at once.

It must never forward anything the mediator did not decide, never serve a peer without a
channel, never relay a message on behalf of a party other than its sender, and never charge or
announce a fee above the governed cap it knows.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace

import trio

from channels import wire
from channels.agent import PAYEE_OFFLINE
from channels.core import events as ev
from channels.core import state_changes as sc
from channels.core.channel import get_capacity
from channels.core.fee_cap import capped_schedule
from channels.core.state import ChannelState
from channels.core.types import Address, ChannelId, TokenAmount
from channels.service import NodeService
from channels.tls import TlsConfig
from channels.transport import Connection, serve_connections
from hub.mediator import MediationTerms, Mediator

log = logging.getLogger(__name__)

TERMS_INTERVAL = 1.0  # seconds between terms announcements (they carry the chain head)
# a peer sending more invalid messages than this in a row is disconnected (each one is logged);
# copies of proofs the hub already has (an honest peer resending after a reconnect) do not count
MAX_INVALID_IN_A_ROW = 1_000


@dataclass(frozen=True, slots=True)
class LowCapacity:
    """The hub's capacity towards a partner fell below the configured low-water mark."""

    channel_id: ChannelId
    partner: Address
    capacity: int


@dataclass(slots=True)
class HubStatistics:
    forwarded: int = 0
    fees_earned: int = 0
    refused: int = 0
    relayed: int = 0
    peers_refused: int = 0


@dataclass(slots=True)
class Hub:
    """The routing hub (see the module docstring)."""

    service: NodeService
    terms: MediationTerms
    low_water: int = 0  # report a channel whose outgoing capacity falls below this
    top_up_to: int = 0  # then raise its capacity back to this from the internal balance (0: no)
    mediator: Mediator = field(init=False)
    stats: HubStatistics = field(default_factory=HubStatistics)
    low_capacity: dict[ChannelId, LowCapacity] = field(default_factory=dict)
    topping_up: dict[ChannelId, int] = field(default_factory=dict)  # channel -> total deposit asked
    governed_fee_cap: int | None = None  # the network's hub fee cap as last read (None: none)
    configured: MediationTerms = field(init=False)  # the operator's terms, before any cap

    def __post_init__(self) -> None:
        self.configured = self.terms
        if self.top_up_to and self.top_up_to <= self.low_water:
            raise ValueError("top_up_to must be above low_water (or 0 for no top-ups)")
        service = self.service
        self.mediator = Mediator(
            service.address,
            self.terms,
            service.channels,
            service.channel_with,
            lambda: service.block_number,
        )
        self.mediator.rebuild()
        service.deciders.append(self._decide)
        service.listeners.append(self._after_commit)
        service.on_routing = self._on_routing
        # frames can arrive before `on_connection` refused a peer: they must change nothing
        service.admit = lambda peer: service.channel_with(peer) is not None
        service.max_invalid_in_a_row = MAX_INVALID_IN_A_ROW

    def _decide(self, event: ev.Event) -> Iterable[sc.StateChange]:
        # the service replaces its channel mapping on node-level changes: keep the view current
        self.mediator.channels = self.service.channels
        return self.mediator.decide(event)

    def terms_message(self) -> wire.HubTerms:
        fees = self.terms.fees
        return wire.HubTerms(
            flat_fee=wire.amount_to_wire(fees.flat),
            fee_ppm=fees.ppm,
            fee_cap=wire.amount_to_wire(fees.cap),
            lock_timeout=self.terms.lock_timeout,
            reveal_timeout=self.terms.reveal_timeout,
            block_number=self.service.block_number,
        )

    def apply_governed_fee_cap(self, cap: int | None) -> None:
        """The network's hub fee cap is `cap` (as the chain says now): charge and announce at most
        that from the next lock on, and tell every connected peer at once. A cap that rises again
        restores the operator's own fee, never more."""
        self.governed_fee_cap = cap
        fees = capped_schedule(self.configured.fees, cap)
        if fees == self.terms.fees:
            return
        own = self.configured.fees
        log.log(
            logging.WARNING if fees != own else logging.INFO,
            "the network's hub fee cap is now %s token units: charging min(%d + amount * %d ppm, "
            "%d) (configured: min(%d + amount * %d ppm, %d)); announcing the new terms",
            cap,
            fees.flat,
            fees.ppm,
            fees.cap,
            own.flat,
            own.ppm,
            own.cap,
        )
        self.terms = replace(self.terms, fees=fees)
        self.mediator.terms = self.terms
        self._announce()

    def _announce(self) -> None:
        message = self.terms_message()
        for peer in list(self.service.connections):
            self.service.send_routing(peer, message)

    # -- peers ----------------------------------------------------------------------------------

    async def on_connection(self, connection: Connection) -> None:
        peer = Address(connection.peer)
        if self.service.channel_with(peer) is None:
            self.stats.peers_refused += 1
            connection.send_nowait(
                wire.ErrorReply(
                    message_id=0,
                    reason=f"0x{peer.hex()} has no open channel with this hub: open one first",
                )
            )
            return  # leaving closes the connection
        connection.send_nowait(self.terms_message())
        await self.service.attach(connection)

    def _on_routing(self, connection: Connection, message: wire.RoutingMessage) -> None:
        sender = Address(connection.peer)
        if isinstance(message, wire.InvoiceRequest):
            if message.payer != sender:
                self._reply_error(connection, "an invoice request must name its sender as payer")
            elif not self._relay(Address(message.payee), message):
                connection.send_nowait(
                    wire.InvoiceRefused(
                        payment_id=message.payment_id,
                        payer=message.payer,
                        payee=message.payee,
                        reason=PAYEE_OFFLINE,
                    )
                )
        elif isinstance(message, wire.Invoice | wire.InvoiceBook):
            if message.payee != sender:
                self._reply_error(connection, "an invoice must name its sender as payee")
            else:
                self._relay(Address(message.payer), message)
        elif isinstance(message, wire.InvoiceRefused):
            if sender == message.payee:
                self._relay(Address(message.payer), message)
            elif sender == message.payer:
                self._relay(Address(message.payee), message)
            else:
                self._reply_error(connection, "only the payer or the payee can refuse an invoice")
        elif isinstance(message, wire.UseReceipt):
            if message.asset != sender:
                self._reply_error(connection, "a receipt must name its sender as asset")
            else:
                self._relay(Address(message.user), message)
        elif isinstance(message, wire.ErrorReply):
            # A refused channel message (it names its id): the node keeps a refused proof and
            # sends it again later (`NodeService`), but the channel carries nothing new until
            # the peer takes it: loud. A refused routing message (id 0) is routine.
            log.log(
                logging.WARNING if message.message_id else logging.INFO,
                "0x%s refused message %d: %s",
                sender.hex(),
                message.message_id,
                message.reason,
            )
        else:
            self._reply_error(connection, f"a hub takes no {type(message).__name__}")

    def _relay(self, recipient: Address, message: wire.RoutingMessage) -> bool:
        if self.service.channel_with(recipient) is None:
            return False
        sent = self.service.send_routing(recipient, message)
        self.stats.relayed += sent
        return sent

    @staticmethod
    def _reply_error(connection: Connection, reason: str) -> None:
        if not connection.closed:
            connection.send_nowait(wire.ErrorReply(message_id=0, reason=reason))

    # -- after each commit ----------------------------------------------------------------------

    def _after_commit(self, events: Sequence[ev.Event]) -> None:
        mediator = self.mediator
        forwarded, mediator.forwarded = mediator.forwarded, []
        self.stats.refused = mediator.refused
        if not forwarded:
            return
        self.stats.forwarded += len(forwarded)
        self.stats.fees_earned += sum(f.fee for f in forwarded)
        if self.low_water <= 0:
            return
        channels = self.service.channels
        for channel_id in {f.outgoing for f in forwarded}:
            channel = channels.get(channel_id)
            if channel is None:
                continue
            capacity = get_capacity(channel.our, channel.partner)
            if capacity < self.low_water:
                if channel_id not in self.low_capacity:
                    log.warning(
                        "low capacity to 0x%s on channel %d: %d left (low-water mark %d)",
                        channel.partner.address.hex(),
                        channel_id,
                        capacity,
                        self.low_water,
                    )
                self.low_capacity[channel_id] = LowCapacity(
                    channel_id, channel.partner.address, capacity
                )
                self._top_up(channel, capacity)
            else:
                self.low_capacity.pop(channel_id, None)
        for channel_id, asked in list(self.topping_up.items()):
            channel = channels.get(channel_id)
            if channel is None or channel.our.deposit >= asked or not channel.is_open:
                del self.topping_up[channel_id]  # landed (or moot); a later top-up may follow

    def _top_up(self, channel: ChannelState, capacity: int) -> None:
        """Raise the capacity to `top_up_to` from the hub's internal balance (one transaction;
        it fails harmlessly, and is logged, when the internal balance is short)."""
        if not self.top_up_to or channel.channel_id in self.topping_up:
            return
        total = channel.our.deposit + (self.top_up_to - capacity)
        self.topping_up[channel.channel_id] = total
        log.info("topping up channel %d to a deposit of %d", channel.channel_id, total)
        self.service.handle(
            sc.ActionDeposit(channel.channel_id, TokenAmount(total), from_balance=True)
        )

    # -- running --------------------------------------------------------------------------------

    async def announce_terms(self) -> None:
        """Forever: send the terms (with the chain head) to every connected peer."""
        while True:
            await trio.sleep(TERMS_INTERVAL)
            self._announce()

    async def serve(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        tls: TlsConfig | None = None,
        admit: Callable[[bytes], bool] | None = None,
        task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Run the hub: the commit loop, the listener and the terms announcer; never returns.
        `tls`: TLS on every connection (required off the loopback); `admit`: members only."""
        handlers = self.service.dispatch_table().lookup()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self.service.run_commits)
            nursery.start_soon(self.announce_terms)
            bound = await nursery.start(
                lambda task_status: serve_connections(
                    self.service.signer,
                    wire,
                    handlers,
                    host=host,
                    port=port,
                    on_connection=self.on_connection,
                    tls=tls,
                    admit=admit,
                    task_status=task_status,
                )
            )
            task_status.started(bound)

"""Who the hub's listener admits: the parties it has a channel with and the network's members.

`MemberAdmission.admit(address)` is the synchronous `admit` callback of the hub's transport
(`channels.transport.serve_connections`): it says yes for a partner of one of the hub's channels
(read from the node, always current) or for an active member as of the last refresh of the
membership contract (`follow` refreshes it every `interval` seconds in a worker thread, through
the node service's `chain_call`). Anyone else is refused by the transport with the reason and a log
line, and the listener keeps serving everyone else.

It must never read the chain inside `admit` (it runs on the event loop, per connection) and never
decide anything about channels or payments.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import trio

from channels.chain.governance import GovernanceClient
from channels.core.types import Address
from channels.service import NodeService

log = logging.getLogger(__name__)

REFRESH_INTERVAL = 5.0  # seconds between reads of the membership contract


class MemberAdmission:
    """The hub's channel partners and the active members as of the last `refresh`."""

    def __init__(self, service: NodeService, governance: GovernanceClient) -> None:
        self.service = service
        self.governance = governance
        self.members: frozenset[Address] = frozenset()

    def admit(self, address: bytes) -> bool:
        """A channel partner of the hub, or an active member as of the last refresh."""
        if address in self.members:
            return True
        return any(
            channel.partner.address == address for channel in self.service.node.channels.values()
        )

    def read_members(self) -> frozenset[Address]:
        """The active members now (blocking: a chain read)."""
        return frozenset(m.address for m in self.governance.members() if m.active)

    async def follow(
        self,
        *,
        interval: float = REFRESH_INTERVAL,
        chain_call: Callable[[Callable[[], frozenset[Address]]], Awaitable[frozenset[Address]]]
        | None = None,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Read the members (the first read's error propagates: a hub must not start admitting
        without them), report started, then refresh every `interval` seconds forever; a chain that
        does not answer keeps the last members known, logged."""
        call = trio.to_thread.run_sync if chain_call is None else chain_call
        self.members = await call(self.read_members)
        task_status.started()
        while True:
            await trio.sleep(interval)
            try:
                self.members = await call(self.read_members)
            except Exception as exc:  # a chain outage: keep the last view
                log.warning("cannot refresh the network's members (keeping the last): %s", exc)


__all__ = ["REFRESH_INTERVAL", "MemberAdmission"]

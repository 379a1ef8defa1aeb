"""Read and follow the governed limits a payer and a hub obey: the hub fee cap and a hub's role.

`GovernedLimitsFollower.read` reads `NetworkParameters.hubFeeCap` (and, for a payer, where its hub
stands in `Membership`) at the head; `poll` then follows their changes from the contracts' events,
block range by block range: `HubFeeCapSet` carries the new cap, and any membership event naming
the hub (admitted, roles changed, suspended, reinstated, expelled) makes it read the hub's
standing again. One `eth_getLogs` per contract per poll, nothing when no block was mined.

Synchronous (the shell calls it in a thread). It decides nothing (`channels.core.fee_cap` does),
and it must never skip a block: the cursor moves only over blocks whose logs were all read.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from channels.chain.connection import Connection
from channels.chain.deploy import Deployment
from channels.chain.events import DEFAULT_MAX_RANGE
from channels.chain.governance import GovernanceClient, Role
from channels.core.fee_cap import hub_standing_problem
from channels.core.types import Address, BlockNumber


@dataclass(frozen=True, slots=True)
class GovernedLimits:
    """The governed limits as of `block_number`."""

    block_number: BlockNumber
    hub_fee_cap: int  # token units per routed payment
    hub_problem: str | None = None  # why the followed hub may not route (None: it may, or none)


class GovernedLimitsFollower:
    """Follows the hub fee cap (and `hub`'s standing, when given) of a governed deployment."""

    def __init__(
        self,
        connection: Connection,
        deployment: Deployment,
        hub: Address | None = None,
        max_range: int = DEFAULT_MAX_RANGE,
    ) -> None:
        self.connection = connection
        self.hub = hub
        self._governance = GovernanceClient(connection, deployment, None, max_range)
        self.max_range = max_range
        self.cursor = BlockNumber(-1)
        self.limits: GovernedLimits | None = None

    def read(self) -> GovernedLimits:
        """Read the limits now; `poll` follows on from here."""
        # the head first: a change mined meanwhile is in the next poll's range too (events carry
        # absolute values, so seeing one twice changes nothing)
        head = BlockNumber(self.connection.block_number())
        self.limits = GovernedLimits(head, self._governance.hub_fee_cap(), self._hub_problem())
        self.cursor = head
        return self.limits

    def poll(self) -> GovernedLimits:
        """Follow the events of up to `max_range` blocks past the cursor; the limits after them."""
        limits = self.limits if self.limits is not None else self.read()
        head = self.connection.block_number()
        start, end = self.cursor + 1, min(head, self.cursor + self.max_range)
        if end < start:
            return limits
        governance = self._governance
        cap = limits.hub_fee_cap
        for event in self.connection.get_logs(
            governance.parameters_contract, start, end, governance.parameters_abi
        ):
            if event.name == "HubFeeCapSet":
                cap = int(event.args["hubFeeCap"])
        problem = limits.hub_problem
        if self.hub is not None and any(
            event.args.get("account") == self.hub
            for event in self.connection.get_logs(
                governance.membership, start, end, governance.membership_abi
            )
        ):
            problem = self._hub_problem()
        self.limits = replace(
            limits, block_number=BlockNumber(end), hub_fee_cap=cap, hub_problem=problem
        )
        self.cursor = BlockNumber(end)
        return self.limits

    def _hub_problem(self) -> str | None:
        if self.hub is None:
            return None
        member = self._governance.member_of(self.hub)
        return hub_standing_problem(self.hub, member.active, bool(member.roles & Role.HUB))


__all__ = ["GovernedLimits", "GovernedLimitsFollower"]

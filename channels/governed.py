"""Keep a process's view of the governed limits current: read them, then follow the chain.

`follow_governed_limits` runs a `GovernedLimitsFollower` in a worker thread (through the node
service's `chain_call` when given: one chain request at a time per process): it reads the limits
once (before it reports started, so nothing is paid or routed before the cap is known), then
polls every `interval` seconds and hands every result to `apply` (which acts only on a change).
A chain that does not answer delays this, never ends it: the last limits known stay in force, and
the outage is logged as the chain follower logs its own.

It must never decide anything itself (`apply` and `channels.core.fee_cap` do).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import trio

from channels.chain.governed_limits import GovernedLimits, GovernedLimitsFollower
from channels.chain.outage import ChainOutage

log = logging.getLogger(__name__)

POLL_INTERVAL = 0.5  # seconds between polls (a block or two on a production chain)


async def follow_governed_limits(
    follower: GovernedLimitsFollower,
    apply: Callable[[GovernedLimits], None],
    *,
    interval: float = POLL_INTERVAL,
    chain_call: Callable[[Callable[[], GovernedLimits]], Awaitable[GovernedLimits]] | None = None,
    task_status: trio.TaskStatus[GovernedLimits] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Read the limits (unless the follower already did), `apply` them, report started, then
    follow them forever (see the module docstring). The first read's error propagates: a process
    must not start without the cap."""
    call = trio.to_thread.run_sync if chain_call is None else chain_call
    limits = follower.limits
    if limits is None:
        limits = await call(follower.read)
    apply(limits)
    task_status.started(limits)
    outage = ChainOutage(interval)
    while True:
        await trio.sleep(interval)
        try:
            limits = await call(follower.poll)
        except Exception as exc:  # the node failed: the cursor is unmoved, the last limits hold
            level, retry = outage.failed(trio.current_time())
            if level:
                log.log(
                    logging.ERROR if level == "error" else logging.WARNING,
                    "reading the governed limits failed (%s: %s); the hub fee cap %d stays in "
                    "force; retrying in %.1f s",
                    type(exc).__name__,
                    exc,
                    limits.hub_fee_cap,
                    retry,
                )
            await trio.sleep(retry)
            continue
        outage.recovered(trio.current_time())
        apply(limits)


__all__ = ["POLL_INTERVAL", "follow_governed_limits"]

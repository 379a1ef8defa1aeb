"""A chain node that does not answer: how long to wait before trying again, and when to say so.

Every long-running process follows the chain; a node that is down or restarting must delay its work,
never end it. This module holds the one retry schedule (doubling from the poll interval, capped) and
the one outage bookkeeping (a warning at the first failure, an error once the process has been blind
for `OUTAGE_ALARM_S`, repeated every `OUTAGE_REPEAT_S`, and a line when the node answers again).
It is pure: the caller passes the time in and does the logging and the sleeping.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_BACKOFF_S = 5.0  # the longest wait between two polls of a chain that does not answer
OUTAGE_ALARM_S = 3.0  # blind this long: an error saying what goes unseen (then every minute)
OUTAGE_REPEAT_S = 60.0


def backoff_delay(poll_interval: float, failures: int) -> float:
    """Seconds before the next poll after `failures` failed ones in a row: doubling from the poll
    interval, at most `MAX_BACKOFF_S` (a node back after a restart is seen within seconds)."""
    return min(MAX_BACKOFF_S, poll_interval * (1 << min(failures, 30)))


@dataclass(slots=True)
class ChainOutage:
    """The current run of failed chain polls of one process (none when `since` is None)."""

    poll_interval: float
    since: float | None = None
    failures: int = 0
    alarmed_at: float | None = None

    def failed(self, now: float) -> tuple[str, float]:
        """Record a failed poll at `now`: ("warning" | "error" | "", seconds to wait). "error"
        means the process has been blind too long and must say loudly what goes unseen."""
        if self.since is None:
            self.since = now
        self.failures += 1
        retry = backoff_delay(self.poll_interval, self.failures)
        blind = now - self.since
        if blind >= OUTAGE_ALARM_S and (
            self.alarmed_at is None or now - self.alarmed_at >= OUTAGE_REPEAT_S
        ):
            self.alarmed_at = now
            return "error", retry
        if self.failures == 1 or retry < MAX_BACKOFF_S:
            return "warning", retry
        return "", retry

    def recovered(self, now: float) -> float | None:
        """Record a poll that went through; the outage's length when one just ended."""
        if self.since is None:
            return None
        length = now - self.since
        self.since, self.failures, self.alarmed_at = None, 0, None
        return length

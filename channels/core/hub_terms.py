"""Whether a hub's announced lock terms leave a payee the time it needs to claim a payment.

A payer's lock lives `lock_timeout` blocks; the hub forwards it to the payee expiring
`reveal_timeout` (the hub's) blocks earlier, so the payee's lock has about
`lock_timeout - reveal_timeout` blocks left when it arrives. A payee refuses any lock with fewer
than its own reveal timeout left (it could not register the secret on chain in time), so a hub
whose terms leave less than that makes every payment to that payee fail. Nothing else checks the
two against each other: the hub does not know its payees' reveal timeouts.

Pure: no I/O. It must never call terms sufficient that leave a payee less than its reveal
timeout plus `HEAD_SKEW` blocks (the payee's head may be ahead of the hub's).
"""

from __future__ import annotations

HEAD_SKEW = 2  # blocks a payee's head may run ahead of the hub's when a lock arrives


def payee_lock_time_problem(
    lock_timeout: int, hub_reveal_timeout: int, payee_reveal_timeout: int
) -> str | None:
    """Why locks the hub forwards to this payee would all be refused (None: they leave enough)."""
    left = lock_timeout - hub_reveal_timeout
    needed = payee_reveal_timeout + HEAD_SKEW
    if left >= needed:
        return None
    return (
        f"the hub's terms (lock timeout {lock_timeout}, reveal timeout {hub_reveal_timeout} "
        f"blocks) leave a lock forwarded to us {left} blocks; we need {needed} (our reveal timeout "
        f"{payee_reveal_timeout} + {HEAD_SKEW}): every payment to us would be refused. The hub's "
        f"--lock-timeout must be at least {hub_reveal_timeout + needed}"
    )


__all__ = ["HEAD_SKEW", "payee_lock_time_problem"]

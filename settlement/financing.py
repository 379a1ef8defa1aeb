"""The financing pool's arithmetic in pure Python: a mirror of `contracts_solidity/FinancingPool.sol`.

For display (what a contributor is owed, what the next sync will do) and for the property tests that
check the rounding rule: no unit is ever created or lost. Each operation returns a new frozen `Pool`
and raises `FinancingError` named after the contract's custom error when the contract would revert.
Integers only (DESIGN §2). No I/O, no chain: `channels.chain.financing` reads the real pool.

Rounding (decision note 2026-11-26-financing-pool.md): amounts are multiples of
`granule(return_ppm)`, so every cap is exact; a contributor's repayment so far is
`repaid * contributed // target`; the units rounded away stay owed and are exact again at the cap.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

PPM_TOTAL = 1_000_000
MIN_RETURN_PPM = 1_000_000
MAX_RETURN_PPM = 10_000_000
MAX_TARGET = 2**96 - 1

OPEN, FUNDED, FAILED = 0, 1, 2  # FinancingPool.Status


class FinancingError(ValueError):
    """The contract would revert with custom error `name(args)`."""

    def __init__(self, name: str, *args: int) -> None:
        self.name = name
        self.error_args = args
        super().__init__(f"{name}({', '.join(str(a) for a in args)})")


def granule(return_ppm: int) -> int:
    """The unit every amount is a multiple of: 1e6 / gcd(return_ppm, 1e6) (25 for 1.08x)."""
    return PPM_TOTAL // math.gcd(return_ppm, PPM_TOTAL)


def return_of(amount: int, return_ppm: int) -> int:
    """`amount * return_ppm / 1e6`: exact for a multiple of `granule(return_ppm)`."""
    return amount * return_ppm // PPM_TOTAL


def round_to_granule(amount: int, return_ppm: int) -> int:
    """The largest acceptable amount not above `amount` (what a client offers to contribute)."""
    g = granule(return_ppm)
    return amount - amount % g


@dataclass(frozen=True, slots=True)
class Position:
    """One contributor: its contribution and what it claimed (repayment) or was refunded."""

    contributed: int = 0
    claimed: int = 0


def _frozen(d: dict[bytes, Position]) -> Mapping[bytes, Position]:
    return MappingProxyType(d)


@dataclass(frozen=True, slots=True)
class Pool:
    """A pool's parameters and state, as the contract stores them (plus the token balance)."""

    target: int
    deadline: int
    return_ppm: int
    raised: int = 0
    funded: bool = False
    repaid: int = 0
    to_operator: int = 0
    tracked: int = 0  # the token balance accounted
    balance: int = 0  # the pool's token balance (tracked + arrived, not yet synced)
    positions: Mapping[bytes, Position] = field(default_factory=lambda: _frozen({}))

    # ------------------------------------------------------------------ creation

    @classmethod
    def create(cls, target: int, deadline: int, return_ppm: int, block: int) -> Pool:
        """The constructor's checks (after the operator check, which needs the registry)."""
        if target <= 0 or target > MAX_TARGET:
            raise FinancingError("FinancingPoolInvalidTarget", target)
        if not MIN_RETURN_PPM <= return_ppm <= MAX_RETURN_PPM:
            raise FinancingError("FinancingPoolInvalidReturn", return_ppm)
        if deadline <= block:
            raise FinancingError("FinancingPoolDeadlineNotInFuture", deadline, block)
        g = granule(return_ppm)
        if target % g:
            raise FinancingError("FinancingPoolInexactAmount", target, g)
        return cls(target, deadline, return_ppm)

    # ------------------------------------------------------------------ views

    @property
    def cap(self) -> int:
        """What the contributors get back in total (exact)."""
        return return_of(self.target, self.return_ppm)

    @property
    def granule(self) -> int:
        """Every amount is a multiple of this."""
        return granule(self.return_ppm)

    @property
    def pending(self) -> int:
        """Units arrived and not yet synced."""
        return max(self.balance - self.tracked, 0)

    def status(self, block: int) -> int:
        """OPEN, FUNDED or FAILED at `block`."""
        if self.funded:
            return FUNDED
        return FAILED if block > self.deadline else OPEN

    def position(self, account: bytes) -> Position:
        """`account`'s position (empty when it never contributed)."""
        return self.positions.get(account, Position())

    def entitlement(self, account: bytes) -> int:
        """Total repayment so far: floor(repaid * contributed / target)."""
        return self.repaid * self.position(account).contributed // self.target

    def claimable(self, account: bytes) -> int:
        """What `claim` would pay at most now (0 unless funded)."""
        if not self.funded:
            return 0
        return self.entitlement(account) - self.position(account).claimed

    def contributor_cap(self, account: bytes) -> int:
        """`account`'s total repayment at the cap (exact)."""
        return return_of(self.position(account).contributed, self.return_ppm)

    def carried(self) -> int:
        """Units repaid but rounded away from every contributor for now (< number of contributors)."""
        return self.repaid - sum(self.entitlement(a) for a in self.positions)

    # ------------------------------------------------------------------ operations

    def _with(self, account: bytes, position: Position, **changes: int | bool) -> Pool:
        positions = dict(self.positions)
        positions[account] = position
        return replace(self, positions=_frozen(positions), **changes)  # type: ignore[arg-type]

    def contribute(self, account: bytes, amount: int, block: int) -> tuple[Pool, int, bool]:
        """(pool, taken, reached): `contribute(amount)` by `account` at `block` (membership aside).

        When `reached`, the target left the pool for the recipient.
        """
        if self.funded:
            raise FinancingError("FinancingPoolAlreadyFunded")
        if block > self.deadline:
            raise FinancingError("FinancingPoolDeadlinePassed", self.deadline, block)
        if amount <= 0:
            raise FinancingError("FinancingPoolZeroAmount")
        if amount % self.granule:
            raise FinancingError("FinancingPoolInexactAmount", amount, self.granule)
        taken = min(amount, self.target - self.raised)
        raised = self.raised + taken
        reached = raised == self.target
        old = self.position(account)
        pool = self._with(
            account,
            Position(old.contributed + taken, old.claimed),
            raised=raised,
            tracked=self.tracked + taken - (raised if reached else 0),
            balance=self.balance + taken - (raised if reached else 0),
            funded=reached,
        )
        return pool, taken, reached

    def refund(self, account: bytes, block: int) -> tuple[Pool, int]:
        """(pool, amount): `refund()` by `account` at `block`."""
        if self.funded:
            raise FinancingError("FinancingPoolNotFailed")
        if block <= self.deadline:
            raise FinancingError("FinancingPoolStillOpen", self.deadline)
        old = self.position(account)
        amount = old.contributed - old.claimed
        if amount == 0:
            raise FinancingError("FinancingPoolNothingToRefund")
        pool = self._with(
            account,
            Position(old.contributed, old.contributed),
            tracked=self.tracked - amount,
            balance=self.balance - amount,
        )
        return pool, amount

    def receive(self, amount: int) -> Pool:
        """A plain token transfer to the pool (a share of the asset's fees)."""
        if amount < 0:
            raise ValueError("a transfer is not negative")
        return replace(self, balance=self.balance + amount)

    def sync(self, block: int) -> tuple[Pool, int, int]:
        """(pool, to_contributors, to_operator): `sync()` at `block`."""
        if not self.funded and block <= self.deadline:
            raise FinancingError("FinancingPoolStillOpen", self.deadline)
        if self.balance <= self.tracked:
            return self, 0, 0
        arrived = self.balance - self.tracked
        to_contributors = min(arrived, self.cap - self.repaid) if self.funded else 0
        to_operator = arrived - to_contributors
        pool = replace(
            self,
            repaid=self.repaid + to_contributors,
            to_operator=self.to_operator + to_operator,
            tracked=self.tracked + to_contributors,
            balance=self.balance - to_operator,
        )
        return pool, to_contributors, to_operator

    def claim(self, account: bytes, amount: int) -> Pool:
        """`claim(amount)` by `account`."""
        if not self.funded:
            raise FinancingError("FinancingPoolNotFunded")
        if amount <= 0:
            raise FinancingError("FinancingPoolZeroAmount")
        entitled = self.claimable(account)
        if amount > entitled:
            raise FinancingError("FinancingPoolClaimAboveEntitlement", amount, entitled)
        old = self.position(account)
        return self._with(
            account,
            Position(old.contributed, old.claimed + amount),
            tracked=self.tracked - amount,
            balance=self.balance - amount,
        )


__all__ = [
    "FAILED",
    "FUNDED",
    "MAX_RETURN_PPM",
    "MAX_TARGET",
    "MIN_RETURN_PPM",
    "OPEN",
    "PPM_TOTAL",
    "FinancingError",
    "Pool",
    "Position",
    "granule",
    "return_of",
    "round_to_granule",
]

"""A contract-faithful model of the channel manager's close, update, settle, registerSecret and
unlock (docs/protocol.md, "Channel settlement arithmetic" and "On-chain rules"), for property tests
that close a channel hundreds of times: py-evm would take minutes. The real-chain test
`tests/integration/test_unlock_stale_close.py` checks the same behaviour against the contract.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from channels.core.locktree import root_from_proof
from channels.core.state import BalanceProof, Lock
from channels.core.types import EMPTY_LOCKS_ROOT, Address

ZERO_PROOF = (0, 0, 0, EMPTY_LOCKS_ROOT)  # nonce, transferred, locked, locksRoot


class Reverted(Exception):  # noqa: N818  # named like the contract's custom errors
    """The modelled call reverts; the message is the custom error's name."""


@dataclass
class ChannelModel:
    """One channel between `p1 < p2` with deposits `d1`, `d2` (no withdraws)."""

    p1: Address
    p2: Address
    d1: int
    d2: int
    settle_timeout: int = 5
    block: int = 0
    closer: Address | None = None
    settle_block: int = 0
    settled: bool = False
    proofs: dict[Address, tuple[int, int, int, bytes]] = field(default_factory=dict)
    registered: dict[bytes, int] = field(default_factory=dict)
    pools: dict[Address, int] = field(default_factory=dict)
    roots: dict[Address, bytes] = field(default_factory=dict)
    resolved: set[tuple[Address, int]] = field(default_factory=set)
    credited: dict[Address, int] = field(default_factory=dict)
    settle_balances: dict[Address, int] = field(default_factory=dict)
    initial_pools: dict[Address, int] = field(default_factory=dict)

    def _other(self, who: Address) -> Address:
        return self.p2 if who == self.p1 else self.p1

    def close(self, closer: Address, proof: BalanceProof | None) -> None:
        if self.closer is not None:
            raise Reverted("ChannelManagerChannelNotOpen")
        self.closer = closer
        self.settle_block = self.block + self.settle_timeout
        if proof is not None and proof.nonce > 0:
            self.proofs[self._other(closer)] = _stored(proof)

    def update(self, closer: Address, proof: BalanceProof) -> None:
        if self.closer != closer or self.settled:
            raise Reverted("ChannelManagerChannelNotClosed")
        if self.block > self.settle_block:
            raise Reverted("ChannelManagerChallengePeriodOver")
        if proof.nonce <= self.proofs.get(closer, ZERO_PROOF)[0]:
            raise Reverted("ChannelManagerNonceNotIncreasing")
        self.proofs[closer] = _stored(proof)

    def settle(self) -> tuple[int, int, int, int]:
        if self.closer is None or self.settled:
            raise Reverted("ChannelManagerChannelNotClosed")
        if self.block <= self.settle_block:
            raise Reverted("ChannelManagerChallengePeriodNotOver")
        _, t1, l1, root1 = self.proofs.get(self.p1, ZERO_PROOF)
        _, t2, l2, root2 = self.proofs.get(self.p2, ZERO_PROOF)
        total = self.d1 + self.d2
        b1 = min(max(self.d1 + t2 - t1, 0), total)
        b2 = total - b1
        locked1 = min(l1, b1) if root1 != EMPTY_LOCKS_ROOT else 0
        locked2 = min(l2, b2) if root2 != EMPTY_LOCKS_ROOT else 0
        b1, b2 = b1 - locked1, b2 - locked2
        self.settled = True
        for who, balance, locked, root in (
            (self.p1, b1, locked1, root1),
            (self.p2, b2, locked2, root2),
        ):
            self.settle_balances[who] = balance
            self.credited[who] = self.credited.get(who, 0) + balance
            self.pools[who] = locked
            self.initial_pools[who] = locked
            self.roots[who] = root if locked else EMPTY_LOCKS_ROOT
        return b1, b2, locked1, locked2

    def register(self, secrethash: bytes) -> None:
        if secrethash in self.registered:
            raise Reverted("ChannelManagerSecretAlreadyRegistered")
        self.registered[secrethash] = self.block

    def unlock(
        self, sender: Address, receiver: Address, lock: Lock, slot: int, proof: list[bytes]
    ) -> tuple[Address, int]:
        """(beneficiary, amount paid)."""
        if not self.settled:
            raise Reverted("ChannelManagerChannelNotSettled")
        root = self.roots.get(sender, EMPTY_LOCKS_ROOT)
        if root == EMPTY_LOCKS_ROOT:
            raise Reverted("ChannelManagerNoPendingLocks")
        if (sender, slot) in self.resolved:
            raise Reverted("ChannelManagerLockAlreadyResolved")
        if root_from_proof(lock.leaf, slot, proof) != root:
            raise Reverted("ChannelManagerInvalidLockProof")
        registered = self.registered.get(lock.secrethash)
        if registered is not None and registered <= lock.expiration:
            beneficiary = receiver
        elif self.block > lock.expiration:
            beneficiary = sender
        else:
            raise Reverted("ChannelManagerLockPending")
        self.resolved.add((sender, slot))
        amount = min(lock.amount, self.pools[sender])
        self.pools[sender] -= amount
        if self.pools[sender] == 0:
            self.roots[sender] = EMPTY_LOCKS_ROOT
        self.credited[beneficiary] = self.credited.get(beneficiary, 0) + amount
        return beneficiary, amount


def _stored(proof: BalanceProof) -> tuple[int, int, int, bytes]:
    return (proof.nonce, proof.transferred, proof.locked, proof.locks_root)

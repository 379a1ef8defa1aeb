"""Mediation decisions of the hub: forward a lock, pass a secret back, refund a payer early.

The hub's `NodeService` calls `Mediator.decide` with every event the core produces, inside the
commit group of the state change that caused it, so a forwarded lock is logged in the same
transaction as the lock that paid for it. The rules (DESIGN §3, mediated transfers):

- a lock from a payer is forwarded to its target under the same secrethash, for the largest
  amount whose fee the lock covers (`FeeSchedule.forward_amount`), expiring `reveal_timeout`
  blocks earlier than the incoming lock, so the hub always has time to claim the incoming lock
  once it learns the secret; anything it cannot forward is refused at once (the payer's refund);
- a secret learned on the outgoing channel (the payee revealed it, and the core already
  unlocked our lock to the payee) is revealed to the payer, who then unlocks the incoming lock;
- an outgoing lock refused by the payee, or expired unclaimed, refunds the payer's lock.

The mapping secrethash -> incoming channel is derived from the channels (rebuilt on start-up from
the pending locks), so it needs no storage of its own. Pure decisions: no I/O, no clock, no keys;
it must never forward more than the incoming lock minus the fee, never forward a lock that
expires before the hub could claim the incoming one, and never refuse a lock whose secret the hub
knows (the core refuses such a refusal as well).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from channels.core import events as ev
from channels.core import state_changes as sc
from channels.core.channel import get_capacity
from channels.core.fees import FeeSchedule
from channels.core.locktree import MAX_PENDING_LOCKS
from channels.core.state import ChannelState
from channels.core.types import Address, BlockNumber, ChannelId, SecretHash, TokenAmount


@dataclass(frozen=True, slots=True)
class MediationTerms:
    """The hub's routing terms: its fee and its timing margins (in blocks)."""

    fees: FeeSchedule
    reveal_timeout: int  # blocks the hub keeps between its outgoing and incoming lock expiries
    lock_timeout: int  # blocks a payer's lock should live (announced to payers)

    def __post_init__(self) -> None:
        if self.reveal_timeout < 1:
            raise ValueError("reveal_timeout must be at least one block")
        if self.lock_timeout <= 2 * self.reveal_timeout:
            raise ValueError(
                f"lock_timeout ({self.lock_timeout}) must exceed twice reveal_timeout "
                f"({self.reveal_timeout}): the payee needs time after the hub's margin"
            )


@dataclass(frozen=True, slots=True)
class Forwarded:
    """A payment the hub forwarded (for statistics and liquidity)."""

    incoming: ChannelId
    outgoing: ChannelId
    amount: int
    fee: int


@dataclass(slots=True)
class Mediator:
    """Decides the hub's actions from core events (see the module docstring)."""

    our_address: Address
    terms: MediationTerms
    channels: Mapping[ChannelId, ChannelState]  # the service's live mapping (read only)
    channel_to: Callable[[Address], ChannelState | None]  # our open channel with a partner
    block_number: Callable[[], BlockNumber]
    incoming: dict[SecretHash, ChannelId] = field(default_factory=dict)
    forwarded: list[Forwarded] = field(default_factory=list)  # taken by the shell after a commit
    refused: int = 0
    _forwarding: tuple[ChannelId, int, ChannelId, SecretHash] | None = None

    def rebuild(self) -> None:
        """Index the payers' pending locks by secrethash (on start-up)."""
        self.incoming = {
            secrethash: channel_id
            for channel_id, channel in self.channels.items()
            for secrethash in channel.partner.slot_of
        }

    def decide(self, event: ev.Event) -> Iterable[sc.StateChange]:
        handler = _DECISIONS.get(type(event))
        return () if handler is None else handler(self, event)

    def _secret_learned(self, event: ev.EventSecretLearned) -> Iterable[sc.StateChange]:
        incoming = self.incoming.get(event.secrethash)
        if incoming is not None and incoming != event.channel_id:
            return [sc.ActionRevealSecret(incoming, event.secret, paid_downstream=True)]
        return ()

    def _lock_refused(self, event: ev.EventLockRefused) -> Iterable[sc.StateChange]:
        return self._refund(event.secrethash, f"the payee refused the payment: {event.reason}")

    def _lock_expired(self, event: ev.EventLockExpired) -> Iterable[sc.StateChange]:
        if event.sender == self.our_address:
            return self._refund(event.secrethash, "the payee did not claim the payment in time")
        self.incoming.pop(event.secrethash, None)
        return ()

    def _unlock_received(self, event: ev.EventUnlockReceived) -> Iterable[sc.StateChange]:
        self.incoming.pop(event.secrethash, None)
        return ()

    def _send_failed(self, event: ev.EventPaymentSendFailed) -> Iterable[sc.StateChange]:
        pending = self._forwarding
        if pending is not None and pending[:2] == (event.channel_id, event.payment_id):
            self._forwarding = None
            return self._refund(pending[3], f"the hub could not forward: {event.reason}")
        return ()

    def _refund(self, secrethash: SecretHash, reason: str) -> Iterable[sc.StateChange]:
        incoming = self.incoming.get(secrethash)
        if incoming is None:
            return ()
        channel = self.channels.get(incoming)
        if channel is None or secrethash not in channel.partner.slot_of:
            return ()
        self.refused += 1
        return [sc.ActionRefuseLock(incoming, secrethash, reason)]

    def _forward(self, event: ev.EventLockedTransferReceived) -> Iterable[sc.StateChange]:
        lock = event.lock
        self.incoming[lock.secrethash] = event.channel_id
        reason, action = self._forward_action(event)
        if action is None:
            self.refused += 1
            return [sc.ActionRefuseLock(event.channel_id, lock.secrethash, reason)]
        self._forwarding = (action.channel_id, action.payment_id, event.channel_id, lock.secrethash)
        self.forwarded.append(
            Forwarded(
                event.channel_id, action.channel_id, action.amount, lock.amount - action.amount
            )
        )
        return [action]

    def _forward_action(
        self, event: ev.EventLockedTransferReceived
    ) -> tuple[str, sc.ActionLockedTransfer | None]:
        lock = event.lock
        target = event.target
        if target == self.our_address:
            return "the hub takes no payments for itself", None
        if target == event.partner:
            return "the payer and the payee are the same", None
        outgoing = self.channel_to(target)
        if outgoing is None:
            return f"the hub has no open channel with 0x{target.hex()}", None
        amount = self.terms.fees.forward_amount(lock.amount)
        if amount <= 0:
            return f"the lock ({lock.amount}) does not cover the hub's fee", None
        reveal_timeout = self.terms.reveal_timeout
        expiration = lock.expiration - reveal_timeout
        if expiration <= self.block_number() + reveal_timeout:
            return (
                f"the lock expires at block {lock.expiration}, too soon to forward "
                f"(the hub needs {2 * reveal_timeout} blocks)",
                None,
            )
        our, partner = outgoing.our, outgoing.partner
        if lock.secrethash in our.slot_of:
            return "a payment with this secrethash is already pending to the payee", None
        if len(our.locks) >= MAX_PENDING_LOCKS:
            return f"{MAX_PENDING_LOCKS} payments are already pending to the payee", None
        capacity = get_capacity(our, partner)
        if amount > capacity:
            return f"the hub's capacity to the payee ({capacity}) is below {amount}", None
        return "", sc.ActionLockedTransfer(
            outgoing.channel_id,
            TokenAmount(amount),
            BlockNumber(expiration),
            lock.secrethash,
            event.payment_id,
            target,
        )


_DECISIONS: dict[type, Callable[[Mediator, Any], Iterable[sc.StateChange]]] = {
    ev.EventLockedTransferReceived: Mediator._forward,
    ev.EventSecretLearned: Mediator._secret_learned,
    ev.EventLockRefused: Mediator._lock_refused,
    ev.EventLockExpired: Mediator._lock_expired,
    ev.EventUnlockReceived: Mediator._unlock_received,
    ev.EventPaymentSendFailed: Mediator._send_failed,
}
"""The events the mediator acts on, by exact type (one dict lookup per event)."""

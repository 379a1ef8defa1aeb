"""Issue 16: whichever proof lands on chain, every lock is unlocked to the right side.

Hypothesis builds a random history on one channel, both directions: locked transfers, unlocks
(the payer learns the secret), reveals (the payee learns it first), direct payments and blocks
that expire locks. Then, for EVERY proof either side signed, on a fresh copy of that history:
(A) the proof's receiver closes with it, or (B) its sender closes and the receiver's tower puts
that proof on chain while the receiver is offline. The two cores then run against a
contract-faithful model (`unlock_model.py`): they update, register secrets, settle and unlock as
their events say, block by block. Checked: nothing is left in a lock pool, no unlock is built
from a wrong tree, each lock went where the chain's rule sends it (registered in time -> the
receiver, else back to the sender), value is conserved, and no lock is left pending in a core.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

from core_pair import CHANNEL_ID, Pair
from hypothesis import given, settings
from hypothesis import strategies as st
from unlock_model import ChannelModel, Reverted

from channels.codec.eip712 import secrethash_of
from channels.core import events as ev
from channels.core import state_changes as sc
from channels.core.state import BalanceProof, Lock
from channels.core.types import (
    Address,
    BlockNumber,
    Nonce,
    PaymentId,
    Secret,
    SecretHash,
    TokenAmount,
)

TX = b"\x00" * 32
SETTLE_TIMEOUT = 5
DEPOSIT = 1000


@dataclass
class History:
    """A Pair driven by actions, recording every proof each side signed with its locks."""

    pair: Pair = field(default_factory=lambda: Pair(deposit_a=DEPOSIT, deposit_b=DEPOSIT))
    proofs: dict[Address, dict[int, tuple[BalanceProof, dict[int, Lock]]]] = field(
        default_factory=dict
    )
    secrets: dict[SecretHash, Secret] = field(default_factory=dict)
    next_secret: int = 1

    def capture(self) -> None:
        for receiver in (self.pair.a, self.pair.b):
            partner = self.pair.views[receiver].partner
            proof = partner.balance_proof
            if proof.nonce > 0:
                by_nonce = self.proofs.setdefault(partner.address, {})
                by_nonce.setdefault(proof.nonce, (proof, dict(partner.locks)))

    def run(self, who: Address, change: sc.StateChange) -> None:
        self.flow(who, self.pair.step(who, change))

    def flow(self, who: Address, events: list[ev.Event]) -> None:
        queue = [(who, e) for e in events if isinstance(e, ev.SendEvent)]
        while queue:
            origin, event = queue.pop(0)
            replies = self.pair.deliver(origin, event)
            self.capture()
            receiver = self.pair.other(origin)
            queue.extend((receiver, r) for r in replies if isinstance(r, ev.SendEvent))

    def lock(self, sender: Address, amount: int, ttl: int) -> None:
        secret = Secret(self.next_secret.to_bytes(32, "big"))
        self.next_secret += 1
        secrethash = SecretHash(secrethash_of(secret))
        self.secrets[secrethash] = secret
        action = sc.ActionLockedTransfer(
            CHANNEL_ID,
            TokenAmount(amount),
            BlockNumber(self.pair.block + ttl),
            secrethash,
            PaymentId(self.next_secret),
            self.pair.other(sender),
        )
        self.run(sender, action)

    def pending(self, sender: Address, pick: int) -> Lock | None:
        locks = self.pair.views[sender].our.locks
        if not locks:
            return None
        return locks[sorted(locks)[pick % len(locks)]]

    def unlock(self, sender: Address, pick: int) -> None:
        lock = self.pending(sender, pick)
        if lock is not None:
            self.run(sender, sc.ActionUnlock(CHANNEL_ID, self.secrets[lock.secrethash]))

    def reveal(self, sender: Address, pick: int) -> None:
        lock = self.pending(sender, pick)
        if lock is not None:
            receiver = self.pair.other(sender)
            secret = self.secrets[lock.secrethash]
            self.run(receiver, sc.ActionRevealSecret(CHANNEL_ID, secret))

    def advance(self, blocks: int) -> None:
        self.pair.block += blocks
        for who in (self.pair.a, self.pair.b):
            self.run(who, sc.Block(BlockNumber(self.pair.block)))


Op = tuple[str, int, int, int]
OPS = st.tuples(
    st.sampled_from(["lock", "lock", "lock", "unlock", "reveal", "pay", "advance"]),
    st.integers(0, 1),
    st.integers(1, 60),
    st.integers(3, 25),
)


def build(ops: list[Op]) -> History:
    history = History()
    parties = (history.pair.a, history.pair.b)
    for name, who, x, y in ops:
        party = parties[who]
        if name == "lock":
            history.lock(party, x, y)
        elif name == "unlock":
            history.unlock(party, x)
        elif name == "reveal":
            history.reveal(party, x)
        elif name == "pay":
            history.flow(party, history.pair.pay(party, x % 20 + 1, payment_id=10_000 + x))
        else:
            history.advance(y % 8 + 1)
    return history


@dataclass
class Outcome:
    model: ChannelModel
    failures: list[str]


class ChainRun:
    """Both cores against the model after a close, from a copy of the history's pair."""

    def __init__(self, history: History) -> None:
        self.pair = copy.copy(history.pair)
        self.pair.views = dict(history.pair.views)
        a, b = self.pair.a, self.pair.b
        p1, p2 = min(a, b), max(a, b)
        self.model = ChannelModel(p1, p2, DEPOSIT, DEPOSIT, SETTLE_TIMEOUT, self.pair.block)
        self.failures: list[str] = []
        self.offline_updates: set[Address] = set()
        self.queue: list[sc.StateChange] = []
        self.pumping = False

    def both(self, change: sc.StateChange) -> None:
        """A chain event (or a new head) seen by both, after every earlier one: the follower
        delivers logs in chain order, and a transaction sent meanwhile is mined after them."""
        self.queue.append(change)
        if self.pumping:
            return
        self.pumping = True
        try:
            while self.queue:
                change = self.queue.pop(0)
                for who in (self.pair.a, self.pair.b):
                    self.act(who, self.pair.step(who, change))
        finally:
            self.pumping = False

    def act(self, who: Address, events: list[ev.Event]) -> None:
        for event in events:
            if isinstance(event, ev.ContractSendEvent):
                self.send(who, event)

    def send(self, who: Address, event: ev.ContractSendEvent) -> None:
        model = self.model
        block = BlockNumber(model.block)
        try:
            if isinstance(event, ev.ContractSendUpdateBalanceProof):
                if who in self.offline_updates:
                    return
                model.update(event.closer, event.balance_proof)
                self.both(
                    sc.ContractReceiveChannelBalanceProofUpdated(
                        TX, block, CHANNEL_ID, event.closer, event.balance_proof.nonce
                    )
                )
            elif isinstance(event, ev.ContractSendSecretRegister):
                secrethash = SecretHash(secrethash_of(event.secret))
                model.register(secrethash)
                self.both(sc.ContractReceiveSecretRegistered(TX, block, secrethash, event.secret))
            elif isinstance(event, ev.ContractSendChannelSettle):
                b1, b2, l1, l2 = model.settle()
                self.both(
                    sc.ContractReceiveChannelSettled(
                        TX,
                        block,
                        CHANNEL_ID,
                        TokenAmount(b1),
                        TokenAmount(b2),
                        TokenAmount(l1),
                        TokenAmount(l2),
                    )
                )
            elif isinstance(event, ev.ContractSendUnlock):
                beneficiary, amount = model.unlock(
                    event.sender, event.receiver, event.lock, event.slot, list(event.proof)
                )
                claimed = amount if beneficiary == event.receiver else 0
                self.both(
                    sc.ContractReceiveLockUnlocked(
                        TX,
                        block,
                        CHANNEL_ID,
                        event.sender,
                        event.receiver,
                        event.slot,
                        event.lock.secrethash,
                        TokenAmount(claimed),
                        TokenAmount(amount - claimed),
                    )
                )
        except Reverted as exc:
            self.failures.append(f"{type(event).__name__}: {exc}")
            if isinstance(event, ev.ContractSendUnlock):
                failed = sc.ContractReceiveUnlockFailed(
                    CHANNEL_ID, event.sender, event.slot, str(exc)
                )
                self.act(who, self.pair.step(who, failed))

    def close(self, closer: Address, proof: BalanceProof | None) -> None:
        self.model.close(closer, proof)
        nonce = Nonce(0 if proof is None else proof.nonce)
        self.both(
            sc.ContractReceiveChannelClosed(
                TX,
                BlockNumber(self.model.block),
                CHANNEL_ID,
                closer,
                nonce,
                BlockNumber(self.model.settle_block),
            )
        )

    def tower_update(self, closer: Address, proof: BalanceProof) -> None:
        self.model.update(closer, proof)
        self.both(
            sc.ContractReceiveChannelBalanceProofUpdated(
                TX, BlockNumber(self.model.block), CHANNEL_ID, closer, proof.nonce
            )
        )

    def run_blocks(self, until: int) -> None:
        while self.model.block < until:
            self.model.block += 1
            self.pair.block = self.model.block
            self.both(sc.Block(BlockNumber(self.model.block)))
            if self.model.settled and not any(self.model.pools.values()):
                break


def locks_on_chain(history: History, model: ChannelModel) -> dict[Address, dict[int, Lock]]:
    """The locks of each direction's proof stored on chain, from the history's own record."""
    out: dict[Address, dict[int, Lock]] = {}
    for sender in (model.p1, model.p2):
        nonce = model.proofs.get(sender, (0, 0, 0, b""))[0]
        out[sender] = history.proofs[sender][nonce][1] if nonce else {}
    return out


def check(history: History, run: ChainRun) -> None:
    model = run.model
    assert model.settled, "the channel never settled"
    assert not any(model.pools.values()), f"left in the contract: {model.pools}, {run.failures}"
    assert not [f for f in run.failures if "InvalidLockProof" in f], run.failures
    assert sum(model.credited.values()) == 2 * DEPOSIT
    on_chain = locks_on_chain(history, model)
    if any(
        sum(lock.amount for lock in locks.values()) != model.initial_pools[sender]
        for sender, locks in on_chain.items()
    ):
        return  # a pool clamped by the sender's balance: the split depends on the unlock order
    owed = dict(model.settle_balances)
    for sender, locks in on_chain.items():
        receiver = model.p2 if sender == model.p1 else model.p1
        for lock in locks.values():
            registered = model.registered.get(lock.secrethash)
            to = receiver if registered is not None and registered <= lock.expiration else sender
            owed[to] += lock.amount
    assert model.credited == owed
    for who in (run.pair.a, run.pair.b):
        assert not run.pair.views[who].unlocks_pending, (who.hex(), run.failures)


def _horizon(history: History) -> int:
    expirations = [
        lock.expiration
        for by_nonce in history.proofs.values()
        for _proof, locks in by_nonce.values()
        for lock in locks.values()
    ]
    return max([history.pair.block, *expirations]) + SETTLE_TIMEOUT + 30


@settings(max_examples=200, deadline=None)
@given(st.lists(OPS, min_size=1, max_size=24))
def test_every_proof_on_chain_unlocks_everything(ops: list[Op]) -> None:
    history = build(ops)
    horizon = _horizon(history)
    for sender, by_nonce in history.proofs.items():
        receiver = history.pair.other(sender)
        for _nonce, (proof, _locks) in sorted(by_nonce.items()):
            # (A) the receiver closes with this proof; the sender updates the other direction
            run = ChainRun(history)
            run.close(receiver, proof)
            run.run_blocks(horizon)
            check(history, run)
            # (B) the sender closes; the receiver is offline and its tower submits this proof
            run = ChainRun(history)
            run.offline_updates.add(receiver)
            latest = history.pair.views[sender].partner.balance_proof
            run.close(sender, latest if latest.nonce else None)
            run.tower_update(sender, proof)
            run.run_blocks(horizon)
            check(history, run)

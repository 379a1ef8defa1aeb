"""A Hypothesis state machine over two views of one channel (Alice's and Bob's).

The test shell signs with real keys and carries every message through the wire encoding. A model
tracks what each side owns and has locked; after every step both cores must agree with the model
and with each other, and honest peers must never see an `EventInvalid*`.
"""

from __future__ import annotations

from core_pair import CHANNEL_ID, Pair
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from channels.codec.eip712 import secrethash_of
from channels.core import events as ev
from channels.core import state_changes as sc
from channels.core.channel import get_capacity
from channels.core.locktree import LockTree
from channels.core.state import ChannelState, EndState
from channels.core.types import (
    BlockNumber,
    PaymentId,
    Secret,
    SecretHash,
    TokenAmount,
)

TX = b"\x00" * 32
sides = st.sampled_from(["alice", "bob"])


class ChannelMachine(RuleBasedStateMachine):
    pair: Pair

    @initialize(deposit_a=st.integers(0, 1000), deposit_b=st.integers(0, 1000))
    def start(self, deposit_a: int, deposit_b: int) -> None:
        self.pair = Pair(deposit_a=deposit_a, deposit_b=deposit_b)
        self.model = {self.pair.a: deposit_a, self.pair.b: deposit_b}  # free (unlocked) balance
        self.locked = {self.pair.a: 0, self.pair.b: 0}
        self.deposits = {self.pair.a: deposit_a, self.pair.b: deposit_b}
        self.withdrawn = {self.pair.a: 0, self.pair.b: 0}
        self.secrets: dict[SecretHash, Secret] = {}
        self.counter = 0
        self.last: dict[bytes, tuple[int, int]] = {self.pair.a: (0, 0), self.pair.b: (0, 0)}

    def who(self, side: str) -> bytes:
        return self.pair.a if side == "alice" else self.pair.b

    def run(self, sender: bytes, change: sc.StateChange) -> list[ev.Event]:
        events = self.pair.send(sender, change)
        invalid = [e for e in events if type(e).__name__.startswith("EventInvalid")]
        assert not invalid, invalid
        return events

    @rule(side=sides, amount=st.integers(1, 400))
    def direct_pay(self, side: str, amount: int) -> None:
        payer = self.who(side)
        payee = self.pair.other(payer)
        self.counter += 1
        events = self.run(
            payer, sc.ActionTransfer(CHANNEL_ID, TokenAmount(amount), PaymentId(self.counter))
        )
        if any(isinstance(e, ev.EventPaymentReceived) for e in events):
            assert amount <= self.model[payer]
            self.model[payer] -= amount
            self.model[payee] += amount
        else:
            assert any(isinstance(e, ev.EventPaymentSendFailed) for e in events)

    @rule(side=sides, amount=st.integers(1, 300), timeout=st.integers(3, 30))
    def locked_pay(self, side: str, amount: int, timeout: int) -> None:
        payer = self.who(side)
        self.counter += 1
        secret = Secret(self.counter.to_bytes(32, "big"))
        secrethash = SecretHash(secrethash_of(secret))
        action = sc.ActionLockedTransfer(
            CHANNEL_ID,
            TokenAmount(amount),
            BlockNumber(self.pair.block + timeout),
            secrethash,
            PaymentId(self.counter),
            self.pair.other(payer),
        )
        events = self.run(payer, action)
        if any(isinstance(e, ev.EventLockedTransferReceived) for e in events):
            self.secrets[secrethash] = secret
            self.model[payer] -= amount
            self.locked[payer] += amount
            assert self.model[payer] >= 0

    @precondition(lambda self: bool(self.secrets))
    @rule(data=st.data())
    def unlock(self, data: st.DataObject) -> None:
        secrethash = data.draw(st.sampled_from(sorted(self.secrets)))
        alice = self.pair.views[self.pair.a]
        if secrethash in alice.our.slot_of:
            sender, end = self.pair.a, alice.our
        elif secrethash in alice.partner.slot_of:
            sender, end = self.pair.b, alice.partner
        else:
            del self.secrets[secrethash]  # expired meanwhile
            return
        lock = end.locks[end.slot_of[secrethash]]
        receiver = self.pair.other(sender)
        events = self.run(receiver, sc.ActionRevealSecret(CHANNEL_ID, self.secrets[secrethash]))
        if any(isinstance(e, ev.EventUnlockReceived) for e in events):
            self.locked[sender] -= lock.amount
            self.model[receiver] += lock.amount
            del self.secrets[secrethash]
        else:
            # only a lock at or within the reveal margin of its expiry is not unlocked (its
            # secret is never revealed then)
            margin = self.pair.ctx(receiver).reveal_margin
            assert lock.expiration <= self.pair.block + margin

    @rule(blocks=st.integers(1, 15))
    def advance(self, blocks: int) -> None:
        block = self.pair.block + blocks
        self.pair.block = block
        for who in (self.pair.a, self.pair.b):
            for event in self.pair.step(who, sc.Block(BlockNumber(block))):
                if isinstance(event, ev.SendLockExpired):
                    lock_amount = (
                        self.pair.views[self.pair.other(who)].partner.locks[event.slot].amount
                    )
                    replies = self.pair.deliver(who, event)
                    assert replies == [
                        ev.EventLockExpired(
                            CHANNEL_ID, who, event.secrethash, TokenAmount(lock_amount)
                        )
                    ], replies
                    self.locked[who] -= lock_amount
                    self.model[who] += lock_amount
                    self.secrets.pop(event.secrethash, None)
                elif isinstance(event, ev.SendEvent):
                    raise AssertionError(f"unexpected message on a block: {event}")

    @rule(side=sides, amount=st.integers(1, 500))
    def withdraw(self, side: str, amount: int) -> None:
        who = self.who(side)
        total = self.withdrawn[who] + amount
        action = sc.ActionWithdraw(
            CHANNEL_ID, TokenAmount(total), BlockNumber(self.pair.block + 10)
        )
        events = self.run(who, action)
        tx = [e for e in events if isinstance(e, ev.ContractSendChannelWithdraw)]
        if not tx:
            assert amount > self.model[who] or any(
                isinstance(e, ev.EventActionFailed) for e in events
            )
            return
        self.pair.chain(
            sc.ContractReceiveChannelWithdrawn(
                TX, BlockNumber(self.pair.block), CHANNEL_ID, who, TokenAmount(total)
            )  # type: ignore[arg-type]
        )
        self.withdrawn[who] = total
        self.model[who] -= amount
        assert self.model[who] >= 0

    @rule(side=sides, amount=st.integers(1, 500))
    def deposit(self, side: str, amount: int) -> None:
        who = self.who(side)
        total = self.deposits[who] + amount
        self.pair.chain(
            sc.ContractReceiveChannelDeposited(
                TX, BlockNumber(self.pair.block), CHANNEL_ID, who, TokenAmount(total)
            )  # type: ignore[arg-type]
        )
        self.deposits[who] = total
        self.model[who] += amount

    # ------------------------------------------------------------------ invariants

    def ends(self) -> list[tuple[bytes, EndState, EndState, ChannelState]]:
        alice, bob = self.pair.views[self.pair.a], self.pair.views[self.pair.b]
        return [
            (self.pair.a, alice.our, alice.partner, alice),
            (self.pair.b, bob.our, bob.partner, bob),
        ]

    @invariant()
    def balances_match_model_and_are_conserved(self) -> None:
        if not hasattr(self, "pair"):
            return
        for who, our, partner, _ in self.ends():
            other = self.pair.other(who)
            assert get_capacity(our, partner) == self.model[who]
            assert get_capacity(partner, our) == self.model[other]
            assert our.balance_proof.locked == self.locked[who]
        total = sum(self.deposits.values()) - sum(self.withdrawn.values())
        assert sum(self.model.values()) + sum(self.locked.values()) == total

    @invariant()
    def both_views_agree(self) -> None:
        if not hasattr(self, "pair"):
            return
        alice, bob = self.pair.views[self.pair.a], self.pair.views[self.pair.b]
        for mine, theirs in ((alice.our, bob.partner), (bob.our, alice.partner)):
            a, b = mine.balance_proof, theirs.balance_proof
            assert (a.nonce, a.transferred, a.locked, a.locks_root) == (
                b.nonce,
                b.transferred,
                b.locked,
                b.locks_root,
            )
            assert mine.locks == theirs.locks and mine.slot_of == theirs.slot_of
            assert (mine.deposit, mine.withdrawn) == (theirs.deposit, theirs.withdrawn)

    @invariant()
    def locks_match_proofs_and_monotonic(self) -> None:
        if not hasattr(self, "pair"):
            return
        for who, our, _, _ in self.ends():
            proof = our.balance_proof
            assert proof.locked == sum(lock.amount for lock in our.locks.values())
            tree = LockTree()
            for slot, lock in our.locks.items():
                tree = tree.insert_at(slot, lock.leaf)
            assert tree.root == proof.locks_root == our.tree.root
            assert {lock.secrethash: slot for slot, lock in our.locks.items()} == dict(our.slot_of)
            last_nonce, last_transferred = self.last[who]
            assert proof.nonce >= last_nonce and proof.transferred >= last_transferred
            self.last[who] = (proof.nonce, proof.transferred)


ChannelMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
test_channel_machine = ChannelMachine.TestCase

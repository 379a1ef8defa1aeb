"""ChannelManager.unlock: resolve the pending locks of a settled channel, one Merkle proof each."""

from dataclasses import dataclass

import pytest
from cm_support import SETTLE_TIMEOUT
from eth_utils import keccak

from channels.codec.eip712 import lock_hash
from channels.core.locktree import LockTree, root_from_proof

ZERO = b"\0" * 32


@dataclass(frozen=True)
class Lock:
    amount: int
    expiration: int
    secret: bytes

    @property
    def secrethash(self) -> bytes:
        return keccak(self.secret)

    @property
    def leaf(self) -> bytes:
        return lock_hash(self.amount, self.expiration, self.secrethash)

    def as_tuple(self):
        return (self.amount, self.expiration, self.secrethash)


@dataclass
class Settled:
    channel_id: int
    locks: dict[int, Lock]
    tree: LockTree
    pool: int

    @property
    def root(self) -> bytes:
        return self.tree.root


def build_tree(locks: dict[int, Lock]) -> LockTree:
    tree = LockTree()
    for slot, lock in locks.items():
        tree = tree.insert_at(slot, lock.leaf)
    return tree


def settle_with_locks(chain, pair, locks: dict[int, Lock], locked: int | None = None) -> Settled:
    """p1 (sender of the locks) has sent p2 100 and has `locks` pending; p2 closes, settles."""
    p1, p2 = pair
    channel_id = chain.open(p1, p2, 1000)
    tree = build_tree(locks)
    locked = sum(lock.amount for lock in locks.values()) if locked is None else locked
    chain.close(p2, p1, channel_id, nonce=7, transferred=100, locked=locked, locks_root=tree.root)
    chain.mine(SETTLE_TIMEOUT)
    event = chain.events(chain.settle(channel_id, p1, p2), "ChannelSettled")[0]
    return Settled(channel_id, locks, tree, event["locked1"])


def unlock_fn(chain, pair, settled: Settled, slot: int, lock: Lock | None = None, proof=None):
    p1, p2 = pair
    lock = lock or settled.locks[slot]
    proof = proof or settled.tree.proof(slot)
    return chain.cm.functions.unlock(
        settled.channel_id, p1.address, p2.address, lock.as_tuple(), slot, proof
    )


@pytest.fixture
def settled(chain, pair):
    far = chain.block + 1000
    near = chain.block + 3  # expired by the time the channel is settled
    locks = {
        0: Lock(100, far, b"\x01" * 32),
        1: Lock(50, near, b"\x02" * 32),
        5: Lock(30, far, b"\x03" * 32),
        511: Lock(20, far, b"\x04" * 32),
    }
    return settle_with_locks(chain, pair, locks)


def test_settle_keeps_the_pool(chain, pair, settled):
    p1, p2 = pair
    assert settled.pool == 200
    assert chain.stored_proof(settled.channel_id, p1, p2) == (0, 0, 200, settled.root)


def test_unlock_to_receiver_with_secret_registered_in_time(chain, pair, settled):
    p1, p2 = pair
    chain.tx(chain.cm.functions.registerSecret(settled.locks[0].secret), p2)
    before = chain.internal(p2)
    receipt = chain.tx(unlock_fn(chain, pair, settled, 0), chain.actors[6])
    assert chain.events(receipt, "LockUnlocked") == [
        {
            "channelId": settled.channel_id,
            "sender": p1.address,
            "beneficiary": p2.address,
            "slot": 0,
            "secrethash": settled.locks[0].secrethash,
            "amount": 100,
        }
    ]
    assert chain.internal(p2) == before + 100
    assert chain.stored_proof(settled.channel_id, p1, p2) == (0, 0, 100, settled.root)
    assert chain.cm.functions.isLockResolved(settled.channel_id, p1.address, p2.address, 0).call()


def test_unlock_expired_lock_returns_to_sender(chain, pair, settled):
    p1, _ = pair
    before = chain.internal(p1)
    chain.tx(unlock_fn(chain, pair, settled, 1), p1)
    assert chain.internal(p1) == before + 50


def test_secret_registered_after_expiration_returns_to_sender(chain, pair, settled):
    p1, p2 = pair
    chain.tx(chain.cm.functions.registerSecret(settled.locks[1].secret), p2)  # too late
    before = chain.internal(p1), chain.internal(p2)
    chain.tx(unlock_fn(chain, pair, settled, 1), p2)
    assert (chain.internal(p1), chain.internal(p2)) == (before[0] + 50, before[1])


def test_last_slot_and_emptying_the_pool(chain, pair, settled):
    p1, p2 = pair
    for slot in (0, 5, 511):
        chain.tx(chain.cm.functions.registerSecret(settled.locks[slot].secret), p2)
    for slot in (0, 1, 5, 511):
        chain.tx(unlock_fn(chain, pair, settled, slot), p2)
    assert chain.stored_proof(settled.channel_id, p1, p2) == (0, 0, 0, ZERO)
    chain.assert_reverts(
        unlock_fn(chain, pair, settled, 0),
        p2,
        "ChannelManagerNoPendingLocks",
        settled.channel_id,
        p1.address,
    )


def test_pays_at_most_the_remaining_pool(chain, pair):
    p1, p2 = pair
    # p1 has 1000 - 100 = 900 left; its proof claims 1200 locked: the pool is capped at 900.
    far = chain.block + 1000
    locks = {0: Lock(1000, far, b"\x05" * 32), 1: Lock(200, far, b"\x06" * 32)}
    settled = settle_with_locks(chain, pair, locks)
    assert settled.pool == 900
    for slot in (0, 1):
        chain.tx(chain.cm.functions.registerSecret(locks[slot].secret), p2)
    before = chain.internal(p2)
    receipt = chain.tx(unlock_fn(chain, pair, settled, 0), p2)
    assert chain.events(receipt, "LockUnlocked")[0]["amount"] == 900
    assert chain.internal(p2) == before + 900
    chain.assert_reverts(
        unlock_fn(chain, pair, settled, 1),
        p2,
        "ChannelManagerNoPendingLocks",
        settled.channel_id,
        p1.address,
    )


def test_rejects_pending_lock(chain, pair, settled):
    lock = settled.locks[0]
    chain.assert_reverts(
        unlock_fn(chain, pair, settled, 0),
        pair[1],
        "ChannelManagerLockPending",
        lock.secrethash,
        lock.expiration,
    )


def test_rejects_already_resolved_slot(chain, pair, settled):
    chain.tx(unlock_fn(chain, pair, settled, 1), pair[0])
    chain.assert_reverts(
        unlock_fn(chain, pair, settled, 1), pair[0], "ChannelManagerLockAlreadyResolved", 1
    )


@pytest.mark.parametrize("bad", ["amount", "expiration", "slot", "sibling"])
def test_rejects_bad_proof(chain, pair, settled, bad):
    lock = settled.locks[1]
    proof = settled.tree.proof(1)
    slot = 1
    if bad == "amount":
        lock = Lock(lock.amount + 1, lock.expiration, lock.secret)
    elif bad == "expiration":
        lock = Lock(lock.amount, lock.expiration + 1, lock.secret)
    elif bad == "slot":
        slot = 3
    else:
        proof = [proof[0], b"\x99" * 32, *proof[2:]]
    computed = root_from_proof(lock.leaf, slot, proof)
    chain.assert_reverts(
        unlock_fn(chain, pair, settled, slot, lock=lock, proof=proof),
        pair[0],
        "ChannelManagerInvalidLockProof",
        computed,
        settled.root,
    )


def test_rejects_slot_out_of_range(chain, pair, settled):
    proof = settled.tree.proof(1)
    fn = unlock_fn(chain, pair, settled, 512, lock=settled.locks[1], proof=proof)
    chain.assert_reverts(fn, pair[0], "ChannelManagerInvalidLockSlot", 512)


def test_rejects_direction_without_locks(chain, pair, settled):
    p1, p2 = pair
    lock = settled.locks[1]
    fn = chain.cm.functions.unlock(
        settled.channel_id, p2.address, p1.address, lock.as_tuple(), 1, settled.tree.proof(1)
    )
    chain.assert_reverts(fn, p1, "ChannelManagerNoPendingLocks", settled.channel_id, p2.address)


def test_rejects_before_settle(chain, pair):
    p1, p2 = pair
    lock = Lock(10, chain.block + 2, b"\x07" * 32)
    tree = build_tree({0: lock})
    channel_id = chain.open(p1, p2, 1000)
    chain.close(p2, p1, channel_id, nonce=1, transferred=0, locked=10, locks_root=tree.root)
    chain.mine(SETTLE_TIMEOUT)  # period over and lock expired, but not settled
    fn = chain.cm.functions.unlock(
        channel_id, p1.address, p2.address, lock.as_tuple(), 0, tree.proof(0)
    )
    chain.assert_reverts(fn, p1, "ChannelManagerChannelNotSettled", channel_id)

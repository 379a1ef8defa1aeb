"""The lock history (`channels.core.lockhistory`) and the core's unlocks after a stale close."""

from __future__ import annotations

import itertools
import random

from core_pair import CHANNEL_ID, DOMAIN, Pair

from channels.codec.eip712 import secrethash_of
from channels.core import events as ev
from channels.core import state_changes as sc
from channels.core.lockhistory import LockLog, new_log, unknown_log
from channels.core.locktree import LockTree, root_from_proof
from channels.core.state import ChannelState, Lock, NodeState
from channels.core.types import (
    BlockNumber,
    Nonce,
    PaymentId,
    Secret,
    SecretHash,
    TokenAmount,
)
from channels.records import core_record_codec

TX = b"\x00" * 32


def test_locks_at_every_nonce_equal_the_trees_that_were_signed() -> None:
    rng = random.Random(7)
    log, tree, locks = new_log(), LockTree(), {}
    roots = {0: tree.root}
    for nonce in range(1, 400):
        if locks and rng.random() < 0.45:
            slot = rng.choice(sorted(locks))
            secret = rng.randbytes(32)
            log = (
                log.unlocked(nonce, slot, secret)
                if rng.random() < 0.5
                else log.expired(nonce, slot, locks[slot][2])
            )
            del locks[slot]
            tree = tree.remove(slot)
        elif rng.random() < 0.8:
            lock = (rng.randrange(1, 2**96), rng.randrange(1, 2**64), rng.randbytes(32))
            tree, slot = tree.insert(_leaf(lock))
            locks[slot] = lock
            log = log.added(nonce, slot, *lock)
        roots[nonce] = tree.root  # a direct transfer in between keeps the tree
    for nonce, root in roots.items():
        rebuilt = log.locks_at(nonce)
        assert rebuilt is not None
        assert LockTree.from_leaves((s, _leaf(lk)) for s, lk in rebuilt.items()).root == root


def test_an_older_version_extended_branches_and_leaves_the_newer_intact() -> None:
    base = new_log().added(1, 0, 5, 100, b"\x01" * 32)
    newer = base.added(2, 1, 6, 100, b"\x02" * 32)
    branch = base.expired(2, 0, b"\x01" * 32)  # base is no longer the buffer's newest version
    assert newer.locks_at(2) == {0: (5, 100, b"\x01" * 32), 1: (6, 100, b"\x02" * 32)}
    assert branch.locks_at(2) == {}
    assert base.locks_at(5) == {0: (5, 100, b"\x01" * 32)}
    assert base == new_log().added(1, 0, 5, 100, b"\x01" * 32) and base != newer


def test_a_log_from_before_histories_knows_only_from_its_start() -> None:
    assert unknown_log().locks_at(3) is None
    seeded = LockLog.started(4, [(2, (9, 50, b"\x03" * 32))])
    assert seeded.locks_at(3) is None and seeded.locks_at(4) == {2: (9, 50, b"\x03" * 32)}


def test_a_snapshot_keeps_the_history() -> None:
    pair = Pair()
    pair.send(pair.a, _lock(pair, 1, 170))
    pair.send(pair.a, sc.ActionUnlock(CHANNEL_ID, _secret(1)))
    channel = pair.views[pair.b]
    codec = core_record_codec()
    node = NodeState(pair.b, DOMAIN, BlockNumber(100), {CHANNEL_ID: channel})
    kind, payload = codec.encode(node)
    restored: ChannelState = codec.decode(kind, payload).channels[CHANNEL_ID]
    assert restored == channel
    assert restored.partner.history.locks_at(1) == channel.partner.history.locks_at(1)
    assert restored.partner.history.secrets() == {secrethash_of(_secret(1)): _secret(1)}


def test_unlocks_after_a_close_with_proof_n_after_four_more_unlocks_use_tree_n() -> None:
    """The symptom: the payee closes with the payer's proof N (six locks) after the payer sent
    four unlocks; every unlock either side then sends verifies against tree N, and the payee
    registers the secrets it was paid with off chain so it can claim those locks."""
    pair = Pair()
    for index in range(1, 7):
        pair.send(pair.a, _lock(pair, index, 120))
    stale = pair.views[pair.b].partner.balance_proof
    for index in range(1, 5):
        pair.send(pair.a, sc.ActionUnlock(CHANNEL_ID, _secret(index)))
    assert pair.views[pair.b].partner.balance_proof.nonce == stale.nonce + 4
    closed = pair.chain(
        sc.ContractReceiveChannelClosed(
            TX, BlockNumber(101), CHANNEL_ID, pair.b, stale.nonce, BlockNumber(106)
        )
    )
    registers = [e for e in closed[pair.b] if isinstance(e, ev.ContractSendSecretRegister)]
    assert sorted(e.secret for e in registers) == [_secret(i) for i in range(1, 5)]
    for index in range(1, 5):
        secrethash = SecretHash(secrethash_of(_secret(index)))
        pair.chain(
            sc.ContractReceiveSecretRegistered(TX, BlockNumber(102), secrethash, _secret(index))
        )
    pair.new_block(107)
    settled = pair.chain(
        sc.ContractReceiveChannelSettled(
            TX,
            BlockNumber(108),
            CHANNEL_ID,
            TokenAmount(0),
            TokenAmount(0),
            *_locked_in_order(pair, stale.locked),
        )
    )
    claims = [e for e in settled[pair.b] if isinstance(e, ev.ContractSendUnlock)]
    assert sorted(e.slot for e in claims) == [0, 1, 2, 3]
    assert not any(isinstance(e, ev.ContractSendUnlock) for e in pair.new_block(120)[pair.a])
    refunds = [e for e in pair.new_block(121)[pair.a] if isinstance(e, ev.ContractSendUnlock)]
    assert sorted(e.slot for e in refunds) == [4, 5]
    for unlock in claims + refunds:
        assert (
            root_from_proof(unlock.lock.leaf, unlock.slot, list(unlock.proof)) == stale.locks_root
        )


def test_a_failed_unlock_is_retried_with_backoff_then_reported_and_kept() -> None:
    pair = Pair()
    pair.send(pair.a, _lock(pair, 1, 110))
    pair.chain(
        sc.ContractReceiveChannelClosed(
            TX, BlockNumber(101), CHANNEL_ID, pair.b, Nonce(1), BlockNumber(106)
        )
    )
    pair.new_block(111)
    pair.chain(
        sc.ContractReceiveChannelSettled(
            TX, BlockNumber(111), CHANNEL_ID, TokenAmount(0), TokenAmount(0)
        )
    )
    sent_at = []
    for block in range(112, 600):
        events = pair.new_block(block)[pair.a]
        if any(isinstance(e, ev.ContractSendUnlock) for e in events):
            sent_at.append(block)
            pair.step(pair.a, sc.ContractReceiveUnlockFailed(CHANNEL_ID, pair.a, 0, "node down"))
        failed = [e for e in events if isinstance(e, ev.EventUnlockFailed)]
        if failed:
            assert failed[0].attempts == 6 and failed[0].reason == "node down"
            break
    else:
        raise AssertionError("never reported")
    gaps = [later - earlier for earlier, later in itertools.pairwise(sent_at)]
    assert gaps == sorted(gaps) and gaps[-1] > gaps[0], gaps  # the wait grows
    channel = pair.views[pair.a]
    assert channel.unlocks_pending == {(pair.a, 0)}  # never forgotten
    assert channel.unlock_attempts[0].gave_up and channel.unlock_attempts[0].reason == "node down"
    assert not any(isinstance(e, ev.ContractSendUnlock) for e in pair.new_block(700)[pair.a])


def _secret(index: int) -> Secret:
    return Secret(index.to_bytes(32, "big"))


def _lock(pair: Pair, index: int, expiration: int) -> sc.ActionLockedTransfer:
    return sc.ActionLockedTransfer(
        CHANNEL_ID,
        TokenAmount(10 * index),
        BlockNumber(expiration),
        SecretHash(secrethash_of(_secret(index))),
        PaymentId(index),
        pair.b,
    )


def _leaf(lock: tuple[int, int, bytes]) -> bytes:
    return Lock(TokenAmount(lock[0]), BlockNumber(lock[1]), SecretHash(lock[2])).leaf


def _locked_in_order(pair: Pair, payer_locked: int) -> tuple[TokenAmount, TokenAmount]:
    if pair.a < pair.b:
        return TokenAmount(payer_locked), TokenAmount(0)
    return TokenAmount(0), TokenAmount(payer_locked)

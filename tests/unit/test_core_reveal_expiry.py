"""Every reveal decision against the current head (issue 16): the core never reveals the secret of
a lock we are owed at, past or within `reveal_margin` blocks of its expiry, so a payee that
restarted with a stale block number and learned the head gives no secret away for a dead lock."""

from __future__ import annotations

from core_pair import CHANNEL_ID, Pair

from channels.codec.eip712 import secrethash_of
from channels.core import events as ev
from channels.core import state_changes as sc
from channels.core.types import BlockNumber, PaymentId, Secret, SecretHash, TokenAmount

SECRET = Secret(b"\x24" * 32)
SECRETHASH = SecretHash(secrethash_of(SECRET))


def _owed_lock(pair: Pair, expiration: int) -> None:
    """Alice locks 10 towards Bob, expiring at `expiration`; Bob accepts it at `pair.block`."""
    action = sc.ActionLockedTransfer(
        CHANNEL_ID,
        TokenAmount(10),
        BlockNumber(expiration),
        SECRETHASH,
        PaymentId(7),
        pair.b,
    )
    [send, *_] = pair.step(pair.a, action)
    assert isinstance(send, ev.SendLockedTransfer)
    [received] = pair.deliver(pair.a, send)
    assert isinstance(received, ev.EventLockedTransferReceived)


def _reveal(pair: Pair) -> list[ev.Event]:
    return pair.step(pair.b, sc.ActionRevealSecret(CHANNEL_ID, SECRET))


def test_a_lock_accepted_at_a_stale_block_is_not_revealed_once_the_head_is_known() -> None:
    pair = Pair(block=54)  # the block a restarted payee stopped at
    _owed_lock(pair, expiration=60)  # resent to it: valid as far as block 54 goes
    pair.block = 75  # the chain's head: the lock expired at 60
    assert pair.step(pair.b, sc.Block(BlockNumber(75))) == []
    [failed] = _reveal(pair)
    assert isinstance(failed, ev.EventActionFailed)
    assert "expires at block 60" in failed.reason and "block 75" in failed.reason
    bob = pair.views[pair.b]
    assert SECRETHASH not in bob.secrets  # not kept either: nothing registers it on chain later
    # the Block after it registers nothing (no secret known) and reveals nothing
    pair.block = 76
    assert not [
        e for e in pair.step(pair.b, sc.Block(BlockNumber(76))) if "Secret" in type(e).__name__
    ]


def test_the_same_lock_is_revealed_while_the_head_leaves_time() -> None:
    pair = Pair(block=54)
    _owed_lock(pair, expiration=60)
    [reveal] = _reveal(pair)
    assert isinstance(reveal, ev.SendSecretReveal) and reveal.secret == SECRET


def test_never_at_or_within_the_margin_of_expiry() -> None:
    for expiration, revealed in ((103, True), (102, False), (101, False), (100, False)):
        pair = Pair(block=90)
        _owed_lock(pair, expiration=expiration)
        pair.block = 100  # margin 2: the lock must expire after block 102
        pair.step(pair.b, sc.Block(BlockNumber(100)))
        assert pair.ctx(pair.b).reveal_margin == 2
        events = _reveal(pair)
        assert any(isinstance(e, ev.SendSecretReveal) for e in events) is revealed, expiration
        assert (SECRETHASH in pair.views[pair.b].secrets) is revealed


def test_a_mediator_that_paid_downstream_reveals_and_keeps_the_secret_however_late() -> None:
    """The hub learned the secret from the payee and paid it: withholding the secret from the payer
    (or forgetting it) would leave no way to be paid back, so the margin does not apply."""
    pair = Pair(block=90)
    _owed_lock(pair, expiration=101)
    pair.block = 100
    pair.step(pair.b, sc.Block(BlockNumber(100)))
    events = pair.step(pair.b, sc.ActionRevealSecret(CHANNEL_ID, SECRET, paid_downstream=True))
    assert any(isinstance(e, ev.SendSecretReveal) for e in events)
    assert SECRETHASH in pair.views[pair.b].secrets  # kept: it can still be registered on chain

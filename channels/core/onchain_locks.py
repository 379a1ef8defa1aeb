"""The locks a closed channel holds on chain: which tree each direction committed to, and the
unlocks (retried, never forgotten) that pay us.

After a close the proof of a direction stored on chain is the one its OTHER side chose: any proof
its sender ever signed (docs/protocol.md, lifecycle). The chain tells us only its nonce
(`ChannelClosed`, `ChannelBalanceProofUpdated`); `EndState.history` rebuilds the tree of that
nonce (`channels.core.lockhistory`). At settle each end's `locks`/`tree` become the tree on chain,
and every lock in it is pending until a `LockUnlocked` for its slot is seen. We send the unlocks
that pay us (a refund of our expired lock, a claim of a partner lock whose secret was registered
in time); one not seen mined is sent again with a doubling wait, a bounded number of times, then
reported (`EventUnlockFailed`) and kept pending.

Pure functions of the channel record returning (new channel, events); the channel core wires
them to state changes. Never I/O, never a key.
"""

from __future__ import annotations

from msgspec.structs import replace

from channels.core import events as ev
from channels.core.lockhistory import LockLog
from channels.core.locktree import LockTree
from channels.core.state import ChannelState, ChannelStatus, EndState, Lock, UnlockAttempt
from channels.core.types import Address, BlockNumber, Secret, SecretHash, TokenAmount

Changed = tuple[ChannelState, list[ev.Event]]

_SETTLED_LOG = LockLog(bytearray(), 0, 0)
UNSCHEDULED = BlockNumber(
    0
)  # an attempt just sent: its retry is scheduled at the next head  # after settle the trees on chain are final
_CLOSED = (ChannelStatus.CLOSING, ChannelStatus.CLOSED, ChannelStatus.SETTLING)


def onchain_locks(end: EndState) -> tuple[dict[int, Lock], str | None]:
    """The locks (by slot) of `end`'s proof stored on chain, and a problem when its tree is
    unknown (then our latest tree, the best guess: an unlock against it may revert)."""
    nonce = end.onchain_nonce
    latest = end.balance_proof.nonce
    if nonce is None or nonce == latest:
        return dict(end.locks), None
    if nonce == 0:
        return {}, None  # no proof of this direction was submitted: nothing locked on chain
    if nonce > latest:
        return dict(end.locks), (
            f"the proof on chain of 0x{end.address.hex()} has nonce {nonce}, newer than any we "
            f"know ({latest}); unlocks use our latest tree"
        )
    raw = end.history.locks_at(nonce)
    if raw is None:
        return dict(end.locks), (
            f"the locks tree of the proof on chain of 0x{end.address.hex()} (nonce {nonce}) "
            "predates our lock history; unlocks use our latest tree"
        )
    return {
        slot: Lock(TokenAmount(amount), BlockNumber(expiration), SecretHash(secrethash))
        for slot, (amount, expiration, secrethash) in raw.items()
    }, None


def _with_locks(end: EndState, locks: dict[int, Lock]) -> EndState:
    if locks == end.locks:
        return replace(end, history=_SETTLED_LOG)
    tree = LockTree.from_leaves((slot, lock.leaf) for slot, lock in locks.items())
    slot_of = {lock.secrethash: slot for slot, lock in locks.items()}
    return replace(end, locks=locks, slot_of=slot_of, tree=tree, history=_SETTLED_LOG)


def settle(channel: ChannelState, our_pool: int | None, partner_pool: int | None) -> Changed:
    """`channel` settled on chain: each end's locks become those of its proof on chain (none
    where its pool is 0: the contract dropped that root), all of them pending on chain.

    The secrets of partner locks it unlocked off chain after that proof come back from the
    history, so the block logic registers them in time and we claim them.
    """
    events: list[ev.Event] = []
    ends: list[EndState] = []
    for end, pool in ((channel.our, our_pool), (channel.partner, partner_pool)):
        locks, problem = onchain_locks(end)
        if problem is not None:
            events.append(ev.EventInvalidContractEvent(channel.channel_id, problem))
        if pool == 0:
            locks = {}
        ends.append(_with_locks(end, locks))
    our, partner = ends
    secrets = dict(channel.secrets)
    known = channel.partner.history.secrets() if partner.locks != channel.partner.locks else {}
    for lock in partner.locks.values():
        secret = known.get(lock.secrethash)
        if secret is not None and lock.secrethash not in secrets:
            secrets[lock.secrethash] = Secret(secret)
    # a partner lock we refused is never claimed: it is not ours to resolve, and the refusal ends
    refused = channel.refused_locks
    pending = frozenset(
        [(our.address, slot) for slot in our.locks]
        + [
            (partner.address, slot)
            for slot, lock in partner.locks.items()
            if lock.secrethash not in refused
        ]
    )
    settled = replace(
        channel,
        our=our,
        partner=partner,
        secrets=secrets,
        status=ChannelStatus.SETTLED,
        unlocks_pending=pending,
        refused_locks=frozenset(),
    )
    return settled, events


def register_stale_partner_secrets(channel: ChannelState, block_number: int) -> Changed:
    """The partner's proof on chain is older than its latest (a tower's, or no update of ours):
    a lock in it that the partner unlocked off chain later is ours on chain only if its secret is
    registered before the lock expires. Register the ones we know, now."""
    partner = channel.partner
    nonce = partner.onchain_nonce
    if nonce is None or nonce == 0 or nonce >= partner.balance_proof.nonce:
        return channel, []
    raw = partner.history.locks_at(nonce)
    if not raw:
        return channel, []
    known = partner.history.secrets()
    requested = set(channel.register_requested)
    events: list[ev.Event] = []
    for _amount, expiration, secrethash in raw.values():
        secret = known.get(secrethash)
        if (
            secret is None
            or secrethash in requested
            or secrethash in channel.registered_secrets
            or expiration < block_number
        ):
            continue
        requested.add(SecretHash(secrethash))
        events.append(ev.ContractSendSecretRegister(Secret(secret)))
    if not events:
        return channel, []
    return replace(channel, register_requested=frozenset(requested)), events


def mentions_after_close(channel: ChannelState, secrethash: bytes) -> bool:
    """Whether a closed (not yet settled) channel ever had a lock with `secrethash` in either
    direction: its registration matters if the proof on chain is an older one holding it."""
    return channel.status in _CLOSED and (
        channel.our.history.mentions(secrethash) or channel.partner.history.mentions(secrethash)
    )


def resolvable_unlock(
    channel: ChannelState, sender: Address, slot: int, block_number: int
) -> ev.ContractSendUnlock | None:
    """The on-chain unlock of a lock that can be resolved in our favour now, if any."""
    ours = sender == channel.our.address
    end = channel.our if ours else channel.partner
    lock = end.locks.get(slot)
    if lock is None:
        return None
    registered = channel.registered_secrets.get(lock.secrethash)
    claimable = registered is not None and registered <= lock.expiration
    if ours:
        if claimable or block_number <= lock.expiration:
            return None  # the partner's to claim, or not yet returned to us
    elif not claimable:
        return None
    receiver = channel.partner.address if ours else channel.our.address
    return ev.ContractSendUnlock(
        channel.channel_id, sender, receiver, lock, slot, tuple(end.tree.proof(slot))
    )


def emit_unlocks(
    channel: ChannelState, block_number: int, retry_blocks: int, max_attempts: int
) -> Changed:
    """Send the unlocks that pay us now and are due (first try, or the backoff elapsed without
    the unlock seen on chain); give up, reported, after `max_attempts`. Nothing leaves
    `unlocks_pending` here: only a `LockUnlocked` seen on chain removes a lock."""
    attempts = {(a.sender, a.slot): a for a in channel.unlock_attempts}
    events: list[ev.Event] = []
    scheduled = False
    for key in sorted(channel.unlocks_pending):
        attempt = attempts.get(key)
        if attempt is not None and attempt.retry_at == UNSCHEDULED:
            # the wait starts at the first head seen after sending, not at the block we knew
            # when we sent (a catching-up node knows an old one): the unlock may be mined now
            wait = retry_blocks << (attempt.attempts - 1)
            attempts[key] = replace(attempt, retry_at=BlockNumber(block_number + wait))
            scheduled = True
            continue
        if attempt is not None and (attempt.gave_up or block_number < attempt.retry_at):
            continue
        unlock = resolvable_unlock(channel, key[0], key[1], block_number)
        if unlock is None:
            continue
        if attempt is None:
            tried, reason = 0, ""
        else:
            tried, reason = attempt.attempts, attempt.reason
        if attempt is not None and tried >= max_attempts:
            reason = reason or "sent but never seen mined"
            attempts[key] = replace(attempt, gave_up=True, reason=reason)
            events.append(ev.EventUnlockFailed(channel.channel_id, key[0], key[1], tried, reason))
            continue
        attempts[key] = UnlockAttempt(key[0], key[1], tried + 1, UNSCHEDULED, reason)
        events.append(unlock)
    if not events and not scheduled:
        return channel, []
    return replace(channel, unlock_attempts=_ordered(attempts)), events


def unlock_failed(channel: ChannelState, sender: Address, slot: int, reason: str) -> Changed:
    """The shell reports our unlock of (sender, slot) refused: keep it pending with the reason;
    the backoff already scheduled decides the next try."""
    key = (sender, slot)
    if key not in channel.unlocks_pending:
        return channel, []
    attempts = {(a.sender, a.slot): a for a in channel.unlock_attempts}
    attempt = attempts.get(key)
    if attempt is None:
        attempt = UnlockAttempt(sender, slot, 1, UNSCHEDULED, reason)
    else:
        attempt = replace(attempt, reason=reason)
    attempts[key] = attempt
    return replace(channel, unlock_attempts=_ordered(attempts)), []


def unlock_seen(channel: ChannelState, sender: Address, slot: int) -> ChannelState:
    """A `LockUnlocked` for (sender, slot): resolved on chain, by whoever sent it."""
    key = (sender, slot)
    if key not in channel.unlocks_pending:
        return channel
    remaining = tuple(a for a in channel.unlock_attempts if (a.sender, a.slot) != key)
    return replace(
        channel, unlocks_pending=channel.unlocks_pending - {key}, unlock_attempts=remaining
    )


def _ordered(attempts: dict[tuple[Address, int], UnlockAttempt]) -> tuple[UnlockAttempt, ...]:
    return tuple(attempts[key] for key in sorted(attempts))

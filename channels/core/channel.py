"""Per-channel state transitions: `channel_transition(channel, state_change, ctx) -> TransitionResult`.

The heart of the protocol (DESIGN §3, docs/protocol.md): direct and locked transfers, unlock,
lock expiry, early refusal of a received lock (LockRefused, answered by an early LockExpired),
withdraw while open, cooperative and unilateral close (also when the partner leaves a lock whose
secret is registered unpaid), challenge, settle, unlock on chain. Pure: no I/O, no clock (the
block number comes in `ctx`), no randomness and NO KEYS: outgoing messages leave as `Send*`
events carrying the EIP-712 digest for the shell to sign; incoming signatures are recovered here
(`recover_signer`) and compared to the partner.

It must never raise on a peer message: a bad one becomes an `EventInvalid*` with a reason and
the state comes back unchanged (the very same object). Cheap checks run before the signature
recovery, which is the expensive part.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

import msgspec
from msgspec.structs import replace

from channels.codec.ecdsa import InvalidSignature, recover_signer
from channels.codec.eip712 import (
    Domain,
    cooperative_close_digest,
    secrethash_of,
    withdraw_digest,
)
from channels.core import events as ev
from channels.core import onchain_locks as onchain
from channels.core import state_changes as sc
from channels.core.lockhistory import LockLog, new_log
from channels.core.locktree import MAX_PENDING_LOCKS
from channels.core.settlement import effective_locked, settle_amounts
from channels.core.state import (
    BalanceProof,
    BatchedBy,
    ChannelState,
    ChannelStatus,
    CooperativeCloseProposal,
    EndState,
    Lock,
    PendingWithdraw,
    empty_balance_proof,
)
from channels.core.types import (
    UINT64_MAX,
    UINT96_MAX,
    ZERO_AMOUNT,
    Address,
    BlockNumber,
    ChannelId,
    LocksRoot,
    Nonce,
    Secret,
    SecretHash,
    TokenAmount,
)

S = TypeVar("S")


class TransitionContext(msgspec.Struct, frozen=True):
    """What a transition needs from outside the channel: who we are, where, and when."""

    our_address: Address
    domain: Domain
    block_number: BlockNumber
    # a lock we are owed is registered on chain when it is this many blocks from expiring
    reveal_timeout: int = 10
    # we expire our own lock only this many blocks after its expiration, so that a partner whose
    # chain view lags a little still accepts the LockExpired
    lock_expiry_margin: int = 2
    # we never reveal the secret of a lock we are owed that expires within this many blocks: the
    # partner would learn it while neither its unlock nor our registration on chain could still
    # land in time (the secret would be given away for nothing)
    reveal_margin: int = 2
    # an on-chain unlock of ours not seen mined is sent again after this many blocks, doubling
    # each time (the follower's confirmations must fit in the first wait), at most this often
    unlock_retry_blocks: int = 5
    unlock_max_attempts: int = 6


class TransitionResult(msgspec.Struct, Generic[S], frozen=True):
    """The new state and the events the transition caused (persist both before acting)."""

    new_state: S
    events: list[ev.Event]


ChannelResult = TransitionResult[ChannelState]


def new_channel_state(
    channel_id: ChannelId,
    our_address: Address,
    partner_address: Address,
    settle_timeout: int,
    our_deposit: TokenAmount = ZERO_AMOUNT,
    partner_deposit: TokenAmount = ZERO_AMOUNT,
) -> ChannelState:
    """A freshly opened channel."""
    empty = empty_balance_proof(channel_id)
    return ChannelState(
        channel_id=channel_id,
        our=EndState(our_address, deposit=our_deposit, balance_proof=empty, history=new_log()),
        partner=EndState(
            partner_address, deposit=partner_deposit, balance_proof=empty, history=new_log()
        ),
        settle_timeout=settle_timeout,
    )


# --------------------------------------------------------------------------- queries


def get_balance(sender: EndState, receiver: EndState) -> int:
    """What `sender` owns in the channel, its pending outgoing locks included."""
    return (
        sender.deposit
        - sender.withdrawn
        + receiver.balance_proof.transferred
        - sender.balance_proof.transferred
    )


def get_capacity(sender: EndState, receiver: EndState) -> int:
    """What `sender` can still send: deposit - withdrawn + received - sent - locked.

    A pending (requested or confirmed) withdraw counts as withdrawn: it may land on chain any time.
    """
    return (
        sender.deposit
        - sender.effective_withdrawn
        + receiver.balance_proof.transferred
        - sender.balance_proof.transferred
        - sender.balance_proof.locked
    )


def get_earnings(end: EndState, other: EndState) -> int:
    """What `end` earned in the channel and may withdraw without touching its own deposit:
    received - sent - withdrawn, within its capacity (never negative).

    A settlement batch moves a party's earnings on chain; a payer's prepaid deposit stays in the
    channel for its next payments.
    """
    earned = (
        other.balance_proof.transferred - end.balance_proof.transferred - end.effective_withdrawn
    )
    return max(0, min(earned, get_capacity(end, other)))


def cooperative_close_balances(channel: ChannelState) -> tuple[int, int]:
    """(balance1, balance2) in participant-address order, by the settlement arithmetic."""
    first, second = (
        (channel.our, channel.partner)
        if channel.we_are_participant1
        else (channel.partner, channel.our)
    )
    result = settle_amounts(
        first.deposit,
        first.withdrawn,
        first.balance_proof.transferred,
        effective_locked(first.balance_proof.locked, first.balance_proof.locks_root),
        second.deposit,
        second.withdrawn,
        second.balance_proof.transferred,
        effective_locked(second.balance_proof.locked, second.balance_proof.locks_root),
    )
    return result.balance1, result.balance2


# --------------------------------------------------------------------------- helpers


def with_proof(channel: ChannelState, proof: BalanceProof, *, ours: bool) -> ChannelState:
    """`channel` with a new latest proof of one direction (nothing else changed).

    The direct-payment hot path: positional construction is faster than two
    `msgspec.structs.replace` calls. A unit test proves it equal to the `replace` version, so a
    field added to EndState or ChannelState cannot be silently dropped here.
    """
    end = channel.our if ours else channel.partner
    new_end = EndState(
        end.address,
        end.deposit,
        end.withdrawn,
        proof,
        end.locks,
        end.slot_of,
        end.tree,
        end.pending_withdraw,
        end.history,
        end.onchain_nonce,
    )
    return ChannelState(
        channel.channel_id,
        new_end if ours else channel.our,
        channel.partner if ours else new_end,
        channel.settle_timeout,
        channel.status,
        channel.closer,
        channel.closed_block,
        channel.settle_block,
        channel.cooperative_close,
        channel.secrets,
        channel.registered_secrets,
        channel.register_requested,
        channel.unlocks_pending,
        channel.unlock_attempts,
        channel.refused_locks,
    )


def _unchanged(channel: ChannelState) -> ChannelResult:
    return TransitionResult(channel, [])


def _fail_action(channel: ChannelState, action: object, reason: str) -> ChannelResult:
    payment_id = getattr(action, "payment_id", None)
    if payment_id is not None:
        return TransitionResult(
            channel, [ev.EventPaymentSendFailed(channel.channel_id, payment_id, reason)]
        )
    return TransitionResult(
        channel, [ev.EventActionFailed(channel.channel_id, type(action).__name__, reason)]
    )


def _recovers_to(digest: bytes, signature: bytes, expected: Address) -> str | None:
    """None when `signature` over `digest` recovers to `expected`, else the reason."""
    try:
        signer = recover_signer(digest, signature)
    except InvalidSignature as exc:
        return f"invalid signature: {exc}"
    if signer != expected:
        return (
            f"signature recovers to 0x{signer.hex()}, not the partner "
            "(forged, or signed for another channel, chain or contract)"
        )
    return None


def _check_proof_envelope(
    channel: ChannelState, sender: Address, proof: BalanceProof
) -> str | None:
    """The checks every balance-proof message shares except the signature (done last)."""
    partner = channel.partner
    if sender != partner.address:
        return f"sender 0x{sender.hex()} is not the channel partner"
    if proof.channel_id != channel.channel_id:
        return f"balance proof is for channel {proof.channel_id}, not {channel.channel_id}"
    if not channel.is_open:
        return f"channel is {channel.status.value}, not open for payments"
    previous = partner.balance_proof
    if proof.nonce <= previous.nonce:
        return f"nonce {proof.nonce} does not increase (previous {previous.nonce})"
    if proof.nonce != previous.nonce + 1:
        return f"nonce {proof.nonce} skips ahead (expected {previous.nonce + 1})"
    if proof.transferred < previous.transferred:
        return f"transferred amount decreased from {previous.transferred} to {proof.transferred}"
    if proof.transferred > UINT96_MAX or proof.locked > UINT96_MAX:
        return "amount exceeds what the channel manager stores (uint96)"
    return None


def _new_proof(end: EndState, transferred: int, locked: int, locks_root: bytes) -> BalanceProof:
    previous = end.balance_proof
    return BalanceProof(
        previous.channel_id,
        Nonce(previous.nonce + 1),
        TokenAmount(transferred),
        TokenAmount(locked),
        LocksRoot(locks_root),
    )


def _log(end: EndState) -> LockLog:
    """`end`'s lock history, ready to append: a log from before histories existed starts with
    the locks pending now, at the current nonce (older trees of it stay unknown)."""
    history = end.history
    if history.since < 0:
        history = LockLog.started(
            end.balance_proof.nonce,
            [(slot, (lk.amount, lk.expiration, lk.secrethash)) for slot, lk in end.locks.items()],
        )
    return history


def _without_lock(
    end: EndState, slot: int, secrethash: SecretHash
) -> tuple[dict[int, Lock], dict[SecretHash, int]]:
    locks = dict(end.locks)
    del locks[slot]
    slot_of = dict(end.slot_of)
    del slot_of[secrethash]
    return locks, slot_of


def _forget_secret(
    channel: ChannelState, secrethash: SecretHash, *, partner_lock: bool = False
) -> dict[str, Any]:
    """Field updates dropping what only the lock `secrethash`, now out of its tree, needed.

    Keeps the records small: the secret, the registration request and, when the lock was the
    partner's (`partner_lock`), our refusal of it, so `refused_locks` never holds more than the
    partner's pending locks. Every off-chain removal of a lock goes through here.
    """
    changes: dict[str, Any] = {}
    if secrethash in channel.secrets:
        secrets = dict(channel.secrets)
        del secrets[secrethash]
        changes["secrets"] = secrets
    if secrethash in channel.register_requested:
        changes["register_requested"] = channel.register_requested - {secrethash}
    if partner_lock and secrethash in channel.refused_locks:
        changes["refused_locks"] = channel.refused_locks - {secrethash}
    return changes


# --------------------------------------------------------------------------- direct transfer


def _action_transfer(
    channel: ChannelState, action: sc.ActionTransfer, ctx: TransitionContext
) -> ChannelResult:
    if not channel.is_open:
        return _fail_action(channel, action, f"channel is {channel.status.value}, not open")
    amount = action.amount
    if amount <= 0:
        return _fail_action(channel, action, "amount must be positive")
    our = channel.our
    partner = channel.partner
    if amount > get_capacity(our, partner):
        return _fail_action(channel, action, "amount exceeds our capacity")
    previous = our.balance_proof
    transferred = previous.transferred + amount
    if transferred > UINT96_MAX:
        return _fail_action(channel, action, "transferred amount would exceed uint96")
    proof = BalanceProof(
        previous.channel_id,
        Nonce(previous.nonce + 1),
        TokenAmount(transferred),
        previous.locked,
        previous.locks_root,
    )
    new_channel = with_proof(channel, proof, ours=True)
    return TransitionResult(
        new_channel,
        [
            ev.SendBalanceProof(
                partner.address, proof, proof.digest(ctx.domain), action.payment_id, amount
            ),
            ev.EventPaymentSent(channel.channel_id, partner.address, action.payment_id, amount),
        ],
    )


def _receive_balance_proof(
    channel: ChannelState, message: sc.ReceiveBalanceProof, ctx: TransitionContext
) -> ChannelResult:
    proof = message.balance_proof
    reason = _check_proof_envelope(channel, message.sender, proof)
    partner = channel.partner
    previous = partner.balance_proof
    amount = proof.transferred - previous.transferred
    if reason is None:
        if amount <= 0:
            reason = "transferred amount did not increase"
        elif proof.locked != previous.locked or proof.locks_root != previous.locks_root:
            reason = "a direct transfer must not change lockedAmount or locksRoot"
        elif amount > get_capacity(partner, channel.our):
            reason = f"amount {amount} exceeds the sender's capacity"
        else:
            reason = _recovers_to(proof.digest(ctx.domain), proof.signature, partner.address)
    if reason is not None:
        return TransitionResult(
            channel,
            [ev.EventInvalidReceivedBalanceProof(channel.channel_id, message.sender, reason)],
        )
    new_channel = with_proof(channel, proof, ours=False)
    return TransitionResult(
        new_channel,
        [
            ev.EventPaymentReceived(
                channel.channel_id, partner.address, message.payment_id, TokenAmount(amount)
            )
        ],
    )


# --------------------------------------------------------------------------- locked transfer


def _action_locked_transfer(
    channel: ChannelState, action: sc.ActionLockedTransfer, ctx: TransitionContext
) -> ChannelResult:
    if not channel.is_open:
        return _fail_action(channel, action, f"channel is {channel.status.value}, not open")
    if action.amount <= 0:
        return _fail_action(channel, action, "amount must be positive")
    if len(action.secrethash) != 32:
        return _fail_action(channel, action, "secrethash must be 32 bytes")
    if action.expiration <= ctx.block_number:
        return _fail_action(channel, action, "lock expiration is not in the future")
    our = channel.our
    if action.secrethash in our.slot_of:
        return _fail_action(channel, action, "a lock with this secrethash is already pending")
    if len(our.locks) >= MAX_PENDING_LOCKS:
        return _fail_action(channel, action, f"{MAX_PENDING_LOCKS} locks already pending")
    if action.amount > get_capacity(our, channel.partner):
        return _fail_action(channel, action, "amount exceeds our capacity")
    if action.amount > UINT96_MAX or action.expiration > UINT64_MAX:
        return _fail_action(channel, action, "lock amount or expiration out of range")
    lock = Lock(action.amount, action.expiration, action.secrethash)
    tree, slot = our.tree.insert(lock.leaf)
    previous = our.balance_proof
    proof = _new_proof(our, previous.transferred, previous.locked + lock.amount, tree.root)
    locks = dict(our.locks)
    locks[slot] = lock
    slot_of = dict(our.slot_of)
    slot_of[lock.secrethash] = slot
    history = _log(our).added(proof.nonce, slot, lock.amount, lock.expiration, lock.secrethash)
    new_our = replace(
        our, balance_proof=proof, locks=locks, slot_of=slot_of, tree=tree, history=history
    )
    return TransitionResult(
        replace(channel, our=new_our),
        [
            ev.SendLockedTransfer(
                channel.partner.address,
                proof,
                proof.digest(ctx.domain),
                lock,
                slot,
                action.payment_id,
                action.target,
            )
        ],
    )


def _receive_locked_transfer(
    channel: ChannelState, message: sc.ReceiveLockedTransfer, ctx: TransitionContext
) -> ChannelResult:
    proof = message.balance_proof
    lock = message.lock
    partner = channel.partner
    previous = partner.balance_proof
    reason = _check_proof_envelope(channel, message.sender, proof)
    tree = partner.tree
    if reason is None:
        if lock.amount <= 0 or lock.amount > UINT96_MAX:
            reason = "lock amount must be positive and fit uint96"
        elif lock.expiration > UINT64_MAX:
            reason = "lock expiration does not fit uint64"
        elif len(lock.secrethash) != 32:
            reason = "secrethash must be 32 bytes"
        elif lock.secrethash in partner.slot_of:
            reason = "a lock with this secrethash is already pending"
        elif len(partner.locks) >= MAX_PENDING_LOCKS:
            reason = f"{MAX_PENDING_LOCKS} locks already pending"
        elif message.slot != tree.lowest_free_slot():
            reason = f"lock slot {message.slot} is not the lowest free slot"
        elif proof.transferred != previous.transferred:
            reason = "a locked transfer must not change the transferred amount"
        elif proof.locked != previous.locked + lock.amount:
            reason = (
                f"lockedAmount {proof.locked} is not the pending locks' sum "
                f"{previous.locked + lock.amount}"
            )
        elif lock.amount > get_capacity(partner, channel.our):
            reason = f"lock amount {lock.amount} exceeds the sender's capacity"
        else:
            tree = tree.insert_at(message.slot, lock.leaf)
            if tree.root != proof.locks_root:
                reason = "locksRoot does not match the pending locks with the new lock"
            else:
                reason = _recovers_to(proof.digest(ctx.domain), proof.signature, partner.address)
    if reason is not None:
        return TransitionResult(
            channel,
            [ev.EventInvalidReceivedLockedTransfer(channel.channel_id, message.sender, reason)],
        )
    locks = dict(partner.locks)
    locks[message.slot] = lock
    slot_of = dict(partner.slot_of)
    slot_of[lock.secrethash] = message.slot
    history = _log(partner).added(
        proof.nonce, message.slot, lock.amount, lock.expiration, lock.secrethash
    )
    new_partner = replace(
        partner, balance_proof=proof, locks=locks, slot_of=slot_of, tree=tree, history=history
    )
    if lock.expiration <= ctx.block_number:
        # Expired by our view of the chain, maybe not by the sender's (its head lags ours). The
        # proof itself is valid and signed: refusing it would leave the two views of the channel
        # apart for good (every later proof of the sender builds on it). Take the proof, never
        # act on the lock, and refuse it: the sender takes it out with its next proof.
        return TransitionResult(
            replace(
                channel,
                partner=new_partner,
                refused_locks=channel.refused_locks | {lock.secrethash},
            ),
            [
                ev.SendLockRefused(
                    partner.address,
                    channel.channel_id,
                    lock.secrethash,
                    f"lock already expired at block {lock.expiration} (our head is block "
                    f"{ctx.block_number})",
                )
            ],
        )
    return TransitionResult(
        replace(channel, partner=new_partner),
        [
            ev.EventLockedTransferReceived(
                channel.channel_id,
                partner.address,
                message.payment_id,
                lock,
                message.slot,
                message.target,
            )
        ],
    )


# --------------------------------------------------------------------------- unlock / secrets


def _unlock_ours(
    channel: ChannelState, secret: Secret, secrethash: SecretHash, ctx: TransitionContext
) -> ChannelResult:
    """Send the Unlock of our lock `secrethash` (caller checked it is pending and the channel open)."""
    our = channel.our
    slot = our.slot_of[secrethash]
    lock = our.locks[slot]
    tree = our.tree.remove(slot)
    previous = our.balance_proof
    proof = _new_proof(
        our, previous.transferred + lock.amount, previous.locked - lock.amount, tree.root
    )
    locks, slot_of = _without_lock(our, slot, secrethash)
    history = _log(our).unlocked(proof.nonce, slot, secret)
    new_our = replace(
        our, balance_proof=proof, locks=locks, slot_of=slot_of, tree=tree, history=history
    )
    new_channel = replace(channel, our=new_our, **_forget_secret(channel, secrethash))
    partner = channel.partner.address
    return TransitionResult(
        new_channel,
        [
            ev.SendUnlock(partner, proof, proof.digest(ctx.domain), secret, slot),
            ev.EventUnlockSent(channel.channel_id, partner, secrethash, lock.amount),
        ],
    )


def _action_unlock(
    channel: ChannelState, action: sc.ActionUnlock, ctx: TransitionContext
) -> ChannelResult:
    if len(action.secret) != 32:
        return _fail_action(channel, action, "a secret is 32 bytes")
    if not channel.is_open:
        return _fail_action(channel, action, f"channel is {channel.status.value}, not open")
    secrethash = SecretHash(secrethash_of(action.secret))
    slot = channel.our.slot_of.get(secrethash)
    if slot is None:
        return _fail_action(channel, action, "no lock of ours is pending with this secret")
    if channel.our.locks[slot].expiration < ctx.block_number:
        return _fail_action(channel, action, "the lock has expired")
    return _unlock_ours(channel, action.secret, secrethash, ctx)


def _receive_secret_reveal(
    channel: ChannelState, message: sc.ReceiveSecretReveal, ctx: TransitionContext
) -> ChannelResult:
    def invalid(reason: str) -> ChannelResult:
        return TransitionResult(
            channel,
            [ev.EventInvalidReceivedSecretReveal(channel.channel_id, message.sender, reason)],
        )

    if message.sender != channel.partner.address:
        return invalid(f"sender 0x{message.sender.hex()} is not the channel partner")
    if message.channel_id != channel.channel_id:
        return invalid(f"message is for channel {message.channel_id}, not {channel.channel_id}")
    if len(message.secret) != 32:
        return invalid("a secret is 32 bytes")
    secrethash = SecretHash(secrethash_of(message.secret))
    slot = channel.our.slot_of.get(secrethash)
    if slot is None:
        return invalid("no lock of ours is pending with this secret")
    learned = ev.EventSecretLearned(channel.channel_id, secrethash, message.secret)
    if channel.is_open and channel.our.locks[slot].expiration >= ctx.block_number:
        result = _unlock_ours(channel, message.secret, secrethash, ctx)
        return TransitionResult(result.new_state, [learned, *result.events])
    # closed or expired: keep the secret (it may still matter on chain) but send nothing
    secrets = dict(channel.secrets)
    secrets[secrethash] = message.secret
    return TransitionResult(replace(channel, secrets=secrets), [learned])


def _action_reveal_secret(
    channel: ChannelState, action: sc.ActionRevealSecret, ctx: TransitionContext
) -> ChannelResult:
    if len(action.secret) != 32:
        return _fail_action(channel, action, "a secret is 32 bytes")
    secrethash = SecretHash(secrethash_of(action.secret))
    if secrethash not in channel.partner.slot_of:
        return _fail_action(channel, action, "the partner has no lock pending with this secret")
    if secrethash in channel.refused_locks:
        # revealing would let the partner unlock: a refused lock is never claimed
        return _fail_action(channel, action, "we refused this lock; it is never claimed")
    lock = channel.partner.locks[channel.partner.slot_of[secrethash]]
    if not action.paid_downstream and lock.expiration <= ctx.block_number + ctx.reveal_margin:
        # judged against the block the node knows now (a restarted node learns the head before
        # any peer message): a lock at or near its expiry can no longer pay us
        return _fail_action(
            channel,
            action,
            f"the lock expires at block {lock.expiration}: too late to reveal its secret at "
            f"block {ctx.block_number}",
        )
    secrets = dict(channel.secrets)
    secrets[secrethash] = action.secret
    return TransitionResult(
        replace(channel, secrets=secrets),
        [ev.SendSecretReveal(channel.partner.address, channel.channel_id, action.secret)],
    )


def _action_request_secret(
    channel: ChannelState, action: sc.ActionRequestSecret, ctx: TransitionContext
) -> ChannelResult:
    return TransitionResult(
        channel,
        [
            ev.SendSecretRequest(
                channel.partner.address,
                channel.channel_id,
                action.payment_id,
                action.secrethash,
                action.amount,
            )
        ],
    )


def _receive_secret_request(
    channel: ChannelState, message: sc.ReceiveSecretRequest, ctx: TransitionContext
) -> ChannelResult:
    reason = None
    if message.sender != channel.partner.address:
        reason = f"sender 0x{message.sender.hex()} is not the channel partner"
    elif message.channel_id != channel.channel_id:
        reason = f"message is for channel {message.channel_id}, not {channel.channel_id}"
    elif len(message.secrethash) != 32:
        reason = "secrethash must be 32 bytes"
    if reason is not None:
        return TransitionResult(
            channel,
            [ev.EventInvalidReceivedSecretRequest(channel.channel_id, message.sender, reason)],
        )
    return TransitionResult(
        channel,
        [
            ev.EventSecretRequested(
                channel.channel_id,
                message.sender,
                message.payment_id,
                message.secrethash,
                message.amount,
            )
        ],
    )


def _receive_unlock(
    channel: ChannelState, message: sc.ReceiveUnlock, ctx: TransitionContext
) -> ChannelResult:
    proof = message.balance_proof
    partner = channel.partner
    previous = partner.balance_proof
    reason = _check_proof_envelope(channel, message.sender, proof)
    lock = partner.locks.get(message.slot)
    tree = partner.tree
    secrethash = SecretHash(b"")
    if reason is None:
        if lock is None:
            reason = f"no lock is pending in slot {message.slot}"
        elif (
            len(message.secret) != 32
            or (secrethash := SecretHash(secrethash_of(message.secret))) != lock.secrethash
        ):
            reason = f"the secret does not open the lock in slot {message.slot}"
        elif proof.transferred != previous.transferred + lock.amount:
            reason = "transferred amount must grow by exactly the lock amount"
        elif proof.locked != previous.locked - lock.amount:
            reason = "lockedAmount must shrink by exactly the lock amount"
        else:
            tree = tree.remove(message.slot)
            if tree.root != proof.locks_root:
                reason = "locksRoot does not match the pending locks without the unlocked one"
            else:
                reason = _recovers_to(proof.digest(ctx.domain), proof.signature, partner.address)
    if reason is not None or lock is None:
        return TransitionResult(
            channel,
            [
                ev.EventInvalidReceivedUnlock(
                    channel.channel_id, message.sender, reason or "no lock"
                )
            ],
        )
    # a lock we refused may still be unlocked: the partner chose to pay it (refusing the valid
    # proof would only split the two views of the channel); the refusal ends with the lock
    locks, slot_of = _without_lock(partner, message.slot, secrethash)
    history = _log(partner).unlocked(proof.nonce, message.slot, message.secret)
    new_partner = replace(
        partner, balance_proof=proof, locks=locks, slot_of=slot_of, tree=tree, history=history
    )
    new_channel = replace(
        channel, partner=new_partner, **_forget_secret(channel, secrethash, partner_lock=True)
    )
    return TransitionResult(
        new_channel,
        [ev.EventUnlockReceived(channel.channel_id, partner.address, secrethash, lock.amount)],
    )


def _receive_lock_expired(
    channel: ChannelState, message: sc.ReceiveLockExpired, ctx: TransitionContext
) -> ChannelResult:
    proof = message.balance_proof
    partner = channel.partner
    previous = partner.balance_proof
    reason = _check_proof_envelope(channel, message.sender, proof)
    lock = partner.locks.get(message.slot)
    tree = partner.tree
    if reason is None:
        registered = channel.registered_secrets.get(message.secrethash)
        # a lock we refused may leave early, and we gave up our claim even if its secret is known
        refused = message.secrethash in channel.refused_locks
        if lock is None or lock.secrethash != message.secrethash:
            reason = f"no lock with this secrethash is pending in slot {message.slot}"
        elif ctx.block_number <= lock.expiration and not refused:
            reason = f"lock has not expired yet (expiration {lock.expiration})"
        elif registered is not None and registered <= lock.expiration and not refused:
            reason = "the secret was registered on chain before the lock expired"
        elif proof.transferred != previous.transferred:
            reason = "a lock expiry must not change the transferred amount"
        elif proof.locked != previous.locked - lock.amount:
            reason = "lockedAmount must shrink by exactly the lock amount"
        else:
            tree = tree.remove(message.slot)
            if tree.root != proof.locks_root:
                reason = "locksRoot does not match the pending locks without the expired one"
            else:
                reason = _recovers_to(proof.digest(ctx.domain), proof.signature, partner.address)
    if reason is not None or lock is None:
        return TransitionResult(
            channel,
            [
                ev.EventInvalidReceivedLockExpired(
                    channel.channel_id, message.sender, reason or "no lock"
                )
            ],
        )
    locks, slot_of = _without_lock(partner, message.slot, lock.secrethash)
    history = _log(partner).expired(proof.nonce, message.slot, lock.secrethash)
    new_partner = replace(
        partner, balance_proof=proof, locks=locks, slot_of=slot_of, tree=tree, history=history
    )
    new_channel = replace(
        channel, partner=new_partner, **_forget_secret(channel, lock.secrethash, partner_lock=True)
    )
    return TransitionResult(
        new_channel,
        [ev.EventLockExpired(channel.channel_id, partner.address, lock.secrethash, lock.amount)],
    )


def _remove_our_lock(
    channel: ChannelState, slot: int, ctx: TransitionContext
) -> tuple[ChannelState, ev.SendLockExpired]:
    """Take our lock in `slot` out of our tree unpaid: the new state and the LockExpired to send.

    The one place that builds a lock-removal proof (expiry, or the partner's refusal). The caller
    checked that the lock is pending and the channel open; this decides nothing.
    """
    our = channel.our
    lock = our.locks[slot]
    tree = our.tree.remove(slot)
    previous = our.balance_proof
    proof = _new_proof(our, previous.transferred, previous.locked - lock.amount, tree.root)
    locks, slot_of = _without_lock(our, slot, lock.secrethash)
    history = _log(our).expired(proof.nonce, slot, lock.secrethash)
    new_our = replace(
        our, balance_proof=proof, locks=locks, slot_of=slot_of, tree=tree, history=history
    )
    new_channel = replace(channel, our=new_our, **_forget_secret(channel, lock.secrethash))
    send = ev.SendLockExpired(
        channel.partner.address, proof, proof.digest(ctx.domain), lock.secrethash, slot
    )
    return new_channel, send


def _expire_our_lock(channel: ChannelState, slot: int, ctx: TransitionContext) -> ChannelResult:
    lock = channel.our.locks[slot]
    new_channel, send = _remove_our_lock(channel, slot, ctx)
    return TransitionResult(
        new_channel,
        [
            send,
            ev.EventLockExpired(
                channel.channel_id, channel.our.address, lock.secrethash, lock.amount
            ),
        ],
    )


# --------------------------------------------------------------------------- lock refusal


def _action_refuse_lock(
    channel: ChannelState, action: sc.ActionRefuseLock, ctx: TransitionContext
) -> ChannelResult:
    """Refuse the partner's lock before expiry; from now on we never claim it.

    Only a lock whose secret we do not know: once we know it the payment has reached its payee
    (or we are the payee and revealed it), and a refund would race the unlock.
    """
    if not channel.is_open:
        return _fail_action(channel, action, f"channel is {channel.status.value}, not open")
    secrethash = action.secrethash
    if secrethash not in channel.partner.slot_of:
        return _fail_action(channel, action, "the partner has no lock pending with this secrethash")
    if secrethash in channel.secrets or secrethash in channel.registered_secrets:
        return _fail_action(channel, action, "we know the secret of this lock; it is not refused")
    if secrethash in channel.refused_locks:
        return _fail_action(channel, action, "this lock is already refused")
    return TransitionResult(
        replace(channel, refused_locks=channel.refused_locks | {secrethash}),
        [
            ev.SendLockRefused(
                channel.partner.address, channel.channel_id, secrethash, action.reason
            )
        ],
    )


def _receive_lock_refused(
    channel: ChannelState, message: sc.ReceiveLockRefused, ctx: TransitionContext
) -> ChannelResult:
    """The partner gives up our lock: remove it now, as if it expired (LockExpired, new proof)."""
    slot = channel.our.slot_of.get(message.secrethash)
    reason: str | None = None
    if message.sender != channel.partner.address:
        reason = f"sender 0x{message.sender.hex()} is not the channel partner"
    elif message.channel_id != channel.channel_id:
        reason = f"message is for channel {message.channel_id}, not {channel.channel_id}"
    elif not channel.is_open:
        reason = f"channel is {channel.status.value}, not open"
    elif slot is None:
        reason = "no lock of ours is pending with this secrethash"
    if reason is not None or slot is None:
        return TransitionResult(
            channel,
            [
                ev.EventInvalidReceivedLockRefused(
                    channel.channel_id, message.sender, reason or "no lock"
                )
            ],
        )
    lock = channel.our.locks[slot]
    new_channel, send = _remove_our_lock(channel, slot, ctx)
    return TransitionResult(
        new_channel,
        [
            send,
            ev.EventLockRefused(channel.channel_id, lock.secrethash, lock.amount, message.reason),
        ],
    )


# --------------------------------------------------------------------------- withdraw


def _withdraw_pending(end: EndState, block_number: int) -> bool:
    pending = end.pending_withdraw
    return pending is not None and pending.expiry >= block_number


def _action_withdraw(
    channel: ChannelState, action: sc.ActionWithdraw, ctx: TransitionContext
) -> ChannelResult:
    our = channel.our
    if not channel.is_open:
        return _fail_action(channel, action, f"channel is {channel.status.value}, not open")
    if action.expiry < ctx.block_number:
        return _fail_action(channel, action, "withdraw expiry is in the past")
    if _withdraw_pending(our, ctx.block_number):
        return _fail_action(channel, action, "a withdraw of ours is already pending")
    increase = action.total_withdraw - our.withdrawn
    if increase <= 0:
        return _fail_action(channel, action, "total withdraw must exceed what is withdrawn")
    if action.total_withdraw > UINT96_MAX:
        return _fail_action(channel, action, "total withdraw exceeds uint96")
    if increase > get_capacity(replace(our, pending_withdraw=None), channel.partner):
        return _fail_action(channel, action, "withdraw exceeds our balance")
    digest = withdraw_digest(
        ctx.domain, channel.channel_id, our.address, action.total_withdraw, action.expiry
    )
    pending = PendingWithdraw(action.total_withdraw, action.expiry, batched_by=action.batched_by)
    return TransitionResult(
        replace(channel, our=replace(our, pending_withdraw=pending)),
        [
            ev.SendWithdrawRequest(
                channel.partner.address,
                channel.channel_id,
                our.address,
                action.total_withdraw,
                action.expiry,
                digest,
                batch=action.batched_by is BatchedBy.PARTNER,
            )
        ],
    )


def _receive_withdraw_request(
    channel: ChannelState, message: sc.ReceiveWithdrawRequest, ctx: TransitionContext
) -> ChannelResult:
    partner = channel.partner
    reason: str | None = None
    digest = b""
    if message.sender != partner.address:
        reason = f"sender 0x{message.sender.hex()} is not the channel partner"
    elif message.channel_id != channel.channel_id:
        reason = f"withdraw is for channel {message.channel_id}, not {channel.channel_id}"
    elif not channel.is_open:
        reason = f"channel is {channel.status.value}, not open"
    elif message.participant != partner.address:
        reason = "a withdraw request must be for the sender's own funds"
    elif message.expiry < ctx.block_number:
        reason = f"withdraw expired at block {message.expiry}"
    elif _withdraw_pending(partner, ctx.block_number):
        reason = "a withdraw of the sender is already pending"
    elif message.total_withdraw > UINT96_MAX:
        reason = "total withdraw exceeds uint96"
    elif message.total_withdraw <= partner.withdrawn:
        reason = "total withdraw does not exceed what is withdrawn"
    elif message.total_withdraw - partner.withdrawn > get_capacity(
        replace(partner, pending_withdraw=None), channel.our
    ):
        reason = "withdraw exceeds the sender's balance"
    else:
        digest = withdraw_digest(
            ctx.domain,
            channel.channel_id,
            partner.address,
            message.total_withdraw,
            message.expiry,
        )
        reason = _recovers_to(digest, message.signature, partner.address)
    if reason is not None:
        return TransitionResult(
            channel,
            [ev.EventInvalidReceivedWithdrawRequest(channel.channel_id, message.sender, reason)],
        )
    if message.batch:  # for our settlement batch: keep the signature, confirm nothing
        pending = PendingWithdraw(
            message.total_withdraw, message.expiry, confirmed=True, batched_by=BatchedBy.US
        )
        return TransitionResult(
            replace(channel, partner=replace(partner, pending_withdraw=pending)),
            [
                ev.EventBatchWithdrawSigned(
                    channel.channel_id,
                    partner.address,
                    channel.our.address,
                    message.total_withdraw,
                    message.expiry,
                    message.signature,
                )
            ],
        )
    pending = PendingWithdraw(message.total_withdraw, message.expiry, confirmed=True)
    return TransitionResult(
        replace(channel, partner=replace(partner, pending_withdraw=pending)),
        [
            ev.SendWithdrawConfirmation(
                partner.address,
                channel.channel_id,
                partner.address,
                message.total_withdraw,
                message.expiry,
                digest,
            )
        ],
    )


def _receive_withdraw_confirmation(
    channel: ChannelState, message: sc.ReceiveWithdrawConfirmation, ctx: TransitionContext
) -> ChannelResult:
    our = channel.our
    pending = our.pending_withdraw
    reason: str | None = None
    digest = b""
    if message.sender != channel.partner.address:
        reason = f"sender 0x{message.sender.hex()} is not the channel partner"
    elif message.channel_id != channel.channel_id:
        reason = f"withdraw is for channel {message.channel_id}, not {channel.channel_id}"
    elif not channel.is_open:
        reason = f"channel is {channel.status.value}, not open"
    elif message.participant != our.address:
        reason = "the confirmation is not for our withdraw"
    elif pending is None or pending.confirmed or pending.batched_by is BatchedBy.PARTNER:
        reason = "no withdraw request of ours awaits confirmation"
    elif (message.total_withdraw, message.expiry) != (pending.total_withdraw, pending.expiry):
        reason = "confirmation does not match our withdraw request"
    elif message.expiry < ctx.block_number:
        reason = f"withdraw expired at block {message.expiry}"
    else:
        digest = withdraw_digest(
            ctx.domain, channel.channel_id, our.address, message.total_withdraw, message.expiry
        )
        reason = _recovers_to(digest, message.signature, channel.partner.address)
    if reason is not None or pending is None:
        return TransitionResult(
            channel,
            [
                ev.EventInvalidReceivedWithdrawConfirmation(
                    channel.channel_id, message.sender, reason or "no request"
                )
            ],
        )
    confirmed = replace(pending, confirmed=True)
    fields = (
        channel.channel_id,
        our.address,
        channel.partner.address,
        message.total_withdraw,
        message.expiry,
        message.signature,
    )
    execute: ev.Event = (
        ev.EventBatchWithdrawSigned(
            *fields
        )  # our settlement batch sends it, not a lone transaction
        if pending.batched_by is BatchedBy.US
        else ev.ContractSendChannelWithdraw(*fields, digest)
    )
    return TransitionResult(
        replace(channel, our=replace(our, pending_withdraw=confirmed)),
        [execute, ev.EventWithdrawConfirmed(channel.channel_id, message.total_withdraw)],
    )


# --------------------------------------------------------------------------- cooperative close


def _cooperative_close_blocker(channel: ChannelState, block_number: int) -> str | None:
    if channel.our.locks or channel.partner.locks:
        return "locks are pending; they must be unlocked or expire first"
    if _withdraw_pending(channel.our, block_number) or _withdraw_pending(
        channel.partner, block_number
    ):
        return "a withdraw is pending"
    return None


def _action_cooperative_close(
    channel: ChannelState, action: sc.ActionCooperativeClose, ctx: TransitionContext
) -> ChannelResult:
    if not channel.is_open:
        return _fail_action(channel, action, f"channel is {channel.status.value}, not open")
    blocker = _cooperative_close_blocker(channel, ctx.block_number)
    if blocker is not None:
        return _fail_action(channel, action, blocker)
    balance1, balance2 = cooperative_close_balances(channel)
    digest = cooperative_close_digest(ctx.domain, channel.channel_id, balance1, balance2)
    proposal = CooperativeCloseProposal(TokenAmount(balance1), TokenAmount(balance2))
    return TransitionResult(
        replace(channel, cooperative_close=proposal),
        [
            ev.SendCooperativeCloseRequest(
                channel.partner.address,
                channel.channel_id,
                proposal.balance1,
                proposal.balance2,
                digest,
            )
        ],
    )


def _check_cooperative_close_message(
    channel: ChannelState,
    message: sc.ReceiveCooperativeCloseRequest | sc.ReceiveCooperativeCloseConfirmation,
    ctx: TransitionContext,
) -> tuple[str | None, bytes]:
    if message.sender != channel.partner.address:
        return f"sender 0x{message.sender.hex()} is not the channel partner", b""
    if message.channel_id != channel.channel_id:
        return (
            f"cooperative close is for channel {message.channel_id}, not {channel.channel_id}",
            b"",
        )
    if channel.status is not ChannelStatus.OPENED:
        return f"channel is {channel.status.value}, not open", b""
    blocker = _cooperative_close_blocker(channel, ctx.block_number)
    if blocker is not None:
        return blocker, b""
    if (message.balance1, message.balance2) != cooperative_close_balances(channel):
        return "balances do not match ours", b""
    digest = cooperative_close_digest(
        ctx.domain, channel.channel_id, message.balance1, message.balance2
    )
    return _recovers_to(digest, message.signature, channel.partner.address), digest


def _contract_send_cooperative_close(
    channel: ChannelState, proposal: CooperativeCloseProposal, digest: bytes
) -> ev.ContractSendChannelCooperativeClose:
    return ev.ContractSendChannelCooperativeClose(
        channel.channel_id,
        channel.participant1,
        channel.participant2,
        proposal.balance1,
        proposal.balance2,
        proposal.partner_signature,
        channel.we_are_participant1,
        digest,
    )


def _receive_cooperative_close_request(
    channel: ChannelState, message: sc.ReceiveCooperativeCloseRequest, ctx: TransitionContext
) -> ChannelResult:
    reason, digest = _check_cooperative_close_message(channel, message, ctx)
    if (
        reason is None
        and channel.cooperative_close is not None
        and channel.cooperative_close.partner_signature
    ):
        reason = "a cooperative close is already co-signed"
    if reason is not None:
        return TransitionResult(
            channel,
            [ev.EventInvalidReceivedCooperativeClose(channel.channel_id, message.sender, reason)],
        )
    proposal = CooperativeCloseProposal(message.balance1, message.balance2, message.signature)
    new_channel = replace(channel, cooperative_close=proposal)
    events: list[ev.Event] = [
        ev.SendCooperativeCloseConfirmation(
            channel.partner.address, channel.channel_id, message.balance1, message.balance2, digest
        )
    ]
    if channel.cooperative_close is not None:
        # both proposed at once with equal balances: we hold both signatures, so submit too
        events.append(_contract_send_cooperative_close(new_channel, proposal, digest))
    return TransitionResult(new_channel, events)


def _receive_cooperative_close_confirmation(
    channel: ChannelState, message: sc.ReceiveCooperativeCloseConfirmation, ctx: TransitionContext
) -> ChannelResult:
    ours = channel.cooperative_close
    reason, digest = _check_cooperative_close_message(channel, message, ctx)
    if reason is None and (ours is None or ours.partner_signature):
        reason = "no cooperative close request of ours awaits confirmation"
    if reason is not None or ours is None:
        return TransitionResult(
            channel,
            [
                ev.EventInvalidReceivedCooperativeClose(
                    channel.channel_id, message.sender, reason or "no request"
                )
            ],
        )
    proposal = replace(ours, partner_signature=message.signature)
    new_channel = replace(channel, cooperative_close=proposal)
    return TransitionResult(
        new_channel, [_contract_send_cooperative_close(new_channel, proposal, digest)]
    )


# --------------------------------------------------------------------------- on-chain actions


def _action_deposit(
    channel: ChannelState, action: sc.ActionDeposit, ctx: TransitionContext
) -> ChannelResult:
    if channel.status is not ChannelStatus.OPENED:
        return _fail_action(channel, action, f"channel is {channel.status.value}, not open")
    if action.total_deposit <= channel.our.deposit:
        return _fail_action(channel, action, "total deposit must exceed the current deposit")
    if action.total_deposit > UINT96_MAX:
        return _fail_action(channel, action, "total deposit exceeds uint96")
    return TransitionResult(
        channel,
        [
            ev.ContractSendChannelDeposit(
                channel.channel_id,
                channel.partner.address,
                action.total_deposit,
                action.from_balance,
            )
        ],
    )


def _action_close(
    channel: ChannelState, action: sc.ActionClose, ctx: TransitionContext
) -> ChannelResult:
    if channel.status is not ChannelStatus.OPENED:
        return _fail_action(channel, action, f"channel is {channel.status.value}, not open")
    return _close(channel)


def _close(channel: ChannelState) -> ChannelResult:
    """Close unilaterally with the partner's latest proof (the caller checked: OPENED)."""
    new_channel = replace(channel, status=ChannelStatus.CLOSING)
    return TransitionResult(
        new_channel,
        [
            ev.ContractSendChannelClose(
                channel.channel_id, channel.partner.address, channel.partner.balance_proof
            ),
            ev.EventChannelStatusChanged(channel.channel_id, ChannelStatus.CLOSING.value),
        ],
    )


# --------------------------------------------------------------------------- chain events


def _end_of(channel: ChannelState, participant: Address) -> str | None:
    if participant == channel.our.address:
        return "our"
    if participant == channel.partner.address:
        return "partner"
    return None


def _with_end(channel: ChannelState, side: str, end: EndState) -> ChannelState:
    if side == "our":
        return replace(channel, our=end)
    return replace(channel, partner=end)


def _not_a_participant(channel: ChannelState, participant: Address) -> ChannelResult:
    return TransitionResult(
        channel,
        [
            ev.EventInvalidContractEvent(
                channel.channel_id, f"0x{participant.hex()} is not a participant"
            )
        ],
    )


def _contract_deposited(
    channel: ChannelState, event: sc.ContractReceiveChannelDeposited, ctx: TransitionContext
) -> ChannelResult:
    side = _end_of(channel, event.participant)
    if side is None:
        return _not_a_participant(channel, event.participant)
    end: EndState = getattr(channel, side)
    if event.total_deposit <= end.deposit:
        return _unchanged(channel)
    return TransitionResult(_with_end(channel, side, replace(end, deposit=event.total_deposit)), [])


def _contract_withdrawn(
    channel: ChannelState, event: sc.ContractReceiveChannelWithdrawn, ctx: TransitionContext
) -> ChannelResult:
    side = _end_of(channel, event.participant)
    if side is None:
        return _not_a_participant(channel, event.participant)
    end: EndState = getattr(channel, side)
    if event.total_withdraw <= end.withdrawn:
        return _unchanged(channel)
    pending = end.pending_withdraw
    if pending is not None and pending.total_withdraw <= event.total_withdraw:
        pending = None
    new_end = replace(end, withdrawn=event.total_withdraw, pending_withdraw=pending)
    return TransitionResult(_with_end(channel, side, new_end), [])


def _contract_closed(
    channel: ChannelState, event: sc.ContractReceiveChannelClosed, ctx: TransitionContext
) -> ChannelResult:
    if _end_of(channel, event.closing_participant) is None:
        return _not_a_participant(channel, event.closing_participant)
    if channel.status not in (ChannelStatus.OPENED, ChannelStatus.CLOSING):
        return _unchanged(channel)
    # the closer submitted its partner's proof of `event.nonce` (any it ever received); its own
    # direction has none on chain until the non-closer updates it
    we_closed = event.closing_participant == channel.our.address
    our_nonce = Nonce(0) if we_closed else event.nonce
    partner_nonce = event.nonce if we_closed else Nonce(0)
    new_channel = replace(
        channel,
        status=ChannelStatus.CLOSED,
        closer=event.closing_participant,
        closed_block=event.block_number,
        settle_block=event.settle_block,
        cooperative_close=None,
        our=replace(channel.our, pending_withdraw=None, onchain_nonce=our_nonce),
        partner=replace(channel.partner, pending_withdraw=None, onchain_nonce=partner_nonce),
    )
    events: list[ev.Event] = [
        ev.EventChannelStatusChanged(channel.channel_id, ChannelStatus.CLOSED.value)
    ]
    partner_proof = channel.partner.balance_proof
    if event.closing_participant == channel.partner.address and partner_proof.nonce > 0:
        # the partner closed with OUR proof; we submit ITS latest proof, which only we hold
        events.append(
            ev.ContractSendUpdateBalanceProof(
                channel.channel_id, channel.partner.address, partner_proof
            )
        )
    new_channel, registers = onchain.register_stale_partner_secrets(new_channel, ctx.block_number)
    return TransitionResult(new_channel, events + registers)


def _contract_balance_proof_updated(
    channel: ChannelState,
    event: sc.ContractReceiveChannelBalanceProofUpdated,
    ctx: TransitionContext,
) -> ChannelResult:
    """The closer's direction on chain now holds its proof of `event.nonce` (only ever higher)."""
    side = _end_of(channel, event.closing_participant)
    if side is None:
        return _not_a_participant(channel, event.closing_participant)
    end: EndState = getattr(channel, side)
    if end.onchain_nonce is not None and event.nonce <= end.onchain_nonce:
        return _unchanged(channel)
    new_channel = _with_end(channel, side, replace(end, onchain_nonce=event.nonce))
    if side == "our":
        return TransitionResult(new_channel, [])
    new_channel, registers = onchain.register_stale_partner_secrets(new_channel, ctx.block_number)
    return TransitionResult(new_channel, registers)


def _emit_unlocks(
    channel: ChannelState, ctx: TransitionContext, block_number: int
) -> ChannelResult:
    """After settle: send the unlocks that pay us now and are due; all stay pending until seen."""
    new_channel, events = onchain.emit_unlocks(
        channel, block_number, ctx.unlock_retry_blocks, ctx.unlock_max_attempts
    )
    return TransitionResult(new_channel, events)


def _contract_settled(
    channel: ChannelState, event: sc.ContractReceiveChannelSettled, ctx: TransitionContext
) -> ChannelResult:
    if channel.status is ChannelStatus.SETTLED:
        return _unchanged(channel)
    if event.locked1 is None or event.locked2 is None:
        our_pool = partner_pool = None
    elif channel.we_are_participant1:
        our_pool, partner_pool = event.locked1, event.locked2
    else:
        our_pool, partner_pool = event.locked2, event.locked1
    settled, problems = onchain.settle(channel, our_pool, partner_pool)
    result = _emit_unlocks(settled, ctx, ctx.block_number)
    return TransitionResult(
        result.new_state,
        [
            ev.EventChannelStatusChanged(channel.channel_id, ChannelStatus.SETTLED.value),
            *problems,
            *result.events,
        ],
    )


def _contract_cooperatively_closed(
    channel: ChannelState,
    event: sc.ContractReceiveChannelCooperativelyClosed,
    ctx: TransitionContext,
) -> ChannelResult:
    if channel.status is ChannelStatus.SETTLED:
        return _unchanged(channel)
    return TransitionResult(
        replace(
            channel,
            status=ChannelStatus.SETTLED,
            cooperative_close=None,
            refused_locks=frozenset(),
        ),
        [ev.EventChannelStatusChanged(channel.channel_id, ChannelStatus.SETTLED.value)],
    )


def _contract_secret_registered(
    channel: ChannelState, event: sc.ContractReceiveSecretRegistered, ctx: TransitionContext
) -> ChannelResult:
    secrethash = event.secrethash
    in_ours = secrethash in channel.our.slot_of
    if (
        not in_ours
        and secrethash not in channel.partner.slot_of
        and not onchain.mentions_after_close(channel, secrethash)
    ):
        return _unchanged(channel)
    if secrethash in channel.registered_secrets:
        return _unchanged(channel)
    registered = dict(channel.registered_secrets)
    registered[secrethash] = event.block_number
    secrets = dict(channel.secrets)
    secrets[secrethash] = event.secret
    new_channel = replace(channel, registered_secrets=registered, secrets=secrets)
    events: list[ev.Event] = [ev.EventSecretLearned(channel.channel_id, secrethash, event.secret)]
    if in_ours and new_channel.is_open:
        lock = channel.our.locks[channel.our.slot_of[secrethash]]
        if event.block_number <= lock.expiration:
            # the partner proved it can claim on chain: settle it off chain instead
            result = _unlock_ours(new_channel, event.secret, secrethash, ctx)
            return TransitionResult(result.new_state, events + result.events)
    if new_channel.status is ChannelStatus.SETTLED:
        result = _emit_unlocks(new_channel, ctx, ctx.block_number)
        return TransitionResult(result.new_state, events + result.events)
    return TransitionResult(new_channel, events)


def _contract_lock_unlocked(
    channel: ChannelState, event: sc.ContractReceiveLockUnlocked, ctx: TransitionContext
) -> ChannelResult:
    return TransitionResult(onchain.unlock_seen(channel, event.sender, event.slot), [])


def _contract_unlock_failed(
    channel: ChannelState, event: sc.ContractReceiveUnlockFailed, ctx: TransitionContext
) -> ChannelResult:
    new_channel, events = onchain.unlock_failed(channel, event.sender, event.slot, event.reason)
    return TransitionResult(new_channel, events)


def _contract_opened(
    channel: ChannelState, event: sc.ContractReceiveChannelOpened, ctx: TransitionContext
) -> ChannelResult:
    return _unchanged(channel)  # the node creates channels; a repeated event changes nothing


# --------------------------------------------------------------------------- blocks


def _owed_lock_unpaid(channel: ChannelState, number: int, ctx: TransitionContext) -> bool:
    """Whether a partner lock registered in time is still pending past expiry, margin and reveal.

    By then an honest partner has unlocked it off chain (it does at expiry + margin); only the
    chain can pay it now. A lock we refused is never claimed.
    """
    for lock in channel.partner.locks.values():
        registered = channel.registered_secrets.get(lock.secrethash)
        if (
            registered is not None
            and registered <= lock.expiration
            and number > lock.expiration + ctx.lock_expiry_margin + ctx.reveal_timeout
            and lock.secrethash not in channel.refused_locks
        ):
            return True
    return False


def _block(channel: ChannelState, block: sc.Block, ctx: TransitionContext) -> ChannelResult:
    number = block.block_number
    events: list[ev.Event] = []
    changes: dict[str, Any] = {}
    status = channel.status
    # withdraws that expired unexecuted no longer hold funds
    for side in ("our", "partner"):
        end: EndState = getattr(channel, side)
        if end.pending_withdraw is not None and end.pending_withdraw.expiry < number:
            changes[side] = replace(end, pending_withdraw=None)
    if changes:
        channel = replace(channel, **changes)
    # our expired locks: off chain while open (LockExpired, or Unlock if registered in time)
    if channel.is_open and channel.our.locks:
        for slot, lock in sorted(channel.our.locks.items()):
            if number <= lock.expiration + ctx.lock_expiry_margin:
                continue
            registered = channel.registered_secrets.get(lock.secrethash)
            if registered is not None and registered <= lock.expiration:
                result = _unlock_ours(
                    channel, channel.secrets[lock.secrethash], lock.secrethash, ctx
                )
            else:
                result = _expire_our_lock(channel, slot, ctx)
            channel = result.new_state
            events.extend(result.events)
    # locks we are owed, secret known, partner silent: register the secret before it is too late
    # (never for a lock we refused; after settle, only for a lock still to unlock on chain)
    if channel.partner.locks and channel.secrets:
        requested = set(channel.register_requested)
        partner_address = channel.partner.address
        for slot, lock in channel.partner.locks.items():
            secret = channel.secrets.get(lock.secrethash)
            if (
                secret is not None
                and lock.secrethash not in requested
                and lock.secrethash not in channel.registered_secrets
                and lock.secrethash not in channel.refused_locks
                and (
                    status is not ChannelStatus.SETTLED
                    or (partner_address, slot) in channel.unlocks_pending
                )
                and lock.expiration - ctx.reveal_timeout <= number <= lock.expiration
            ):
                requested.add(lock.secrethash)
                events.append(ev.ContractSendSecretRegister(secret))
        if len(requested) != len(channel.register_requested):
            channel = replace(channel, register_requested=frozenset(requested))
    # a lock we are owed, its secret registered in time, still not unlocked well after expiry:
    # the partner is silent, so close (once: the channel leaves OPENED) and claim after settle
    if (
        channel.status is ChannelStatus.OPENED
        and channel.registered_secrets
        and _owed_lock_unpaid(channel, number, ctx)
    ):
        result = _close(channel)
        channel = result.new_state
        events.extend(result.events)
    if status is ChannelStatus.CLOSED and channel.settle_block is not None:
        if number > channel.settle_block:
            channel = replace(channel, status=ChannelStatus.SETTLING)
            events.append(
                ev.ContractSendChannelSettle(
                    channel.channel_id, channel.participant1, channel.participant2
                )
            )
            events.append(
                ev.EventChannelStatusChanged(channel.channel_id, ChannelStatus.SETTLING.value)
            )
    elif status is ChannelStatus.SETTLED and channel.unlocks_pending:
        result = _emit_unlocks(channel, ctx, number)
        channel = result.new_state
        events.extend(result.events)
    return TransitionResult(channel, events)


# --------------------------------------------------------------------------- dispatch

_Handler = Callable[[ChannelState, Any, TransitionContext], ChannelResult]

_HANDLERS: dict[type, _Handler] = {
    sc.Block: _block,
    sc.ActionTransfer: _action_transfer,
    sc.ActionLockedTransfer: _action_locked_transfer,
    sc.ActionUnlock: _action_unlock,
    sc.ActionRevealSecret: _action_reveal_secret,
    sc.ActionRequestSecret: _action_request_secret,
    sc.ActionDeposit: _action_deposit,
    sc.ActionWithdraw: _action_withdraw,
    sc.ActionCooperativeClose: _action_cooperative_close,
    sc.ActionClose: _action_close,
    sc.ActionRefuseLock: _action_refuse_lock,
    sc.ReceiveBalanceProof: _receive_balance_proof,
    sc.ReceiveLockedTransfer: _receive_locked_transfer,
    sc.ReceiveUnlock: _receive_unlock,
    sc.ReceiveLockExpired: _receive_lock_expired,
    sc.ReceiveLockRefused: _receive_lock_refused,
    sc.ReceiveSecretRequest: _receive_secret_request,
    sc.ReceiveSecretReveal: _receive_secret_reveal,
    sc.ReceiveWithdrawRequest: _receive_withdraw_request,
    sc.ReceiveWithdrawConfirmation: _receive_withdraw_confirmation,
    sc.ReceiveCooperativeCloseRequest: _receive_cooperative_close_request,
    sc.ReceiveCooperativeCloseConfirmation: _receive_cooperative_close_confirmation,
    sc.ContractReceiveChannelOpened: _contract_opened,
    sc.ContractReceiveChannelDeposited: _contract_deposited,
    sc.ContractReceiveChannelWithdrawn: _contract_withdrawn,
    sc.ContractReceiveChannelClosed: _contract_closed,
    sc.ContractReceiveChannelBalanceProofUpdated: _contract_balance_proof_updated,
    sc.ContractReceiveChannelSettled: _contract_settled,
    sc.ContractReceiveChannelCooperativelyClosed: _contract_cooperatively_closed,
    sc.ContractReceiveSecretRegistered: _contract_secret_registered,
    sc.ContractReceiveLockUnlocked: _contract_lock_unlocked,
    sc.ContractReceiveUnlockFailed: _contract_unlock_failed,
}


def channel_transition(
    channel: ChannelState, state_change: sc.StateChange, ctx: TransitionContext
) -> ChannelResult:
    """Apply one state change to one channel. Never raises on peer input; never mutates."""
    handler = _HANDLERS[type(state_change)]
    return handler(channel, state_change, ctx)


__all__ = [
    "ChannelResult",
    "TransitionContext",
    "TransitionResult",
    "channel_transition",
    "cooperative_close_balances",
    "get_balance",
    "get_capacity",
    "get_earnings",
    "new_channel_state",
]

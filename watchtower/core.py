"""The watchtower's decisions, pure: which requests to hold, what chain events mean for the channels
it watches, and when to submit a held proof.

- `check_request`: a `MonitorRequest` is held only if it names this tower (or any tower), its two
  signatures recover to the two participants of the channel as the chain knows them (the partner
  signed the balance proof, the guarded party the request over it), the channel is not past its
  challenge period, and its nonce is above the one already held: one proof per (channel, guarded
  party), so the tower's storage is O(1) per channel.
- `channel_after`: the tower's record of a channel after a confirmed chain event (opened, closed,
  the closer's proof updated, gone at settle or cooperative close).
- `duty_of` / `next_step`: when the partner closed and the guarded party's latest proof (the one held)
  is not on chain, submit it from `response_block` on, within the challenge period. Several towers
  guarding one channel spread their response blocks by a slot derived from their address and the
  channel id (`response_block`), so the first one's update is on chain before the next one's turn
  and only one pays gas; the others stand down (`duty_of` returns None once the chain holds the nonce).

No I/O, clock, randomness or keys here: the chain head, the chain's channel records and the held
proofs come in as arguments (the shell, `watchtower.service`, reads and persists them). It must never
sign, send, or read anything itself, and never hold more than one proof per channel and party.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import msgspec

from channels.codec.ecdsa import InvalidSignature, recover_signer
from channels.codec.eip712 import (
    Domain,
    balance_proof_digest,
    balance_proof_struct_hash,
    monitor_request_digest,
)
from channels.codec.keccak import keccak
from channels.core import state_changes as sc
from channels.core.types import (
    Address,
    BlockNumber,
    ChannelId,
    LocksRoot,
    Nonce,
    Signature,
    TokenAmount,
    to_checksum,
)
from watchtower.messages import MonitorRequest, amount_from_wire

ZERO_ADDRESS = Address(b"\x00" * 20)
RESPONSE_SPACING = 2  # blocks between two towers' response slots: one to mine, one to see it
RESEND_AFTER = 3  # blocks to wait for a sent update before sending it again


class WatchedChannel(msgspec.Struct, frozen=True):
    """A channel as the chain's confirmed events show it (participants in address order).

    `closer_nonce` is the nonce of the closer's proof stored on chain (0 until someone submits
    one: `closeChannel` stores only the partner's proof).
    """

    channel_id: ChannelId
    participant1: Address
    participant2: Address
    closer: Address | None = None
    closed_block: BlockNumber = BlockNumber(0)
    settle_block: BlockNumber = BlockNumber(0)
    closer_nonce: Nonce = Nonce(0)

    def has_participants(self, a: Address, b: Address) -> bool:
        """Whether {a, b} are this channel's two participants."""
        return (a, b) in (
            (self.participant1, self.participant2),
            (self.participant2, self.participant1),
        )


class GuardedProof(msgspec.Struct, frozen=True):
    """The request held for one (channel, guarded party): everything `updateBalanceProofFor` needs."""

    channel_id: ChannelId
    guarded: Address
    partner: Address
    nonce: Nonce
    transferred: TokenAmount
    locked: TokenAmount
    locks_root: LocksRoot
    partner_signature: Signature
    reward: TokenAmount
    watchtower: Address  # as the guarded party signed it: this tower or zero
    monitor_signature: Signature
    request_digest: bytes  # the MonitorRequest digest the guarded party signed

    @property
    def key(self) -> tuple[ChannelId, Address]:
        return self.channel_id, self.guarded


class Refusal(enum.Enum):
    """Why a request was not held; the value is the code on the wire."""

    MALFORMED = "malformed"
    WRONG_WATCHTOWER = "wrong-watchtower"
    REWARD_TOO_LOW = "reward-too-low"
    UNKNOWN_CHANNEL = "unknown-channel"
    NOT_PARTICIPANTS = "not-participants"
    GUARDED_CLOSED = "guarded-closed"
    CHALLENGE_OVER = "challenge-over"
    BAD_SIGNATURE = "bad-signature"
    WRONG_SIGNER = "wrong-signer"
    STALE_NONCE = "stale-nonce"


@dataclass(frozen=True, slots=True)
class TowerTerms:
    """Who this tower is, on which network, and the least reward it works for."""

    address: Address
    domain: Domain
    min_reward: int = 0


@dataclass(frozen=True, slots=True)
class RequestAccepted:
    """Hold `proof` (`duplicate`: the very request already held; answer it again, store nothing)."""

    proof: GuardedProof
    duplicate: bool = False


@dataclass(frozen=True, slots=True)
class RequestRefused:
    """Not held: `code`, a reason for people, and the nonce held for that channel and party."""

    code: Refusal
    reason: str
    held_nonce: int = 0


def _hex(address: bytes) -> str:
    return to_checksum(address)


def check_request(
    request: MonitorRequest,
    terms: TowerTerms,
    channel: WatchedChannel | None,
    held: GuardedProof | None,
    head: BlockNumber,
) -> RequestAccepted | RequestRefused:
    """Decide whether to hold `request` (see the module docstring); `channel` is the chain's record
    of its channel (None: unknown, not yet confirmed, or gone), `held` what is held for the same
    channel and guarded party, `head` the latest block."""
    held_nonce = held.nonce if held is not None else 0

    def refuse(code: Refusal, reason: str) -> RequestRefused:
        return RequestRefused(code, reason, held_nonce)

    channel_id = ChannelId(request.channel_id)
    guarded, partner = Address(request.guarded), Address(request.partner)
    watchtower = Address(request.watchtower)
    reward = amount_from_wire(request.reward)
    if watchtower not in (terms.address, ZERO_ADDRESS):
        return refuse(
            Refusal.WRONG_WATCHTOWER,
            f"the request names watchtower {_hex(watchtower)}; this one is "
            f"{_hex(terms.address)} (or name 0x0 for any tower)",
        )
    if guarded == partner:
        return refuse(Refusal.MALFORMED, "the guarded party and the partner are the same address")
    if request.nonce == 0:
        return refuse(Refusal.MALFORMED, "nonce 0 is no balance proof: nothing to guard")
    if reward < terms.min_reward:
        return refuse(
            Refusal.REWARD_TOO_LOW,
            f"reward {reward} is below this tower's minimum of {terms.min_reward} units",
        )
    if channel is None:
        return refuse(
            Refusal.UNKNOWN_CHANNEL,
            f"channel {channel_id} is not open on chain as far as this tower has confirmed "
            "(unknown, not yet confirmed: retry later, or already settled)",
        )
    if not channel.has_participants(guarded, partner):
        return refuse(
            Refusal.NOT_PARTICIPANTS,
            f"{_hex(guarded)} and {_hex(partner)} are not the participants of channel {channel_id}",
        )
    if channel.closer == guarded:
        return refuse(
            Refusal.GUARDED_CLOSED,
            f"{_hex(guarded)} closed channel {channel_id} itself: its partner's proof can no "
            "longer be submitted",
        )
    if channel.closer is not None and head > channel.settle_block:
        return refuse(
            Refusal.CHALLENGE_OVER,
            f"the challenge period of channel {channel_id} ended at block {channel.settle_block}",
        )
    locks_root = LocksRoot(request.locks_root)
    transferred = amount_from_wire(request.transferred)
    locked = amount_from_wire(request.locked)
    try:
        signer = recover_signer(
            balance_proof_digest(
                terms.domain, channel_id, request.nonce, transferred, locked, locks_root
            ),
            request.partner_signature,
        )
    except InvalidSignature as exc:
        return refuse(Refusal.BAD_SIGNATURE, f"the partner's balance-proof signature: {exc}")
    if signer != partner:
        return refuse(
            Refusal.WRONG_SIGNER,
            f"the balance proof is signed by {_hex(signer)}, not by the partner {_hex(partner)}",
        )
    proof_hash = balance_proof_struct_hash(
        channel_id, request.nonce, transferred, locked, locks_root
    )
    request_digest = monitor_request_digest(
        terms.domain, channel_id, proof_hash, reward, watchtower
    )
    try:
        signer = recover_signer(request_digest, request.monitor_signature)
    except InvalidSignature as exc:
        return refuse(Refusal.BAD_SIGNATURE, f"the guarded party's request signature: {exc}")
    if signer != guarded:
        return refuse(
            Refusal.WRONG_SIGNER,
            f"the monitor request is signed by {_hex(signer)}, not by the guarded party "
            f"{_hex(guarded)} (or it covers another proof, reward or watchtower)",
        )
    if held is not None and request.nonce <= held.nonce:
        if request.nonce == held.nonce and request_digest == held.request_digest:
            return RequestAccepted(held, duplicate=True)
        return refuse(
            Refusal.STALE_NONCE,
            f"nonce {request.nonce} is not above the nonce {held.nonce} already held for "
            f"{_hex(guarded)} in channel {channel_id}",
        )
    proof = GuardedProof(
        channel_id,
        guarded,
        partner,
        Nonce(request.nonce),
        transferred,
        locked,
        locks_root,
        Signature(request.partner_signature),
        reward,
        watchtower,
        Signature(request.monitor_signature),
        request_digest,
    )
    return RequestAccepted(proof)


# --------------------------------------------------------------------------- the chain


ChannelEvent = (
    sc.ContractReceiveChannelOpened
    | sc.ContractReceiveChannelClosed
    | sc.ContractReceiveChannelBalanceProofUpdated
    | sc.ContractReceiveChannelSettled
    | sc.ContractReceiveChannelCooperativelyClosed
)
CHANNEL_EVENTS = (
    sc.ContractReceiveChannelOpened,
    sc.ContractReceiveChannelClosed,
    sc.ContractReceiveChannelBalanceProofUpdated,
    sc.ContractReceiveChannelSettled,
    sc.ContractReceiveChannelCooperativelyClosed,
)


def channel_after(channel: WatchedChannel | None, event: ChannelEvent) -> WatchedChannel | None:
    """The record of `event.channel_id` after a confirmed chain event (None: forget the channel and
    everything held for it). Events about a channel the tower never saw opened leave it unknown; an
    event seen twice (an open of a channel already followed, the same close again) changes nothing,
    so a replayed range never resets what a later event taught (the closer's proof on chain)."""
    if isinstance(event, sc.ContractReceiveChannelOpened):
        if channel is not None:
            return channel
        return WatchedChannel(event.channel_id, event.participant1, event.participant2)
    if channel is None:
        return None
    if isinstance(event, sc.ContractReceiveChannelClosed):
        if channel.closer is not None:
            return channel  # a channel closes once: this is the same close seen again
        return msgspec.structs.replace(
            channel,
            closer=event.closing_participant,
            closed_block=event.block_number,
            settle_block=event.settle_block,
            closer_nonce=Nonce(0),
        )
    if isinstance(event, sc.ContractReceiveChannelBalanceProofUpdated):
        if event.closing_participant != channel.closer or event.nonce <= channel.closer_nonce:
            return channel
        return msgspec.structs.replace(channel, closer_nonce=event.nonce)
    return None  # settled or cooperatively closed: the channel is gone


@dataclass(frozen=True, slots=True)
class ChainDelta:
    """What one poll's events do to the followed channels: `changed` records to write (new or
    updated) and `gone` channels to forget with everything held for them. `gone` names only
    channels that were followed before the poll, and no channel is in both."""

    changed: dict[ChannelId, WatchedChannel]
    gone: frozenset[ChannelId]
    closes: int  # closes of followed channels seen (for the statistics)


def apply_events(
    channels: Mapping[ChannelId, WatchedChannel], events: Iterable[ChannelEvent]
) -> ChainDelta:
    """Fold a poll's confirmed events, in chain order, over the channels followed before it.

    Any order and any mix is handled: a channel opened and closed (cooperatively, or closed and
    settled) within the poll leaves no trace, an event about a channel never seen opened is
    ignored, an event seen twice changes nothing. Applying the delta to `channels` gives the same
    records as applying the events one at a time."""
    view: dict[ChannelId, WatchedChannel | None] = {}
    closes = 0
    for event in events:
        channel_id = event.channel_id
        current = view[channel_id] if channel_id in view else channels.get(channel_id)
        after = channel_after(current, event)
        view[channel_id] = after
        if (
            isinstance(event, sc.ContractReceiveChannelClosed)
            and after is not None
            and after is not current
        ):
            closes += 1
    changed = {cid: record for cid, record in view.items() if record is not None}
    changed = {cid: r for cid, r in changed.items() if channels.get(cid) != r}
    gone = frozenset(cid for cid, record in view.items() if record is None and cid in channels)
    return ChainDelta(changed, gone, closes)


# --------------------------------------------------------------------------- responding


@dataclass(frozen=True, slots=True)
class Duty:
    """Submit the held proof of `nonce` for `guarded` from block `act_at` until `deadline`."""

    channel_id: ChannelId
    guarded: Address
    closer: Address
    nonce: Nonce
    act_at: BlockNumber
    deadline: BlockNumber  # the settle block: the last block an update is accepted in

    @property
    def key(self) -> tuple[ChannelId, Address]:
        return self.channel_id, self.guarded


class Step(enum.Enum):
    WAIT = "wait"  # not our turn yet, or our update is on its way
    SUBMIT = "submit"
    TOO_LATE = "too-late"  # the challenge period is over


def response_block(
    tower: Address,
    channel_id: int,
    closed_block: int,
    settle_block: int,
    spacing: int = RESPONSE_SPACING,
) -> BlockNumber:
    """The first block this tower answers a close in: `closed_block + slot * spacing`.

    The slot is keccak(tower ‖ channelId) modulo the number of slots that fit in the first half of
    the challenge period (the second half is every tower's margin). Different towers get different
    slots for most channels, and each tower is first for some channels and later for others; when
    two draw the same slot both may send, and the second one's transaction fails its pre-check or
    reverts, which costs at most one transaction's gas.
    """
    half = (settle_block - closed_block) // 2
    slots = max(1, half // spacing)
    draw = int.from_bytes(keccak(tower + channel_id.to_bytes(32, "big"))[:8], "big")
    return BlockNumber(closed_block + (draw % slots) * spacing)


def duty_of(
    channel: WatchedChannel,
    proof: GuardedProof,
    tower: Address,
    spacing: int = RESPONSE_SPACING,
) -> Duty | None:
    """What to do for `proof` in `channel`: a Duty if the partner closed and the chain holds an
    older proof of the partner's than the one held; None if there is nothing to do (open, the
    guarded party closed, or the chain already has this nonce or a higher one)."""
    if channel.closer is None or channel.closer != proof.partner:
        return None
    if proof.nonce <= channel.closer_nonce:
        return None
    act_at = response_block(
        tower, channel.channel_id, channel.closed_block, channel.settle_block, spacing
    )
    return Duty(
        channel.channel_id, proof.guarded, proof.partner, proof.nonce, act_at, channel.settle_block
    )


def next_step(
    duty: Duty,
    head: BlockNumber,
    submitted_block: BlockNumber | None,
    resend_after: int = RESEND_AFTER,
) -> Step:
    """Whether to submit `duty` now, at chain head `head`, given when it was last sent (if ever)."""
    if head > duty.deadline:
        return Step.TOO_LATE
    if head < duty.act_at:
        return Step.WAIT
    if submitted_block is not None and head < submitted_block + resend_after:
        return Step.WAIT
    return Step.SUBMIT


def guard_state(
    channel: WatchedChannel | None,
    proof: GuardedProof,
    head: BlockNumber,
    submitted_block: BlockNumber | None,
) -> str:
    """A word for people: where the guard of `proof` stands (shown by `cise watchtower status`)."""
    if channel is None:
        return "unknown-channel"
    if channel.closer is None:
        return "open"
    if channel.closer == proof.guarded:
        return "closed-by-guarded"
    if proof.nonce <= channel.closer_nonce:
        return "on-chain"
    if head > channel.settle_block:
        return "missed"
    return "submitted" if submitted_block is not None else "closed-awaiting-turn"

"""Chain events in: poll the channel manager's logs and turn them into `ContractReceive*` changes.

`to_state_change` maps one decoded log through a table (one small function per event name);
`ChainFollower` walks the chain from a cursor (the last block fully processed, which the shell
persists together with the state changes it produced) up to `head - confirmations`, in bounded
block ranges, and ends each batch with a `Block` state change for the new cursor.

It must never interpret what an event means for a channel (the core does that), and never skip a
block: the cursor only moves over blocks whose logs were all returned.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from channels.chain.abi import ContractAbi, DecodedEvent
from channels.chain.artifacts import load_artifact
from channels.chain.connection import Connection
from channels.chain.deploy import Deployment
from channels.core.state_changes import (
    Block,
    ContractReceiveChannelBalanceProofUpdated,
    ContractReceiveChannelClosed,
    ContractReceiveChannelCooperativelyClosed,
    ContractReceiveChannelDeposited,
    ContractReceiveChannelOpened,
    ContractReceiveChannelSettled,
    ContractReceiveChannelWithdrawn,
    ContractReceiveLockUnlocked,
    ContractReceiveSecretRegistered,
    StateChange,
)
from channels.core.types import (
    Address,
    BlockNumber,
    ChannelId,
    Nonce,
    Secret,
    SecretHash,
    TokenAmount,
)

DEFAULT_MAX_RANGE = 2_000  # blocks per eth_getLogs: nodes cap ranges and result sizes
UNKNOWN_ADDRESS = Address(b"\x00" * 20)

ContractReceive = (
    ContractReceiveChannelOpened
    | ContractReceiveChannelDeposited
    | ContractReceiveChannelWithdrawn
    | ContractReceiveChannelClosed
    | ContractReceiveChannelBalanceProofUpdated
    | ContractReceiveChannelSettled
    | ContractReceiveChannelCooperativelyClosed
    | ContractReceiveSecretRegistered
    | ContractReceiveLockUnlocked
)


@dataclass(slots=True)
class FollowContext:
    """What some events need beyond their own fields, learned from earlier events.

    `settle_timeout` follows `SettleTimeoutSet`; `participants` maps each channel seen opened to
    (participant1, participant2), so that a `LockUnlocked` paying its sender back can name the
    receiver (the event names only the sender and the beneficiary).
    """

    settle_timeout: int
    participants: dict[int, tuple[Address, Address]] = field(default_factory=dict)


def _block(event: DecodedEvent) -> BlockNumber:
    return BlockNumber(event.block_number)


def _opened(e: DecodedEvent, ctx: FollowContext) -> ContractReceiveChannelOpened:
    p1, p2 = Address(e.args["participant1"]), Address(e.args["participant2"])
    ctx.participants[int(e.args["channelId"])] = (p1, p2)
    return ContractReceiveChannelOpened(
        e.transaction_hash,
        _block(e),
        ChannelId(e.args["channelId"]),
        p1,
        p2,
        ctx.settle_timeout,
        Address(e.args["opener"]),
        TokenAmount(e.args["deposit"]),
    )


def _deposited(e: DecodedEvent, ctx: FollowContext) -> ContractReceiveChannelDeposited:
    return ContractReceiveChannelDeposited(
        e.transaction_hash,
        _block(e),
        ChannelId(e.args["channelId"]),
        Address(e.args["participant"]),
        TokenAmount(e.args["totalDeposit"]),
    )


def _withdrawn(e: DecodedEvent, ctx: FollowContext) -> ContractReceiveChannelWithdrawn:
    return ContractReceiveChannelWithdrawn(
        e.transaction_hash,
        _block(e),
        ChannelId(e.args["channelId"]),
        Address(e.args["participant"]),
        TokenAmount(e.args["totalWithdraw"]),
    )


def _closed(e: DecodedEvent, ctx: FollowContext) -> ContractReceiveChannelClosed:
    return ContractReceiveChannelClosed(
        e.transaction_hash,
        _block(e),
        ChannelId(e.args["channelId"]),
        Address(e.args["closer"]),
        Nonce(e.args["nonce"]),
        BlockNumber(e.args["settleBlock"]),
    )


def _updated(e: DecodedEvent, ctx: FollowContext) -> ContractReceiveChannelBalanceProofUpdated:
    return ContractReceiveChannelBalanceProofUpdated(
        e.transaction_hash,
        _block(e),
        ChannelId(e.args["channelId"]),
        Address(e.args["closer"]),
        Nonce(e.args["nonce"]),
    )


def _settled(e: DecodedEvent, ctx: FollowContext) -> ContractReceiveChannelSettled:
    return ContractReceiveChannelSettled(
        e.transaction_hash,
        _block(e),
        ChannelId(e.args["channelId"]),
        TokenAmount(e.args["balance1"]),
        TokenAmount(e.args["balance2"]),
        TokenAmount(e.args["locked1"]),
        TokenAmount(e.args["locked2"]),
    )


def _cooperatively_closed(
    e: DecodedEvent, ctx: FollowContext
) -> ContractReceiveChannelCooperativelyClosed:
    return ContractReceiveChannelCooperativelyClosed(
        e.transaction_hash,
        _block(e),
        ChannelId(e.args["channelId"]),
        TokenAmount(e.args["balance1"]),
        TokenAmount(e.args["balance2"]),
    )


def _secret_registered(e: DecodedEvent, ctx: FollowContext) -> ContractReceiveSecretRegistered:
    return ContractReceiveSecretRegistered(
        e.transaction_hash,
        _block(e),
        SecretHash(e.args["secrethash"]),
        Secret(e.args["secret"]),
    )


def _unlocked(e: DecodedEvent, ctx: FollowContext) -> ContractReceiveLockUnlocked:
    channel_id = int(e.args["channelId"])
    sender, beneficiary = Address(e.args["sender"]), Address(e.args["beneficiary"])
    amount = TokenAmount(e.args["amount"])
    refunded = beneficiary == sender
    receiver = beneficiary
    if refunded:
        pair = ctx.participants.get(channel_id)
        receiver = UNKNOWN_ADDRESS if pair is None else (pair[1] if pair[0] == sender else pair[0])
    return ContractReceiveLockUnlocked(
        e.transaction_hash,
        _block(e),
        ChannelId(channel_id),
        sender,
        receiver,
        int(e.args["slot"]),
        SecretHash(e.args["secrethash"]),
        TokenAmount(0 if refunded else amount),
        TokenAmount(amount if refunded else 0),
    )


def _settle_timeout_set(e: DecodedEvent, ctx: FollowContext) -> None:
    ctx.settle_timeout = int(e.args["settleTimeout"])


Converter = Callable[[DecodedEvent, FollowContext], ContractReceive | None]

CONVERTERS: Mapping[str, Converter] = {
    "ChannelOpened": _opened,
    "ChannelDeposited": _deposited,
    "ChannelWithdrawn": _withdrawn,
    "ChannelClosed": _closed,
    "ChannelBalanceProofUpdated": _updated,
    "ChannelSettled": _settled,
    "ChannelCooperativelyClosed": _cooperatively_closed,
    "SecretRegistered": _secret_registered,
    "LockUnlocked": _unlocked,
    "SettleTimeoutSet": _settle_timeout_set,
}
"""Event name -> converter. Events not listed (BalanceDeposited, BalanceWithdrawn,
ChannelMonitorRewarded, token events) concern no channel state and map to nothing."""


def to_state_change(event: DecodedEvent, ctx: FollowContext) -> ContractReceive | None:
    """The `ContractReceive*` for one decoded channel-manager event, or None if it maps to none."""
    converter = CONVERTERS.get(event.name)
    return None if converter is None else converter(event, ctx)


@dataclass(frozen=True, slots=True)
class FollowBatch:
    """One poll: the state changes of blocks (previous cursor, cursor], in chain order.

    `state_changes` ends with `Block(cursor)` when the cursor moved. `events` are all decoded
    manager events of the range, including those that map to no state change.
    """

    state_changes: tuple[StateChange, ...]
    events: tuple[DecodedEvent, ...]
    cursor: BlockNumber


class ChainFollower:
    """Walks the channel manager's logs forward from `cursor` (the last block fully processed)."""

    def __init__(
        self,
        connection: Connection,
        deployment: Deployment,
        cursor: BlockNumber | None = None,
        confirmations: int = 0,
        max_range: int = DEFAULT_MAX_RANGE,
        context: FollowContext | None = None,
    ) -> None:
        if confirmations < 0 or max_range < 1:
            raise ValueError("confirmations must be >= 0 and max_range >= 1")
        self.connection = connection
        self.deployment = deployment
        self.cursor = BlockNumber(deployment.block_number - 1) if cursor is None else cursor
        self.confirmations = confirmations
        self.max_range = max_range
        self.context = context or FollowContext(deployment.settle_timeout)
        manager, token = load_artifact("ChannelManager"), load_artifact("Token")
        self.abi: ContractAbi = manager.abi.merged(token.abi)

    def safe_head(self) -> BlockNumber:
        """The newest block considered final: head - confirmations."""
        return BlockNumber(self.connection.block_number() - self.confirmations)

    def poll(self) -> FollowBatch:
        """Process up to `max_range` blocks past the cursor (up to the safe head) and advance."""
        start = self.cursor + 1
        end = min(self.safe_head(), self.cursor + self.max_range)
        if end < start:
            return FollowBatch((), (), self.cursor)
        events = self.connection.get_logs(self.deployment.manager, start, end, self.abi)
        changes: list[StateChange] = []
        for event in events:
            change = to_state_change(event, self.context)
            if change is not None:
                changes.append(change)
        self.cursor = BlockNumber(end)
        changes.append(Block(self.cursor))
        return FollowBatch(tuple(changes), events, self.cursor)

    def poll_until_head(self) -> list[FollowBatch]:
        """Poll until the cursor reaches the safe head (several batches on a long catch-up)."""
        batches = [self.poll()]
        try:
            while self.cursor < self.safe_head():
                batches.append(self.poll())
        except Exception:  # the node failed mid catch-up: hand over what was read (the cursor
            return batches  # covers exactly these batches); the next call goes on from there
        return batches

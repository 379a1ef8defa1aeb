"""Node-level routing: `node_transition(node, state_change) -> TransitionResult[NodeState]`.

A thin layer over `channels.core.channel`: it creates channels from `ContractReceiveChannelOpened`,
fans `Block` and `ContractReceiveSecretRegistered` out to every channel, and sends the rest to the
channel they name. Each call copies the channel mapping when a channel changed (O(channels)); a
shell with thousands of channels on the payment hot path may keep its own mapping and call
`channel_transition` directly. Pure: no I/O, no clock, no keys; never raises on peer input.
"""

from __future__ import annotations

from msgspec.structs import replace

from channels.core import events as ev
from channels.core import state_changes as sc
from channels.core.channel import (
    TransitionContext,
    TransitionResult,
    channel_transition,
    new_channel_state,
)
from channels.core.state import ChannelState, NodeState
from channels.core.types import Address, ChannelId

NodeResult = TransitionResult[NodeState]

_INVALID_FOR_RECEIVE: dict[type, type] = {
    sc.ReceiveBalanceProof: ev.EventInvalidReceivedBalanceProof,
    sc.ReceiveLockedTransfer: ev.EventInvalidReceivedLockedTransfer,
    sc.ReceiveUnlock: ev.EventInvalidReceivedUnlock,
    sc.ReceiveLockExpired: ev.EventInvalidReceivedLockExpired,
    sc.ReceiveLockRefused: ev.EventInvalidReceivedLockRefused,
    sc.ReceiveSecretRequest: ev.EventInvalidReceivedSecretRequest,
    sc.ReceiveSecretReveal: ev.EventInvalidReceivedSecretReveal,
    sc.ReceiveWithdrawRequest: ev.EventInvalidReceivedWithdrawRequest,
    sc.ReceiveWithdrawConfirmation: ev.EventInvalidReceivedWithdrawConfirmation,
    sc.ReceiveCooperativeCloseRequest: ev.EventInvalidReceivedCooperativeClose,
    sc.ReceiveCooperativeCloseConfirmation: ev.EventInvalidReceivedCooperativeClose,
}


def context_of(node: NodeState) -> TransitionContext:
    """The per-channel context for the node's current block."""
    return TransitionContext(node.our_address, node.domain, node.block_number, node.reveal_timeout)


def channel_id_of(state_change: sc.StateChange) -> ChannelId | None:
    """The channel a state change is for (None for Block and SecretRegistered)."""
    channel_id = getattr(state_change, "channel_id", None)
    if channel_id is not None:
        return ChannelId(channel_id)
    proof = getattr(state_change, "balance_proof", None)
    if proof is not None:
        return ChannelId(proof.channel_id)
    return None


def _fan_out(node: NodeState, state_change: sc.StateChange, ctx: TransitionContext) -> NodeResult:
    events: list[ev.Event] = []
    changed: dict[ChannelId, ChannelState] = {}
    for channel_id, channel in node.channels.items():
        result = channel_transition(channel, state_change, ctx)
        if result.new_state is not channel:
            changed[channel_id] = result.new_state
        events.extend(result.events)
    if changed:
        node = replace(node, channels={**node.channels, **changed})
    return TransitionResult(node, events)


def _open(node: NodeState, opened: sc.ContractReceiveChannelOpened) -> NodeResult:
    our = node.our_address
    if our not in (opened.participant1, opened.participant2):
        return TransitionResult(node, [])
    if opened.channel_id in node.channels:
        return TransitionResult(node, [])
    partner = Address(opened.participant2 if our == opened.participant1 else opened.participant1)
    opener_deposit = opened.deposit
    channel = new_channel_state(
        opened.channel_id,
        our,
        partner,
        opened.settle_timeout,
        our_deposit=opener_deposit if opened.opener == our else type(opener_deposit)(0),
        partner_deposit=opener_deposit if opened.opener == partner else type(opener_deposit)(0),
    )
    channels = {**node.channels, opened.channel_id: channel}
    return TransitionResult(
        replace(node, channels=channels), [ev.EventChannelOpened(opened.channel_id, partner)]
    )


def _unknown_channel(state_change: sc.StateChange, channel_id: ChannelId) -> list[ev.Event]:
    reason = f"no channel {channel_id}"
    invalid = _INVALID_FOR_RECEIVE.get(type(state_change))
    if invalid is not None:
        sender: Address = getattr(state_change, "sender")  # noqa: B009
        return [invalid(channel_id, sender, reason)]
    if type(state_change).__name__.startswith("Action"):
        payment_id = getattr(state_change, "payment_id", None)
        if payment_id is not None:
            return [ev.EventPaymentSendFailed(channel_id, payment_id, reason)]
        return [ev.EventActionFailed(channel_id, type(state_change).__name__, reason)]
    return []  # a chain event of a channel that is not ours


def node_transition(node: NodeState, state_change: sc.StateChange) -> NodeResult:
    """Apply one state change to the node: route it to its channel(s)."""
    if isinstance(state_change, sc.Block):
        if state_change.block_number <= node.block_number:
            return TransitionResult(node, [])
        node = replace(node, block_number=state_change.block_number)
        return _fan_out(node, state_change, context_of(node))
    if isinstance(state_change, sc.ContractReceiveChannelOpened):
        return _open(node, state_change)
    if isinstance(state_change, sc.ContractReceiveSecretRegistered):
        return _fan_out(node, state_change, context_of(node))
    channel_id = channel_id_of(state_change)
    channel = node.channels.get(channel_id) if channel_id is not None else None
    if channel is None or channel_id is None:
        return TransitionResult(node, _unknown_channel(state_change, ChannelId(channel_id or 0)))
    result = channel_transition(channel, state_change, context_of(node))
    if result.new_state is not channel:
        node = replace(node, channels={**node.channels, channel_id: result.new_state})
    return TransitionResult(node, result.events)

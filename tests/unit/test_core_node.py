"""Node-level routing: channel creation, fan-out of blocks and secrets, unknown channels."""

from __future__ import annotations

from core_pair import DOMAIN

from channels.core import events as ev
from channels.core import state_changes as sc
from channels.core.node import node_transition
from channels.core.state import NodeState
from channels.core.types import (
    Address,
    BlockNumber,
    ChannelId,
    PaymentId,
    TokenAmount,
)

US = Address(b"\x01" * 20)
THEM = Address(b"\x02" * 20)
TX = b"\x00" * 32


def _node_with_channel() -> NodeState:
    node = NodeState(US, DOMAIN, BlockNumber(10))
    opened = sc.ContractReceiveChannelOpened(
        TX, BlockNumber(10), ChannelId(3), US, THEM, 50, opener=US, deposit=TokenAmount(100)
    )
    result = node_transition(node, opened)
    assert result.events == [ev.EventChannelOpened(ChannelId(3), THEM)]
    return result.new_state


def test_opened_creates_our_channel_only() -> None:
    node = _node_with_channel()
    channel = node.channels[ChannelId(3)]
    assert channel.our.deposit == 100 and channel.partner.deposit == 0
    stranger = sc.ContractReceiveChannelOpened(
        TX, BlockNumber(11), ChannelId(4), THEM, Address(b"\x03" * 20), 50
    )
    assert node_transition(node, stranger).new_state is node
    assert (
        node_transition(
            node, sc.ContractReceiveChannelOpened(TX, BlockNumber(11), ChannelId(3), US, THEM, 50)
        ).new_state
        is node
    )


def test_transfer_routes_to_its_channel() -> None:
    node = _node_with_channel()
    result = node_transition(node, sc.ActionTransfer(ChannelId(3), TokenAmount(5), PaymentId(1)))
    assert isinstance(result.events[0], ev.SendBalanceProof)
    assert result.new_state.channels[ChannelId(3)].our.balance_proof.transferred == 5
    assert node.channels[ChannelId(3)].our.balance_proof.transferred == 0  # old node untouched


def test_unknown_channel() -> None:
    node = _node_with_channel()
    result = node_transition(node, sc.ActionTransfer(ChannelId(9), TokenAmount(5), PaymentId(1)))
    assert result.events == [ev.EventPaymentSendFailed(ChannelId(9), PaymentId(1), "no channel 9")]
    reveal = sc.ReceiveSecretReveal(THEM, ChannelId(9), b"\x00" * 32)  # type: ignore[arg-type]
    result = node_transition(node, reveal)
    assert isinstance(result.events[0], ev.EventInvalidReceivedSecretReveal)
    assert result.new_state is node
    refusal = sc.ReceiveLockRefused(THEM, ChannelId(9), b"\x00" * 32, "no route")  # type: ignore[arg-type]
    result = node_transition(node, refusal)
    assert result.events == [ev.EventInvalidReceivedLockRefused(ChannelId(9), THEM, "no channel 9")]
    assert result.new_state is node
    refuse = sc.ActionRefuseLock(ChannelId(9), b"\x00" * 32, "no route")  # type: ignore[arg-type]
    result = node_transition(node, refuse)
    assert result.events == [ev.EventActionFailed(ChannelId(9), "ActionRefuseLock", "no channel 9")]


def test_block_advances_and_fans_out() -> None:
    node = _node_with_channel()
    result = node_transition(node, sc.Block(BlockNumber(11)))
    assert result.new_state.block_number == 11
    assert (
        node_transition(result.new_state, sc.Block(BlockNumber(11))).new_state is result.new_state
    )

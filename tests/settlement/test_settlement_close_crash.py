"""The close of a counterparty that does not sign is one decision, whatever the crash point.

The settlement service records "the hub closes this channel" in its own file and issues the
node's unilateral close into the node's commit group. A hub stopped after the file's record but
before the node's group committed lost the close: the file said closed, the node kept the channel
open, and no later round looked at it again (the channel was never closed). Now the decision is
durable in the settlement file first and the close is issued again at start while the node still
has the channel open; a close the node did take is never issued twice.

Each test stops the hub at one point (the node's group holding the close lost, or committed),
starts a new settlement service on the same file, as a restarted hub would, and checks the
channel is closed on chain exactly once.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import trio

from channels.core import events as ev
from channels.core import state_changes as sc
from channels.core.state import ChannelState
from channels.core.types import ChannelId
from channels.service import NodeService
from settlement.service import SettlementConfig, SettlementService
from settlement.store import SettlementStore
from tests.settlement.settlefix import POLICY, SettleNet, settle_net, wait_for

CONFIG = SettlementConfig(POLICY, collect_s=1.0, close_unsigned_after_s=3600, poll_s=0.2)


def _hub_view(sn: SettleNet, name: str) -> ChannelState:
    return sn.net.services["hub"].channels[ChannelId(sn.channel_id(name))]


def _count_closes(node: NodeService, lose_first: bool) -> list[int]:
    """Count the close transactions `node` decides (one entry per ContractSendChannelClose);
    with `lose_first`, the first ActionClose is lost as the open group holding it is when the
    process dies before the group commits."""
    closes: list[int] = []
    handle: Callable[[sc.StateChange], list[ev.Event]] = node.handle
    lost = [not lose_first]

    def handling(change: sc.StateChange) -> list[ev.Event]:
        if isinstance(change, sc.ActionClose) and not lost[0]:
            lost[0] = True
            return []  # never durable: gone with the process
        events = handle(change)
        closes.extend(
            int(e.channel_id) for e in events if isinstance(e, ev.ContractSendChannelClose)
        )
        return events

    node.handle = handling  # type: ignore[method-assign]
    return closes


@pytest.mark.parametrize("lost", [True, False], ids=["close_not_durable", "close_durable"])
async def test_a_non_signers_channel_is_closed_exactly_once_across_a_hub_restart(
    tmp_path: Path, lost: bool
) -> None:
    async with settle_net(tmp_path) as sn:
        washer = sn.net.address("washer")
        with trio.fail_after(30):
            await sn.net.agents["alice"].pay(washer, 700_000, payment_id=1)
        sn.net.agents["washer"].accept_settlement = lambda channel, total: False
        hub = sn.net.services["hub"]
        now = [1_000_000.0]
        path = tmp_path / "settlement.sqlite"
        store = SettlementStore(path)
        service = SettlementService(hub, sn.clients["hub"], store, CONFIG, clock=lambda: now[0])
        first = await service.settle_once()  # the washer does not sign: noted
        assert dict(first.non_signers) == {sn.channel_id("washer"): washer}
        now[0] += 3_600
        await wait_for(lambda: _hub_view(sn, "washer").partner.pending_withdraw is None)
        closes = _count_closes(hub, lose_first=lost)
        second = await service.settle_once()  # decides the close; the hub stops right after
        assert second.closed == (sn.channel_id("washer"),)
        assert store.misses()[0].closed_at is not None
        service.detach()
        store.close()

        restarted_store = SettlementStore(path)  # the hub's next start, on the same file
        restarted = SettlementService(
            hub, sn.clients["hub"], restarted_store, CONFIG, clock=lambda: now[0]
        )
        async with trio.open_nursery() as nursery:
            await nursery.start(restarted.run)
            await wait_for(lambda: _hub_view(sn, "washer").status.value in ("closed", "settled"))
            await trio.sleep(1.0)  # a few more polls: nothing closes it again
            nursery.cancel_scope.cancel()
        restarted.detach()
        assert closes == [sn.channel_id("washer")]  # one close transaction, never two
        washer_channel = ChannelId(sn.channel_id("washer"))
        await wait_for(  # the chain closed it: the washer's own node sees it too
            lambda: (
                sn.net.services["washer"].channels[washer_channel].status.value
                in ("closed", "settled")
            )
        )
        assert restarted_store.misses()[0].closed_at is not None
        restarted_store.close()

"""Every write the running hub makes to its settlement file goes through its node's commit
pipeline (issue 16, point 5): it runs in the node's commit thread, never on the trio thread (an
fsync there stalls every payment the hub routes), and in order with the node's groups (the
record of a close just before the group that closes). Checked through a whole round on a live
network: a signature collected, a batch signed and sent, and a counterparty that does not sign
reported and then closed. Before, every one of these writes ran on the trio thread."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import trio

from channels.core.types import ChannelId
from settlement.service import SettlementConfig, SettlementService
from settlement.store import SettlementStore
from tests.settlement.settlefix import POLICY, settle_net, wait_for

_WRITES = (
    "start_round",
    "record_signatures",
    "record_transaction",
    "record_signed",
    "exclude",
    "finish_transaction",
    "set_round_status",
    "note_misses",
    "clear_misses",
    "mark_closed",
    "answer_requests",
    "set_status",
)


class _WatchedStore(SettlementStore):
    """Records, for every write, the thread it ran on."""

    writes: list[tuple[str, int]]

    def __getattribute__(self, name: str) -> Any:
        value = super().__getattribute__(name)
        if name not in _WRITES:
            return value

        def watched(*args: Any, **kwargs: Any) -> Any:
            super(_WatchedStore, self).__getattribute__("writes").append(
                (name, threading.get_ident())
            )
            return value(*args, **kwargs)

        return watched


async def test_a_rounds_writes_to_the_settlement_file_never_run_on_the_trio_thread(
    tmp_path: Path,
) -> None:
    async with settle_net(tmp_path) as sn:
        washer = sn.net.address("washer")
        with trio.fail_after(30):
            await sn.net.agents["alice"].pay(washer, 700_000, payment_id=1)
            await sn.net.agents["bob"].pay(washer, 300_000, payment_id=2)
        now = [1_000_000.0]
        store = _WatchedStore(tmp_path / "settlement.sqlite")
        store.writes = []
        service = SettlementService(
            sn.net.services["hub"],
            sn.clients["hub"],
            store,
            SettlementConfig(POLICY, collect_s=1.0, close_unsigned_after_s=3600),
            clock=lambda: now[0],
        )
        trio_thread = threading.get_ident()
        hub = sn.net.services["hub"]
        with trio.fail_after(180):
            first = await service.settle_once()  # every counterparty signs
            assert first.status == "settled" and first.to_counterparties == 1_000_000
            await sn.net.agents["alice"].pay(washer, 200_000, payment_id=3)
            sn.net.agents["washer"].accept_settlement = lambda channel, total: False
            await wait_for(
                lambda: all(c.partner.pending_withdraw is None for c in hub.channels.values())
            )
            second = await service.settle_once()  # the washer does not sign
            washer_channel = ChannelId(sn.channel_id("washer"))
            assert dict(second.non_signers) == {washer_channel: washer}
            now[0] += 3_600  # the washer is overdue: the next round closes its channel
            await wait_for(
                lambda: all(c.partner.pending_withdraw is None for c in hub.channels.values())
            )
            third = await service.settle_once()
            assert third.closed == (washer_channel,)
            await wait_for(lambda: hub.channels[washer_channel].status.value != "opened")
        kinds = {name for name, _ in store.writes}
        assert {"start_round", "record_signatures", "record_transaction", "record_signed",
                "finish_transaction", "note_misses", "mark_closed", "set_status"} <= kinds  # fmt: skip
        on_trio = [name for name, thread in store.writes if thread == trio_thread]
        assert on_trio == [], f"written on the trio thread: {on_trio}"
        assert store.misses()[0].closed_at == now[0]
        service.detach()
        store.close()

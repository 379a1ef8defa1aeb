"""A chain node that goes away never ends a tower: anvil is SIGKILLed under a running tower that
guards a channel, and restarted on the same port with the chain's state (dumped just before); the
tower says loudly, while blind, what is unguarded, retries with backoff, resumes when the node is
back, and answers a stale close of the guarded channel. Real anvil, real services over loopback."""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
import trio

from channels.chain.connection import Connection
from channels.chain.nodes import LocalNode, free_port, open_anvil, rpc_call
from tests.watchtower.test_rescue import PAYMENTS, _close_as_payer, _pay_and_hand_over
from tests.watchtower.towerfix import (
    SETTLE_TIMEOUT,
    STEP,
    make_tower_chain,
    mine_until,
    running_tower,
    wait_until,
)
from watchtower.client import TowerEndpoint
from watchtower.service import MAX_BACKOFF_S, OUTAGE_ALARM_S

pytestmark = pytest.mark.node


@pytest.fixture
def anvil_port() -> Iterator[tuple[ExitStack, int]]:
    """A port for this test's own anvil, and a stack that stops every anvil started on it."""
    with ExitStack() as stack:
        yield stack, free_port()


def _start(stack: ExitStack, port: int) -> LocalNode:
    return stack.enter_context(open_anvil(port=port))


@pytest.mark.timeout(120)
async def test_a_tower_outlives_its_node_being_killed_and_restarted(
    anvil_port: tuple[ExitStack, int], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    stack, port = anvil_port
    node = _start(stack, port)
    chain = make_tower_chain(
        Connection.from_url(node.url, node.private_keys, request_timeout=2.0),
        "anvil",
        SETTLE_TIMEOUT,
    )
    tower_actor = chain.actors[2]
    caplog.set_level(logging.WARNING, logger="watchtower.service")
    async with running_tower(chain, tower_actor, tmp_path / "tower.sqlite") as (tower, tport):
        channel_id, _ = await _pay_and_hand_over(
            chain, tmp_path, [TowerEndpoint(tower_actor.address, tport)]
        )
        assert len(tower.guards) == 1
        async with chain.lock:  # the node dies between two polls, its chain saved just before
            state = rpc_call(node.url, "anvil_dumpState", [], timeout=10.0)
            os.killpg(node.pid, signal.SIGKILL)
        cursor = tower.cursor

        def alarmed() -> bool:
            return any(
                r.levelno == logging.ERROR and "UNGUARDED" in r.getMessage() for r in caplog.records
            )

        # blind for longer than the alarm: an error line names what is unguarded
        with trio.fail_after(OUTAGE_ALARM_S + 2 * MAX_BACKOFF_S + STEP):
            while not alarmed():  # noqa: ASYNC110  # the tower's log, polled
                await trio.sleep(0.1)
        [alarm] = [r.getMessage() for r in caplog.records if "UNGUARDED" in r.getMessage()]
        assert "1 guarded proofs" in alarm and f"after block {cursor}" in alarm, alarm
        assert tower.outage_since is not None and tower.cursor == cursor

        # back on the same port with the same chain: the tower resumes by itself
        node = _start(stack, port)
        async with chain.lock:
            rpc_call(node.url, "anvil_loadState", [state], timeout=10.0)
        await wait_until(lambda: tower.outage_since is None, "the tower sees the chain again")
        assert any("answers again" in r.getMessage() for r in caplog.records)
        assert tower.guards and channel_id in tower.channels

        machine, payer = chain.actors[0], chain.actors[1]
        await _close_as_payer(chain, channel_id)  # stale: none of the machine's payments

        def on_chain() -> int:
            return machine.client.get_balance_proof(
                channel_id, payer.address, machine.address
            ).nonce

        await mine_until(chain, lambda: on_chain() == PAYMENTS, "the tower's update", 12)
        assert tower.stats.missed == 0

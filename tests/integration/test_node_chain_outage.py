"""A chain node that goes away never ends a node service (every agent, hub and asset agent runs one).

anvil is SIGKILLed under a running `NodeService` following it, and restarted on the same port with
the chain's state dumped just before. The follower says so (a warning at once, an error naming what
goes unseen once it has been blind a while), backs off, never raises, and resumes from its cursor:
a channel opened while the node was away (on the restored chain) reaches the core, with no block
skipped. Real anvil, real service.
"""

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
from channels.chain.outage import MAX_BACKOFF_S, OUTAGE_ALARM_S, ChainOutage
from channels.core.types import Address
from channels.records import core_record_codec
from channels.service import NodeService, restore_chain_node, run_on_chain
from channels.store import SqliteStore
from tests.integration.chain_env import make_env

pytestmark = pytest.mark.node


def test_the_outage_schedule_doubles_caps_and_alarms_once_a_minute() -> None:
    outage = ChainOutage(0.5)
    assert outage.failed(0.0) == ("warning", 1.0)
    assert outage.failed(1.0) == ("warning", 2.0)
    assert outage.failed(3.0) == ("error", 4.0)  # blind for OUTAGE_ALARM_S: say it loudly
    assert outage.failed(7.0) == ("", MAX_BACKOFF_S)  # capped, and not every time
    assert outage.failed(12.0)[1] == MAX_BACKOFF_S
    assert outage.failed(63.1)[0] == "error"  # again a minute after the last alarm
    assert outage.recovered(64.0) == 64.0
    assert outage.recovered(65.0) is None and outage.failed(70.0) == ("warning", 1.0)


@pytest.fixture
def own_anvil() -> Iterator[tuple[ExitStack, int]]:
    with ExitStack() as stack:
        yield stack, free_port()


@pytest.mark.timeout(120)
async def test_a_node_service_outlives_its_chain_node_being_killed_and_restarted(
    own_anvil: tuple[ExitStack, int], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    stack, port = own_anvil
    node: LocalNode = stack.enter_context(open_anvil(port=port))
    env = make_env(Connection.from_url(node.url, node.private_keys, request_timeout=2.0), "anvil")
    alice, bob = env.alice, env.bob
    store = SqliteStore(tmp_path / "alice.sqlite", core_record_codec())
    service = NodeService(
        alice.signer, store, restore_chain_node(alice.signer, alice.client, store)
    )
    caplog.set_level(logging.WARNING, logger="channels.service")
    with trio.fail_after(90):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(service.run_commits)
            nursery.start_soon(lambda: run_on_chain(service, alice.client, poll_interval=0.1))
            while service.block_number < env.connection.block_number():  # noqa: ASYNC110
                await trio.sleep(0.05)
            state = rpc_call(node.url, "anvil_dumpState", [], timeout=10.0)
            os.killpg(node.pid, signal.SIGKILL)
            stopped_at = int(service.block_number)

            def logged(level: int, text: str) -> bool:
                return any(r.levelno == level and text in r.getMessage() for r in caplog.records)

            with trio.fail_after(OUTAGE_ALARM_S + 2 * MAX_BACKOFF_S + 2):
                while not logged(logging.ERROR, "has not answered"):  # noqa: ASYNC110
                    await trio.sleep(0.1)
            assert int(service.block_number) == stopped_at  # blind, but alive

            node = stack.enter_context(open_anvil(port=port))
            rpc_call(node.url, "anvil_loadState", [state], timeout=10.0)
            # on the restored chain, Bob opens a channel with Alice while her node looks away
            env.admin.mint(Address(bob.address), 1_000)
            bob.client.approve(1_000)
            channel_id, _ = bob.client.open_channel(alice.address, 1_000)
            while channel_id not in service.node.channels:  # noqa: ASYNC110
                await trio.sleep(0.1)
            assert logged(logging.WARNING, "answers again")
            nursery.cancel_scope.cancel()
    store.close()

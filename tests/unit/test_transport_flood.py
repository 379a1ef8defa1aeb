"""A flood of connections from one address (issue "Services on other machines", bad input): above
`max_connections_per_address` its new connections are closed at accept, with one log line, while a
peer on another address is served. Real sockets on 127.0.0.1 and 127.0.0.2; every wait bounded."""

from __future__ import annotations

import logging
import socket
from pathlib import Path

import pytest
import trio

from channels.transport import TcpTransport, serve_connections
from tests.unit.test_tls_transport import ping_once, tls_for
from tests.unit.test_transport import ALICE, BOB, Codec, Node

TIMEOUT = 15
CAP = 3


async def _connect_from(source: str, port: int) -> trio.socket.SocketType:
    sock = trio.socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    await sock.bind((source, 0))
    await sock.connect(("127.0.0.1", port))
    return sock


async def test_one_address_cannot_take_every_connection(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="channels.transport")
    client_node = Node()
    client = TcpTransport(ALICE, Codec(), client_node.table.lookup(), tls=tls_for(tmp_path, ALICE))
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            port = await nursery.start(
                lambda task_status: serve_connections(
                    BOB,
                    Codec(),
                    Node().table.lookup(),
                    tls=tls_for(tmp_path, BOB),
                    max_connections_per_address=CAP,
                    task_status=task_status,
                )
            )
            held = [await _connect_from("127.0.0.2", port) for _ in range(CAP)]
            await trio.sleep(0.2)  # the server has accepted them (they sit in their handshake)
            flood = [await _connect_from("127.0.0.2", port) for _ in range(5)]
            for sock in flood:  # closed at accept: end of stream, long before the handshake limit
                assert await sock.recv(100) == b""
            # another address is served while 127.0.0.2 holds its share
            async with client.open_connection("127.0.0.1", port, expected_peer=BOB.address) as c:
                await ping_once(client_node, c)
            for sock in held + flood:
                sock.close()
            nursery.cancel_scope.cancel()
    refused = [
        r.getMessage() for r in caplog.records if "refused: it already holds" in r.getMessage()
    ]
    assert refused == [
        f"connections from 127.0.0.2 refused: it already holds {CAP} (the most one address may)"
    ]

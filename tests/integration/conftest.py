"""Chain fixtures: the embedded py-evm chain, and anvil and ganache as local processes.

anvil and ganache start once per session (on 127.0.0.1, free ports) and are always stopped;
each test deploys fresh contracts on them, so tests stay independent without restarting nodes.
The embedded chain is created anew for each test.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from channels.chain.connection import Connection
from channels.chain.nodes import LocalNode, open_anvil, open_ganache
from tests.integration.chain_env import ChainEnv, make_env

BACKENDS = [
    "embedded",
    pytest.param("anvil", marks=pytest.mark.node),
    pytest.param("ganache", marks=pytest.mark.node),
]


@pytest.fixture(scope="session")
def anvil_node() -> Iterator[LocalNode]:
    with open_anvil() as node:
        yield node


@pytest.fixture(scope="session")
def ganache_node() -> Iterator[LocalNode]:
    with open_ganache() as node:
        yield node


def make_connection(request: pytest.FixtureRequest, backend: str) -> Connection:
    """A connection to `backend`, starting its session node on first use."""
    if backend == "embedded":
        return Connection.embedded()
    node: LocalNode = request.getfixturevalue(f"{backend}_node")
    return Connection.from_url(node.url, node.private_keys)


@pytest.fixture(params=BACKENDS)
def chain(request: pytest.FixtureRequest) -> ChainEnv:
    """A fresh deployment on each backend in turn."""
    backend: str = request.param
    return make_env(make_connection(request, backend), backend)


@pytest.fixture
def embedded_chain() -> ChainEnv:
    """A fresh deployment on the embedded chain only."""
    return make_env(Connection.embedded(), "embedded")

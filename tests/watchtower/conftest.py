"""The watchtower tests run on the embedded chain and on anvil (`node` marker): a fresh deployment
per test, on py-evm created anew or on one anvil started for the session (always stopped)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from channels.chain.connection import Connection
from channels.chain.nodes import LocalNode, open_anvil
from tests.watchtower.towerfix import SETTLE_TIMEOUT, TowerChain, make_tower_chain

BACKENDS = ["embedded", pytest.param("anvil", marks=pytest.mark.node)]


@pytest.fixture(scope="session")
def anvil_node() -> Iterator[LocalNode]:
    with open_anvil() as node:
        yield node


def connect_backend(request: pytest.FixtureRequest, backend: str) -> Connection:
    if backend == "embedded":
        return Connection.embedded()
    node: LocalNode = request.getfixturevalue("anvil_node")
    return Connection.from_url(node.url, node.private_keys)


@pytest.fixture(params=BACKENDS)
def chain(request: pytest.FixtureRequest) -> TowerChain:
    """Fresh contracts (20-block challenge period) on each backend in turn."""
    backend: str = request.param
    return make_tower_chain(connect_backend(request, backend), backend, SETTLE_TIMEOUT)

"""Fixtures of the governance tests: a fresh governed network on the embedded chain per test, and
an anvil node per test module (the CLI tests: each module its own node, as they move its clock)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from channels.chain.nodes import LocalNode, open_anvil
from tests.governance.govfix import GovEnv, make_env


@pytest.fixture
def env() -> GovEnv:
    return make_env()


@pytest.fixture(scope="module")
def anvil() -> Iterator[LocalNode]:
    with open_anvil() as node:
        yield node

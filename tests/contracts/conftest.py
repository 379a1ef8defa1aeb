"""Fixtures for the contract tests: one py-evm chain per session, reverted to a snapshot per test."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from cm_support import Chain, deploy_chain


@pytest.fixture(scope="session")
def _deployed() -> tuple[Chain, int]:
    chain = deploy_chain()
    return chain, chain.tester.take_snapshot()


@pytest.fixture
def chain(_deployed: tuple[Chain, int]) -> Chain:
    deployed, snapshot = _deployed
    deployed.tester.revert_to_snapshot(snapshot)
    return deployed


@pytest.fixture
def cm(chain: Chain):
    return chain.cm


@pytest.fixture
def pair(chain: Chain):
    """(participant1, participant2) of the usual test channel: actors 0 and 1, ordered."""
    return chain.pair(0, 1)


@pytest.fixture
def channel(chain: Chain, pair) -> int:
    """An open channel: participant1 deposited 1000, participant2 deposited 500."""
    p1, p2 = pair
    channel_id = chain.open(p1, p2, 1000)
    chain.tx(chain.cm.functions.setTotalDeposit(channel_id, p1.address, 500), p2)
    return channel_id

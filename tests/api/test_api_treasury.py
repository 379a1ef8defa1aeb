"""The community treasury in `GET /api/network` (and so on the dashboard): its address beside the
other contracts, and the governed part and balance among the governed parameters, as the chain
says them; the OpenAPI document describes both."""

from __future__ import annotations

import pytest
from eth_account import Account

from channels.chain.client import Web3ChainClient
from channels.chain.governance import GovernanceClient
from channels.core.types import to_checksum
from tests.api.conftest import Served

# One worker builds the demo day that `served` serves (a session fixture), not each worker.
pytestmark = pytest.mark.xdist_group("api-served")


def test_network_shows_the_treasury(served: Served) -> None:
    deployment = served.sources.deployment
    assert deployment.treasury is not None
    status, body = served.get("/api/network")
    assert status == 200
    assert body["treasury"] == to_checksum(deployment.treasury)
    governance = GovernanceClient(served.sources.connection, deployment, None)
    assert body["parameters"]["treasury_fee_ppm"] == governance.treasury_fee_ppm() == 0
    reader = Web3ChainClient(
        served.sources.connection,
        deployment,
        Account.from_key(served.sources.connection.dev_keys[0]),
    )
    held = int(reader.token_balance(deployment.treasury))
    assert body["parameters"]["treasury_balance_units"] == held
    _, spec = served.get("/openapi.json")
    network = spec["components"]["schemas"]["Network"]
    assert "treasury" in network["required"]
    params = network["properties"]["parameters"]["oneOf"][1]["properties"]
    assert {"treasury_fee_ppm", "treasury_balance_units"} <= set(params)

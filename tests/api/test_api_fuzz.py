"""Schema-driven fuzzing of the API over a real demo day: schemathesis generates requests for
every operation of `/openapi.json` (paths, queries, bodies; fitting the schema and not) and no
answer may be a 5xx (`not_a_server_error`). The app is the one `api.server.serve` runs, over HTTP.

Schemathesis' own pytest loader (`from_fixture`) does not run under pytest 9, so each operation
is a parametrized test that drives a hypothesis test over `operation.as_strategy()`.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.generation.modes import GenerationMode

from api.openapi import openapi_document
from cise.demo_bundles import POOL_MACHINE, asset_id_of
from tests.api.conftest import Served

# One worker builds the demo day that `served` serves (a session fixture), not each worker.
pytestmark = pytest.mark.xdist_group("api-served")

MAX_EXAMPLES = 10
_PATHS = openapi_document()["paths"]
OPERATIONS = [(method.upper(), path) for path, item in _PATHS.items() for method in item]
# Invalid data needs something to be invalid: operations with parameters or a body.
CASES = [(m, p, GenerationMode.POSITIVE) for m, p in OPERATIONS] + [
    (m, p, GenerationMode.NEGATIVE)
    for m, p in OPERATIONS
    if {"parameters", "requestBody"} & set(_PATHS[p][m.lower()])
]


@pytest.fixture(scope="session")
def api_schema(served: Served) -> Any:
    return schemathesis.openapi.from_url(served.url + "/openapi.json")


@pytest.mark.parametrize(("method", "path", "mode"), CASES)
def test_no_server_errors(
    served: Served, api_schema: Any, method: str, path: str, mode: GenerationMode
) -> None:
    operation = api_schema[path][method]

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def fuzz(case: Any) -> None:
        case.call_and_validate(base_url=served.url, checks=[not_a_server_error], timeout=30)

    fuzz()


@pytest.mark.parametrize("path", [p for _, p in OPERATIONS if "{asset_id}" in p])
def test_no_server_errors_on_a_real_asset(served: Served, api_schema: Any, path: str) -> None:
    """The asset routes again with a real asset's id: the queries are fuzzed over real ledgers."""
    operation = api_schema[path]["GET"]
    real = "0x" + asset_id_of(POOL_MACHINE).hex()

    @given(case=operation.as_strategy(path_parameters={"asset_id": real}))
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def fuzz(case: Any) -> None:
        response = case.call_and_validate(
            base_url=served.url, checks=[not_a_server_error], timeout=30
        )
        assert response.status_code in (200, 400)

    fuzz()


def test_every_route_is_fuzzed(api_schema: Any) -> None:
    served_ops = {(r.ok().method.upper(), r.ok().path) for r in api_schema.get_all_operations()}
    assert served_ops == set(OPERATIONS) and len(OPERATIONS) == 12

"""Fixtures of the governance tests: a fresh governed network on the embedded chain per test."""

from __future__ import annotations

import pytest

from tests.governance.govfix import GovEnv, make_env


@pytest.fixture
def env() -> GovEnv:
    return make_env()

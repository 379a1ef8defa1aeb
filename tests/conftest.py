"""Suite-wide collection order: the longest test modules first, so two xdist workers end together.

CI runs pytest with `-n 2 --dist loadgroup`: each worker asks for the next test when it is nearly
idle, in collection order. A minutes-long test (the crash campaign, the README's fresh install)
collected near the end would run alone while the other worker has nothing left. Starting the
longest modules first lets the many short tests fill in around them. This only reorders whole
modules (their module fixtures still set up once); it must never skip, select or change a test.
Keep LONGEST in step with the `--durations=30` list that closes every CI log.
"""

from __future__ import annotations

import pytest

# Longest first (seconds of one test or of the module, on a quiet 2-core machine).
LONGEST = (
    "tests/integration/test_crash_campaign.py",  # ~210 s: 24 seeded SIGKILLs on 1-second blocks
    "tests/integration/test_readme.py",  # ~150 s: command 1 in a fresh venv, then the blocks
    "tests/integration/test_permissioned_network.py",  # ~170 s: the real-network block, 2 s blocks
    "tests/integration/test_secret_registration_deadlines.py",  # ~60 s, 1-second blocks
    "tests/integration/test_cli_agent_restarts.py",
    "tests/integration/test_hostile_fuzz.py",
    "tests/integration/test_wire_fuzz_processes.py",
    "tests/hub/test_hub_fuzz.py",
    "tests/api/test_api_fuzz.py",
)


def _rank(item: pytest.Item) -> int:
    path = item.nodeid.split("::", 1)[0]
    return LONGEST.index(path) if path in LONGEST else len(LONGEST)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=_rank)  # stable: every other test keeps its place

"""The committed contract artifacts are what the sources compile to."""

import shutil
import subprocess

import pytest
from cm_support import REPO


def test_artifacts_are_fresh():
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    result = subprocess.run(
        [node, "scripts/compile_contracts.mjs", "--check"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr + result.stdout

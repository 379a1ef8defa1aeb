"""The README's co-financing block, run exactly as written (read from the README, so the README
and this test cannot differ) in one bash session on the anvil chain it starts: a financier opens a
pool for a planned asset, two members fund it, the operator registers the asset with the pool in its
first split and binds it (the supplier is paid), a use is charged through the hub, the machine pays
the pool its kept share, and both contributors claim their part of it pro rata."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

# The block starts `cise chain --detach` on its default port and a hub on a fixed one, like the
# README's blocks: under pytest-xdist it shares their group (one worker, never at the same time).
pytestmark = [pytest.mark.node, pytest.mark.xdist_group("readme-fixed-ports")]

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
BLOCK = re.compile(r"^```bash\n(.*?)^```", re.DOTALL | re.MULTILINE)
WALK = "cise finance create"  # as tests/integration/test_readme.py tells the walk from the tour
EURO = 1_000_000


def walk_block() -> str:
    (block,) = [b for b in BLOCK.findall(README.read_text()) if WALK in b]
    return block


def test_the_cofinancing_walk_runs_as_written(tmp_path: Path) -> None:
    block = walk_block()
    assert block.lstrip().startswith("cise chain --detach")
    # Only the test's own guard is added: stop what the block started, whatever happens.
    script = "\n".join(
        [
            "set -euo pipefail",
            "trap 'kill $(jobs -p) 2>/dev/null || true; cise chain --stop >/dev/null 2>&1 || true' EXIT",
            block,
        ]
    )
    venv_bin = Path(sys.executable).parent
    env = dict(os.environ, PATH=f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}")
    shell = subprocess.Popen(
        ["bash", "-c", script],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = shell.communicate(timeout=540)
    finally:
        if shell.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(shell.pid, signal.SIGKILL)
            shell.wait(timeout=10)
        subprocess.run(
            [sys.executable, "-m", "cise.main", "chain", "--stop"],
            cwd=tmp_path,
            capture_output=True,
            timeout=60,
        )
    assert shell.returncode == 0, output[-6000:]
    assert "Traceback" not in output, output[-6000:]
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    statuses = [line for line in lines if "status" in line and "pool" in line]
    raised, repaid = statuses[0], statuses[-1]
    assert (raised["status"], raised["raised"], raised["share_ppm"]) == (
        "raised",
        "€10.000000",
        300_000,
    )
    bound = next(line for line in lines if "bound" in line)
    assert (bound["split_version"], bound["share_ppm"], bound["paid"]) == (1, 300_000, "€10.000000")
    # The use fee of EUR 10: the pool kept 30%, paid on chain less the routing fees the machine's
    # earnings also paid (still owed); the contributors claim exactly what was repaid, pro rata.
    (paid,) = [line for line in lines if "pools" in line]
    (pool_line,) = paid["pools"]
    kept, paid_now = pool_line["kept"], pool_line["paid_now"]
    assert kept == 3 * EURO and 0 < paid_now <= kept
    assert pool_line["paid_now"] + pool_line["still_owed"] == kept
    assert pool_line["synced"] == {"to_contributors": paid_now, "to_operator": 0}
    assert repaid["status"] == "funded" and repaid["cap"] == "€11.000000"
    assert repaid["repaid"] == f"€{paid_now / EURO:.6f}"
    assert repaid["owed"] == f"€{(11 * EURO - paid_now) / EURO:.6f}"
    claimed = [line["claimed"] for line in lines if "claimed" in line and len(line) == 1]
    assert claimed == [paid_now * 6 // 10, paid_now * 4 // 10]

"""The README's command blocks, run as written, in order, and checked against what the README says.

Block 1 (the two set-up commands): command 1 runs as written in a fresh copy of the repository (a
new venv, `pip install -e .`, `cise demo`); command 2 is this very suite, which CI runs. The
co-financing walk, a session of its own, is `test_cli_cofinancing_walk`; the real-network path
(keystore accounts on a permissioned chain) is `test_permissioned_network`; three organisations'
services over TLS, `test_three_organisations`. Every other block runs as written in one bash
session in a temporary folder, against the `cise chain` it starts, with `set -euo pipefail`: a
command that fails fails the test. Each block's output is then checked for what the README's text
says the block does. Background services the blocks start must still be alive at the end (no
command may stop another), and each must exit 0 on SIGTERM.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

# The README starts `cise chain` on 8545 and the hub on 7700 as written: fixed ports, so under
# pytest-xdist these tests share one group (one worker) and no other test may use those ports.
pytestmark = [pytest.mark.node, pytest.mark.xdist_group("readme-fixed-ports")]

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
BLOCK = re.compile(r"^```bash\n(.*?)^```", re.DOTALL | re.MULTILINE)
MARK = "@@ README block {} @@"


# the co-financing walk is a session of its own (it starts and stops its own chain): its test is
# tests/integration/test_cli_cofinancing_walk.py; every other block runs here, in one session
WALK = "cise finance create"
# the real-network path (keystore accounts on a permissioned chain) is a session of its own too:
# tests/integration/test_permissioned_network.py runs it on anvil in that configuration
REAL = "cise network deploy"
# three organisations' services on their own loopback addresses over TLS are a session of their
# own too: tests/integration/test_three_organisations.py runs that block and stops each service
THREE = "cise meter send"


def readme_blocks() -> list[str]:
    blocks = BLOCK.findall(README.read_text())
    assert len(blocks) >= 2, "the README has no command blocks beyond the set-up commands"
    return blocks


def tour_blocks() -> list[str]:
    """The blocks after the set-up one that run in one session (all but the co-financing walk, the
    real-network path and the three organisations' services)."""
    return [b for b in readme_blocks()[1:] if WALK not in b and REAL not in b and THREE not in b]


def test_setup_commands_are_the_two_of_the_brief() -> None:
    setup = [
        line
        for line in readme_blocks()[0].splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert setup == [
        "python3 -m venv .venv && .venv/bin/pip install -q -e . && .venv/bin/cise demo",
        "bash scripts/test.sh",
    ]
    ci = (REPO / ".ci" / "run").read_text()
    assert "exec bash scripts/test.sh" in ci  # CI runs command 2, nothing weaker


# A fresh venv installs every dependency (about 90 s alone, longer beside another xdist worker):
# the bound is the command's own 600 s, not the suite's 300 s default.
@pytest.mark.timeout(660)
def test_command_1_installs_and_runs_the_demo_in_a_fresh_copy(tmp_path: Path) -> None:
    tracked = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True
    ).stdout.split(b"\0")
    copy = tmp_path / "cise"
    for name in filter(None, tracked):
        source = REPO / os.fsdecode(name)
        if source.is_file():
            target = copy / os.fsdecode(name)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(source.read_bytes())
    command = readme_blocks()[0].splitlines()[1]
    assert command.startswith("python3 -m venv .venv")
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env["PATH"] = os.pathsep.join(
        p for p in env.get("PATH", "").split(os.pathsep) if ".venv" not in p
    )
    done = subprocess.run(
        ["bash", "-c", command], cwd=copy, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "conservation" in done.stdout.lower()


def _expectations() -> list[list[str]]:
    """Per block after the set-up one: regular expressions its output must contain."""
    return [
        # a two-party session: the machine holds what the user paid
        [r"opened channel 1", r"channel 1 with 0x[0-9a-fA-F]{40}: opened; yours 0\.004321 €"],
        # through a hub: paid, then settled on chain in one batch
        [
            r'"payment_id": 1, "status": "completed"',
            r"round 1 settled: 1 of 1 signed; €0\.004321 to counterparties",
            r"owed to counterparties now: €0\.000000",
        ],
        # the washing machine: charged, every share paid, the ledger verified with no finding
        [r'"status":\s*"charged"', r"ledger verified", r"shares not paid\W+0 \(€0\.000000\)"],
    ]


def _live(pid: int) -> bool:
    try:
        return ") Z " not in Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False


def test_command_blocks_run_as_written_and_do_what_the_readme_says(tmp_path: Path) -> None:
    blocks = tour_blocks()
    expected = _expectations()
    assert len(blocks) == len(expected), "a README block was added or removed: check it here"
    script = ["set -euo pipefail"]
    for number, block in enumerate(blocks, start=2):
        script += [f"echo '{MARK.format(number)}'", block]
    script += ["echo '@@ background @@'", "jobs -p"]
    venv_bin = Path(sys.executable).parent
    env = dict(os.environ, PATH=f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}")
    out_path = tmp_path / "out.txt"
    with out_path.open("w") as out:
        shell = subprocess.Popen(
            ["bash", "-c", "\n".join(script)],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            code = shell.wait(timeout=600)
        finally:
            output = out_path.read_text()
            pids = [int(p) for p in output.split("@@ background @@")[-1].split() if p.isdigit()]
            try:
                alive = {pid: _live(pid) for pid in pids}
                for pid in pids:
                    if alive[pid]:
                        os.kill(pid, signal.SIGTERM)
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline and any(_live(p) for p in pids):
                    time.sleep(0.2)
                stuck = [p for p in pids if _live(p)]
            finally:
                subprocess.run(
                    [sys.executable, "-m", "cise.main", "chain", "--stop"],
                    cwd=tmp_path,
                    capture_output=True,
                    timeout=60,
                )
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(shell.pid, signal.SIGKILL)
    assert code == 0, output[-6000:]
    assert pids, "the blocks start background services; none was left running"
    assert all(alive.values()), f"a background service had stopped: {alive}\n{output[-4000:]}"
    assert not stuck, f"services still running 30 s after SIGTERM: {stuck}"
    assert "Traceback" not in output, output[-6000:]
    parts = output.split("@@ README block ")
    for number, patterns in enumerate(expected, start=2):
        text = next(p for p in parts if p.startswith(f"{number} @@"))
        for pattern in patterns:
            assert re.search(pattern, text), f"block {number}: no {pattern!r} in:\n{text[-4000:]}"

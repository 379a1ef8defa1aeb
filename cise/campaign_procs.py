"""The crash campaign's processes: real `cise` commands started, watched, SIGKILLed and stopped.

What it is for: `cise.campaign` runs a hub, payees, an asset agent, a tower and payers as
`python -m cise.main ...` children. Each child runs in its own process group (so a kill reaches
everything it started), its stdout lines are collected by a reader thread (to wait for a ready
line, or to count a payer's outcomes) and kept in `<name>.out`, its stderr goes to `<name>.log`
in the work directory (the process log a finding quotes; a restart appends to the same files).

What it must never do: wait without a bound (every wait has a timeout), or leave a child running
once `Procs.close` has run (SIGTERM to the group, then SIGKILL after `GRACE` seconds).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from channels.bench.processes import child_env

GRACE = 10.0  # seconds between SIGTERM and SIGKILL on the way out


class CampaignProcessError(RuntimeError):
    """A process did not come up in time, or exited when it should have been running."""


@dataclass
class Proc:
    """One `cise` child: its stdout lines as they come, its stderr in `log`."""

    name: str
    popen: subprocess.Popen[str]
    log: Path
    log_file: IO[str]
    lines: list[str] = field(default_factory=list)
    reader: threading.Thread | None = None
    killed: bool = False  # by the campaign (a SIGKILL it meant)

    def running(self) -> bool:
        return self.popen.poll() is None

    def wait_line(self, marker: str, timeout: float) -> str:
        """The first stdout line containing `marker`; CampaignProcessError if the process exits
        or `timeout` seconds pass first."""
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            for line in self.lines[seen:]:
                if marker in line:
                    return line
            seen = len(self.lines)
            if not self.running():
                time.sleep(0.2)  # the reader's last lines
                if any(marker in line for line in self.lines):
                    return next(line for line in self.lines if marker in line)
                raise CampaignProcessError(
                    f"{self.name} exited (status {self.popen.returncode}) before a line with "
                    f"{marker!r}; its log ends with:\n{self.log_tail()}"
                )
            if time.monotonic() > deadline:
                raise CampaignProcessError(
                    f"{self.name}: no line with {marker!r} within {timeout:.0f} s; its log ends "
                    f"with:\n{self.log_tail()}"
                )
            time.sleep(0.05)

    def log_tail(self, lines: int = 15) -> str:
        with contextlib.suppress(ValueError):
            self.log_file.flush()
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return "(unreadable)"
        return "\n".join(text.splitlines()[-lines:])

    def kill(self) -> None:
        """SIGKILL the process group, and reap it (bounded)."""
        self.killed = True
        _signal_group(self.popen, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=GRACE)

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL after GRACE seconds; the exit status (None if unreapable)."""
        if self.running():
            _signal_group(self.popen, signal.SIGTERM)
            try:
                self.popen.wait(timeout=GRACE)
            except subprocess.TimeoutExpired:
                _signal_group(self.popen, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.popen.wait(timeout=GRACE)
        if self.reader is not None:
            self.reader.join(timeout=GRACE)
        with contextlib.suppress(OSError, ValueError):
            self.log_file.close()
        return self.popen.poll()


def _signal_group(popen: subprocess.Popen[str], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(popen.pid, sig)


class Procs:
    """Every process the campaign started; `close` stops those still running."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.started: list[Proc] = []

    def start(self, name: str, argv: list[str]) -> Proc:
        """`python -m cise.main *argv` in its own session, stderr appended to `<name>.log`."""
        log = self.workdir / f"{name}.log"
        log_file = log.open("a")
        log_file.write(f"--- start {time.strftime('%H:%M:%S')}: cise {' '.join(argv)}\n")
        log_file.flush()
        try:
            popen = subprocess.Popen(
                [sys.executable, "-m", "cise.main", *argv],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=log_file,
                text=True,
                env=child_env(),
                start_new_session=True,
            )
        except BaseException:
            log_file.close()
            raise
        proc = Proc(name, popen, log, log_file)

        def read() -> None:
            assert popen.stdout is not None
            with (self.workdir / f"{name}.out").open("a") as out:
                for line in popen.stdout:
                    proc.lines.append(line)
                    out.write(line)
                    out.flush()

        proc.reader = threading.Thread(target=read, daemon=True, name=f"stdout-{name}")
        proc.reader.start()
        self.started.append(proc)
        return proc

    def close(self) -> None:
        for proc in reversed(self.started):
            proc.stop()


__all__ = ["GRACE", "CampaignProcessError", "Proc", "Procs"]

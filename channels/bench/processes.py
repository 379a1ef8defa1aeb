"""The parent side of the multi-process benchmarks: starting, reading and stopping their processes.

What it is for: `hub.bench` (the mediated and restart benchmarks) and `assets.bench` (the asset
benchmark) each run a few processes on loopback: a `hub.synthetic_hub` and peer processes
(`channels.bench.agent_peer`, `assets.bench_peer`). This module holds what they share, so that
neither service imports the other: starting a child (`start_process`) into a list that stops every one of
them on the way out (`processes`), reading its stdout protocol (`Process.read_line`: lines such as
`PORT 5000`, `READY`, `RESULT <json>`), telling it a line on stdin, its CPU seconds, the command
line of a synthetic hub, and the scratch directories of one run.

What it must never do: wait without a bound (every read has a timeout, every stop SIGTERM then
SIGKILL after `GRACE` seconds), leave a child running once `processes` is left, or import a
service (`hub`, `assets`, ...) or `cise`: the hub is started as a program, by module name. The
benchmarks use public test keys: nothing here may be pointed at real funds or a real chain.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

START_TIMEOUT = 60.0  # for a process to listen / connect
GRACE = 5.0  # seconds between SIGTERM and SIGKILL
SYNTHETIC_HUB = "hub.synthetic_hub"  # started as a program, never imported


class BenchError(RuntimeError):
    """A benchmark could not run (a process failed or was too slow), or a run failed its checks."""


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a process so far (Linux /proc; None where unavailable)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


@dataclass
class Process:
    """A child process whose stdout is read line by line with bounded waits."""

    name: str
    popen: subprocess.Popen[bytes]
    stderr_path: Path
    stderr_file: TextIO
    buffer: bytearray = field(default_factory=bytearray)

    def read_line(self, prefix: str, timeout: float) -> str:
        """The rest of the next stdout line starting with `prefix` (other lines are skipped)."""
        return self.read_first((prefix,), timeout)[1]

    def read_first(self, prefixes: Sequence[str], timeout: float) -> tuple[str, str]:
        """(prefix, rest of the line) of the next stdout line starting with one of `prefixes`."""
        assert self.popen.stdout is not None
        fd = self.popen.stdout.fileno()
        deadline = time.monotonic() + timeout
        while True:
            while (end := self.buffer.find(b"\n")) >= 0:
                line = self.buffer[:end].decode(errors="replace")
                del self.buffer[: end + 1]
                for prefix in prefixes:
                    if line == prefix or line.startswith(prefix + " "):
                        return prefix, line[len(prefix) :].strip()
            wanted = " or ".join(prefixes)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BenchError(f"{self.name}: no {wanted} line within {timeout:.0f} s")
            ready, _, _ = select.select([fd], [], [], remaining)
            if not ready:
                continue
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.popen.wait(timeout=GRACE)
                raise BenchError(
                    f"{self.name} exited (status {self.popen.returncode}) before its {wanted} "
                    f"line; its stderr ends with:\n{self.stderr_tail()}"
                )
            self.buffer += chunk

    def read_json(self, prefix: str, timeout: float) -> dict[str, Any]:
        """The JSON object on the next stdout line starting with `prefix`."""
        value: dict[str, Any] = json.loads(self.read_line(prefix, timeout))
        return value

    def read_result(self, prefix: str, timeout: float) -> dict[str, Any]:
        """`read_json`, checked: a BenchError naming this process if the object has an `error`."""
        return self.checked(self.read_json(prefix, timeout))

    def checked(self, result: dict[str, Any]) -> dict[str, Any]:
        """`result` (this process's report), or a BenchError if it has an `error`."""
        if "error" in result:
            raise BenchError(f"{self.name}: {result['error']}")
        return result

    def send_line(self, line: str) -> None:
        """Write `line` to the child's stdin (started with `stdin=True`)."""
        assert self.popen.stdin is not None
        try:
            self.popen.stdin.write(line.encode() + b"\n")
            self.popen.stdin.flush()
        except BrokenPipeError:
            raise BenchError(
                f"{self.name} exited before it was told {line}; its stderr ends with:\n"
                f"{self.stderr_tail()}"
            ) from None

    def stderr_tail(self, lines: int = 20) -> str:
        self.stderr_file.flush()
        try:
            text = self.stderr_path.read_text(errors="replace")
        except OSError:
            return "(unreadable)"
        return "\n".join(text.splitlines()[-lines:])

    def cpu_seconds(self) -> float | None:
        """User + system CPU seconds so far (Linux /proc; None where unavailable)."""
        return process_cpu_seconds(self.popen.pid)

    def wait_exit(self, timeout: float) -> None:
        """Until the child exits by itself; a BenchError if it does not, or fails."""
        try:
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise BenchError(f"{self.name} did not exit within {timeout:.0f} s") from None
        if self.popen.returncode:
            raise BenchError(
                f"{self.name} exited with status {self.popen.returncode}; its stderr ends "
                f"with:\n{self.stderr_tail()}"
            )

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after GRACE seconds; close the pipes and the stderr file."""
        try:
            if self.popen.poll() is None:
                self.popen.send_signal(signal.SIGTERM)
                try:
                    self.popen.wait(timeout=GRACE)
                except subprocess.TimeoutExpired:
                    self.popen.kill()
                    self.popen.wait(timeout=GRACE)
        finally:
            for pipe in (self.popen.stdin, self.popen.stdout):
                if pipe is not None:
                    with contextlib.suppress(OSError):
                        pipe.close()
            self.stderr_file.close()


def child_env() -> dict[str, str]:
    """The environment of a child: unbuffered, importing this very checkout's packages
    (wherever they were imported from)."""
    root = str(Path(__file__).resolve().parents[2])
    python_path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": python_path}


@contextlib.contextmanager
def processes() -> Iterator[list[Process]]:
    """A list to `start_process` processes into; each is stopped on the way out, the newest first."""
    started: list[Process] = []
    try:
        yield started
    finally:
        errors: list[BaseException] = []
        for process in reversed(started):
            try:
                process.stop()
            except BaseException as exc:
                errors.append(exc)
        if errors:
            raise errors[0]


def start_process(
    started: list[Process],
    name: str,
    module: str,
    args: Sequence[str],
    workdir: Path,
    *,
    stdin: bool = False,
) -> Process:
    """Start `python -m module *args` into `started` (see `processes`), its stderr in
    `workdir/<name>.stderr`; with `stdin`, a pipe for `Process.send_line`."""
    stderr_path = workdir / f"{name}.stderr"
    stderr_file = open(stderr_path, "a")  # noqa: SIM115  # closed by Process.stop
    try:
        popen = subprocess.Popen(
            [sys.executable, "-m", module, *args],
            stdin=subprocess.PIPE if stdin else None,
            stdout=subprocess.PIPE,
            stderr=stderr_file,
            env=child_env(),
        )
    except BaseException:
        stderr_file.close()
        raise
    process = Process(name, popen, stderr_path, stderr_file)
    started.append(process)
    return process


def synthetic_hub_args(
    db: Path,
    names: Sequence[str],
    *,
    deposit: int,
    block_interval: float,
    extra: Sequence[str] = (),
) -> list[str]:
    """The arguments of a `python -m hub.synthetic_hub` process: its store `db`, a channel with
    each of `names` (`deposit` on either side), a block clock of `block_interval` seconds."""
    return [
        "--db",
        str(db),
        "--agents",
        ",".join(names),
        "--deposit",
        str(deposit),
        "--hub-deposit",
        str(deposit),
        "--block-interval",
        str(block_interval),
        *extra,
    ]


def profile_args(profile_dir: Path | None, name: str) -> list[str]:
    """`--profile <profile_dir>/<name>.prof` for a process, or nothing without `profile_dir`."""
    return ["--profile", str(profile_dir / f"{name}.prof")] if profile_dir else []


@contextlib.contextmanager
def run_dirs(
    prefix: str, index: int, workdir: str | Path | None, profile_dir: str | Path | None
) -> Iterator[tuple[Path, Path | None]]:
    """(work directory, profile directory or None) of run `index`: `workdir/run<index>` (kept),
    else a temporary directory removed on the way out; `profile_dir/run<index>`, created."""
    with tempfile.TemporaryDirectory(prefix=prefix) as scratch:
        base = Path(workdir) / f"run{index}" if workdir is not None else Path(scratch)
        profile = Path(profile_dir) / f"run{index}" if profile_dir is not None else None
        if profile is not None:
            profile.mkdir(parents=True, exist_ok=True)
        yield base, profile


__all__ = [
    "GRACE",
    "START_TIMEOUT",
    "SYNTHETIC_HUB",
    "BenchError",
    "Process",
    "child_env",
    "process_cpu_seconds",
    "processes",
    "profile_args",
    "run_dirs",
    "start_process",
    "synthetic_hub_args",
]

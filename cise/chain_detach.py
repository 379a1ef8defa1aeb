"""`cise chain --detach` / `--stop`: the local dev chain as a background process a script can wait on.

`cise chain &` in a shell returns at once, before the node answers and before the network file is
written, so the next command of a script races it. `--detach` starts the same `cise chain` as a
child in its own session (its output in `<network dir>/chain.log`), waits until the network file
is written and its node answers with the channel manager's code, prints where it is and returns:
the next command finds a ready network. `--stop` ends it (SIGTERM, then SIGKILL after a bound).

A stale network file is removed before the child starts, so a file from an earlier run can never be
taken for the new node. This module only starts, waits for and stops the process; what the chain
does is `cise.chain_cmd`'s.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from cise.chain_cmd import ChainProfile, profile_argv
from cise.errors import CliError
from cise.network import NetworkFileError, load_network

READY_TIMEOUT = 90.0  # s: anvil start, deployment and minting on a busy 2-core machine
STOP_TIMEOUT = 20.0  # s before SIGKILL


def _pid_file(network_file: Path) -> Path:
    return network_file.with_name(network_file.name + ".pid")


def _log_file(network_file: Path) -> Path:
    return network_file.with_name("chain.log")


def _running_chain_pid(network_file: Path) -> int | None:
    """The pid of the detached chain recorded for this network file, if that process still runs."""
    try:
        pid = int(_pid_file(network_file).read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    return pid if b"chain" in cmdline and any(b"cise" in part for part in cmdline) else None


def _node_ready(network_file: Path) -> str | None:
    """The node's URL once the network file is complete and its node holds the manager's code."""
    try:
        network = load_network(network_file)
    except NetworkFileError:
        return None  # not written yet (or being written)
    from channels.chain.connection import Connection

    try:
        web3 = Connection.from_url(network.rpc_url, (), request_timeout=5.0).w3
        code = web3.eth.get_code(web3.to_checksum_address(network.deployment.manager))
    except Exception:  # any failure to answer means "not ready yet"
        return None
    return network.rpc_url if len(code) > 0 else None


def start_detached(
    port: int, network_file: str, settle_timeout: int, profile: ChainProfile | None = None
) -> int:
    """Start `cise chain` in the background (with `profile`'s options) and return once its
    network is ready."""
    path = Path(network_file)
    running = _running_chain_pid(path)
    if running is not None:
        raise CliError(
            f"a detached chain for {path} already runs (pid {running}); "
            f"stop it with `cise chain --stop --network-file {path}`"
        )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
        log = _log_file(path).open("wb")
    except OSError as exc:
        raise CliError(f"--network-file {path}: {exc.strerror}") from None
    argv = [sys.executable, "-m", "cise.main", "chain", "--port", str(port)]
    argv += ["--network-file", str(path), "--settle-timeout", str(settle_timeout)]
    argv += profile_argv(profile or ChainProfile())
    with log:
        child = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
        )
    _pid_file(path).write_text(f"{child.pid}\n")
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if child.poll() is not None:
            _pid_file(path).unlink(missing_ok=True)
            tail = _log_file(path).read_text(errors="replace").strip().splitlines()[-5:]
            raise CliError("the chain did not start:\n  " + "\n  ".join(tail))
        url = _node_ready(path)
        if url is not None:
            print(f"chain at {url} (pid {child.pid}); network file {path}; log {_log_file(path)}")
            print(f"stop it with: cise chain --stop --network-file {path}")
            return 0
        time.sleep(0.25)
    _terminate(child.pid)
    _pid_file(path).unlink(missing_ok=True)
    raise CliError(f"the chain was not ready within {READY_TIMEOUT:.0f} s (log: {_log_file(path)})")


def _terminate(pid: int) -> bool:
    """SIGTERM, then SIGKILL after STOP_TIMEOUT; True when it ended on SIGTERM."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return True
    deadline = time.monotonic() + STOP_TIMEOUT
    while time.monotonic() < deadline:
        if not Path(f"/proc/{pid}").exists() or _is_zombie(pid):
            return True
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    return False


def _is_zombie(pid: int) -> bool:
    try:
        return ") Z " in Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True


def stop_detached(network_file: str) -> int:
    """Stop the detached chain of this network file; an error when none runs."""
    path = Path(network_file)
    pid = _running_chain_pid(path)
    if pid is None:
        raise CliError(f"no detached chain runs for {path} (no live pid in {_pid_file(path)})")
    clean = _terminate(pid)
    _pid_file(path).unlink(missing_ok=True)
    print(
        f"chain (pid {pid}) stopped" + ("" if clean else f" by SIGKILL after {STOP_TIMEOUT:.0f} s")
    )
    return 0 if clean else 1

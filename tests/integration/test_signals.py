"""Every long-running `cise` command, started as a real process, ends on SIGINT (Ctrl-C) and on
SIGTERM with exit status 0, quietly (no traceback; one "stopped" line at most), within seconds:
`cise chain` (its anvil child stopped too), `hub serve`, `agent receive`, `watchtower serve`,
`api serve` and `asset run --source http`. And `agent receive` without `--seconds` serves until
stopped: still connected, and still paid, after more than a few seconds.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import pytest

from channels.core.types import Address, to_checksum
from channels.signer import LocalSigner
from cise.main import build_parser, main
from cise.network import load_network
from tests.integration.test_cli_channel import running_chain
from tests.integration.test_cli_hub import _cli

pytestmark = pytest.mark.node

HUB, HUB_STOPPED, TOWER, USER, MACHINE, ASSET_AGENT = 4, 3, 7, 5, 6, 8
START_S = 60.0  # a process's first line (py-evm imports, the node's checks) within this
STOP_S = 10.0  # stopped within this after the signal
SIGNALS = [signal.SIGINT, signal.SIGTERM]
TARIFF = '{"kind": "cycle", "price": 1000, "max_units": 1}'


@dataclass
class Running:
    """A `cise` child process; its stdout lines as they come (a reader thread), stderr in a file."""

    process: subprocess.Popen[str]
    stderr: IO[str]
    lines: list[str] = field(default_factory=list)

    def wait_line(self, marker: str, seconds: float = START_S) -> str:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for line in self.lines:
                if marker in line:
                    return line
            assert self.process.poll() is None, f"exited {self.process.returncode}: {self.err()}"
            time.sleep(0.05)
        raise AssertionError(f"no line with {marker!r} within {seconds} s: {self.err()}")

    def err(self) -> str:
        self.stderr.flush()
        self.stderr.seek(0)
        return self.stderr.read()

    def stop(self, sig: signal.Signals) -> tuple[int, float, str]:
        """Send `sig`; (exit status, seconds it took, stderr)."""
        started = time.monotonic()
        self.process.send_signal(sig)
        try:
            code = self.process.wait(timeout=STOP_S * 3)
        except subprocess.TimeoutExpired:
            code = -999
        return code, time.monotonic() - started, self.err()


@contextmanager
def spawn(argv: list[str], tmp: Path) -> Iterator[Running]:
    """`python -m cise.main *argv` until the block ends (then SIGKILLed if still running)."""
    stderr = (tmp / f"stderr-{time.monotonic_ns()}.txt").open("w+")
    process = subprocess.Popen(
        [sys.executable, "-m", "cise.main", *argv],
        stdout=subprocess.PIPE,
        stderr=stderr,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    running = Running(process, stderr)

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            running.lines.append(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        yield running
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=STOP_S)
        reader.join(timeout=STOP_S)
        stderr.close()


def assert_clean_stop(running: Running, sig: signal.Signals) -> None:
    code, seconds, err = running.stop(sig)
    assert code == 0, (sig, code, err)
    assert "Traceback" not in err, err
    assert len(err.strip().splitlines()) <= 1 and "stopped" in err, err
    assert seconds < STOP_S, seconds


@dataclass
class Net:
    file: Path
    data: Path
    addr: dict[int, str]
    asset: str


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    """A `cise chain` network (in a thread) with channels user -> hub -> machine and asset agent ->
    hub, and an asset."""
    tmp = tmp_path_factory.mktemp("signals")
    data = tmp / "data"
    with running_chain(tmp / "network.json", settle_timeout=20) as network_file:
        keys = load_network(network_file).dev_keys
        addr = {i: to_checksum(Address(LocalSigner(keys[i]).address)) for i in range(10)}

        def cli(account: int, *argv: str) -> int:
            return main(_cli(network_file, data, account, *argv))

        assert cli(USER, "channel", "open", addr[HUB], "--deposit", "1") == 0
        assert cli(HUB, "channel", "open", addr[MACHINE], "--deposit", "1") == 0
        assert cli(ASSET_AGENT, "channel", "open", addr[HUB], "--deposit", "1") == 0
        assert cli(0, "asset", "register", "signals-1", "--agent", addr[ASSET_AGENT],
                   "--split", f"{addr[MACHINE]}=1000000") == 0  # fmt: skip
        yield Net(network_file, data, addr, "signals-1")


@pytest.fixture(scope="module")
def hub_port(net: Net) -> Iterator[str]:
    """A hub serving for the tests of its clients (agents, the asset agent)."""
    with spawn(_cli(net.file, net.data, HUB, "hub", "serve"), net.data) as hub:
        line = hub.wait_line("listening on 127.0.0.1:")
        yield line.rsplit(":", 1)[1].strip()


def _port_answers(url: str) -> bool:
    host, port = url.removeprefix("http://").split(":")
    with socket.socket() as probe:
        probe.settimeout(1.0)
        return probe.connect_ex((host, int(port))) == 0


@pytest.mark.parametrize("sig", SIGNALS, ids=["SIGINT", "SIGTERM"])
def test_cise_chain_stops_cleanly_with_its_node(tmp_path: Path, sig: signal.Signals) -> None:
    argv = ["chain", "--port", "0", "--network-file", str(tmp_path / "network.json")]
    with spawn(argv, tmp_path) as chain:
        url = chain.wait_line("anvil at ").split()[2].rstrip(",")
        chain.wait_line("Ctrl-C stops the node")
        assert _port_answers(url)
        assert_clean_stop(chain, sig)
        assert not _port_answers(url), "the anvil child outlived cise chain"


@pytest.mark.parametrize("sig", SIGNALS, ids=["SIGINT", "SIGTERM"])
def test_hub_serve_stops_cleanly(net: Net, tmp_path: Path, sig: signal.Signals) -> None:
    with spawn(_cli(net.file, net.data, HUB_STOPPED, "hub", "serve"), tmp_path) as hub:
        hub.wait_line("listening on 127.0.0.1:")
        assert_clean_stop(hub, sig)


@pytest.mark.parametrize("sig", SIGNALS, ids=["SIGINT", "SIGTERM"])
def test_watchtower_serve_stops_cleanly(net: Net, tmp_path: Path, sig: signal.Signals) -> None:
    argv = _cli(net.file, net.data, TOWER, "watchtower", "serve", "--poll-interval", "0.1")
    with spawn(argv, tmp_path) as tower:
        tower.wait_line("listening on 127.0.0.1:")
        assert_clean_stop(tower, sig)


@pytest.mark.parametrize("sig", SIGNALS, ids=["SIGINT", "SIGTERM"])
def test_api_serve_stops_cleanly(net: Net, tmp_path: Path, sig: signal.Signals) -> None:
    argv = ["api", "serve", "--network", str(net.file), "--data-dir", str(net.data),
            "--port", "0"]  # fmt: skip
    with spawn(argv, tmp_path) as api:
        api.wait_line("api listening on")
        assert_clean_stop(api, sig)


@pytest.mark.parametrize("sig", SIGNALS, ids=["SIGINT", "SIGTERM"])
def test_agent_receive_stops_cleanly(
    net: Net, hub_port: str, tmp_path: Path, sig: signal.Signals
) -> None:
    hub_args = ["--hub", net.addr[HUB], "--hub-port", hub_port]
    with spawn(_cli(net.file, net.data, MACHINE, "agent", "receive", *hub_args), tmp_path) as agent:
        agent.wait_line("connected")
        assert_clean_stop(agent, sig)


@pytest.mark.parametrize("sig", SIGNALS, ids=["SIGINT", "SIGTERM"])
def test_asset_run_over_http_stops_cleanly(
    net: Net, hub_port: str, tmp_path: Path, sig: signal.Signals
) -> None:
    argv = _cli(net.file, net.data, ASSET_AGENT, "asset", "run", net.asset,
                "--hub", net.addr[HUB], "--hub-port", hub_port, "--tariff", TARIFF,
                "--source", "http", "--http-port", "0")  # fmt: skip
    with spawn(argv, tmp_path) as asset:
        asset.wait_line("listening")
        assert_clean_stop(asset, sig)


def test_agent_receive_serves_until_stopped_by_default(
    net: Net, hub_port: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    parser = build_parser()
    args = parser.parse_args(["agent", "receive", "--hub", net.addr[HUB], "--hub-port", "1"])
    assert args.seconds is None  # no time limit unless asked for
    hub_args = ["--hub", net.addr[HUB], "--hub-port", hub_port]
    with spawn(_cli(net.file, net.data, MACHINE, "agent", "receive", *hub_args), tmp_path) as agent:
        agent.wait_line("connected")
        time.sleep(5.0)  # longer than a short run; the old default ended it after 60 s
        assert agent.process.poll() is None
        capsys.readouterr()
        code = main(_cli(net.file, net.data, USER, "agent", "pay", *hub_args, net.addr[MACHINE],
                         "0.01", "--payment-id", str(os.getpid() % 1_000_000 + 1)))  # fmt: skip
        assert code == 0, capsys.readouterr()
        received = json.loads(agent.wait_line('"payer"', seconds=STOP_S))
        assert received["amount"] == 10_000 and received["payer"] == net.addr[USER]
        assert_clean_stop(agent, signal.SIGINT)


def test_api_serve_on_a_taken_port_is_a_clear_error(net: Net) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        run = subprocess.run(
            [sys.executable, "-m", "cise.main", "api", "serve", "--network", str(net.file),
             "--data-dir", str(net.data), "--port", str(port)],
            capture_output=True, text=True, timeout=START_S,
        )  # fmt: skip
    assert run.returncode == 2 and "Traceback" not in run.stderr, run.stderr
    assert f"cannot serve on 127.0.0.1:{port}" in run.stderr, run.stderr


def test_hub_serve_on_a_taken_port_is_a_clear_error(net: Net) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        run = subprocess.run(
            [sys.executable, "-m", "cise.main",
             *_cli(net.file, net.data, HUB_STOPPED, "hub", "serve", "--port", str(port))],
            capture_output=True, text=True, timeout=START_S,
        )  # fmt: skip
    assert run.returncode == 2 and "Traceback" not in run.stderr, run.stderr
    assert "hub cannot listen" in run.stderr and "in use" in run.stderr, run.stderr

"""One process owns an account's store, through the real `cise` processes on a `cise chain` network.

`cise hub serve --account 4` and `cise agent receive --account 6` run as processes. A second
command that would write the hub's log (`cise channel --account 4 open ...`) is refused with the
running hub named, exits non-zero and changes nothing on chain; `cise channel --account 6 status`
reads the agent's log beside it and prints its channel. Both services keep serving: a payment is
routed afterwards, and the status shows it. (Before the ownership lock, both commands wrote the
log under the running service, which then died on its next commit with `UNIQUE constraint
failed: log_groups.first_id`.) Then the hub is SIGKILLed and a new `cise hub serve` starts on the
same files: the OS released the lock with the dead process.
"""

from __future__ import annotations

import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from channels.chain.client import Web3ChainClient
from channels.chain.connection import Connection
from channels.core.types import Address, to_checksum
from channels.signer import LocalSigner
from cise.main import main
from cise.network import load_network
from tests.integration.test_cli_channel import running_chain
from tests.integration.test_cli_hub import _cli

pytestmark = pytest.mark.node

HUB, USER, MACHINE = 4, 5, 6
CISE = str(Path(sys.executable).with_name("cise"))  # the installed command, as a person runs it
WAIT = 60.0


class Service:
    """A `cise` process whose stdout lines are read by a thread (so every wait has a timeout)."""

    def __init__(self, argv: list[str]) -> None:
        self.process = subprocess.Popen(
            [CISE, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self.stderr = ""
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)

    def wait_for(self, text: str, timeout: float = WAIT) -> str:
        """The first new stdout line containing `text`."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                line = self.lines.get(timeout=max(left, 0.01))
            except queue.Empty:
                raise AssertionError(
                    f"no line with {text!r} within {timeout:g} s; seen {self.seen}; "
                    f"stderr: {self.stop()}"
                ) from None
            self.seen.append(line)
            if text in line:
                return line

    def stop(self) -> str:
        """Stop it (SIGTERM, then SIGKILL), and return its stderr."""
        if self.process.poll() is None:
            self.process.terminate()
        try:
            _, err = self.process.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            _, err = self.process.communicate(timeout=15)
        self.stderr += err or ""
        return self.stderr


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CISE, *argv], capture_output=True, text=True, timeout=120)


@contextmanager
def _services() -> Iterator[list[Service]]:
    started: list[Service] = []
    try:
        yield started
    finally:
        for service in started:
            service.stop()


def test_a_second_writer_is_refused_and_status_reads_beside_the_running_services(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    with running_chain(tmp_path / "network.json", settle_timeout=20) as network_file:
        network = load_network(network_file)
        keys = network.dev_keys
        hub, user, machine = (Address(LocalSigner(keys[i]).address) for i in (HUB, USER, MACHINE))
        hub_client = Web3ChainClient.from_key(
            Connection.from_url(network.rpc_url, keys), network.deployment, keys[HUB]
        )

        def cli(account: int, *argv: str) -> list[str]:
            return _cli(network_file, data, account, *argv)

        assert main(cli(USER, "channel", "open", to_checksum(hub), "--deposit", "10")) == 0
        assert main(cli(HUB, "channel", "open", to_checksum(machine), "--deposit", "1")) == 0
        capsys.readouterr()
        with _services() as services:
            hub_service = Service(cli(HUB, "hub", "serve"))
            services.append(hub_service)
            port = hub_service.wait_for("listening on 127.0.0.1:").rsplit(":", 1)[1].strip()
            hub_args = ["--hub", to_checksum(hub), "--hub-port", port]
            receiver = Service(cli(MACHINE, "agent", "receive", *hub_args, "--seconds", "120"))
            services.append(receiver)
            receiver.wait_for("connected")

            # a second writer of the hub's log: refused, naming the hub, nothing done on chain
            channels_before = hub_client.channel_count()
            wallet_before = hub_client.token_balance(hub)
            refused = _run(cli(HUB, "channel", "open", to_checksum(user), "--deposit", "1"))
            assert refused.returncode != 0, refused.stdout + refused.stderr
            assert f"is in use by pid {hub_service.process.pid}: cise hub serve" in refused.stderr
            assert "--account 4" in refused.stderr and "Traceback" not in refused.stderr
            assert hub_client.channel_count() == channels_before
            assert hub_client.token_balance(hub) == wallet_before

            # a reader of the agent's log: works while the agent runs
            status = _run(cli(MACHINE, "channel", "status"))
            assert status.returncode == 0, status.stderr
            assert f"with {to_checksum(hub)}: open" in status.stdout, status.stdout

            # the hub's settlement file is read beside it too
            settle = _run(cli(HUB, "settle", "status", "--json"))
            assert settle.returncode == 0 and to_checksum(hub) in settle.stdout, settle.stderr

            # both services still serve: a payment goes through the hub to the agent
            paid = _run(
                cli(USER, "agent", "pay", *hub_args, to_checksum(machine), "0.40",
                    "--payment-id", "1")
            )  # fmt: skip
            assert paid.returncode == 0 and '"status": "completed"' in paid.stdout, paid.stderr
            assert '"payment_id": 1' in receiver.wait_for('"payer"')
            deadline = time.monotonic() + WAIT
            while (
                "yours 0.400000 €" not in (shown := _run(cli(MACHINE, "channel", "status"))).stdout
            ):
                assert time.monotonic() < deadline, shown.stdout + shown.stderr
                time.sleep(0.5)
            assert hub_service.process.poll() is None and receiver.process.poll() is None

            # the hub dies hard; a new hub on the same files starts: the OS released the lock
            hub_service.process.send_signal(signal.SIGKILL)
            assert hub_service.process.wait(timeout=30) == -signal.SIGKILL
            restarted = Service(cli(HUB, "hub", "serve"))
            services.append(restarted)
            restarted.wait_for("listening on 127.0.0.1:")
        for service in (hub_service, receiver, restarted):
            assert "IntegrityError" not in service.stderr, service.stderr
            assert "Traceback" not in service.stderr, service.stderr

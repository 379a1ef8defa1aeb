"""The CISE processes that take input from anyone on the machine, started as in production, for the
hostile-input tests: `cise hub serve --api-port 0` (the API inside the hub process), `cise asset run
... --source http` (the meter endpoint, `/events` and `/service`) and `cise api serve`, on a
`cise chain` network (anvil). Also a small HTTP client that sends exactly the bytes it is given.

Every process is stopped when the block ends; every wait is bounded.
"""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from channels.codec.eip712 import Domain
from channels.core.types import Address, to_checksum
from channels.signer import LocalSigner
from cise.main import main
from cise.network import load_network
from tests.integration.test_cli_channel import running_chain
from tests.integration.test_cli_hub import _cli, _spawn, _stop

OPERATOR, HUB, USER, MACHINE, MAKER, SERVICER = 0, 4, 5, 6, 7, 8
TARIFF = '{"kind": "cycle", "price": 1000, "max_units": 5}'
ASSET = "washer-hostile"
TIMEOUT_S = 20.0


@dataclass
class Service:
    """One running process and the base address of its HTTP endpoint."""

    name: str
    process: subprocess.Popen[str]
    port: int

    def alive(self) -> bool:
        return self.process.poll() is None

    def request(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        """One request on a fresh connection; (status, JSON answer or raw bytes)."""
        fields = {"content-type": "application/json", **(headers or {})}
        fields = {k: v for k, v in fields.items() if v}  # "" removes a default header
        head = f"{method} {path} HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n"
        head += f"content-length: {len(body)}\r\n" if method == "POST" else ""
        head += "".join(f"{k}: {v}\r\n" for k, v in fields.items())
        with socket.create_connection(("127.0.0.1", self.port), timeout=TIMEOUT_S) as sock:
            sock.sendall(head.encode() + b"\r\n" + body)
            return read_response(sock)


def read_response(sock: socket.socket) -> tuple[int, Any]:
    """Read one HTTP/1.1 response (the server closes or sends content-length) from `sock`."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before a response: {data!r}")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    length = None
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    while length is None or len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    try:
        return status, json.loads(rest)
    except ValueError:
        return status, rest


@dataclass
class HostileEnv:
    """The running processes, and what a valid request to each looks like."""

    meter: Service
    hub_api: Service
    api: Service
    user: str  # a user's address, lower case, for valid meter events
    domain: Domain  # the network's EIP-712 domain, for signed API requests

    @property
    def services(self) -> list[Service]:
        return [self.meter, self.hub_api, self.api]


def _first_line(process: subprocess.Popen[str], marker: str) -> str:
    """The first of the next few lines the process prints that holds `marker`."""
    assert process.stdout is not None
    seen = []
    for _ in range(10):
        line = process.stdout.readline()
        if marker in line:
            return line
        seen.append(line)
        if not line:
            break
    raise AssertionError(f"expected {marker!r}, got {seen!r}: {_stop(process)[1]}")


@contextlib.contextmanager
def open_hostile_env(folder: Path) -> Iterator[HostileEnv]:
    """A network with a hub (serving the API too), an asset agent serving HTTP and `cise api
    serve`, all as subprocesses of `cise`; stopped at the end of the block."""
    data = folder / "data"
    with running_chain(folder / "network.json", settle_timeout=20) as network_file:
        network = load_network(network_file)
        addr = {i: to_checksum(Address(LocalSigner(network.dev_keys[i]).address)) for i in range(9)}

        def cli(account: int, *argv: str) -> None:
            code = main(_cli(network_file, data, account, *argv))
            assert code == 0, argv

        cli(HUB, "channel", "open", addr[MACHINE], "--deposit", "1")
        split = f"{addr[MAKER]}=600000,{addr[SERVICER]}=400000"
        cli(OPERATOR, "asset", "register", ASSET, "--agent", addr[MACHINE], "--split", split)
        processes: list[subprocess.Popen[str]] = []
        try:
            hub = _spawn(_cli(network_file, data, HUB, "hub", "serve", "--api-port", "0"))
            processes.append(hub)
            hub_port = _first_line(hub, "listening on 127.0.0.1:").rsplit(":", 1)[1].strip()
            hub_api_line = _first_line(hub, "api listening on http://127.0.0.1:")
            hub_api_port = int(hub_api_line.rsplit(":", 1)[1].strip().rstrip("/"))
            asset = _spawn(
                _cli(network_file, data, MACHINE, "asset", "run", ASSET, "--hub", addr[HUB],
                     "--hub-port", hub_port, "--tariff", TARIFF, "--users", addr[USER],
                     "--source", "http", "--seconds", "600")
            )  # fmt: skip
            processes.append(asset)
            listening = json.loads(_first_line(asset, "listening"))["listening"]
            api = _spawn(["api", "serve", "--network", str(network_file), "--data-dir", str(data),
                          "--port", "0"])  # fmt: skip
            processes.append(api)
            api_line = _first_line(api, "api listening on http://127.0.0.1:")
            yield HostileEnv(
                meter=Service("cise asset run --source http", asset, int(listening.split(":")[1])),
                hub_api=Service("cise hub serve --api-port", hub, hub_api_port),
                api=Service("cise api serve", api, int(api_line.rsplit(":", 1)[1])),
                user=addr[USER].lower(),
                domain=Domain(network.deployment.chain_id, network.deployment.manager),
            )
        finally:
            for process in reversed(processes):
                _stop(process)

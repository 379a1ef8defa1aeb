"""The services on other hosts, over TLS, as real processes on a `cise chain --founders 7` network.

`hub serve --host 127.0.0.2 --tls` (members only); a payee `agent receive --hub-host 127.0.0.2
--tls` and a payer `agent pay --hub-host 127.0.0.2 --tls` complete a payment through it. Refused,
each with a clear reason, no traceback, while the hub keeps serving: a plain agent against the TLS
hub; an agent whose `--hub` names another address than the hub's (both named); a non-member
(dev account 8: not a founder), logged by the hub. `watchtower serve --host 127.0.0.3 --tls`
takes the payee's proof from `watchtower hire --tower-port 127.0.0.3:PORT --tls`.
`asset run --hub-host 127.0.0.2 --tls --host 127.0.0.5` serves HTTPS with the certificate it
prints; `api serve --host 127.0.0.4 --tls` too.
"""

from __future__ import annotations

import http.client
import json
import ssl
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from channels.core.types import Address, to_checksum
from channels.signer import LocalSigner
from cise.chain_cmd import ChainProfile, run_chain
from cise.main import main
from cise.network import load_network
from tests.integration.test_cli_hub import _cli
from tests.integration.test_signals import spawn

pytestmark = pytest.mark.node

ASSET_AGENT, TOWER, HUB, USER, MACHINE, OUTSIDER = 2, 3, 4, 5, 6, 8
TARIFF = '{"kind": "cycle", "price": 1000, "max_units": 1}'
FOUNDERS = 7  # dev accounts 0..6 are members; 7.. are not


@dataclass
class Net:
    file: Path
    data: Path
    tmp: Path
    addr: dict[int, str]


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    """`cise chain --founders 7` in a thread, with channels user -> hub -> machine."""
    tmp = tmp_path_factory.mktemp("tls")
    path, stop = tmp / "network.json", threading.Event()
    thread = threading.Thread(
        target=run_chain,
        args=(0, str(path), stop, 20, ChainProfile(founders=FOUNDERS)),
        daemon=True,
    )
    thread.start()
    try:
        for _ in range(600):
            if path.exists() or not thread.is_alive():
                break
            stop.wait(0.1)
        assert path.exists(), "cise chain did not write its network file"
        keys = load_network(path).dev_keys
        addr = {i: to_checksum(Address(LocalSigner(keys[i]).address)) for i in range(10)}
        data = tmp / "data"
        assert main(_cli(path, data, USER, "channel", "open", addr[HUB], "--deposit", "5")) == 0
        assert main(_cli(path, data, HUB, "channel", "open", addr[MACHINE], "--deposit", "5")) == 0
        assert (
            main(_cli(path, data, ASSET_AGENT, "channel", "open", addr[HUB], "--deposit", "1")) == 0
        )
        assert main(_cli(path, data, 0, "asset", "register", "tls-1", "--agent", addr[ASSET_AGENT],
                         "--split", f"{addr[MACHINE]}=1000000")) == 0  # fmt: skip
        yield Net(path, data, tmp, addr)
    finally:
        stop.set()
        thread.join(timeout=30)


def _port(line: str, host: str) -> str:
    assert f"listening on {host}:" in line, line
    return line.rsplit(":", 1)[1].split()[0].strip()


def test_agents_pay_through_a_tls_hub_and_hire_a_tls_tower(
    net: Net, capsys: pytest.CaptureFixture[str]
) -> None:
    def cli(account: int, *argv: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main(_cli(net.file, net.data, account, *argv))
        out, err = capsys.readouterr()
        return code, out, err

    hub_argv = _cli(net.file, net.data, HUB, "hub", "serve", "--host", "127.0.0.2", "--tls")
    with spawn(hub_argv, net.tmp) as hub:
        port = _port(hub.wait_line("listening on"), "127.0.0.2")
        to_hub = ["--hub", net.addr[HUB], "--hub-host", "127.0.0.2", "--hub-port", port]
        receive = ["agent", "receive", *to_hub, "--tls", "--seconds", "90"]
        with spawn(_cli(net.file, net.data, MACHINE, *receive), net.tmp) as payee:
            payee.wait_line("connected")
            pay = ["agent", "pay", *to_hub, net.addr[MACHINE], "0.25"]
            code, out, err = cli(USER, *pay, "--tls", "--payment-id", "1")
            assert code == 0, (out, err, hub.err())
            assert json.loads(out.strip().splitlines()[-1])["status"] == "completed"
            payee.wait_line('"payment_id": 1', seconds=30)

            # plain against TLS: refused at once, saying so
            code, out, err = cli(USER, *pay, "--payment-id", "2")
            assert code == 2 and "Traceback" not in err, (out, err)
            assert "the hub on 127.0.0.2:" in err and "TLS" in err, err

            # --hub names another address than the hub's: both named
            wrong = ["--hub", net.addr[MACHINE], *to_hub[2:], "--tls"]
            code, out, err = cli(USER, "agent", "pay", *wrong, net.addr[MACHINE], "0.25",
                                 "--payment-id", "3")  # fmt: skip
            assert code == 2 and "Traceback" not in err, (out, err)
            assert net.addr[MACHINE].lower() in err.lower(), err
            assert net.addr[HUB].lower() in err.lower(), err

            # a non-member: refused by the hub with the reason, and a log line there
            code, out, err = cli(OUTSIDER, "agent", "receive", *to_hub, "--tls", "--seconds", "5")
            assert code == 2 and "Traceback" not in err, (out, err)
            assert "not admitted here (not a member)" in err, err
            assert "not admitted here (not a member)" in hub.err(), hub.err()

            # the hub still serves its members
            code, out, err = cli(USER, *pay, "--tls", "--payment-id", "4")
            assert code == 0, (out, err, hub.err())
            payee.wait_line('"payment_id": 4', seconds=30)
        _check_tower(net, cli)
        _check_asset_agent(net, to_hub)
        assert hub.process.poll() is None, hub.err()


def _check_tower(net: Net, cli: Callable[..., tuple[int, str, str]]) -> None:
    """`watchtower serve --host 127.0.0.3 --tls`; the payee hires it over TLS."""
    tower_argv = _cli(net.file, net.data, TOWER, "watchtower", "serve", "--host", "127.0.0.3",
                      "--tls")  # fmt: skip
    with spawn(tower_argv, net.tmp) as tower:
        where = "127.0.0.3:" + _port(tower.wait_line("listening on"), "127.0.0.3")
        hire = ["watchtower", "hire", "--tower", net.addr[TOWER], "--tower-port", where]
        code, out, err = cli(MACHINE, *hire, "--tls")
        assert code == 0, (out, err, tower.err())
        assert [json.loads(line)["status"] for line in out.strip().splitlines()] == ["guarded"]
        code, out, err = cli(MACHINE, *hire)
        assert code == 2 and "Traceback" not in err and f"tower on {where}" in err, (out, err)
        assert tower.process.poll() is None, tower.err()


def _check_asset_agent(net: Net, to_hub: list[str]) -> None:
    """`asset run --hub-host 127.0.0.2 --tls --source http --host 127.0.0.5`: it reaches the TLS
    hub, then serves HTTPS with the certificate it prints (pinned by the client)."""
    argv = _cli(net.file, net.data, ASSET_AGENT, "asset", "run", "tls-1", *to_hub, "--tls",
                "--tariff", TARIFF, "--source", "http", "--host", "127.0.0.5", "--http-port", "0")  # fmt: skip
    with spawn(argv, net.tmp) as asset:
        listening = json.loads(asset.wait_line('"listening"'))
        assert listening["listening"].startswith("127.0.0.5:"), listening
        context = ssl.create_default_context(cafile=listening["certificate"])
        context.check_hostname = False
        url = f"https://{listening['listening']}/health"
        with urllib.request.urlopen(url, timeout=30, context=context) as answer:
            assert json.loads(answer.read()) == {"ok": True}
        assert asset.process.poll() is None, asset.err()


def test_api_serves_https_off_127_0_0_1_with_its_certificate(net: Net) -> None:
    """`api serve --host 127.0.0.4 --tls --tls-account 4`: https with the hub's certificate,
    which a client pins as its only CA; plain HTTP there gets no answer."""
    argv = ["api", "serve", "--network", str(net.file), "--data-dir", str(net.data),
            "--host", "127.0.0.4", "--port", "0", "--tls", "--tls-account", str(HUB)]  # fmt: skip
    with spawn(argv, net.tmp) as api:
        url = api.wait_line("api listening on").split()[-1]
        assert url.startswith("https://127.0.0.4:"), url
        certificate = api.wait_line("api certificate").split(" ", 2)[2].strip()
        assert certificate == str(net.data / f"tls-{net.addr[HUB].lower()}.crt")
        context = ssl.create_default_context(cafile=certificate)
        context.check_hostname = False
        with urllib.request.urlopen(f"{url}/api/network", timeout=30, context=context) as answer:
            assert answer.status == 200
            assert json.loads(answer.read())["chain_id"]
        with pytest.raises((urllib.error.URLError, http.client.HTTPException, OSError)):
            urllib.request.urlopen("http" + url.removeprefix("https") + "/api/network", timeout=5)
        assert api.process.poll() is None, api.err()

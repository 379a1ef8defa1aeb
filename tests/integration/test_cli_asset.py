"""`cise asset register|run` on a `cise chain` network (anvil), end to end through the CLI.

The operator registers a washing machine with a two-way split; a hub, the user's agent (paying the
machine's charges) and the two beneficiaries' agents run as processes; `cise asset run` takes
meter events as JSON lines on stdin (good, duplicate and bad ones), charges the user, pays the
shares, anchors its ledger; `cise ledger verify` then checks the ledger against the chain and what
a beneficiary received.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from channels.core.types import Address, to_checksum
from channels.signer import LocalSigner
from cise.main import main
from cise.network import load_network
from tests.integration.test_cli_channel import running_chain
from tests.integration.test_cli_hub import _cli, _spawn, _stop

pytestmark = pytest.mark.node

OPERATOR, HUB, USER, MACHINE, MAKER, SERVICER = 0, 4, 5, 6, 7, 8
TARIFF = '{"kind": "cycle", "price": 1234567, "max_units": 1}'


def test_asset_runs_from_the_cli_and_its_ledger_verifies(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    with running_chain(tmp_path / "network.json", settle_timeout=20) as network_file:
        keys = load_network(network_file).dev_keys
        addr = {i: to_checksum(Address(LocalSigner(keys[i]).address)) for i in range(9)}

        def cli(account: int, *argv: str) -> int:
            return main(_cli(network_file, data, account, *argv))

        assert cli(USER, "channel", "open", addr[HUB], "--deposit", "10") == 0
        for partner in (MACHINE, MAKER, SERVICER):
            assert cli(HUB, "channel", "open", addr[partner], "--deposit", "5") == 0
        split = f"{addr[MAKER]}=600000,{addr[SERVICER]}=400000"
        capsys.readouterr()
        assert cli(OPERATOR, "asset", "register", "washer-1", "--agent", addr[MACHINE],
                   "--split", split) == 0  # fmt: skip
        asset_id = json.loads(capsys.readouterr().out)["asset"]
        assert cli(OPERATOR, "asset", "register", "washer-1", "--agent", addr[MACHINE],
                   "--split", split) == 2  # fmt: skip
        assert "AssetRegistryAlreadyRegistered" in capsys.readouterr().err

        hub = _spawn(_cli(network_file, data, HUB, "hub", "serve", "--fee-flat", "0",
                          "--fee-ppm", "0"))  # fmt: skip
        peers: list[subprocess.Popen[str]] = []
        try:
            assert hub.stdout is not None
            line = hub.stdout.readline()
            assert "listening on 127.0.0.1:" in line, line + _stop(hub)[1]
            hub_args = ["--hub", addr[HUB], "--hub-port", line.rsplit(":", 1)[1].strip()]
            user_args = ["--accept-charges-from", addr[MACHINE], "--max-charge", "2"]
            for account, extra in ((USER, user_args), (MAKER, []), (SERVICER, [])):
                peer = _spawn(
                    _cli(network_file, data, account, "agent", "receive", *hub_args,
                         "--seconds", "120", *extra)
                )  # fmt: skip
                peers.append(peer)
                assert peer.stdout is not None and "connected" in peer.stdout.readline()
            now = int(time.time())
            user = addr[USER].lower()
            events = [
                {"event_id": "c1", "user": user, "units": 1, "at": now - 30, "prepaid": True},
                {"event_id": "c2", "user": user, "units": 1, "at": now - 20},
                {"event_id": "c1", "user": user, "units": 1, "at": now - 30, "prepaid": True},
                {"event_id": "c3", "user": user, "units": 7, "at": now - 10},
                {"event_id": "c4", "user": addr[MAKER].lower(), "units": 1, "at": now},
            ]
            lines = [json.dumps(e) for e in events] + ["{not json"]
            run = subprocess.run(
                [sys.executable, "-m", "cise.main",
                 *_cli(network_file, data, MACHINE, "asset", "run", asset_id, *hub_args,
                       "--tariff", TARIFF, "--users", addr[USER], "--source", "stdin")],
                input="\n".join(lines) + "\n", capture_output=True, text=True, timeout=120,
            )  # fmt: skip
        finally:
            _stop(hub)
            for peer in peers:
                _stop(peer)
        assert run.returncode == 0, run.stderr
        out = [json.loads(line) for line in run.stdout.splitlines()]
        outcomes = [o for o in out if "status" in o]
        assert [o["status"] for o in outcomes] == [
            "charged", "accepted", "charged", "rejected", "rejected", "rejected",
        ]  # fmt: skip
        assert outcomes[2]["seq"] == outcomes[0]["seq"] == 1  # the duplicate, answered as before
        assert "above the maximum" in outcomes[3]["reason"]
        assert "unknown user" in outcomes[4]["reason"]
        assert "line 6" in outcomes[5]["reason"]
        summary = out[-1]["summary"]
        assert summary["ledger_head"] == 2 and summary["anchored_to"] == 2
        ledger = data / f"asset-{asset_id[2:18]}-ledger.sqlite"
        capsys.readouterr()
        code = main(["ledger", "verify", asset_id, "--ledger", str(ledger),
                     "--network-file", str(network_file), "--beneficiary", addr[MAKER],
                     "--store", str(data / f"party-{addr[MAKER]}.sqlite")])  # fmt: skip
        report = capsys.readouterr().out
        assert code == 0, report
        assert "ledger verified" in report


def test_servicers_record_events_over_http_and_the_history_shows_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    with running_chain(tmp_path / "network.json", settle_timeout=20) as network_file:
        keys = load_network(network_file).dev_keys
        addr = {i: to_checksum(Address(LocalSigner(keys[i]).address)) for i in range(10)}

        def cli(account: int, *argv: str) -> int:
            return main(_cli(network_file, data, account, *argv))

        assert cli(HUB, "channel", "open", addr[MACHINE], "--deposit", "1") == 0
        split = f"{addr[MAKER]}=600000,{addr[SERVICER]}=400000"
        assert cli(OPERATOR, "asset", "register", "washer-2", "--agent", addr[MACHINE],
                   "--split", split) == 0  # fmt: skip
        hub = _spawn(_cli(network_file, data, HUB, "hub", "serve"))
        asset = None
        try:
            assert hub.stdout is not None
            line = hub.stdout.readline()
            hub_args = ["--hub", addr[HUB], "--hub-port", line.rsplit(":", 1)[1].strip()]
            asset = _spawn(
                _cli(network_file, data, MACHINE, "asset", "run", "washer-2", *hub_args,
                     "--tariff", TARIFF, "--source", "http", "--seconds", "60")
            )  # fmt: skip
            assert asset.stdout is not None
            listening = json.loads(asset.stdout.readline())["listening"]
            url = f"http://{listening}"
            capsys.readouterr()
            now = int(time.time())

            def service(account: int, event_id: str, action: str, *extra: str) -> int:
                return cli(account, "asset", "service", "washer-2", "--url", url,
                           "--event-id", event_id, "--action", action, "--time", str(now),
                           *extra)  # fmt: skip

            assert service(SERVICER, "job-1", "repair", "--part", "DP-220",
                           "--details", "drain pump replaced") == 0  # fmt: skip
            assert json.loads(capsys.readouterr().out)["seq"] == 1
            assert service(9, "job-2", "inspection") == 1  # not in the split, not admitted
            assert "neither a beneficiary" in capsys.readouterr().out
            assert service(SERVICER, "job-3", "part replaced") == 2  # no part id
            assert "part_id" in capsys.readouterr().err
        finally:
            if asset is not None:
                _stop(asset)
            _stop(hub)
        ledger = data / f"asset-{load_asset_id('washer-2')}-ledger.sqlite"
        capsys.readouterr()
        assert main(["asset", "history", "washer-2", "--ledger", str(ledger),
                     "--network", str(network_file)]) == 0  # fmt: skip
        out = " ".join(capsys.readouterr().out.split())
        assert "repair (DP-220)" in out and "registered by operator" in out


def load_asset_id(name: str) -> str:
    from channels.codec.keccak import keccak

    return keccak(name.encode()).hex()[:16]

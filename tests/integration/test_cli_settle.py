"""`cise settle run|status|history` against a running `cise hub serve` on anvil, end to end.

A user pays a machine through the hub (all separate processes); `cise settle run` asks the hub
for a round; the machine's earnings land in its internal balance on the channel manager in one
batch transaction, the user's prepaid deposit stays in its channel, the offline user is reported
as not signing the hub's own withdraw, and `status`/`history` show the round. Bad arguments are refused with a clear error and change nothing.
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from channels.chain.client import Web3ChainClient
from channels.chain.connection import Connection
from channels.core.types import Address, to_checksum
from channels.signer import LocalSigner
from cise.main import main
from cise.network import load_network
from tests.integration.test_cli_channel import running_chain
from tests.integration.test_cli_hub import _cli, _spawn, _stop

pytestmark = pytest.mark.node


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=30) as answer:
        return json.loads(answer.read())


HUB, USER, MACHINE = 4, 5, 6


def test_settle_run_moves_the_machines_earnings_on_chain_and_reports_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    with running_chain(tmp_path / "network.json", settle_timeout=20) as network_file:
        network = load_network(network_file)
        keys = network.dev_keys
        hub, user, machine = (Address(LocalSigner(keys[i]).address) for i in (HUB, USER, MACHINE))
        client = Web3ChainClient.from_key(Connection.from_url(network.rpc_url, keys),
                                          network.deployment, keys[HUB])  # fmt: skip

        def cli(account: int, *argv: str) -> tuple[int, str, str]:
            capsys.readouterr()
            code = main(_cli(network_file, data, account, *argv))
            captured = capsys.readouterr()
            return code, captured.out, captured.err

        assert cli(USER, "channel", "open", to_checksum(hub), "--deposit", "10")[0] == 0
        assert cli(HUB, "channel", "open", to_checksum(machine), "--deposit", "1")[0] == 0
        code, _, err = cli(HUB, "settle", "run", "--wait", "1")
        assert code == 2 and "no settlement record yet" in err  # no hub has run here
        hub_process = _spawn(
            _cli(network_file, data, HUB, "hub", "serve", "--settle-every", "3600",
                 "--settle-collect", "10", "--settle-min", "0.000001",
                 "--liquidity-target", "0.5", "--api-port", "0")
        )  # fmt: skip
        receiver = None
        try:
            assert hub_process.stdout is not None
            line = hub_process.stdout.readline()
            assert "listening on 127.0.0.1:" in line, line + _stop(hub_process)[1]
            assert "settlement every 3600 s" in hub_process.stdout.readline()
            api_line = hub_process.stdout.readline()
            assert "api listening on http://127.0.0.1:" in api_line, api_line
            api = api_line.rsplit(" ", 1)[1].strip()
            hub_args = ["--hub", to_checksum(hub), "--hub-port", line.rsplit(":", 1)[1].strip()]
            receiver = _spawn(
                _cli(network_file, data, MACHINE, "agent", "receive", *hub_args, "--seconds", "90")
            )
            assert receiver.stdout is not None
            assert "connected" in receiver.stdout.readline()
            for payment_id in (1, 2):
                code, out, err = cli(USER, "agent", "pay", *hub_args, to_checksum(machine),
                                     "0.30", "--payment-id", str(payment_id))  # fmt: skip
                assert code == 0, out + err
            stats = _get(api + "api/stats")  # the hub's dashboard, live from the hub process
            assert stats["live"] and stats["payments"] == 2
            channels = {c["channel_id"]: c for c in _get(api + "api/channels")["channels"]}
            assert channels[2]["capacity1_units"] is not None  # the hub -> machine channel
            assert sorted((channels[2]["capacity1_units"], channels[2]["capacity2_units"])) == [
                400_000, 600_000]  # fmt: skip
            code, out, err = cli(HUB, "settle", "run", "--wait", "90", "--json")
            summary = json.loads(out)
            # the user's agent is not running (`agent pay` exits): it cannot co-sign the hub's
            # withdraw of its surplus in their channel, so the round is partial and says why
            assert code == 1 and summary["status"] == "partial", out + err
            assert summary["unsigned_channels"] == [1]
            assert summary["to_counterparties"] == "€0.600000"
            assert summary["transactions"][0]["status"] == "applied"
            assert summary["gas_used"] > 0
            assert client.balance_of(machine) == 600_000  # the machine's earnings, on chain
            assert client.balance_of(user) == 0  # the payer's prepaid deposit stayed put
            code, out, _ = cli(HUB, "settle", "history", "--json")
            assert code == 0 and json.loads(out)["rounds"][0]["round"] == summary["round"]
            code, out, _ = cli(HUB, "settle", "status", "--json")
            status = json.loads(out)
            assert code == 0 and status["hub_running"]
            [missing] = status["not_signing"]
            assert (missing["channel"], missing["partner"]) == (1, to_checksum(user))
            assert status["last_round"]["round"] == summary["round"]
            assert status["hub"] == to_checksum(hub)
            code, out, _ = cli(HUB, "settle", "history")  # the table form
            assert code == 0 and "settlement rounds" in out
            rounds = _get(api + "api/settlement")["rounds"]
            assert [r["round"] for r in rounds] == [summary["round"]]
            code, _, err = cli(HUB, "settle", "run", "--wait", "0")
            assert code == 2 and "--wait must be positive" in err
        finally:
            _, hub_err = _stop(hub_process)
            if receiver is not None:
                _stop(receiver)
        assert "Traceback" not in hub_err, hub_err

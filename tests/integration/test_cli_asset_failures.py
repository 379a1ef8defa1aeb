"""`cise asset run|status` and `cise ledger verify` make a share that is not paid visible, and a
restart pays it, through the real processes on a `cise chain` network (anvil).

The README's washing machine: the hub charges its default fee, the machine deposited nothing in
its channel with the hub, so every cent the user paid is owed onward as shares and the machine has
no money of its own for the routing fees. Run 1 with no fee float (`--fee-float 0`): a share fails
for lack of capacity, `asset run` exits 1 naming it, `ledger verify` (without --beneficiary) fails
naming the entry, beneficiary, amount and reason, `asset status` shows it. Run 2 with the default
float: the agent deposits its float and pays the share at once with a fresh payment id (the one
that failed is never tried again), so verify passes.
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
TARIFF = '{"kind": "cycle", "price": 1990000, "max_units": 1}'  # the README's


def test_an_unpaid_share_is_visible_and_a_restart_pays_it_with_a_fresh_id(
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
            assert cli(HUB, "channel", "open", addr[partner], "--deposit", "10") == 0
        split = f"{addr[MAKER]}=600000,{addr[SERVICER]}=400000"
        capsys.readouterr()
        assert cli(OPERATOR, "asset", "register", "washer-1", "--agent", addr[MACHINE],
                   "--split", split) == 0  # fmt: skip
        asset_id = json.loads(capsys.readouterr().out)["asset"]
        ledger = data / f"asset-{asset_id[2:18]}-ledger.sqlite"
        hub = _spawn(_cli(network_file, data, HUB, "hub", "serve"))  # the default fees
        peers: list[subprocess.Popen[str]] = []
        try:
            assert hub.stdout is not None
            line = hub.stdout.readline()
            assert "listening on 127.0.0.1:" in line, line + _stop(hub)[1]
            hub_args = ["--hub", addr[HUB], "--hub-port", line.rsplit(":", 1)[1].strip()]
            for account, extra in (
                (USER, ["--accept-charges-from", addr[MACHINE]]),
                (MAKER, []),
                (SERVICER, []),
            ):
                peer = _spawn(
                    _cli(network_file, data, account, "agent", "receive", *hub_args,
                         "--seconds", "240", *extra)
                )  # fmt: skip
                peers.append(peer)
                assert peer.stdout is not None and "connected" in peer.stdout.readline()

            def asset_run(*extra: str, events: str = "") -> subprocess.CompletedProcess[str]:
                return subprocess.run(
                    [sys.executable, "-m", "cise.main",
                     *_cli(network_file, data, MACHINE, "asset", "run", asset_id, *hub_args,
                           "--tariff", TARIFF, "--users", addr[USER], "--source", "stdin",
                           *extra)],
                    input=events, capture_output=True, text=True, timeout=150,
                )  # fmt: skip

            cycle = {"event_id": "cycle-1", "user": addr[USER].lower(), "units": 1,
                     "at": int(time.time()), "prepaid": True}  # fmt: skip
            first = asset_run("--fee-float", "0", "--settle-timeout", "6",
                              events=json.dumps(cycle) + "\n")  # fmt: skip
            assert first.returncode == 1, first.stdout + first.stderr
            out = [json.loads(line) for line in first.stdout.splitlines()]
            assert out[0]["status"] == "charged"
            unpaid = out[-1]["summary"]["unpaid_shares"]
            assert len(unpaid) == 1, out[-1]
            assert "exceeds our capacity" in unpaid[0]["reason"]
            assert "share not paid: seq 1" in first.stderr, first.stderr
            owed_to, amount = unpaid[0]["beneficiary"], unpaid[0]["amount"]
            assert amount in (1_194_000, 796_000)

            capsys.readouterr()  # verify without --beneficiary: the unpaid share is a finding
            code = main(["ledger", "verify", asset_id, "--ledger", str(ledger),
                         "--network-file", str(network_file)])  # fmt: skip
            report = " ".join(capsys.readouterr().out.split())
            assert code == 1, report
            assert "share not paid: seq 1" in report and owed_to in report, report
            assert "exceeds our capacity" in report

            assert main(["asset", "status", asset_id, "--ledger", str(ledger), "--json"]) == 0
            status = json.loads(capsys.readouterr().out)
            assert status["unpaid_shares"]["count"] == 1
            assert status["unpaid_shares"]["by_beneficiary"] == {
                owed_to: {"count": 1, "amount": amount}
            }
            assert status["revenue"] == 1_990_000 and status["ledger_head"] == 1
            assert status["last_anchor"]["to_seq"] == 1
            assert status["fee_float"]["target"] == 0

            # run 2: the default float; nothing new on stdin, the open use resumes at once
            started = time.monotonic()
            second = asset_run("--settle-timeout", "60")
            assert second.returncode == 0, second.stdout + second.stderr
            assert time.monotonic() - started < 60  # not a wait through known-failed ids
            summary = json.loads(second.stdout.splitlines()[-1])["summary"]
            assert summary["unpaid_shares"] == [] and summary["uses"] == {"paid": 1}
            assert summary["float_top_ups"] == 1 and summary["fee_float_spare"] > 0
        finally:
            _stop(hub)
            for peer in peers:
                _stop(peer)
        capsys.readouterr()
        code = main(["ledger", "verify", asset_id, "--ledger", str(ledger),
                     "--network-file", str(network_file)])  # fmt: skip
        report = capsys.readouterr().out
        assert code == 0 and "ledger verified" in report and "not paid" not in report, report
        maker = main(["ledger", "verify", asset_id, "--ledger", str(ledger),
                      "--network-file", str(network_file), "--beneficiary", owed_to,
                      "--store", str(data / f"party-{owed_to}.sqlite")])  # fmt: skip
        assert maker == 0, capsys.readouterr().out

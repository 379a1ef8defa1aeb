"""`cise hub serve` + `cise agent pay|receive` on a `cise chain` network (anvil), end to end.

The user and the hub open their channels with `cise channel open` (the same per-account logs the
agents then use); the hub runs as its own process, the payee too; three payments go through the
CLI. The hub's capacity to the machine runs low, and it tops the channel up from its internal
balance on the channel manager: its wallet does not move (no ERC20 transfer).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from channels.chain.client import Web3ChainClient
from channels.chain.connection import Connection
from channels.core.types import Address, to_checksum
from channels.signer import LocalSigner
from cise.main import main
from cise.network import load_network
from tests.integration.test_cli_channel import running_chain

pytestmark = pytest.mark.node

HUB, USER, MACHINE = 4, 5, 6
EURO = 1_000_000


def _cli(network: Path, data_dir: Path, account: int, *argv: str) -> list[str]:
    """argv with the account options where each command takes them (`channel` before its op)."""
    where = ["--network", str(network), "--account", str(account), "--data-dir", str(data_dir)]
    head, op, *rest = argv
    if head == "channel":
        return [head, *where, op, *rest]
    return [head, op, *where, *rest]


def _spawn(argv: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "cise.main", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _stop(process: subprocess.Popen[str]) -> tuple[str, str]:
    process.terminate()
    try:
        return process.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.communicate(timeout=15)


def test_hub_routes_cli_payments_and_tops_up_from_its_internal_balance(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    with running_chain(tmp_path / "network.json", settle_timeout=20) as network_file:
        network = load_network(network_file)
        keys = network.dev_keys
        hub, user, machine = (Address(LocalSigner(keys[i]).address) for i in (HUB, USER, MACHINE))
        connection = Connection.from_url(network.rpc_url, keys)
        hub_client = Web3ChainClient.from_key(connection, network.deployment, keys[HUB])

        def cli(account: int, *argv: str) -> int:
            return main(_cli(network_file, data, account, *argv))

        assert cli(USER, "channel", "open", to_checksum(hub), "--deposit", "10") == 0
        assert cli(HUB, "channel", "open", to_checksum(machine), "--deposit", "1") == 0
        hub_client.approve(5 * EURO)
        hub_client.deposit_to_balance(5 * EURO)
        wallet_before = hub_client.token_balance(hub)
        capsys.readouterr()

        hub_process = _spawn(
            _cli(network_file, data, HUB, "hub", "serve", "--low-water", "0.5",
                 "--top-up-to", "2", "--fee-flat", "0.000010", "--fee-ppm", "1000")
        )  # fmt: skip
        receiver = None
        try:
            assert hub_process.stdout is not None
            line = hub_process.stdout.readline()
            assert "listening on 127.0.0.1:" in line, line + _stop(hub_process)[1]
            port = line.rsplit(":", 1)[1].strip()
            hub_args = ["--hub", to_checksum(hub), "--hub-port", port]
            receiver = _spawn(
                _cli(network_file, data, MACHINE, "agent", "receive", *hub_args, "--seconds", "60")
            )
            assert receiver.stdout is not None
            assert "connected" in receiver.stdout.readline()
            outcomes = []

            def pay(payment_id: int) -> None:
                capsys.readouterr()
                code = cli(
                    USER, "agent", "pay", *hub_args, to_checksum(machine), "0.40",
                    "--payment-id", str(payment_id),
                )  # fmt: skip
                out = capsys.readouterr().out
                assert code == 0, out
                outcomes.append(json.loads(out.strip().splitlines()[-1]))

            pay(1)
            pay(2)  # leaves the hub €0.20 towards the machine: below its low-water mark
            deadline = time.monotonic() + 30
            while True:
                info = hub_client.get_channel(_channel_id(hub_client, hub, machine), hub, machine)
                hub_deposit = info.deposit1 if hub < machine else info.deposit2
                if hub_deposit > EURO or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            assert hub_deposit == EURO + (2 * EURO - 200_000), "no top-up to €2 of capacity"
            assert hub_client.balance_of(hub) == 5 * EURO - (hub_deposit - EURO)
            assert hub_client.token_balance(hub) == wallet_before  # no ERC20 transfer
            time.sleep(2.0)  # the hub's follower sees the deposit
            pay(3)  # needs the topped-up capacity
            assert [o["status"] for o in outcomes] == ["completed"] * 3
            assert all(o["amount"] == 400_000 and o["fee"] == 10 + 400 for o in outcomes)
            time.sleep(1.0)
        finally:
            _, hub_err = _stop(hub_process)
            received_out, received_err = _stop(receiver) if receiver is not None else ("", "")
            print("hub stderr:", hub_err, "receiver stderr:", received_err)
        received = [json.loads(line) for line in received_out.splitlines() if "payer" in line]
        assert sorted(r["payment_id"] for r in received) == [1, 2, 3], (received_out, hub_err)
        assert all(r["payer"] == to_checksum(user) for r in received)


def _channel_id(client: Web3ChainClient, a: Address, b: Address) -> int:
    for channel_id in range(client.channel_count(), 0, -1):
        info = client.get_channel(channel_id, a, b)  # type: ignore[arg-type]
        if info.deposit1 or info.deposit2:
            return channel_id
    raise AssertionError("no channel between the hub and the machine")


def test_a_hub_may_not_announce_a_fee_cap_above_the_networks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with running_chain(tmp_path / "network.json", settle_timeout=20) as network_file:
        argv = _cli(network_file, tmp_path / "data", HUB, "hub", "serve", "--fee-cap", "0.02")
        assert main(argv) == 2
        assert "above the network's hub fee cap €0.010000" in capsys.readouterr().err


def test_a_payee_refuses_to_serve_behind_hub_terms_that_leave_it_too_little_time(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`hub serve --lock-timeout 16 --reveal-timeout 5` leaves a forwarded lock 11 blocks; a
    payee (reveal timeout 10) would refuse every lock as expiring too soon. Before, nothing
    said so: `agent receive` served and every payment to it failed. Now it names the numbers
    and the --lock-timeout that works, and exits 2."""
    data = tmp_path / "data"
    with running_chain(tmp_path / "network.json", settle_timeout=20) as network_file:
        network = load_network(network_file)
        hub, machine = (Address(LocalSigner(network.dev_keys[i]).address) for i in (HUB, MACHINE))
        assert main(_cli(network_file, data, HUB, "channel", "open", to_checksum(machine),
                         "--deposit", "1")) == 0  # fmt: skip
        capsys.readouterr()
        hub_process = _spawn(
            _cli(network_file, data, HUB, "hub", "serve", "--lock-timeout", "16",
                 "--reveal-timeout", "5")
        )  # fmt: skip
        try:
            assert hub_process.stdout is not None
            line = hub_process.stdout.readline()
            assert "listening on 127.0.0.1:" in line, line + _stop(hub_process)[1]
            port = line.rsplit(":", 1)[1].strip()
            receiver = subprocess.run(
                [sys.executable, "-m", "cise.main",
                 *_cli(network_file, data, MACHINE, "agent", "receive", "--hub", to_checksum(hub),
                       "--hub-port", port, "--seconds", "30")],
                capture_output=True, text=True, timeout=120,
            )  # fmt: skip
        finally:
            _stop(hub_process)
        assert receiver.returncode == 2, (receiver.stdout, receiver.stderr)
        assert "leave a lock forwarded to us 11 blocks; we need 12" in receiver.stderr
        assert "--lock-timeout must be at least 17" in receiver.stderr
        assert "Traceback" not in receiver.stderr

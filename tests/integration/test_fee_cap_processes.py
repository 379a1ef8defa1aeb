"""A vote lowers the hub fee cap while `cise hub serve` and `cise agent receive` run (issue 19).

Before: the cap bound only the hub's start-up, so a hub already running charged €0.006010 on a
€6 payment after the members voted the cap down to €0.005, and the payer paid it. Now the running
hub follows the vote (it lowers its fee to the cap, says so at warning level and re-announces its
terms) and every `cise agent pay` checks the fee of its payment against the cap it read from the
chain before any lock leaves. Then a vote takes the hub role from the hub, and a payer refuses to
route through it. Real processes on an anvil network; the amounts are checked from the payer's and
the payee's own records and channels.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from eth_account import Account

from channels.chain.client import Web3ChainClient
from channels.chain.connection import Connection
from channels.chain.governance import (
    Call,
    GovernanceClient,
    Role,
    describe_proposal,
    pass_proposal,
)
from channels.core.channel import get_balance
from channels.core.types import Address, to_checksum
from channels.party import read_party_state
from channels.records import InvoiceRecord, PaymentRecord, core_record_codec
from channels.signer import LocalSigner
from channels.store import SqliteStore
from cise.main import main
from cise.network import load_network
from tests.integration.test_cli_agent_restarts import Process
from tests.integration.test_cli_channel import running_chain

pytestmark = pytest.mark.node

HUB, USER, MACHINE = 4, 5, 6
VOTERS = (0, 1, 2, 3, 7, 8, 9)  # founders not running a process here (no nonce races)
EURO = 1_000_000
DEPOSIT = 20 * EURO
AMOUNT = 6 * EURO  # the hub's fee: min(10 + 6_000, 10_000) = 6_010
OLD_FEE = 6_010
NEW_CAP = 5_000  # €0.005


def test_a_vote_lowering_the_fee_cap_binds_the_running_hub_and_every_payer(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    with running_chain(tmp_path / "network.json", settle_timeout=20) as network_file:
        network = load_network(network_file)
        keys = network.dev_keys
        hub, machine = (Address(LocalSigner(keys[i]).address) for i in (HUB, MACHINE))
        connection = Connection.from_url(network.rpc_url, keys)
        governance = GovernanceClient(connection, network.deployment, None)
        voters = [Account.from_key(keys[i]) for i in VOTERS]

        def vote(call: Call, title: str) -> None:
            description = describe_proposal([governance.describe_call(call)], title)
            pass_proposal(connection, network.deployment, voters, [call], description)

        def argv(account: int, *args: str) -> list[str]:
            where = ["--network", str(network_file), "--account", str(account)]
            where += ["--data-dir", str(data)]
            head, op, *rest = args
            return [head, *where, op, *rest] if head == "channel" else [head, op, *where, *rest]

        assert main(argv(USER, "channel", "open", to_checksum(hub), "--deposit", "20")) == 0
        assert main(argv(HUB, "channel", "open", to_checksum(machine), "--deposit", "20")) == 0
        capsys.readouterr()
        started: list[Process] = []

        def spawn(name: str, *args: str, account: int) -> Process:
            process = Process(argv(account, *args), tmp_path / f"{name}-{len(started)}.err")
            started.append(process)
            return process

        outcomes: dict[int, dict[str, object]] = {}

        def pay(payment_id: int) -> tuple[int, dict[str, object]]:
            process = spawn(
                "pay", "agent", "pay", *hub_args, to_checksum(machine), "6",
                "--payment-id", str(payment_id), account=USER,
            )  # fmt: skip
            code = process.popen.wait(timeout=60)
            assert process.lines, process.stderr()
            outcome = json.loads(process.lines[-1])
            assert "Traceback" not in process.stderr(), process.stderr()
            outcomes[payment_id] = outcome
            return code, outcome

        try:
            hub_process = spawn(
                "hub", "hub", "serve", "--fee-flat", "0.000010", "--fee-ppm", "1000",
                "--fee-cap", "0.010", account=HUB,
            )  # fmt: skip
            port = hub_process.wait_line("listening on 127.0.0.1:").rsplit(":", 1)[1].strip()
            hub_args = ["--hub", to_checksum(hub), "--hub-port", port]
            payee = spawn("payee", "agent", "receive", *hub_args, account=MACHINE)
            payee.wait_line("connected")

            # under the network's cap of €0.010 the hub's own fee stands
            assert pay(1) == (0, _completed(1, machine, OLD_FEE))

            # the members vote the cap down to €0.005 while the hub and the payee run
            vote(governance.calls.set_hub_fee_cap(NEW_CAP), "A lower hub fee cap")
            assert governance.parameters().hub_fee_cap == NEW_CAP
            code, outcome = pay(2)  # at once: charged within the new cap, or refused
            if outcome["status"] == "completed":
                assert code == 0 and 0 < int(outcome["fee"]) <= NEW_CAP, outcome  # type: ignore[call-overload]
            else:
                assert code == 1 and outcome["status"] == "failed", outcome
                assert f"({OLD_FEE} token units)" in str(outcome["reason"]), outcome
                assert f"({NEW_CAP} token units" in str(outcome["reason"]), outcome

            # the running hub followed the vote, said so, and announces the new cap
            deadline = time.monotonic() + 20
            while "hub fee cap is now 5000" not in hub_process.stderr():
                assert time.monotonic() < deadline, "the hub did not follow the vote: " + (
                    hub_process.stderr()
                )
                time.sleep(0.2)
            assert pay(3) == (0, _completed(3, machine, NEW_CAP))

            # only a member with the hub role routes for fees: take it away, and payers refuse
            vote(governance.calls.set_roles(hub, Role.USER), "The hub is a user only")
            code, refused = pay(4)
            assert code == 1 and refused["status"] == "failed", refused
            assert "does not hold the hub role" in str(refused["reason"]), refused
            assert hub_process.popen.poll() is None and payee.popen.poll() is None
        finally:
            for process in started:
                process.stop()
        clients = [
            Web3ChainClient.from_key(connection, network.deployment, keys[i])
            for i in (USER, MACHINE)
        ]
        payer, spent = _payer(data, clients[0], hub)
        received, payee_gained = _payee(data, clients[1], hub)

    # what the payer's own records say it paid, and what its channel lost
    paid = {p.payment_id: p for p in payer.values() if p.status == "completed"}
    assert set(paid) == {i for i, o in outcomes.items() if o["status"] == "completed"}
    assert {1, 3} <= set(paid) and 4 not in paid
    assert paid[1].fee == OLD_FEE
    assert all(paid[i].fee <= NEW_CAP for i in paid if i > 1)  # nothing above the cap is paid
    assert payer[4].status == "failed" and payer[4].fee == 0
    assert spent == sum(p.amount + p.fee for p in paid.values())
    # the payee received exactly the amounts (the hub kept exactly the fees), nothing for #4
    assert received == {i: AMOUNT for i in paid}
    assert payee_gained == AMOUNT * len(paid)


def _completed(payment_id: int, payee: Address, fee: int) -> dict[str, object]:
    return {
        "payment_id": payment_id,
        "status": "completed",
        "payee": to_checksum(payee),
        "amount": AMOUNT,
        "fee": fee,
    }


def _payer(
    data: Path, client: Web3ChainClient, hub: Address
) -> tuple[dict[int, PaymentRecord], int]:
    """The payer's payment records and what its channel with the hub lost, from its own log."""
    path = data / f"party-{to_checksum(client.address)}.sqlite"
    store = SqliteStore(path, core_record_codec(), read_only=True)
    try:
        records = {
            r.payment_id: r for _, r in store.facts("payment:") if isinstance(r, PaymentRecord)
        }
    finally:
        store.close()
    state, _ = read_party_state(client, path)
    [channel] = [c for c in state.channels.values() if c.partner.address == hub]
    assert not channel.our.locks and not channel.partner.locks
    return records, DEPOSIT - get_balance(channel.our, channel.partner)


def _payee(data: Path, client: Web3ChainClient, hub: Address) -> tuple[dict[int, int], int]:
    """What the payee's received invoices say each lock carried, and what its channel gained."""
    path = data / f"party-{to_checksum(client.address)}.sqlite"
    store = SqliteStore(path, core_record_codec(), read_only=True)
    try:
        received = {
            r.payment_id: r.received
            for _, r in store.facts("invoice:")
            if isinstance(r, InvoiceRecord) and r.status == "received"
        }
    finally:
        store.close()
    state, _ = read_party_state(client, path)
    [channel] = [c for c in state.channels.values() if c.partner.address == hub]
    return received, get_balance(channel.our, channel.partner)

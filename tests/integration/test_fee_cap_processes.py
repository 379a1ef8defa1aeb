"""A vote lowers the hub fee cap while `cise hub serve` and `cise agent receive` run (issue 19).

Before: the cap bound only the hub's start-up, so a hub already running charged €0.006010 on a
€6 payment after the members voted the cap down to €0.005, and the payer paid it. Now the running
hub follows the vote (it lowers its fee to the cap, says so at warning level and re-announces its
terms) and every `cise agent pay` checks the fee of its payment against the cap it read from the
chain before any lock leaves. A payer agent that keeps running (wired as `cise agent` wires it)
follows two more votes: the cap raised back (the hub restores its own fee) and lowered again.
Then a vote takes the hub role from the hub, and a payer refuses to route through it. Real processes on an anvil network; the amounts are checked from the payer's and
the payee's own records and channels.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import trio
from eth_account import Account

from channels.agent import PaymentError, PaymentOutcome
from channels.chain.client import Web3ChainClient
from channels.chain.connection import Connection
from channels.chain.governance import (
    Call,
    GovernanceClient,
    ProposalCalls,
    Role,
    describe_proposal,
    pass_proposal,
)
from channels.core.channel import get_balance
from channels.core.types import Address, to_checksum
from channels.party import read_party_state
from channels.records import InvoiceRecord, PaymentRecord, core_record_codec
from channels.service import NodeService
from channels.signer import LocalSigner
from channels.store import SqliteStore
from cise import hub_cmd
from cise.hub_cmd import open_service
from cise.main import main
from cise.network import load_network
from tests.integration.test_cli_agent_restarts import Process
from tests.integration.test_cli_channel import running_chain

pytestmark = pytest.mark.node

HUB, USER, MACHINE = 4, 5, 6
VOTERS = (0, 1, 2, 3, 7, 8, 9)  # founders not running a process here (no nonce races)
EURO = 1_000_000
DEPOSIT = 60 * EURO
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
        hub, user, machine = (Address(LocalSigner(keys[i]).address) for i in (HUB, USER, MACHINE))
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

        assert main(argv(USER, "channel", "open", to_checksum(hub), "--deposit", "60")) == 0
        assert main(argv(HUB, "channel", "open", to_checksum(machine), "--deposit", "60")) == 0
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
            print("payment 2 right after the vote:", outcome)
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

            # a payer that keeps running while the members vote follows their votes too
            user_client = Web3ChainClient.from_key(
                Connection.from_url(network.rpc_url, keys), network.deployment, keys[USER]
            )
            service = open_service(
                keys[USER], user_client, data / f"party-{to_checksum(user)}.sqlite"
            )
            try:
                running = trio.run(
                    _running_payer, service, user_client, hub, machine, int(port), vote,
                    governance.calls,
                )  # fmt: skip
            finally:
                service.store.close()
            print("the running payer's payments:", running)
            assert isinstance(running[10], PaymentOutcome) and running[10].fee == OLD_FEE
            if isinstance(running[11], PaymentOutcome):  # the hub had re-announced in time
                assert 0 < running[11].fee <= NEW_CAP, running[11]
            else:  # the payer knew the new cap before the hub's new terms reached it
                assert f"({OLD_FEE} token units)" in running[11], running[11]
                assert f"({NEW_CAP} token units" in running[11], running[11]
            assert isinstance(running[12], PaymentOutcome) and running[12].fee == NEW_CAP

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
    assert set(paid) == {i for i, o in outcomes.items() if o["status"] == "completed"} | {
        i for i, o in running.items() if isinstance(o, PaymentOutcome)
    }
    assert {1, 3, 10, 12} <= set(paid) and 4 not in paid
    under_the_old_cap = {1, 10}  # paid while the cap was €0.010 (#10: after a vote raised it)
    assert all(paid[i].fee == OLD_FEE for i in under_the_old_cap)
    assert all(paid[i].fee <= NEW_CAP for i in set(paid) - under_the_old_cap)  # nothing above
    assert payer[4].status == "failed" and payer[4].fee == 0
    assert spent == sum(p.amount + p.fee for p in paid.values())
    # the payee received exactly the amounts (the hub kept exactly the fees), nothing for #4
    assert received == {i: AMOUNT for i in paid}
    assert payee_gained == AMOUNT * len(paid)


async def _running_payer(
    service: NodeService,
    client: Web3ChainClient,
    hub: Address,
    machine: Address,
    port: int,
    vote: Callable[[Call, str], None],
    calls: ProposalCalls,
) -> dict[int, PaymentOutcome | str]:
    """The user's agent as `cise agent` runs it, paying across two votes: the cap raised back to
    €0.010 (the hub restores its own fee), then lowered to €0.005 again. Each payment's outcome,
    or the PaymentError's message."""
    outcomes: dict[int, PaymentOutcome | str] = {}

    async def until(condition: Callable[[], bool], what: str) -> None:
        with trio.move_on_after(20):
            while not condition():  # noqa: ASYNC110  # the agent's tasks change it
                await trio.sleep(0.05)
            return
        raise AssertionError(f"not within 20 s: {what}")

    async def pay(payment_id: int) -> None:
        try:
            outcomes[payment_id] = await agent.pay(machine, AMOUNT, payment_id)
        except PaymentError as exc:
            outcomes[payment_id] = str(exc)

    async with trio.open_nursery() as nursery:
        agent = await hub_cmd.start_agent(service, client, hub, port, nursery)
        assert agent.governed_fee_cap == NEW_CAP and agent.fees.cap == NEW_CAP
        await trio.to_thread.run_sync(vote, calls.set_hub_fee_cap(10_000), "The cap back up")
        await until(lambda: agent.governed_fee_cap == 10_000, "the payer follows the vote")
        await until(lambda: agent.fees.cap == 10_000, "the hub restores its own fee")
        await pay(10)
        await trio.to_thread.run_sync(vote, calls.set_hub_fee_cap(NEW_CAP), "Down again")
        await until(lambda: agent.governed_fee_cap == NEW_CAP, "the payer follows the vote")
        await pay(11)  # at once: the hub's new terms may not have reached us yet
        await until(lambda: agent.fees.cap == NEW_CAP, "the hub re-announces to a running agent")
        await pay(12)
        with trio.move_on_after(5):
            await agent.wait_delivered()
        nursery.cancel_scope.cancel()
    return outcomes


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

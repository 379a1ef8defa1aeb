"""A payer agent survives its peers' restarts, through real processes on an anvil network.

The hub is a `cise hub serve` process and the payee a `cise agent receive` process; the payer is
an `Agent` in this process paying continuously on the user's log. First `cise agent pay` with no
hub at all reports it in one line and exits 2; started while the hub is down (the hub comes up 2 s
later) it completes; repeated, it reports the same outcome and the hub refuses nothing. Then, under
load, the payee process is SIGKILLed and restarted, and so is the hub process: the payer survives
both, every payment ends completed or as a clean `PaymentError`, nothing is left pending, money is
conserved, and payments (with invoice books again) go on once the peers are back.
"""

from __future__ import annotations

import json
import math
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

import pytest
import trio

from channels.agent import BOOK_RETRY, FINAL, Agent, PaymentError
from channels.chain.client import Web3ChainClient
from channels.chain.connection import Connection
from channels.chain.nodes import free_port
from channels.core.channel import get_balance
from channels.core.types import Address, to_checksum
from channels.records import InvoiceRecord, core_record_codec
from channels.service import NodeService, run_on_chain
from channels.signer import LocalSigner
from channels.store import SqliteStore
from cise import hub_cmd
from cise.hub_cmd import open_service
from cise.main import main
from cise.network import load_network
from tests.integration.test_cli_channel import running_chain

# Timing-bound process test (SIGKILLs, 1-second blocks): under pytest-xdist it shares one group
# with the others like it, so no two of them compete for the two cores at once.
pytestmark = [pytest.mark.node, pytest.mark.xdist_group("timing-bound-processes")]

HUB, USER, MACHINE = 4, 5, 6
AMOUNT = 1_000  # €0.001 a payment
EURO = 1_000_000


class Process:
    """A `cise` process whose stdout lines a thread collects (stderr goes to a file)."""

    def __init__(self, argv: list[str], stderr: Path) -> None:
        self._stderr_path = stderr
        self._stderr: IO[str] = stderr.open("w")
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "cise.main", *argv],
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            self.lines.append(line)
            self._queue.put(line)

    def wait_line(self, needle: str, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no {needle!r} within {timeout} s: {self.stderr()}") from None
            if needle in line:
                return line

    def stderr(self) -> str:
        self._stderr.flush()
        return self._stderr_path.read_text()

    def kill(self) -> None:
        self.popen.kill()
        self.popen.wait(timeout=15)

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()
        self._stderr.close()


def test_a_payer_survives_the_payee_and_the_hub_being_killed_and_restarted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    with running_chain(tmp_path / "network.json", settle_timeout=20) as network_file:
        network = load_network(network_file)
        keys = network.dev_keys
        hub, user, machine = (Address(LocalSigner(keys[i]).address) for i in (HUB, USER, MACHINE))

        def argv(account: int, *args: str) -> list[str]:
            where = ["--network", str(network_file), "--account", str(account)]
            where += ["--data-dir", str(data)]
            head, op, *rest = args
            return [head, *where, op, *rest] if head == "channel" else [head, op, *where, *rest]

        assert main(argv(USER, "channel", "open", to_checksum(hub), "--deposit", "10")) == 0
        assert main(argv(HUB, "channel", "open", to_checksum(machine), "--deposit", "5")) == 0
        capsys.readouterr()
        port = free_port()
        hub_args = ["--hub", to_checksum(hub), "--hub-port", str(port)]
        started: list[Process] = []

        def spawn(name: str, *args: str, account: int) -> Process:
            process = Process(argv(account, *args), tmp_path / f"{name}-{len(started)}.err")
            started.append(process)
            return process

        def start_hub() -> Process:
            process = spawn("hub", "hub", "serve", "--port", str(port), account=HUB)
            process.wait_line("listening on 127.0.0.1:")
            return process

        def start_payee() -> Process:
            return spawn("payee", "agent", "receive", *hub_args, account=MACHINE)

        def cli_pay(payment_id: int) -> Process:
            return spawn(
                "pay", "agent", "pay", *hub_args, to_checksum(machine), "0.001",
                "--payment-id", str(payment_id), account=USER,
            )  # fmt: skip

        # no hub at all: one clear line and a non-zero exit once the bounded wait is over
        monkeypatch.setattr(hub_cmd, "READY_TIMEOUT", 1.0)
        code = main(argv(USER, "agent", "pay", *hub_args, to_checksum(machine), "0.001",
                         "--payment-id", "1"))  # fmt: skip
        err = capsys.readouterr().err
        assert code == 2 and "Traceback" not in err, err
        assert err.startswith("cise: error: no hub answered on 127.0.0.1:"), err
        assert "cannot reach the hub" in err, err
        monkeypatch.undo()
        try:
            # the payee and a payer start while the hub is down; the hub comes up 2 s later
            payee = start_payee()
            first = cli_pay(1)
            time.sleep(2.0)
            hub_process = start_hub()
            payee.wait_line("connected")
            assert first.popen.wait(timeout=30) == 0, first.stderr()
            outcome = json.loads(first.lines[-1])
            assert outcome["status"] == "completed" and outcome["amount"] == AMOUNT
            assert "Traceback" not in first.stderr()
            # an idempotent repeat: the same outcome, nothing the hub refuses
            again = cli_pay(1)
            assert again.popen.wait(timeout=30) == 0, again.stderr()
            assert json.loads(again.lines[-1]) == outcome
            assert "refused" not in again.stderr(), again.stderr()

            client = Web3ChainClient.from_key(
                Connection.from_url(network.rpc_url, keys), network.deployment, keys[USER]
            )
            service = open_service(keys[USER], client, data / f"party-{to_checksum(user)}.sqlite")
            try:
                outcomes, back_from, hub_process, payee = trio.run(
                    _campaign, service, client, hub, machine, port, hub_process, payee,
                    start_hub, start_payee,
                )  # fmt: skip
                payer_channel = service.channel_with(hub)
                records = dict(service.store.facts("payment:"))
            finally:
                service.store.close()
            assert payee.popen.poll() is None, "the restarted payee died: " + payee.stderr()
            assert hub_process.popen.poll() is None, "the restarted hub died"
        finally:
            for process in started:
                process.stop()

        # every payment ended completed, or as a clean PaymentError with no lock left behind
        assert payer_channel is not None and not payer_channel.our.locks
        failed = {i for i, o in outcomes.items() if o != "completed"}
        completed = set(outcomes) - failed
        # while a peer was down payments fail cleanly (how many depends on how long a restart
        # takes on a loaded machine); once both were back, most of the stream completes again
        after = {i for i in outcomes if i >= back_from}
        assert after and len(completed & after) > len(after) // 2, (back_from, outcomes)
        for payment_id in outcomes:
            record = records[f"payment:{payment_id}"]
            if payment_id in completed:
                assert record.status == "completed"
            else:
                assert record.status in ("failed", "requested"), (payment_id, record)
        # what the payer paid is what the payee received, plus the hub's fees
        done = [r for r in records.values() if r.status == "completed"]
        assert {r.payment_id for r in done} == completed | {1}
        payee_store = SqliteStore(
            data / f"party-{to_checksum(machine)}.sqlite", core_record_codec()
        )
        try:
            received = [
                r
                for _, r in payee_store.facts("invoice:")
                if isinstance(r, InvoiceRecord) and r.status == "received"
            ]
        finally:
            payee_store.close()
        assert sorted(r.payment_id for r in received) == sorted(r.payment_id for r in done)
        assert sum(r.received for r in received) == AMOUNT * len(done)
        spent = 10 * EURO - get_balance(payer_channel.our, payer_channel.partner)
        assert spent == sum(r.amount + r.fee for r in done)


async def _campaign(
    service: NodeService,
    client: Web3ChainClient,
    hub: Address,
    machine: Address,
    port: int,
    hub_process: Process,
    payee: Process,
    start_hub: Callable[[], Process],
    start_payee: Callable[[], Process],
) -> tuple[dict[int, str], int, Process, Process]:
    """Pay continuously while the payee, then the hub, is killed and restarted; then pay on
    (books again). Returns each payment's outcome, the first payment id started once both peers
    were back, and the processes now running."""
    agent = Agent(service, hub)
    outcomes: dict[int, str] = {}
    next_id = 2

    async def pay(payment_id: int) -> None:
        try:
            await agent.pay(machine, AMOUNT, payment_id, give_up_after=20)
            outcomes[payment_id] = "completed"
        except PaymentError as exc:  # anything else ends the test: the payer must survive
            outcomes[payment_id] = f"failed: {exc}"

    async def stream(restarted: trio.Event) -> None:
        """A burst of payments every 20 ms until a second after both restarts."""
        nonlocal next_id
        async with trio.open_nursery() as payments:
            with trio.move_on_after(math.inf) as scope:
                while True:
                    for _ in range(4):
                        payments.start_soon(pay, next_id)
                        next_id += 1
                    await trio.sleep(0.02)
                    if restarted.is_set() and scope.deadline == math.inf:
                        scope.deadline = trio.current_time() + 1.0

    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_on_chain, service, client)
        agent.start(nursery, port)
        with trio.fail_after(30):
            await agent.wait_ready()

        def in_flight() -> int:
            return sum(1 for r in agent.payments.values() if r.status not in FINAL)

        async def kill_in_flight(process: Process) -> None:
            """SIGKILL `process` while payments are under way (none of them has an outcome)."""
            with trio.fail_after(10):
                while in_flight() < 3:  # noqa: ASYNC110  # the stream task's effect
                    await trio.sleep(0.005)
            killed_in_flight.append(in_flight())
            process.kill()

        async def restarts(restarted: trio.Event) -> None:
            nonlocal hub_process, payee
            await trio.sleep(1.5)
            await kill_in_flight(payee)
            await trio.sleep(0.5)
            payee = await trio.to_thread.run_sync(start_payee)
            await trio.to_thread.run_sync(payee.wait_line, "connected")
            await trio.sleep(1.5)
            await kill_in_flight(hub_process)
            await trio.sleep(0.5)
            hub_process = await trio.to_thread.run_sync(start_hub)
            with trio.fail_after(30):
                await agent.wait_ready()
            back_from[0] = next_id
            restarted.set()

        killed_in_flight: list[int] = []
        back_from = [0]
        # A bound on liveness, not on correctness: two restarts of real processes, each of which
        # now checks its network's code and (the hub) reads the member list before it serves.
        with trio.fail_after(120):
            async with trio.open_nursery() as work:
                restarted = trio.Event()
                work.start_soon(stream, restarted)
                work.start_soon(restarts, restarted)
        assert len(killed_in_flight) == 2 and all(killed_in_flight), killed_in_flight
        # both peers are back: payments in order use invoice books again
        await trio.sleep(BOOK_RETRY)
        books_before = agent._book_asked.get(machine, 0)
        with trio.fail_after(30):
            for _ in range(3 * 128 // 2):
                await pay(next_id)
                assert outcomes[next_id] == "completed", outcomes[next_id]
                next_id += 1
        assert agent._book_asked.get(machine, 0) > books_before, "no book asked after the restarts"
        # quiet: nothing pending, everything acknowledged and recorded
        with trio.fail_after(20):
            while any(c.our.locks or c.partner.locks for c in service.channels.values()):  # noqa: ASYNC110
                await trio.sleep(0.1)
            await agent.wait_delivered()
        nursery.cancel_scope.cancel()
    return outcomes, back_from[0], hub_process, payee

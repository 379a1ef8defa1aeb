"""The direct-payment benchmark: durable payments per second between two processes.

The payer (this process) and the payee (a `channels.bench.direct_peer` subprocess) talk over
loopback TCP with the real pieces: payer core `ActionTransfer` -> `SendBalanceProof` event ->
`LocalSigner` signs the digest -> `channels.wire` encodes (every PRODUCE_SLICE payments as one
`wire.Batch` frame) -> transport. The payee decodes, runs the core's `ReceiveBalanceProof` (which
recovers the signer), logs every state change and its events in sqlite group commits
(synchronous=FULL, about in_flight/4 payments each), and only acknowledges what is committed. At
most `in_flight` payments are made and not yet acknowledged.

`run_direct_bench` returns `payments_per_s`, `p50_ms`, `p99_ms` (send -> durable ack, per
payment), `crypto_limit_per_s` = 1 / (sign + recover time of one payment, measured in this run
on one core), `ratio_to_limit`, `in_flight`, and details. The channel is set up in-process,
without a chain, from a `ContractReceiveChannelOpened` state change both sides apply.

The payee process is always terminated in a `finally`, and every wait is bounded. The keys
used here are fixed, public test keys: this module must never be pointed at real funds.
"""

from __future__ import annotations

import os
import select
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio

from channels import wire
from channels.bench.figures import percentile
from channels.bench.processes import child_env, process_cpu_seconds
from channels.codec.ecdsa import recover_signer
from channels.codec.eip712 import Domain
from channels.codec.keccak import keccak
from channels.core import events as ev
from channels.core import state_changes as sc
from channels.core.channel import TransitionContext, channel_transition
from channels.core.node import context_of
from channels.core.state import ChannelState, NodeState
from channels.core.types import (
    Address,
    BlockNumber,
    ChannelId,
    PaymentId,
    TokenAmount,
)
from channels.records import core_record_codec, replay
from channels.signer import LocalSigner
from channels.transport import Connection, DispatchTable, TcpTransport

# Fixed bench identities: public test keys, never funded anywhere.
PAYER_KEY = keccak(b"cise bench direct payer")
PAYEE_KEY = keccak(b"cise bench direct payee")
CHAIN_ID = 1337
CHANNEL_MANAGER = keccak(b"cise bench channel manager")[-20:]
CHANNEL_ID = ChannelId(1)
SETTLE_TIMEOUT = 500
MAX_IN_FLIGHT = 256
# payments made between two checkpoints, sent as one Batch frame, so the writer starts early
PRODUCE_SLICE = 8

DEFAULT_PAYMENTS = 20_000
DEFAULT_TIMEOUT = 120.0


def bench_domain() -> Domain:
    """The EIP-712 domain both sides use."""
    return Domain(CHAIN_ID, CHANNEL_MANAGER)


def opening_state_changes(payer: Address, payee: Address, deposit: int) -> list[sc.StateChange]:
    """The chain events that open the bench channel, funded by the payer (no chain involved)."""
    participant1, participant2 = sorted((payer, payee))
    return [
        sc.ContractReceiveChannelOpened(
            transaction_hash=keccak(b"cise bench open"),
            block_number=BlockNumber(1),
            channel_id=CHANNEL_ID,
            participant1=Address(participant1),
            participant2=Address(participant2),
            settle_timeout=SETTLE_TIMEOUT,
            opener=payer,
            deposit=TokenAmount(deposit),
        )
    ]


def initial_node(address: Address) -> NodeState:
    """A node that knows no channel yet."""
    return NodeState(our_address=address, domain=bench_domain(), block_number=BlockNumber(1))


def opened_node(address: Address, payer: Address, payee: Address, deposit: int) -> NodeState:
    """A node with the bench channel open (what both sides start from)."""
    node = initial_node(address)
    for change in opening_state_changes(payer, payee, deposit):
        node = replay(node, change)
    return node


# ----------------------------------------------------------------------------- crypto limit


def measure_crypto(samples: int = 2000) -> tuple[float, float]:
    """Seconds to sign one payment digest and to recover its signer (single core, this run)."""
    signer = LocalSigner(PAYER_KEY)
    digests = [keccak(i.to_bytes(8, "big")) for i in range(samples)]
    start = time.perf_counter()
    signatures = [signer.sign_digest(d) for d in digests]
    signed = time.perf_counter()
    for digest, signature in zip(digests, signatures, strict=True):
        recover_signer(digest, signature)
    recovered = time.perf_counter()
    return (signed - start) / samples, (recovered - signed) / samples


# ----------------------------------------------------------------------------- payer


@dataclass
class _Payer:
    """The paying side: makes payments through the core, signs, sends; counts acknowledgements."""

    payments: int
    in_flight: int
    amount: int
    channel: ChannelState  # the hot path calls channel_transition directly (see core/node.py)
    context: TransitionContext
    signer: LocalSigner
    sent: int = 0
    acked: int = 0
    max_in_flight_seen: int = 0
    send_times: list[float] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    window: trio.lowlevel.ParkingLot = field(default_factory=trio.lowlevel.ParkingLot)
    acknowledged: bytearray = field(default_factory=bytearray)
    outgoing: list[wire.FrameItem] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.acknowledged = bytearray(self.payments + 1)

    def flush(self, connection: Connection) -> None:
        """Queue the payments made since the last flush as one frame (a Batch when several)."""
        outgoing = self.outgoing
        if len(outgoing) == 1:
            connection.send_nowait(outgoing[0])
        elif outgoing:
            connection.send_nowait(wire.Batch(messages=outgoing))
        self.outgoing = []

    def pay(self) -> None:
        """One payment: ActionTransfer -> SendBalanceProof -> sign -> wire -> `outgoing`."""
        self.sent += 1
        result = channel_transition(
            self.channel,
            sc.ActionTransfer(CHANNEL_ID, TokenAmount(self.amount), PaymentId(self.sent)),
            self.context,
        )
        self.channel = result.new_state
        for event in result.events:
            if type(event) is ev.SendBalanceProof:
                signature = self.signer.sign_digest(event.digest)
                self.outgoing.append(wire.from_event(event, self.sent, signature))
            elif type(event) is ev.EventPaymentSendFailed:
                raise RuntimeError(
                    f"payment {self.sent} failed in the payer's core: {event.reason}"
                )
        self.send_times.append(time.perf_counter())
        in_flight = self.sent - self.acked
        if in_flight > self.max_in_flight_seen:
            self.max_in_flight_seen = in_flight

    async def on_processed(self, connection: Connection, message: wire.Processed) -> None:
        """The payee made these payments (message id = payment number) durable."""
        now = time.perf_counter()
        send_times = self.send_times
        acked = self.acked
        for message_id in message.message_ids:
            if not 0 < message_id <= self.sent or self.acknowledged[message_id]:
                raise RuntimeError(
                    f"acknowledgement of unknown or acknowledged payment {message_id}"
                )
            self.acknowledged[message_id] = True
            self.latencies.append(now - send_times[message_id - 1])
            acked += 1
        self.acked = acked
        self.window.unpark_all()

    async def run(self, connection: Connection) -> None:
        """Pay until every payment is acknowledged, keeping at most `in_flight` unacknowledged."""
        made = 0
        while self.acked < self.payments:
            while self.sent < self.payments and self.sent - self.acked < self.in_flight:
                self.pay()
                made += 1
                if made % PRODUCE_SLICE == 0:
                    self.flush(connection)
                    await trio.lowlevel.checkpoint()  # let the writer send what is queued
            self.flush(connection)
            if self.acked < self.payments:
                await self.window.park()  # no checkpoint since the check: no ack is missed


async def _pay_all(
    port: int, payments: int, in_flight: int, amount: int, deposit: int, seconds_allowed: float
) -> tuple[_Payer, float]:
    """The payer's trio entry point (trio.run); the whole run is bounded by `seconds_allowed`."""
    payer_signer = LocalSigner(PAYER_KEY)
    payee_address = LocalSigner(PAYEE_KEY).address
    node = opened_node(
        Address(payer_signer.address),
        Address(payer_signer.address),
        Address(payee_address),
        deposit,
    )
    payer = _Payer(
        payments, in_flight, amount, node.channels[CHANNEL_ID], context_of(node), payer_signer
    )
    table = DispatchTable()
    table.register(wire.Processed, payer.on_processed)
    transport = TcpTransport(payer_signer, wire, table.lookup())
    with trio.fail_after(seconds_allowed):
        async with transport.open_connection(
            "127.0.0.1", port, expected_peer=payee_address
        ) as connection:
            start = time.perf_counter()
            await payer.run(connection)
            elapsed = time.perf_counter() - start
    return payer, elapsed


# ----------------------------------------------------------------------------- the payee process


def _wait_for_port(process: subprocess.Popen[str], timeout: float) -> int:
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"the payee did not report its port within {timeout} s")
        ready, _, _ = select.select([process.stdout], [], [], remaining)
        if not ready:
            continue
        line = process.stdout.readline()
        if not line:
            raise RuntimeError(f"the payee exited before listening (exit code {process.poll()})")
        if line.startswith("PORT "):
            return int(line.split()[1])


def _stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def read_payee_store(db_path: str | Path) -> NodeState:
    """Reopen the payee's store and rebuild its node state (snapshot + replay)."""
    from channels.store import open_store

    payee = Address(LocalSigner(PAYEE_KEY).address)
    with open_store(db_path, core_record_codec()) as store:
        return store.restore(initial_node(payee), replay).state


def run_once(
    *,
    payments: int,
    in_flight: int,
    amount: int,
    workdir: Path,
    timeout: float,
    verify_restart: bool,
    crypto_samples: int,
) -> dict[str, Any]:
    """One bench run in `workdir` (a fresh payee store)."""
    db_path = workdir / "payee.db"
    deposit = payments * amount
    command = [
        sys.executable,
        "-m",
        "channels.bench.direct_peer",
        "--db",
        str(db_path),
        "--deposit",
        str(deposit),
        "--group-target",
        str(max(1, in_flight // 4)),  # commit groups of about a quarter of the window
    ]
    load_before = os.getloadavg()[0]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=child_env())
    try:
        port = _wait_for_port(process, timeout=30)
        payee_cpu_before = process_cpu_seconds(process.pid)
        payer_cpu_before = time.process_time()
        payer, elapsed = trio.run(_pay_all, port, payments, in_flight, amount, deposit, timeout)
        payer_cpu = time.process_time() - payer_cpu_before
        payee_cpu_after = process_cpu_seconds(process.pid)
    finally:
        _stop(process)
    sign_s, recover_s = measure_crypto(crypto_samples)
    latencies = sorted(payer.latencies)
    rate = payer.acked / elapsed
    crypto_limit = 1.0 / (sign_s + recover_s)
    result: dict[str, Any] = {
        "payments": payments,
        "acknowledged": payer.acked,
        "seconds": round(elapsed, 4),
        "payments_per_s": round(rate, 1),
        "p50_ms": round(percentile(latencies, 0.50) * 1e3, 3),
        "p99_ms": round(percentile(latencies, 0.99) * 1e3, 3),
        "crypto_limit_per_s": round(crypto_limit, 1),
        "ratio_to_limit": round(rate / crypto_limit, 3),
        "in_flight": in_flight,
        "max_in_flight_seen": payer.max_in_flight_seen,
        "sign_us": round(sign_s * 1e6, 2),
        "recover_us": round(recover_s * 1e6, 2),
        "synchronous": "FULL",
        "payer_cpu_us": round(payer_cpu / payments * 1e6, 1),
        "cpu_count": os.cpu_count(),
        "load_average_1m": round(load_before, 2),  # other work on the machine skews the figures
    }
    if payee_cpu_before is not None and payee_cpu_after is not None:
        result["payee_cpu_us"] = round((payee_cpu_after - payee_cpu_before) / payments * 1e6, 1)
    if verify_restart:
        node = read_payee_store(db_path)
        result["restored_transferred"] = node.channels[CHANNEL_ID].partner.balance_proof.transferred
    return result


MEDIAN_KEYS = (
    "payments_per_s",
    "p50_ms",
    "p99_ms",
    "crypto_limit_per_s",
    "ratio_to_limit",
    "sign_us",
    "recover_us",
    "seconds",
    "payer_cpu_us",
    "payee_cpu_us",
)


def run_direct_bench(
    payments: int = DEFAULT_PAYMENTS,
    *,
    in_flight: int = MAX_IN_FLIGHT,
    amount: int = 1,
    runs: int = 1,
    workdir: str | Path | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    verify_restart: bool = True,
    crypto_samples: int = 2000,
) -> dict[str, Any]:
    """Run the direct-payment benchmark `runs` times; returns the median figures.

    Keys: payments_per_s, p50_ms, p99_ms, crypto_limit_per_s, ratio_to_limit, in_flight, and
    details (acknowledged, seconds, sign_us, recover_us, max_in_flight_seen, and, with
    `verify_restart`, restored_transferred: the payee's received total rebuilt from its store
    after the payee process was terminated). With runs > 1 each figure is the median over the
    runs (ratio_to_limit: the median of the per-run ratios), `acknowledged` and
    `restored_transferred` the least of any run, and `runs` lists every run.
    """
    if not 1 <= in_flight <= MAX_IN_FLIGHT:
        raise ValueError(f"in_flight must be in [1, {MAX_IN_FLIGHT}], got {in_flight}")
    if payments < 1 or amount < 1 or runs < 1:
        raise ValueError("payments, amount and runs must be positive")
    results: list[dict[str, Any]] = []
    for index in range(runs):
        with tempfile.TemporaryDirectory(prefix="cise-bench-direct-") as scratch:
            base = Path(workdir) / f"run{index}" if workdir is not None else Path(scratch)
            base.mkdir(parents=True, exist_ok=True)
            results.append(
                run_once(
                    payments=payments,
                    in_flight=in_flight,
                    amount=amount,
                    workdir=base,
                    timeout=timeout,
                    verify_restart=verify_restart,
                    crypto_samples=crypto_samples,
                )
            )
    if runs == 1:
        return results[0]
    summary = dict(results[0])
    for key in MEDIAN_KEYS:
        if all(key in r for r in results):
            summary[key] = statistics.median(r[key] for r in results)
    summary["acknowledged"] = min(r["acknowledged"] for r in results)
    summary["load_average_1m"] = max(r["load_average_1m"] for r in results)
    if verify_restart:
        summary["restored_transferred"] = min(r["restored_transferred"] for r in results)
    summary["runs"] = results
    return summary

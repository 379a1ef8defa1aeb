"""The pay-per-use asset benchmark (`cise bench assets`): uses per second end to end.

What it measures: one use is a meter event → the user's payment (a routed charge user → hub →
asset) → the asset's ledger entry → a routed share payment asset → hub → beneficiary for each of
the 5 beneficiaries of the split; a use is final when its status is "paid". `run_assets_bench`
runs `runs` times, each on fresh stores (sqlite synchronous=FULL everywhere):

- three processes on loopback, so that two cores are used: the hub (`python -m hub.synthetic_hub`,
  spawned as a program, a block clock of one block a second), the asset (`python -m
  assets.bench_peer --role asset`: its channel agent, its `AssetAgent`, and the seeded meter
  simulator feeding it) and the peers (`--role peers`: the users, who accept charges from the
  asset only, and the 5 beneficiaries, all hosted in one process);
- `uses` postpaid events, one after the other: the asset answers "accepted" and charges, ledgers
  and pays the shares in the background, at most `in_flight` uses under way (its own bound);
- `uses_per_s` = uses / wall time from the first event until every use is "paid";
  `payments_per_s` = routed payments completed (charges + shares) / the same time;
  `p50_ms`/`p99_ms` = per use, from the asset accepting it (durably) to every share paid (see
  `latency_is`; the agent's own "accepted → ledgered" is `ledgered_p50_ms`/`ledgered_p99_ms`).
  This is a closed loop at full load: by Little's law the latency is about in_flight / uses_per_s.
- the CPU seconds of each process over the run (Linux /proc), and per use.

After each run it checks, and raises `BenchError` naming every failed check otherwise: every use
"paid" (the asset's report and its durable use book), ledger entries = uses, `verify_chain` passes
on the durable ledger (signatures, links, shares = the split of the fee), each beneficiary's
received total (its durable `InvoiceRecord`s "received" from the asset) = the sum of its ledger
shares, the users' channels lost the ledger's fees + the hub's fees (by the hub's announced
schedule, and as the users recorded them), the asset lost exactly the routing fees of its shares,
the hub's durable store gained exactly all hub fees, and nothing is left pending. The result is
the median of the runs, every run's figures under `per_run`.

Layering: assets may import `channels` only. The hub is started as a program; the small process
helpers below mirror `hub.bench`'s rather than importing them. Every wait is bounded and every
process is stopped in a `finally` (SIGTERM, then SIGKILL after a grace). The keys are public test
keys: this must never be pointed at real funds or a real chain.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from assets.bench_peer import (
    ASSET,
    ASSET_ID,
    DEFAULT_DEPOSIT,
    DEFAULT_USERS,
    GO,
    READY,
    REGISTRY_DOMAIN,
    RESULT,
    TARIFF,
    all_names,
    bench_split,
    beneficiary_names,
    nonzero_shares,
)
from assets.ledger import LedgerError, revenue_totals, verify_chain
from assets.ledger_store import LedgerStore
from assets.use_book import UseBook
from channels.bench.synthetic import address_of, domain
from channels.core.channel import get_balance
from channels.core.fees import FeeSchedule
from channels.core.splits import split_fee
from channels.core.state import NodeState
from channels.core.types import BlockNumber
from channels.records import core_record_codec, replay
from channels.store import SqliteStore

DEFAULT_USES = 2_000
DEFAULT_IN_FLIGHT = 64
DEFAULT_RUNS = 3
BLOCK_INTERVAL = 1.0
START_TIMEOUT = 60.0  # for a process to listen / connect
GRACE = 5.0  # seconds between SIGTERM and SIGKILL
LATENCY_IS = "use accepted by the asset (durably) -> every share paid (status paid)"
PROCESSES = 3
ROLES = ("hub", "asset", "peers")


class BenchError(RuntimeError):
    """The benchmark could not run, a use did not complete, or a check failed."""


def default_timeout(uses: int) -> float:
    """Seconds allowed for `uses` uses (generous: 20 uses a second at least)."""
    return 120.0 + uses / 20.0


# ----------------------------------------------------------------------------- processes


@dataclass
class _Process:
    """A child process whose stdout is read line by line with bounded waits."""

    name: str
    popen: subprocess.Popen[bytes]
    stderr_path: Path
    stderr_file: TextIO
    buffer: bytearray = field(default_factory=bytearray)

    def read_line(self, prefix: str, timeout: float) -> str:
        """The rest of the next stdout line starting with `prefix` (other lines are skipped)."""
        assert self.popen.stdout is not None
        fd = self.popen.stdout.fileno()
        deadline = time.monotonic() + timeout
        while True:
            while (end := self.buffer.find(b"\n")) >= 0:
                line = self.buffer[:end].decode(errors="replace")
                del self.buffer[: end + 1]
                if line == prefix or line.startswith(prefix + " "):
                    return line[len(prefix) :].strip()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BenchError(f"{self.name}: no {prefix} line within {timeout:.0f} s")
            ready, _, _ = select.select([fd], [], [], remaining)
            if not ready:
                continue
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.popen.wait(timeout=GRACE)
                raise BenchError(
                    f"{self.name} exited (status {self.popen.returncode}) before its {prefix} "
                    f"line; its stderr ends with:\n{self.stderr_tail()}"
                )
            self.buffer += chunk

    def read_json(self, prefix: str, timeout: float) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.read_line(prefix, timeout))
        return value

    def send_line(self, line: str) -> None:
        assert self.popen.stdin is not None
        try:
            self.popen.stdin.write(line.encode() + b"\n")
            self.popen.stdin.flush()
        except BrokenPipeError:
            raise BenchError(
                f"{self.name} exited before it was told {line}; its stderr ends with:\n"
                f"{self.stderr_tail()}"
            ) from None

    def stderr_tail(self, lines: int = 20) -> str:
        self.stderr_file.flush()
        try:
            text = self.stderr_path.read_text(errors="replace")
        except OSError:
            return "(unreadable)"
        return "\n".join(text.splitlines()[-lines:])

    def cpu_seconds(self) -> float | None:
        """User + system CPU seconds so far (Linux /proc; None where unavailable)."""
        try:
            with open(f"/proc/{self.popen.pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError, IndexError):
            return None

    def wait_exit(self, timeout: float) -> None:
        try:
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise BenchError(f"{self.name} did not exit within {timeout:.0f} s") from None
        if self.popen.returncode:
            raise BenchError(
                f"{self.name} exited with status {self.popen.returncode}; its stderr ends "
                f"with:\n{self.stderr_tail()}"
            )

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after GRACE seconds."""
        try:
            if self.popen.poll() is None:
                self.popen.send_signal(signal.SIGTERM)
                try:
                    self.popen.wait(timeout=GRACE)
                except subprocess.TimeoutExpired:
                    self.popen.kill()
                    self.popen.wait(timeout=GRACE)
        finally:
            for pipe in (self.popen.stdin, self.popen.stdout):
                if pipe is not None:
                    with contextlib.suppress(OSError):
                        pipe.close()
            self.stderr_file.close()


def _child_env() -> dict[str, str]:
    # the children import this very checkout's packages, wherever it was imported from
    root = str(Path(__file__).resolve().parents[1])
    python_path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": python_path}


@contextlib.contextmanager
def _processes() -> Iterator[list[_Process]]:
    """A list to start processes into; each is stopped on the way out, the newest first."""
    started: list[_Process] = []
    try:
        yield started
    finally:
        errors: list[BaseException] = []
        for process in reversed(started):
            try:
                process.stop()
            except BaseException as exc:
                errors.append(exc)
        if errors:
            raise errors[0]


def _start(
    started: list[_Process], name: str, module: str, args: Sequence[str], workdir: Path
) -> _Process:
    stderr_path = workdir / f"{name}.stderr"
    stderr_file = open(stderr_path, "a")  # noqa: SIM115  # closed by _Process.stop
    try:
        popen = subprocess.Popen(
            [sys.executable, "-m", module, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr_file,
            env=_child_env(),
        )
    except BaseException:
        stderr_file.close()
        raise
    process = _Process(name, popen, stderr_path, stderr_file)
    started.append(process)
    return process


# ----------------------------------------------------------------------------- one run


@dataclass(frozen=True)
class _Plan:
    uses: int
    in_flight: int
    users: int
    timeout: float


def _hub_totals(db: Path) -> tuple[int, int]:
    """From the hub's durable store: (what it gained over its deposits, pending locks)."""
    store = SqliteStore(db, core_record_codec())
    try:
        restored = store.restore(NodeState(address_of("hub"), domain(), BlockNumber(0)), replay)
    finally:
        store.close()
    gained = locks = 0
    for channel in restored.state.channels.values():
        gained += get_balance(channel.our, channel.partner) - DEFAULT_DEPOSIT
        locks += len(channel.our.locks) + len(channel.partner.locks)
    return gained, locks


@dataclass
class LedgerFacts:
    """What the asset's durable ledger and use book say after a run."""

    entries: int
    book: dict[str, int]
    chain_error: str | None
    fee_total: int
    fees: list[int]
    share_amounts: list[int]  # every nonzero share, in ledger order
    by_beneficiary: dict[bytes, int]


def ledger_facts(path: Path) -> LedgerFacts:
    with LedgerStore(path) as ledger:
        entries = list(ledger.entries())
        book = UseBook(ledger.db).counts()
    chain_error = None
    try:
        verify_chain(
            entries, ASSET_ID, address_of(ASSET), REGISTRY_DOMAIN, splits={1: bench_split()}
        )
    except LedgerError as exc:
        chain_error = str(exc)
    totals = revenue_totals(entries)
    fees: list[int] = []
    shares: list[int] = []
    for entry in entries:
        body = entry.decode_use_body()
        fees.append(body.fee)
        shares.extend(s.amount for s in body.shares if s.amount > 0)
    return LedgerFacts(
        entries=len(entries),
        book=book,
        chain_error=chain_error,
        fee_total=totals.fee_total,
        fees=fees,
        share_amounts=shares,
        by_beneficiary=dict(totals.by_beneficiary),
    )


def check_run(
    uses: int,
    asset: dict[str, Any],
    peers: dict[str, Any],
    ledger: LedgerFacts,
    hub_gain: int,
    hub_locks: int,
) -> dict[str, Any]:
    """The checks of one run of `uses` uses, from the asset's and the peers' reports, the
    asset's durable ledger and the hub's durable store: {"checks": {name: passed},
    "failed_checks": [names], the money figures}."""
    schedule = FeeSchedule(**peers["hub_fee_schedule"])
    user_hub_fees = sum(schedule.fee(fee) for fee in ledger.fees)
    share_hub_fees = sum(schedule.fee(amount) for amount in ledger.share_amounts)
    users = peers["users"].values()
    recorded_user_fees = sum(u["hub_fees"] for u in users)
    beneficiaries = peers["beneficiaries"]
    received_ok = all(
        b["received"] == ledger.by_beneficiary.get(bytes.fromhex(b["address"][2:]), 0)
        and b["channel_delta"] == b["received"]
        and b["shares_received"] == uses
        for b in beneficiaries.values()
    )
    checks = {
        "every use paid (asset)": asset["book"] == {"paid": uses} and asset["paid_uses"] == uses,
        "every use paid (durable use book)": ledger.book == {"paid": uses},
        "every event accepted": asset["outcomes"] == {"accepted": uses},
        "ledger entries = uses": ledger.entries == uses,
        "ledger chain verifies": ledger.chain_error is None,
        "every share nonzero and paid": len(ledger.share_amounts) == uses * nonzero_shares()
        and asset["stats"]["shares_paid"] == len(ledger.share_amounts),
        "beneficiaries received their ledger shares": received_ok
        and set(beneficiaries) == set(beneficiary_names()),
        "users paid every charge": sum(u["charges_paid"] for u in users) == uses
        and sum(u["paid_amount"] for u in users) == ledger.fee_total,
        "users lost fees + hub fees": peers["users_lost"] == ledger.fee_total + user_hub_fees,
        "users' recorded hub fees = the schedule's": recorded_user_fees == user_hub_fees
        and all(u["hub_fees"] == u["hub_fees_by_schedule"] for u in users),
        "asset lost its share routing fees": -asset["channel_delta"]
        == asset["stats"]["routing_fees"]
        == share_hub_fees,
        "the hub's store gained all hub fees": hub_gain == user_hub_fees + share_hub_fees,
        "money conserved": peers["users_lost"]
        == peers["beneficiaries_gained"] + hub_gain + asset["channel_delta"],
        "nothing pending": asset["pending_locks"] == 0
        and peers["pending_locks"] == 0
        and hub_locks == 0,
    }
    return {
        "checks": checks,
        "failed_checks": [name for name, ok in checks.items() if not ok],
        "chain_error": ledger.chain_error,
        "ledger_entries": ledger.entries,
        "fee_total": ledger.fee_total,
        "user_hub_fees": user_hub_fees,
        "share_hub_fees": share_hub_fees,
        "hub_gain_in_store": hub_gain,
        "users_lost": peers["users_lost"],
        "beneficiaries_gained": peers["beneficiaries_gained"],
        "asset_channel_delta": asset["channel_delta"],
    }


def _per_use_us(before: float | None, after: float | None, uses: int) -> float | None:
    if before is None or after is None:
        return None
    return round((after - before) / uses * 1e6, 1)


def run_network(plan: _Plan, workdir: Path, *, profile_dir: Path | None = None) -> dict[str, Any]:
    """Start the hub, the peers and the asset in `workdir`, run the plan's uses, stop everything,
    check; the figures of the run (with its checks)."""
    workdir.mkdir(parents=True, exist_ok=True)
    hub_db = workdir / "hub.sqlite"
    ledger_path = workdir / "asset-ledger.sqlite"
    names = all_names(plan.users)
    common = [
        "--db-dir",
        str(workdir / "agents"),
        "--users",
        str(plan.users),
        "--deposit",
        str(DEFAULT_DEPOSIT),
        "--timeout",
        str(plan.timeout),
    ]

    def profiled(name: str) -> list[str]:
        return ["--profile", str(profile_dir / f"{name}.prof")] if profile_dir else []

    load_before = os.getloadavg()[0]
    with _processes() as started:
        hub = _start(
            started,
            "hub",
            "hub.synthetic_hub",
            [
                "--db",
                str(hub_db),
                "--agents",
                ",".join(names),
                "--deposit",
                str(DEFAULT_DEPOSIT),
                "--hub-deposit",
                str(DEFAULT_DEPOSIT),
                "--block-interval",
                str(BLOCK_INTERVAL),
                *profiled("hub"),
            ],
            workdir,
        )
        port = hub.read_line("PORT", START_TIMEOUT)
        peers = _start(
            started,
            "peers process",
            "assets.bench_peer",
            [
                "--role",
                "peers",
                "--hub-port",
                port,
                "--expect-uses",
                str(plan.uses),
                *common,
                *profiled("peers"),
            ],
            workdir,
        )
        peers.read_line(READY, START_TIMEOUT)
        asset = _start(
            started,
            "asset process",
            "assets.bench_peer",
            [
                "--role",
                "asset",
                "--hub-port",
                port,
                "--ledger",
                str(ledger_path),
                "--uses",
                str(plan.uses),
                "--in-flight",
                str(plan.in_flight),
                *common,
                *profiled("asset"),
            ],
            workdir,
        )
        asset.read_line(READY, START_TIMEOUT)
        processes = (hub, asset, peers)
        cpu_before = [p.cpu_seconds() for p in processes]
        asset.send_line(GO)
        asset_result = asset.read_json(RESULT, plan.timeout + 60)
        cpu_after = [p.cpu_seconds() for p in processes]
        if "error" in asset_result:
            raise BenchError(f"asset process: {asset_result['error']}")
        peers_result = peers.read_json(RESULT, 60)
        if "error" in peers_result:
            raise BenchError(f"peers process: {peers_result['error']}")
        asset.wait_exit(30)  # it exits by itself after its result, its stores closed
    # every process is stopped: read what they left durably
    hub_gain, hub_locks = _hub_totals(hub_db)
    ledger = ledger_facts(ledger_path)
    seconds = asset_result["seconds"]
    payments = asset_result["stats"]["ledgered"] + asset_result["stats"]["shares_paid"]
    result: dict[str, Any] = {
        "uses": plan.uses,
        "seconds": seconds,
        "uses_per_s": round(plan.uses / seconds, 1),
        "payments": payments,
        "payments_per_s": round(payments / seconds, 1),
        "feed_seconds": asset_result["feed_seconds"],
        **asset_result["paid"],
        "ledgered_p50_ms": asset_result["ledgered"]["p50_ms"],
        "ledgered_p99_ms": asset_result["ledgered"]["p99_ms"],
        "asset_stats": asset_result["stats"],
    }
    for index, role in enumerate(ROLES):
        before, after = cpu_before[index], cpu_after[index]
        cpu_s = None if before is None or after is None else round(after - before, 3)
        result[f"{role}_cpu_s"] = cpu_s
        result[f"{role}_cpu_us_per_use"] = _per_use_us(before, after, plan.uses)
        result[f"{role}_cpu_share"] = None if cpu_s is None else round(cpu_s / seconds, 3)
    result.update(check_run(plan.uses, asset_result, peers_result, ledger, hub_gain, hub_locks))
    result["load_average_1m"] = round(load_before, 2)
    return result


# ----------------------------------------------------------------------------- the benchmark


MEDIAN_KEYS = (
    "uses_per_s",
    "payments_per_s",
    "p50_ms",
    "p90_ms",
    "p99_ms",
    "max_ms",
    "ledgered_p50_ms",
    "ledgered_p99_ms",
    "seconds",
    "hub_cpu_s",
    "asset_cpu_s",
    "peers_cpu_s",
    "hub_cpu_us_per_use",
    "asset_cpu_us_per_use",
    "peers_cpu_us_per_use",
    "hub_cpu_share",
    "asset_cpu_share",
    "peers_cpu_share",
)


def run_assets_bench(
    uses: int = DEFAULT_USES,
    *,
    in_flight: int = DEFAULT_IN_FLIGHT,
    runs: int = DEFAULT_RUNS,
    users: int = DEFAULT_USERS,
    workdir: str | Path | None = None,
    timeout: float | None = None,
    profile_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Run the asset benchmark `runs` times (see the module docstring); the median figures.

    Raises BenchError when a process fails, a use does not complete or a check fails.
    """
    if min(uses, in_flight, runs, users) < 1:
        raise ValueError("uses, in_flight, runs and users must be positive")
    plan = _Plan(
        uses=uses,
        in_flight=in_flight,
        users=users,
        timeout=timeout if timeout is not None else default_timeout(uses),
    )
    results: list[dict[str, Any]] = []
    for index in range(runs):
        with tempfile.TemporaryDirectory(prefix="cise-bench-assets-") as scratch:
            base = Path(workdir) / f"run{index}" if workdir is not None else Path(scratch)
            profile = Path(profile_dir) / f"run{index}" if profile_dir is not None else None
            if profile is not None:
                profile.mkdir(parents=True, exist_ok=True)
            run = run_network(plan, base, profile_dir=profile)
        if run["failed_checks"]:
            raise BenchError(
                f"run {index + 1}: failed checks: {', '.join(run['failed_checks'])} "
                f"(chain: {run['chain_error']}); figures: {run}"
            )
        results.append(run)
    shares = split_fee(TARIFF.price, bench_split())
    summary: dict[str, Any] = {
        "uses_per_s": 0.0,
        "payments_per_s": 0.0,
        "p50_ms": 0.0,
        "p99_ms": 0.0,
        "latency_is": LATENCY_IS,
        "uses": uses,
        "in_flight": in_flight,
        "runs": runs,
        "processes": PROCESSES,
        "users": users,
        "beneficiaries": len(shares),
        "payments_per_use": 1 + nonzero_shares(),
        "fee": TARIFF.price,
        "shares": list(shares),
        "postpaid": True,
        "checked": all(not r["failed_checks"] for r in results),
        "checks": list(results[0]["checks"]),
        "synchronous": "FULL",
        "cpu_count": os.cpu_count() or 1,
    }
    for key in MEDIAN_KEYS:
        values = [r[key] for r in results if r.get(key) is not None]
        if values:
            summary[key] = statistics.median(values)
    summary["load_average_1m"] = max(r["load_average_1m"] for r in results)
    summary["per_run"] = results
    return summary


__all__ = [
    "BenchError",
    "LedgerFacts",
    "check_run",
    "default_timeout",
    "ledger_facts",
    "run_assets_bench",
]

"""The crash campaign (`cise bench crash`): real `cise` processes SIGKILLed at random, then checked.

What it is for: issue 16's point 6. One run, fresh and seeded: anvil mining a block every
`block_time` seconds (set up with automine, then switched to interval mining before any service
starts), the contracts, and the processes an operator runs, each a real `cise` command:
`hub serve` (settlement rounds every few seconds), `watchtower serve`, `agent receive` for a payee
(which hands its proofs to the tower), a beneficiary and the asset's user (which pays the asset's
charges), `asset run --source http` (meter events posted by a feeder thread: charge the user,
ledger, pay two shares), and payers (`agent pay --count N`, a batch of payments at once). Then a
seeded schedule of SIGKILLs, each while payments and uses are under way: the hub (some of them
right after asking for a settlement round with `cise settle run`), the payee, the beneficiary, the
user, the asset agent, the tower, and payers with payments in flight. A killed service is
restarted on its files; a killed payer's batch is paid again (by id) at the end.

Afterwards (`cise.campaign_checks`): every payment id completed or cleanly failed, no lock left,
every share paid once, every party's records equal to its channels, every wallet reconciled from
the chain, nobody below its latest signed state, money conserved. The result is one JSON-ready
dict: kills by kind, payments ok/failed, uses, and each invariant with its findings.

What it must never do: wait without a bound, leave a process running (every child is in its own
process group and stopped on the way out, whatever happened), or weaken a check to make a run
pass. It uses the public dev keys of a chain it starts itself: never point it at real funds.
"""

from __future__ import annotations

import contextlib
import io
import json
import random
import signal
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth_account import Account

from channels.chain.client import Web3ChainClient
from channels.chain.connection import Connection
from channels.chain.deploy import deploy
from channels.chain.nodes import LocalNode, free_port, open_anvil, rpc_call
from channels.core.types import Address, to_checksum
from channels.records import PaymentRecord, core_record_codec
from channels.signer import LocalSigner
from channels.store import SqliteStore
from cise.campaign_checks import Parties, check_all, settlement_rounds, wait_quiet
from cise.campaign_procs import CampaignProcessError, Proc, Procs
from cise.network import Network, load_network
from cise.settle_cmd import FINISHED, open_settlement_store, settlement_path

OPERATOR, USER, TOWER, HUB, PAYER, PAYEE, BENEFICIARY, ASSET = 0, 2, 3, 4, 5, 6, 7, 8
TOKENS = 100 * 1_000_000  # €100 minted to each account taking part
DEPOSIT = "5"  # euros in each channel (its opener's side)
PAYMENT = "0.001"  # euros a payment (1,000 units)
PRICE = 10_000  # units a use (€0.01), prepaid
TARIFF = json.dumps({"kind": "cycle", "price": PRICE, "max_units": 1})
ASSET_NAME = "crash-washer"
READY_S = 90.0  # a (re)started process's ready line
FINAL_PAY_S = 240.0  # the final pass over every payment id
QUIET_S = 120.0  # locks resolved, shares paid, withdraws landed
PROBES = 5  # fresh payments to each payee once the campaign is over
PROBE_S = 90.0
SERVICES = ("hub", "tower", "payee", "beneficiary", "user", "asset")
# kinds of kill, and how often each is drawn beyond the one of each every schedule has
KIND_WEIGHTS = {
    "payer": 3,
    "hub": 2,
    "hub_settlement": 2,
    "payee": 2,
    "asset": 2,
    "beneficiary": 1,
    "user": 1,
    "tower": 1,
}


class CampaignError(RuntimeError):
    """The campaign could not run (setup failed, a process never came up): not a finding."""


@dataclass(frozen=True)
class CampaignConfig:
    kills: int = 24
    seed: int = 1
    block_time: int = 1
    batch: int = 30  # payments a payer process pays at once
    settle_timeout: int = 40  # blocks: the challenge period
    settle_every: int = 8  # seconds between the hub's settlement rounds
    # blocks a payer's lock lives: the hub forwards it with `reveal-timeout` 5 blocks less, and a
    # payee refuses a lock with less than its own reveal timeout (10 blocks) left; a payee down
    # longer than ~10 s lets locks expire
    lock_timeout: int = 25
    long_outage: float = 0.3  # chance that an agent stays down `long_outage_s`
    long_outage_s: tuple[float, float] = (6.0, 14.0)
    gap_s: tuple[float, float] = (0.8, 2.4)  # work between two kills
    workdir: Path | None = None  # kept after the run when given


@dataclass
class _Run:
    config: CampaignConfig
    rng: random.Random
    workdir: Path
    data: Path
    network_file: Path
    addr: dict[int, str]
    ports: dict[str, int]
    procs: Procs
    services: dict[str, Proc] = field(default_factory=dict)
    payer: Proc | None = None
    payer_batches: list[tuple[int, int, Proc]] = field(default_factory=list)
    next_payment_id: int = 1
    kills: list[dict[str, Any]] = field(default_factory=list)
    unexpected_exits: list[dict[str, Any]] = field(default_factory=list)
    settle_runs: list[Proc] = field(default_factory=list)
    feeder: _Feeder | None = None
    started: float = field(default_factory=time.monotonic)

    def argv(self, account: int, *args: str) -> list[str]:
        where = ["--network", str(self.network_file), "--account", str(account)]
        where += ["--data-dir", str(self.data)]
        head, op, *rest = args
        return [head, *where, op, *rest] if head == "channel" else [head, op, *where, *rest]

    def hub_args(self) -> list[str]:
        return ["--hub", self.addr[HUB], "--hub-port", str(self.ports["hub"])]


def kill_schedule(kills: int, rng: random.Random) -> list[str]:
    """`kills` kinds of kill: each kind at least once, the rest drawn by weight, shuffled."""
    kinds = list(KIND_WEIGHTS)
    if kills < len(kinds):
        raise ValueError(f"--kills must be at least {len(kinds)} (one of each kind), got {kills}")
    extra = rng.choices(kinds, weights=list(KIND_WEIGHTS.values()), k=kills - len(kinds))
    schedule = kinds + extra
    rng.shuffle(schedule)
    return schedule


def run_campaign(config: CampaignConfig) -> dict[str, Any]:
    """One campaign (see the module docstring); the result as a JSON-ready dict."""
    rng = random.Random(config.seed)
    schedule = kill_schedule(config.kills, rng)
    with contextlib.ExitStack() as stack:
        if threading.current_thread() is threading.main_thread():
            previous = signal.signal(signal.SIGTERM, _interrupt)  # `kill` stops the children too
            stack.callback(signal.signal, signal.SIGTERM, previous)
        if config.workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="cise-crash-")))
        else:
            workdir = Path(config.workdir)
            workdir.mkdir(parents=True, exist_ok=True)
        node = stack.enter_context(open_anvil())
        started = time.monotonic()
        network_file, addr = _set_up(node, workdir, config.settle_timeout)
        _interval_mining(node, config.block_time)
        procs = Procs(workdir)
        stack.callback(procs.close)
        run = _Run(
            config, rng, workdir, workdir / "data", network_file, addr,
            {"hub": free_port(), "tower": free_port(), "asset": free_port()}, procs,
        )  # fmt: skip
        for name in SERVICES:
            _start_service(run, name)
        run.feeder = _Feeder(run.ports["asset"], addr[USER])
        stack.callback(run.feeder.stop)
        run.feeder.start()
        for index, kind in enumerate(schedule):
            _step(run, index, kind)
        outcomes = _finish(run)
        parties = Parties(
            network_file=network_file,
            data=run.data,
            keys=load_network(network_file).dev_keys,
            hub=HUB,
            payer=PAYER,
            payee=PAYEE,
            beneficiary=BENEFICIARY,
            user=USER,
            asset=ASSET,
            tower=TOWER,
            asset_name=ASSET_NAME,
        )
        quiet_s = wait_quiet(parties, QUIET_S)
        probes = _probe(run)
        campaign_s = time.monotonic() - started
        procs.close()  # every service stopped (SIGTERM) before its files are read
        invariants = check_all(parties, outcomes)
        invariants["every_payee_reachable_after_the_campaign"] = _probe_invariant(probes)
        invariants["no_payment_reported_failed_then_completed"] = _reported_invariant(run, outcomes)
        rounds = settlement_rounds(parties)
        uses = run.feeder.outcomes
        result: dict[str, Any] = {
            "seed": config.seed,
            "block_time": config.block_time,
            "kills": len(run.kills),
            "kills_by_kind": dict(Counter(k["kind"] for k in run.kills)),
            "payer_kills_in_flight": [
                len(k["in_flight"]) for k in run.kills if k["kind"] == "payer"
            ],
            "payments": {
                "ids": len(outcomes),
                "ok": sum(1 for o in outcomes.values() if o == "completed"),
                "failed": sum(1 for o in outcomes.values() if o == "failed"),
                "unknown": sum(1 for o in outcomes.values() if o not in ("completed", "failed")),
            },
            "uses": dict(Counter(uses.values())),
            "settle_runs": [_settle_outcome(p) for p in run.settle_runs],
            "settlement_rounds": rounds,
            "quiet_after_s": quiet_s,
            "kills_in_open_rounds": [k["round_open"] for k in run.kills if k.get("round_open")],
            "unexpected_exits": run.unexpected_exits,
            "kill_log": run.kills,
            "invariants": invariants,
            "ok": all(v["ok"] for v in invariants.values()) and not run.unexpected_exits,
            "seconds": round(time.monotonic() - started, 1),
            "campaign_seconds": round(campaign_s, 1),
            "workdir": str(workdir) if config.workdir is not None else None,
        }
        return result
    raise AssertionError("unreachable")  # pragma: no cover


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


# -- setup ------------------------------------------------------------------------------------


def _set_up(node: LocalNode, workdir: Path, settle_timeout: int) -> tuple[Path, dict[int, str]]:
    """Contracts, tokens, channels and the asset, on an automining chain (fast); the network file."""
    connection = Connection.from_url(node.url, node.private_keys)
    deployer = Account.from_key(node.private_keys[OPERATOR])
    deployment = deploy(connection, deployer, settle_timeout=settle_timeout)
    minter = Web3ChainClient(connection, deployment, deployer)
    keys = node.private_keys
    addr = {i: to_checksum(Address(LocalSigner(keys[i]).address)) for i in range(len(keys))}
    for account in (OPERATOR, USER, TOWER, HUB, PAYER, PAYEE, BENEFICIARY, ASSET):
        minter.mint(Address(LocalSigner(keys[account]).address), TOKENS)
    network_file = workdir / "network.json"
    network_file.write_text(Network(node.url, deployment, keys).to_json() + "\n")
    data = workdir / "data"
    opens = [
        (PAYER, HUB), (USER, HUB), (HUB, PAYEE), (HUB, BENEFICIARY), (HUB, ASSET),
    ]  # fmt: skip
    for opener, partner in opens:
        _cli(network_file, data, opener, "channel", "open", addr[partner], "--deposit", DEPOSIT)
    split = f"{addr[PAYEE]}=600000,{addr[BENEFICIARY]}=400000"
    _cli(network_file, data, OPERATOR, "asset", "register", ASSET_NAME,
         "--agent", addr[ASSET], "--split", split)  # fmt: skip
    return network_file, addr


def _cli(network_file: Path, data: Path, account: int, *args: str) -> str:
    """A set-up command in this process (stdout captured); CampaignError if it fails."""
    from cise.main import main

    where = ["--network", str(network_file), "--account", str(account), "--data-dir", str(data)]
    head, op, *rest = args
    argv = [head, *where, op, *rest] if head == "channel" else [head, op, *where, *rest]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    if code != 0:
        raise CampaignError(f"set-up `cise {' '.join(args)}` exited {code}: {err.getvalue()}")
    return out.getvalue()


def _interval_mining(node: LocalNode, block_time: int) -> None:
    """From now on a block every `block_time` seconds, and only then (no mining per transaction)."""
    rpc_call(node.url, "evm_setAutomine", [False])
    rpc_call(node.url, "evm_setIntervalMining", [block_time])


# -- services ---------------------------------------------------------------------------------


def _service_argv(run: _Run, name: str) -> tuple[list[str], str]:
    """(argv, ready marker) of a service."""
    hub_args = run.hub_args()
    if name == "hub":
        argv = run.argv(HUB, "hub", "serve", "--port", str(run.ports["hub"]),
                        "--settle-every", str(run.config.settle_every), "--settle-min", "0.001",
                        "--settle-collect", "3", "--reveal-timeout", "5",
                        "--lock-timeout", str(run.config.lock_timeout))  # fmt: skip
        return argv, "listening on 127.0.0.1:"
    if name == "tower":
        argv = run.argv(TOWER, "watchtower", "serve", "--port", str(run.ports["tower"]),
                        "--poll-interval", "0.5")  # fmt: skip
        return argv, "listening on 127.0.0.1:"
    if name == "payee":
        tower = f"{run.addr[TOWER]}@{run.ports['tower']}"
        return run.argv(PAYEE, "agent", "receive", *hub_args, "--watchtower", tower), "connected"
    if name == "beneficiary":
        return run.argv(BENEFICIARY, "agent", "receive", *hub_args), "connected"
    if name == "user":
        argv = run.argv(USER, "agent", "receive", *hub_args,
                        "--accept-charges-from", run.addr[ASSET], "--max-charge", "0.1")  # fmt: skip
        return argv, "connected"
    if name == "asset":
        argv = run.argv(ASSET, "asset", "run", ASSET_NAME, *hub_args, "--tariff", TARIFF,
                        "--users", run.addr[USER], "--source", "http",
                        "--http-port", str(run.ports["asset"]), "--seconds", "3600",
                        "--anchor-every", "15", "--charge-timeout", "8",
                        "--settle-timeout", "20")  # fmt: skip
        return argv, "listening"
    raise AssertionError(name)


def _start_service(run: _Run, name: str) -> Proc:
    argv, ready = _service_argv(run, name)
    proc = run.procs.start(name, argv)
    run.services[name] = proc
    try:
        proc.wait_line(ready, READY_S)
    except CampaignProcessError as exc:
        raise CampaignError(str(exc)) from None
    return proc


def _check_alive(run: _Run) -> None:
    """A service that exited by itself is a finding (a service never dies); restart it."""
    for name, proc in list(run.services.items()):
        if not proc.running() and not proc.killed:
            run.unexpected_exits.append(
                {"process": name, "status": proc.popen.returncode, "log": proc.log_tail()}
            )
            _start_service(run, name)


# -- the kills --------------------------------------------------------------------------------


def _ensure_payer(run: _Run, *, fresh: bool = False) -> Proc:
    """The running payer, or a new batch of `batch` payments from the next payment id (`fresh`:
    the running one is left to end first, bounded, then killed)."""
    if run.payer is not None and run.payer.running():
        if not fresh:
            return run.payer
        try:
            run.payer.popen.wait(timeout=READY_S)
        except subprocess.TimeoutExpired:
            run.payer.kill()
    first, count = run.next_payment_id, run.config.batch
    run.next_payment_id += count
    argv = run.argv(PAYER, "agent", "pay", *run.hub_args(), run.addr[PAYEE], PAYMENT,
                    "--payment-id", str(first), "--count", str(count))  # fmt: skip
    run.payer = run.procs.start(f"payer-{first}", argv)
    run.payer_batches.append((first, count, run.payer))
    return run.payer


def _step(run: _Run, index: int, kind: str) -> None:
    _check_alive(run)
    payer = _ensure_payer(run)
    time.sleep(run.rng.uniform(*run.config.gap_s))
    kill: dict[str, Any] = {
        "index": index,
        "kind": kind,
        "at_s": round(time.monotonic() - run.started, 1),
    }
    if kind == "payer":
        if not payer.running():
            payer = _ensure_payer(run)
        if payer.lines:  # this batch is ending: a fresh one, killed as soon as it pays
            payer = _ensure_payer(run, fresh=True)
        _wait_first_outcome(payer)
        ended = len(payer.lines)
        payer.kill()
        kill["process"] = payer.name
        kill["ended_before_kill"] = ended
        kill["in_flight"] = _payments_not_final(run)
    elif kind == "hub_settlement":
        run.settle_runs.append(
            run.procs.start(
                f"settle-run-{index}",
                run.argv(HUB, "settle", "run", "--wait", "30", "--json"),
            )
        )
        time.sleep(run.rng.uniform(0.5, 4.0))  # the round collecting signatures, or landing
        kill["round_open"] = _open_round(run)
        _kill_and_restart(run, "hub", kill)
    else:
        _kill_and_restart(run, kind, kill)
    run.kills.append(kill)


def _wait_first_outcome(payer: Proc) -> None:
    """Until the payer printed its first outcome (its payments are under way), polled tightly so
    that the kill lands while most of the batch is in flight; bounded."""
    deadline = time.monotonic() + READY_S
    while not payer.lines and payer.running() and time.monotonic() < deadline:
        time.sleep(0.002)


def _payments_not_final(run: _Run) -> list[int]:
    """The payer's payment ids whose records are neither completed nor failed (read-only)."""
    keys = load_network(run.network_file).dev_keys
    path = run.data / f"party-{to_checksum(Address(LocalSigner(keys[PAYER]).address))}.sqlite"
    store = SqliteStore(path, core_record_codec(), read_only=True)
    try:
        return sorted(
            r.payment_id
            for _, r in store.facts("payment:")
            if isinstance(r, PaymentRecord) and r.status not in ("completed", "failed")
        )
    finally:
        store.close()


def _open_round(run: _Run) -> str | None:
    """The hub's newest settlement round if it has not finished ("id status"), read-only."""
    keys = load_network(run.network_file).dev_keys
    path = settlement_path(run.data, Address(LocalSigner(keys[HUB]).address))
    if not path.exists():
        return None
    store = open_settlement_store(path, read_only=True)
    try:
        rounds = store.rounds(1)
    finally:
        store.close()
    if rounds and rounds[0].status not in FINISHED:
        return f"{rounds[0].id} {rounds[0].status}"
    return None


def _kill_and_restart(run: _Run, name: str, kill: dict[str, Any]) -> None:
    proc = run.services[name]
    kill["process"] = name
    kill["was_running"] = proc.running()
    proc.kill()
    down = run.rng.uniform(0.2, 1.5)
    if name in ("payee", "beneficiary", "user") and run.rng.random() < run.config.long_outage:
        down = run.rng.uniform(*run.config.long_outage_s)  # past the locks' reveal window
    kill["down_s"] = round(down, 1)
    time.sleep(down)
    started = time.monotonic()
    _start_service(run, name)
    kill["restart_s"] = round(time.monotonic() - started, 1)


# -- the end ----------------------------------------------------------------------------------


def _finish(run: _Run) -> dict[int, str]:
    """Stop feeding; the last batch ends; every payment id paid again (idempotent) by a payer
    that stays up; each id's outcome as the payer printed it."""
    assert run.feeder is not None
    run.feeder.stop()
    _check_alive(run)
    if run.payer is not None and run.payer.running():
        try:
            run.payer.popen.wait(timeout=FINAL_PAY_S / 2)
        except Exception:  # too slow: a kill like any other
            run.payer.kill()
    last = run.next_payment_id - 1
    outcomes: dict[int, str] = dict.fromkeys(range(1, last + 1), "unknown")
    if last == 0:
        return outcomes
    argv = run.argv(PAYER, "agent", "pay", *run.hub_args(), run.addr[PAYEE], PAYMENT,
                    "--payment-id", "1", "--count", str(last))  # fmt: skip
    final = run.procs.start("payer-final", argv)
    deadline = time.monotonic() + FINAL_PAY_S
    while final.running() and time.monotonic() < deadline:
        time.sleep(0.2)
    if final.running():
        final.kill()
    time.sleep(0.3)  # the reader's last lines
    for line in final.lines:
        with contextlib.suppress(ValueError, KeyError, TypeError):
            item = json.loads(line)
            outcomes[int(item["payment_id"])] = str(item["status"])
    return outcomes


def _probe(run: _Run) -> dict[str, dict[int, str]]:
    """After the campaign: PROBES fresh payments from the payer to the payee, then to the
    beneficiary (all restarted long ago): each must complete. Outcomes by payee and id."""
    found: dict[str, dict[int, str]] = {}
    for name, account in (("payee", PAYEE), ("beneficiary", BENEFICIARY)):
        first = run.next_payment_id
        run.next_payment_id += PROBES
        argv = run.argv(PAYER, "agent", "pay", *run.hub_args(), run.addr[account], PAYMENT,
                        "--payment-id", str(first), "--count", str(PROBES))  # fmt: skip
        proc = run.procs.start(f"probe-{name}", argv)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.popen.wait(timeout=PROBE_S)
        proc.stop()
        found[name] = dict.fromkeys(range(first, first + PROBES), "no outcome")
        for line in proc.lines:
            with contextlib.suppress(ValueError, KeyError, TypeError):
                item = json.loads(line)
                reason = item.get("reason", "")
                found[name][int(item["payment_id"])] = f"{item['status']} {reason}".strip()
    return found


def _reported_invariant(run: _Run, outcomes: dict[int, str]) -> dict[str, Any]:
    """A payer process that printed "failed" for an id told its operator the payment did not
    happen: it must not have completed afterwards (a payer would pay again)."""
    reported: dict[int, set[str]] = {}
    for proc in run.procs.started:
        if not proc.name.startswith("payer-"):
            continue
        for line in proc.lines:
            with contextlib.suppress(ValueError, KeyError, TypeError):
                item = json.loads(line)
                reported.setdefault(int(item["payment_id"]), set()).add(str(item["status"]))
    findings = [
        {"payment_id": payment_id, "reported": sorted(seen), "final": outcomes.get(payment_id)}
        for payment_id, seen in sorted(reported.items())
        if "failed" in seen and outcomes.get(payment_id) == "completed"
    ]
    return {
        "ok": not findings,
        "findings": findings[:50],
        "pending_reports": sum(1 for seen in reported.values() if "pending" in seen),
    }


def _probe_invariant(probes: dict[str, dict[int, str]]) -> dict[str, Any]:
    findings = [
        {"payee": name, "payment_id": payment_id, "outcome": outcome}
        for name, outcomes in probes.items()
        for payment_id, outcome in outcomes.items()
        if outcome != "completed"
    ]
    return {"ok": not findings, "findings": findings}


def _settle_outcome(proc: Proc) -> str:
    proc.stop()
    for line in proc.lines:
        with contextlib.suppress(ValueError, KeyError, TypeError):
            return str(json.loads(line)["status"])
    return f"exit {proc.popen.returncode}"


class _Feeder:
    """A thread posting one prepaid use at a time to the asset agent's meter endpoint; an event
    is posted again (same id) until the agent answers it, across the agent's kills."""

    def __init__(self, port: int, user: str) -> None:
        self.url = f"http://127.0.0.1:{port}/events"
        self.user = user.lower()
        self.outcomes: dict[str, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._feed, daemon=True, name="feeder")

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=60.0)

    def _feed(self) -> None:
        for index in _count(1):
            if self._stop.is_set():
                return
            event_id = f"use-{index}"
            event = {"event_id": event_id, "user": self.user, "units": 1,
                     "at": int(time.time()), "prepaid": True}  # fmt: skip
            give_up = time.monotonic() + 60.0
            while time.monotonic() < give_up:
                status = self._post(event)
                if status is not None:
                    self.outcomes[event_id] = status
                    break
                if self._stop.is_set() and time.monotonic() > give_up - 30.0:
                    break
                time.sleep(0.5)
            else:
                self.outcomes[event_id] = "unanswered"
            time.sleep(0.7)

    def _post(self, event: dict[str, Any]) -> str | None:
        request = urllib.request.Request(
            self.url, json.dumps(event).encode(), {"content-type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=30.0) as response:
                return str(json.loads(response.read())["status"])
        except (OSError, urllib.error.URLError, ValueError, KeyError):
            return None  # the agent is down (or was killed mid-answer): post it again


def _count(start: int) -> Iterator[int]:
    while True:
        yield start
        start += 1


__all__ = ["CampaignConfig", "CampaignError", "kill_schedule", "run_campaign"]

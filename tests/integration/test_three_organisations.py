"""The README's "Services on other machines" block, run exactly as written (read from the README, so
the two cannot differ): three organisations' services as separate processes on loopback addresses
of their own, over TLS, on a dev `cise chain --founders 9`. Organisation A runs the hub on
127.0.0.2 with its metrics; B the washing machine's asset agent, its HTTPS meter endpoint on
127.0.0.3 fed by `cise meter send`, and the servicers' agents; C a watchtower on 127.0.0.4 and the
API on 127.0.0.5. Three uses are charged and split, and a settlement round puts the servicers'
earnings on chain.

While the services still run, the test checks that each is a process of its own listening on its
own address (read from /proc, not only from what it prints), that the hub's metrics count the
payments and its /health answers 200, that the API answers over HTTPS to a client pinning C's
certificate, that a client pinning another party's certificate is refused (nothing charged), and
that a plain agent and a non-member are refused by the hub. Then SIGTERM stops each service with
exit 0 and no traceback; the totals reconcile from the chain: every token is in a wallet or the
channel manager, each servicer holds on chain exactly its shares in the ledger, and the user paid
exactly the fees; and C's tower holds a proof of each servicer's channel.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from assets.ledger import revenue_totals
from channels.chain.client import Web3ChainClient
from channels.chain.connection import Connection
from channels.codec.keccak import keccak
from channels.core.types import Address, parse_address
from cise.ledger_files import read_ledger
from cise.network import Network, load_network
from watchtower.store import read_snapshot

# The block starts `cise chain` on 8545 and its services on fixed ports, like the README's other
# blocks: the same xdist group (one worker), so no two of them run at once.
pytestmark = [
    pytest.mark.node,
    pytest.mark.xdist_group("readme-fixed-ports"),
    pytest.mark.timeout(420),
]

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
BLOCK = re.compile(r"^```bash\n(.*?)^```", re.DOTALL | re.MULTILINE)
THREE = "cise meter send"  # as tests/integration/test_readme.py tells this block from the tour
EURO = 1_000_000
USES, PRICE = 3, 1_990_000  # the block's three wash cycles at EUR 1.99
H = "0x15d34AAf54267DB7D7c367839AAf71A00a2C6A65"
M = "0x976EA74026E726554dB657fA54763abd0C3a0aa9"
S1 = "0x14dC79964da2C08b23698B3D3cc7Ca32193d9955"
S2 = "0x23618e81E3f5cdF7f54C3d65f7FBc0aBf5B21E8f"
U = "0x9965507D1a55bcC2695C58ba16FB37d819B0A4dc"
T = "0x90F79bf6EB2c4f870365E785982E1f101E93b906"
# each service and the addresses it must listen on (its process's own sockets)
LISTENS = {
    "watchtower serve": {"127.0.0.4:7731"},
    "hub serve": {"127.0.0.2:7730", "127.0.0.2:9730"},
    "asset run": {"127.0.0.3:7732"},
    "api serve": {"127.0.0.5:7733"},
}
AGENTS = 3  # agent receive: servicers 7 and 8, the user 5 (they listen nowhere)
READY_BOUND = 240.0  # seconds the block may take until its services run (about 70 s)
STOP_BOUND = 60.0  # seconds for every service to stop after SIGTERM
COMMAND_BOUND = 90.0
# After the block, the test's own lines: the services' pids, then (once the test has done its
# checks) SIGTERM to each and its exit status. The wait for the go-ahead is bounded.
POSTLUDE = """
echo "@@ running $(jobs -p | tr '\\n' ' ')"
for I in $(seq 1500); do [ -e ../stop ] && break; sleep 0.2; done
PIDS=$(jobs -p)
kill -TERM $PIDS
for P in $PIDS; do RC=0; wait $P || RC=$?; echo "@@ exit $P $RC"; done
"""


def three_organisations_block() -> str:
    (block,) = [b for b in BLOCK.findall(README.read_text()) if THREE in b]
    return str(block)


def _cise(
    cwd: Path, env: dict[str, str], *argv: str, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cise.main", *argv],
        cwd=cwd,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=COMMAND_BOUND,
    )


def _listening(pid: int) -> set[str]:
    """The TCP addresses process `pid` listens on, from its own socket descriptors and
    /proc/net/tcp (IPv4, little-endian hex)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, state, inode = fields[1], fields[3], fields[9]
        if state == "0A" and inode in inodes:  # 0A: LISTEN
            host, port = local.split(":")
            octets = ".".join(str(int(host[i : i + 2], 16)) for i in (6, 4, 2, 0))
            found.add(f"{octets}:{int(port, 16)}")
    return found


def _get(url: str, context: ssl.SSLContext | None = None) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=10, context=context) as answer:
        return int(answer.status), answer.read().decode()


def _pinned(certificate: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(certificate))
    context.check_hostname = False  # the certificate names a member address, not a host
    return context


def _wait_for(path: Path, marker: str, shell: subprocess.Popen[bytes], bound: float) -> str:
    deadline = time.monotonic() + bound
    while time.monotonic() < deadline:
        text = path.read_text()
        if marker in text or shell.poll() is not None:
            return text
        time.sleep(0.5)
    return path.read_text()


def _charged(run: Path) -> int:
    (ledger_path,) = (run / ".cise").glob("asset-*-ledger.sqlite")
    return len(read_ledger(ledger_path, keccak(b"washer-1")).entries)


def test_three_organisations_run_their_services_apart_over_tls_and_reconcile(
    tmp_path: Path,
) -> None:
    run = tmp_path / "run"
    run.mkdir()
    venv_bin = Path(sys.executable).parent
    env = {k: v for k, v in os.environ.items() if not k.startswith("CISE_")}
    env["PATH"] = f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}"
    script = "\n".join(["set -euo pipefail", three_organisations_block(), POSTLUDE])
    out_path = tmp_path / "out.txt"
    with out_path.open("w") as out:
        shell = subprocess.Popen(
            ["bash", "-c", script],
            cwd=run,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        output = _wait_for(out_path, "@@ running", shell, READY_BOUND)
        assert "@@ running" in output, output[-8000:]
        output = _wait_for(out_path, "api listening on", shell, STOP_BOUND)  # its last service
        pids = [int(p) for p in output.split("@@ running")[1].splitlines()[0].split()]
        network = load_network(run / ".cise" / "network.json")
        _check_while_running(run, env, output, pids)
        (tmp_path / "stop").touch()
        shell.wait(timeout=STOP_BOUND)
        output = out_path.read_text()
        _check_reconciled(run, env, network)
        # C's tower holds a proof of each servicer's channel, handed to it over TLS
        tower = read_snapshot(run / ".cise" / f"watchtower-{T}.sqlite")
        assert len(tower.guards) == 2, tower.guards
    finally:
        (tmp_path / "stop").touch()
        with contextlib.suppress(subprocess.TimeoutExpired):
            shell.wait(timeout=STOP_BOUND if shell.poll() is None else 1)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(shell.pid, signal.SIGKILL)
        _cise(run, env, "chain", "--stop")
    assert shell.returncode == 0, output[-8000:]
    assert "Traceback" not in output, output[-8000:]
    exits = dict(re.findall(r"^@@ exit (\d+) (\d+)$", output, re.MULTILINE))
    assert sorted(map(int, exits)) == sorted(pids), output[-4000:]
    assert set(exits.values()) == {"0"}, exits  # SIGTERM: each service exits 0
    for stopped in ("hub stopped", "watchtower stopped", "asset agent stopped", "api stopped"):
        assert stopped in output, stopped
    assert output.count("agent stopped") - output.count("asset agent stopped") == AGENTS


def _check_while_running(run: Path, env: dict[str, str], output: str, pids: list[int]) -> None:
    # what the block prints: three uses charged through the meter endpoint, the servicers'
    # earnings put on chain in one round both signed, the ledger verified
    charged = re.findall(r'^\{"event_id": ?"cycle-\d", ?"status": ?"charged"', output, re.M)
    assert len(charged) == 2 * USES, output[-8000:]  # the asset agent's line and meter send's
    assert re.search(r"round 1 settled: 2 of 2 signed; €5\.970000 to counterparties", output)
    assert "ledger verified" in output
    # each service says where it listens, each on its own address, over TLS
    assert f"hub {H} listening on 127.0.0.2:7730" in output
    assert f"watchtower {T} listening on 127.0.0.4:7731" in output
    assert '{"listening": "127.0.0.3:7732", "certificate": ' in output
    assert "api listening on https://127.0.0.5:7733" in output
    assert "metrics on 127.0.0.2:9730" in output

    # -- every service a process of its own, listening on its own address (its own sockets)
    assert len(set(pids)) == len(pids) == len(LISTENS) + AGENTS, pids
    seen: dict[str, int] = {}
    for pid in pids:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
        command = " ".join(argv)
        (service,) = [s for s in (*LISTENS, "agent receive") if s in command] or [command]
        seen[service] = seen.get(service, 0) + 1
        assert _listening(pid) == LISTENS.get(service, set()), (service, _listening(pid))
    assert seen == {**dict.fromkeys(LISTENS, 1), "agent receive": AGENTS}, seen

    # -- A's metrics: the payments counted, healthy
    status, metrics = _get("http://127.0.0.2:9730/metrics")
    assert status == 200
    payments = [
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("cise_payments_total")
    ]
    assert sum(payments) > 0, metrics
    assert _get("http://127.0.0.2:9730/health")[0] == 200

    # -- C's API over HTTPS: a client pinning C's certificate reads the asset; another's refused
    certs = run / ".cise"
    tower_cert, hub_cert = certs / f"tls-{T.lower()}.crt", certs / f"tls-{H.lower()}.crt"
    status, body = _get("https://127.0.0.5:7733/api/assets", _pinned(tower_cert))
    assert status == 200 and json.loads(body), body
    with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
        _get("https://127.0.0.5:7733/api/assets", _pinned(hub_cert))

    # -- the controller pinning another party's certificate (the hub's): refused, naming the TLS
    # failure, nothing charged
    use = {"event_id": "cycle-4", "user": U, "units": 1, "at": int(time.time()), "prepaid": True}
    refused = _cise(
        run, env, "meter", "send", "--url", "https://127.0.0.3:7732", "--server-cert",
        str(hub_cert), "--token-file", "washer-1.tokens", "--buffer", "wrong-cert-buffer.sqlite",
        "--drain-timeout", "3", "--retry-max", "1", stdin=json.dumps(use) + "\n",
    )  # fmt: skip
    assert refused.returncode == 2 and "Traceback" not in refused.stderr, refused.stderr
    assert "TLS refused" in refused.stderr and str(hub_cert) in refused.stderr, refused.stderr
    assert "1 events stay in wrong-cert-buffer.sqlite" in refused.stderr  # kept, not retried
    assert _charged(run) == USES

    # -- a plain agent against the TLS hub, and a non-member over TLS: refused with the reason
    hub = ("--hub", H, "--hub-host", "127.0.0.2", "--hub-port", "7730", "--seconds", "20")
    plain = _cise(run, env, "agent", "receive", "--account", "2", *hub)
    assert plain.returncode == 2 and "Traceback" not in plain.stderr, plain.stderr
    assert "the hub on 127.0.0.2:7730" in plain.stderr and "TLS" in plain.stderr, plain.stderr
    outsider = _cise(run, env, "agent", "receive", "--account", "9", *hub, "--tls")
    assert outsider.returncode == 2 and "Traceback" not in outsider.stderr, outsider.stderr
    assert "not admitted here (not a member)" in outsider.stderr, outsider.stderr
    assert _get("http://127.0.0.2:9730/health")[0] == 200  # the hub serves on


def _check_reconciled(run: Path, env: dict[str, str], network: Network) -> None:
    """The totals from the chain (the services stopped, the chain still running)."""
    connection = Connection.from_url(network.rpc_url, ())
    deployment = network.deployment
    chain = Web3ChainClient.from_key(connection, deployment, keccak(b"a reader, never sends"))
    supply = chain.token_total_supply()
    holders = [Address(parse_address(a)) for a in connection.w3.eth.accounts]
    wallets = sum(chain.token_balance(a) for a in holders)
    assert wallets + chain.token_balance(deployment.manager) == supply  # every token accounted

    (ledger_path,) = (run / ".cise").glob("asset-*-ledger.sqlite")
    totals = revenue_totals(read_ledger(ledger_path, keccak(b"washer-1")).entries)
    assert (totals.uses, totals.fee_total) == (USES, USES * PRICE)
    for servicer, ppm in ((S1, 600_000), (S2, 400_000)):
        share = totals.beneficiary_total(Address(parse_address(servicer)))
        assert share == USES * PRICE * ppm // 1_000_000, servicer
        assert chain.balance_of(Address(parse_address(servicer))) == share, servicer  # settled
    assert sum(amount for _, amount in totals.by_beneficiary) == totals.fee_total

    # the user paid exactly the fees (the hub charges no routing fee here)
    status = _cise(run, env, "channel", "--account", "5", "status")
    assert status.returncode == 0, status.stderr
    left = re.search(r"yours (\d+\.\d{6}) €", status.stdout)
    assert left is not None, status.stdout
    assert round(float(left.group(1)) * EURO) == 10 * EURO - totals.fee_total

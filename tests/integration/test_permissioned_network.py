"""The README's real-network path, run exactly as written (read from the README, so the two cannot
differ) on anvil in the permissioned profile: 2-second blocks, no automine, zero gas price and zero
base fee. Fresh keystore accounts (holding no ether: the gas is free) deploy a network with
`cise network deploy`, admit a user by a vote, mint tokens, and run the hub story through the CLI:
channels, a hub, three uses of a washing machine charged to the user and split between two
servicers, a settlement round, the ledger verified.

Then everything is checked from the chain and the files: no file holds a dev key or any account's
key in plaintext; the network file holds code hashes and no keys; every account still holds no
ether; every token minted is in a wallet or in the channel manager; each servicer's balance in the
manager is exactly its shares in the ledger; the user paid exactly the fees; and a command given
the wrong password names the problem and sends nothing.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_account import Account

from assets.ledger import revenue_totals
from channels.chain.client import Web3ChainClient
from channels.chain.connection import Connection
from channels.chain.nodes import dev_private_keys, open_anvil
from channels.codec.keccak import keccak
from channels.core.types import Address, parse_address, to_checksum
from cise.ledger_files import read_ledger
from cise.network import load_network

# The block's hub listens on the fixed port 7720, which no other test uses and which lies below the
# range the OS hands out for port 0; its node is an anvil on a free port. So unlike the README's
# other blocks (`cise chain` on 8545) it needs no xdist group of its own; two test sessions on one
# machine take turns through a file lock (`_hub_port_turn`).
pytestmark = [pytest.mark.node, pytest.mark.timeout(900)]

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
BLOCK = re.compile(r"^```bash\n(.*?)^```", re.DOTALL | re.MULTILINE)
REAL = "cise network deploy"  # as tests/integration/test_readme.py tells this block from the tour
EURO = 1_000_000
PASSWORD = "correct horse battery staple"
ACCOUNTS = ("operator", "hub", "machine", "servicer1", "servicer2", "user")
SENDERS = ("operator", "hub", "machine", "user")  # the servicers never send a transaction here
MINTED = {"user": 10 * EURO, "hub": 30 * EURO, "machine": 1 * EURO}
USES, PRICE = 3, 1_990_000  # the block's three wash cycles at EUR 1.99
BLOCK_BOUND = 420.0  # seconds the whole block may take (it needs about three minutes)
HUB_PORT = 7720  # the block's `cise hub serve --port`
TURN_BOUND = 420.0  # seconds to wait while another test session runs the block
COMMAND_BOUND = 120.0


def real_network_block() -> str:
    (block,) = [b for b in BLOCK.findall(README.read_text()) if REAL in b]
    return str(block)


def _cise(cwd: Path, env: dict[str, str], *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cise.main", *argv],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=COMMAND_BOUND,
    )


def _run_block(cwd: Path, env: dict[str, str]) -> tuple[int, str]:
    """The block in one bash session with `set -euo pipefail`; only the test's own guard is added:
    whatever happens, the services the block started are stopped."""
    script = "\n".join(
        [
            "set -euo pipefail",
            "trap 'kill $(jobs -p) 2>/dev/null || true' EXIT",
            real_network_block(),
        ]
    )
    shell = subprocess.Popen(
        ["bash", "-c", script],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = shell.communicate(timeout=BLOCK_BOUND)
    finally:
        if shell.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(shell.pid, signal.SIGKILL)
            shell.communicate(timeout=10)
    # Nothing the block started may outlive it (its services, their children).
    with contextlib.suppress(ProcessLookupError):
        os.killpg(shell.pid, signal.SIGKILL)
    return shell.returncode, output


@contextlib.contextmanager
def _hub_port_turn() -> Iterator[None]:
    """Hold the machine-wide turn on the block's fixed hub port (another pytest session, e.g. a
    fresh clone's suite, may run this test at the same time); bounded wait, then a clear failure."""
    path = Path(tempfile.gettempdir()) / f"cise-test-hub-port-{HUB_PORT}.lock"
    with path.open("a") as lock:
        deadline = time.monotonic() + TURN_BOUND
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    pytest.fail(f"port {HUB_PORT} stayed taken by another session's run ({path})")
                time.sleep(1.0)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _files(*folders: Path) -> list[Path]:
    return [path for folder in folders for path in folder.rglob("*") if path.is_file()]


def _holders(files: list[Path], key: bytes) -> list[str]:
    """The files holding `key` in plaintext: as hex (with or without 0x, either case) or raw."""
    found = []
    for path in files:
        data = path.read_bytes()
        if key.hex().encode() in data.lower() or key in data:
            found.append(str(path))
    return found


def test_the_real_network_path_runs_as_written_with_keystore_accounts_and_free_gas(
    tmp_path: Path,
) -> None:
    assert f"--port {HUB_PORT} " in real_network_block()  # the port the turn is taken on
    run, keystore = tmp_path / "run", tmp_path / "keystore"
    run.mkdir()
    password, wrong = tmp_path / "password", tmp_path / "wrong-password"
    for path, text in ((password, PASSWORD), (wrong, PASSWORD + " but wrong")):
        path.write_text(text + "\n")
        path.chmod(0o600)
    venv_bin = Path(sys.executable).parent
    env = {k: v for k, v in os.environ.items() if not k.startswith("CISE_")}
    env |= {
        "PATH": f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}",
        "CISE_KEYSTORE_DIR": str(keystore),
        "CISE_SCRYPT_N": "1024",  # new keystores decrypt fast; the README keeps geth's default
        "PW": str(password),
    }
    with _hub_port_turn(), open_anvil(block_time=2, gas_price=0, base_fee=0) as node:
        env["RPC"] = node.url
        code, output = _run_block(run, env)
        assert code == 0, output[-8000:]
        assert "Traceback" not in output, output[-8000:]
        assert PASSWORD not in output  # no command prints the password
        # what the README says the block does: three uses charged, the servicers' earnings put on
        # chain in one round both signed, the ledger verified, servicer 1's balance shown
        assert len(re.findall(r'"status":\s*"charged"', output)) == USES, output[-8000:]
        assert re.search(r"round 1 settled: 2 of 2 signed; €5\.970000 to counterparties", output)
        assert "ledger verified" in output
        assert re.search(r"internal balance 3\.582000 €", output), output[-3000:]

        # -- keys: the keystore holds every account, encrypted; no file holds a key in plaintext
        keys = {}
        for name in ACCOUNTS:
            stored = json.loads((keystore / f"{name}.json").read_text())
            keys[name] = bytes(Account.decrypt(stored, PASSWORD))
            assert (keystore / f"{name}.json").stat().st_mode & 0o077 == 0, name
        assert keystore.stat().st_mode & 0o077 == 0
        files = _files(run, keystore)
        assert len(files) > len(ACCOUNTS) + 1  # the keystore, net.json and the parties' stores
        for key in (*dev_private_keys(), *node.private_keys, *keys.values()):
            assert not _holders(files, key), f"a private key in plaintext in {_holders(files, key)}"
        raw = json.loads((run / "net.json").read_text())
        assert raw.get("dev_private_keys", []) == [] and raw.get("dev") is False, raw
        assert isinstance(raw.get("code_hashes"), dict) and raw["code_hashes"], raw
        network = load_network(run / "net.json")
        assert not network.dev and network.rpc_url == node.url

        # -- free gas: every account holds no ether at all, and those that send sent (the
        # servicers only sign: the hub puts their withdraws on chain)
        connection = Connection.from_url(node.url, ())
        addresses = {
            name: Address(parse_address(Account.from_key(k).address)) for name, k in keys.items()
        }
        for name, address in addresses.items():
            assert connection.eth_balance(address) == 0, name
            sent = connection.account_nonce(Account.from_key(keys[name]).address)
            assert (sent > 0) == (name in SENDERS), (name, sent)

        # -- totals, from the chain
        deployment = network.deployment
        chain = Web3ChainClient.from_key(connection, deployment, keccak(b"a reader, never sends"))
        supply = chain.token_total_supply()
        assert supply == sum(MINTED.values())
        wallets = {name: chain.token_balance(a) for name, a in addresses.items()}
        in_manager = chain.token_balance(deployment.manager)
        assert sum(wallets.values()) + in_manager == supply, (wallets, in_manager)
        assert wallets["user"] == 0 and wallets["hub"] == 0  # all deposited into channels
        assert wallets["operator"] == 0 and wallets["servicer1"] == wallets["servicer2"] == 0
        float_taken = MINTED["machine"] - wallets["machine"]  # the asset's fee float, deposited
        assert 0 < float_taken <= MINTED["machine"]
        assert in_manager == MINTED["user"] + MINTED["hub"] + float_taken

        # -- each servicer holds on chain exactly its shares in the ledger
        (ledger_path,) = (run / ".cise").glob("asset-*-ledger.sqlite")
        ledger = read_ledger(ledger_path, keccak(b"washer-1"))
        totals = revenue_totals(ledger.entries)
        assert (totals.uses, totals.fee_total) == (USES, USES * PRICE)
        for name, ppm in (("servicer1", 600_000), ("servicer2", 400_000)):
            share = totals.beneficiary_total(addresses[name])
            assert share == USES * PRICE * ppm // 1_000_000, name
            assert chain.balance_of(addresses[name]) == share, name
        assert sum(amount for _, amount in totals.by_beneficiary) == totals.fee_total

        # -- the user paid exactly the fees (the hub charges no routing fee here)
        status = _cise(
            run, env, "channel", "--network", "net.json", "--account", "user",
            "--password-file", str(password), "status",
        )  # fmt: skip
        assert status.returncode == 0, status.stderr
        left = re.search(r"yours (\d+\.\d{6}) €", status.stdout)
        assert left is not None, status.stdout
        assert round(float(left.group(1)) * EURO) == MINTED["user"] - totals.fee_total

        # -- the wrong password: a clear error, and nothing sent
        operator = Account.from_key(keys["operator"]).address
        nonce = connection.w3.eth.get_transaction_count(operator, "pending")
        refused = _cise(
            run, env, "token", "mint", to_checksum(addresses["user"]), "1",
            "--network", "net.json", "--account", "operator", "--password-file", str(wrong),
        )  # fmt: skip
        assert refused.returncode != 0 and "Traceback" not in refused.stderr, refused.stderr
        assert "wrong password for account 'operator'" in refused.stderr, refused.stderr
        assert PASSWORD not in refused.stderr + refused.stdout  # neither password is shown
        assert connection.w3.eth.get_transaction_count(operator, "pending") == nonce
        assert chain.token_total_supply() == supply

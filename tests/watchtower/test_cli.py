"""`cise watchtower serve|hire|status` on anvil, with the tower as its own process, SIGKILLed after
it saw a close and before its turn, and restarted: it still answers within the challenge period.

The guarded party is paid with `cise channel` (its log is what `hire` reads), hands its proof to the
tower with `cise watchtower hire`, and goes away; its partner closes with `cise channel close`.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from channels.chain.connection import Connection
from channels.chain.nodes import LocalNode
from channels.core.types import to_checksum
from cise.main import main
from cise.network import Network
from cise.watchtower_cmd import tower_file
from tests.watchtower.towerfix import SETTLE_TIMEOUT, make_tower_chain, slot_of
from watchtower.store import read_snapshot

pytestmark = pytest.mark.node

EURO = 1_000_000
START_TIMEOUT = 30.0


@contextmanager
def tower_process(argv: list[str]) -> Iterator[tuple[subprocess.Popen[str], int]]:
    """`cise watchtower serve ...` as a child process; its port from its first line. Always
    stopped (SIGKILL) on the way out."""
    process = subprocess.Popen(
        [sys.executable, "-m", "cise.main", "watchtower", "serve", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # bounded: the test's timeout ends a hung start
        assert "listening on 127.0.0.1:" in line, (line, process.stderr and process.stderr.read())
        yield process, int(line.split("127.0.0.1:")[1].split()[0])
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


def _wait(predicate: Callable[[], bool], what: str, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


@pytest.mark.timeout(120)
def test_serve_hire_status_and_a_sigkill_mid_challenge_period(
    anvil_node: LocalNode, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    chain = make_tower_chain(
        Connection.from_url(anvil_node.url, anvil_node.private_keys), "anvil", SETTLE_TIMEOUT
    )
    network_file = tmp_path / "network.json"
    network_file.write_text(
        Network(anvil_node.url, chain.deployment, anvil_node.private_keys).to_json()
    )
    data = tmp_path / "data"
    guarded, partner = chain.actors[0], chain.actors[1]  # dev accounts 1 and 2
    # the tower: a dev account whose turn for channel 1 comes a few blocks after the close
    tower_index = max(range(3, 10), key=lambda i: slot_of(chain.actors[i - 1].address, 1, chain))
    tower = chain.actors[tower_index - 1]
    assert slot_of(tower.address, 1, chain) >= 2

    def cli(account: int, *argv: str) -> tuple[int, str]:
        capsys.readouterr()
        where = ["--network", str(network_file), "--account", str(account), "--data-dir", str(data)]
        if argv[0] == "channel":
            code = main(["channel", *where, *argv[1:]])
        else:
            code = main([argv[0], argv[1], *where, *argv[2:]])
        return code, capsys.readouterr().out

    chain.admin.mint(partner.address, 5 * EURO)
    assert cli(2, "channel", "open", to_checksum(guarded.address), "--deposit", "1")[0] == 0
    code, envelope = cli(2, "channel", "pay", "1", "0.25")
    assert code == 0
    (tmp_path / "pay.jsonl").write_text(envelope)
    assert cli(1, "channel", "receive", str(tmp_path / "pay.jsonl"))[0] == 0

    serve = ["--network", str(network_file), "--account", str(tower_index), "--data-dir", str(data),
             "--poll-interval", "0.05", "--confirmations", "1", "--stall-blocks", "5"]  # fmt: skip
    tower_db = tower_file(data, tower.address)
    with tower_process(serve) as (_, port):
        chain.connection.mine(1)  # the open is confirmed
        _wait(lambda: 1 in read_snapshot(tower_db).channels, "the tower sees channel 1")
        hired = ["--tower", to_checksum(tower.address), "--tower-port", str(port)]
        code, out = cli(1, "watchtower", "hire", *hired, "--reward", "0.01")
        assert code == 0 and json.loads(out) == {"channel": 1, "nonce": 1, "status": "guarded"}
        code, out = cli(1, "watchtower", "status", *hired)
        assert code == 0 and json.loads(out.splitlines()[1])["state"] == "open"

        assert cli(2, "channel", "close", "1")[0] == 0  # none of the partner's payments on chain
        chain.connection.mine(1)
        _wait(lambda: read_snapshot(tower_db).channels[1].closer is not None, "close seen")
        snapshot = read_snapshot(tower_db)
    # killed (SIGKILL) before its turn; the chain goes on past the turn
    channel = snapshot.channels[1]
    turn = channel.closed_block + 2 * slot_of(tower.address, 1, chain)
    assert chain.head() < turn
    chain.connection.mine(turn + 1 - chain.head())

    def on_chain() -> int:
        return guarded.client.get_balance_proof(1, partner.address, guarded.address).nonce

    assert on_chain() == 0

    with tower_process(serve):
        _wait(lambda: on_chain() == 1, "the restarted tower's update")
        assert chain.head() <= channel.settle_block
        code, out = cli(tower_index, "watchtower", "status")  # read from its file, as it runs
        assert code == 0 and "guarded up to nonce 1" in out and ": submitted" in out
        chain.connection.mine(1)  # the update is confirmed
        _wait(lambda: read_snapshot(tower_db).channels[1].closer_nonce == 1, "update seen")
    code, out = cli(tower_index, "watchtower", "status", "--json")
    assert code == 0 and json.loads(out)["state"] == "on-chain"

    chain.connection.mine(channel.settle_block + 1 - chain.head())
    assert cli(2, "channel", "settle", "1")[0] == 0  # the partner's catch-up settles it
    assert chain.admin.balance_of(guarded.address) == 250_000 - 10_000
    assert chain.admin.balance_of(tower.address) == 10_000

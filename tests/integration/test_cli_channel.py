"""The `cise chain` + `cise channel` workflow between two accounts, messages carried as envelopes.

A real anvil started by `cise chain` (in a thread, stopped at the end); every command runs through
`cise.main.main` exactly as on a terminal. Bad input is rejected with a clear error and changes
nothing.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from channels.chain.nodes import dev_private_keys
from channels.core.types import to_checksum
from channels.signer import LocalSigner
from cise.chain_cmd import run_chain
from cise.errors import CliError
from cise.main import main

pytestmark = pytest.mark.node

USER, MACHINE = 1, 2
MACHINE_ADDRESS = to_checksum(LocalSigner(dev_private_keys()[MACHINE]).address)


@contextmanager
def running_chain(path: Path, settle_timeout: int) -> Iterator[Path]:
    """`cise chain` in a thread until the block ends; waits (bounded) for its network file."""
    stop = threading.Event()
    thread = threading.Thread(
        target=run_chain, args=(0, str(path), stop, settle_timeout), daemon=True
    )
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while not path.exists():
            assert thread.is_alive(), "cise chain died"
            assert time.monotonic() < deadline, "cise chain did not write its network file"
            time.sleep(0.1)
        yield path
    finally:
        stop.set()
        thread.join(timeout=30)
        assert not thread.is_alive()


@pytest.fixture
def network(tmp_path: Path) -> Iterator[Path]:
    with running_chain(tmp_path / "network.json", settle_timeout=20) as path:
        yield path


class Cli:
    def __init__(self, network: Path, data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.network, self.data_dir, self.capsys = network, data_dir, capsys

    def __call__(self, account: int, *argv: str) -> tuple[int, str, str]:
        self.capsys.readouterr()
        code = main(
            ["channel", "--network", str(self.network), "--account", str(account),
             "--data-dir", str(self.data_dir), *argv]
        )  # fmt: skip
        out, err = self.capsys.readouterr()
        return code, out, err

    def deliver(self, account: int, envelopes: str, tmp: Path) -> tuple[int, str, str]:
        file = tmp / f"envelopes-{time.monotonic_ns()}.jsonl"
        file.write_text(envelopes)
        return self(account, "receive", str(file))


def _co_signed(cli: Cli, asker: int, partner: int, tmp: Path, *argv: str) -> None:
    """`asker` runs argv (a request), `partner` co-signs it, `asker` submits the transaction."""
    code, request, err = cli(asker, *argv)
    assert code == 0, err
    code, confirmation, err = cli.deliver(partner, request, tmp)
    assert code == 0, err
    code, _, err = cli.deliver(asker, confirmation, tmp)
    assert code == 0, err


def _status(cli: Cli, account: int) -> str:
    code, out, _ = cli(account, "status")
    assert code == 0
    return out


def test_pay_withdraw_and_close_cooperatively(
    network: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cli = Cli(network, tmp_path / "data", capsys)
    code, out, err = cli(USER, "open", MACHINE_ADDRESS, "--deposit", "10")
    assert (code, out.strip()) == (0, "opened channel 1"), err

    code, envelope, err = cli(USER, "pay", "1", "0.004321")
    assert code == 0, err
    assert json.loads(envelope)["to"] == MACHINE_ADDRESS
    assert cli.deliver(MACHINE, envelope, tmp_path)[0] == 0
    assert "yours 0.004321 €" in _status(cli, MACHINE)

    # the same envelope again: a replayed proof is rejected and changes nothing
    code, _, err = cli.deliver(MACHINE, envelope, tmp_path)
    assert code == 1 and "nonce" in err
    assert "yours 0.004321 €" in _status(cli, MACHINE)

    # a tampered amount no longer matches the signature
    tampered = json.loads(envelope)
    payload = bytearray(bytes.fromhex(tampered["payload"]))
    index = payload.index(bytes.fromhex("10e1"))  # 4321 as two big-endian bytes
    payload[index + 1] ^= 0x01
    tampered["payload"] = payload.hex()
    code, _, err = cli.deliver(MACHINE, json.dumps(tampered), tmp_path)
    assert code == 1 and "rejected" in err

    _co_signed(cli, MACHINE, USER, tmp_path, "withdraw", "1", "0.004")
    assert "internal balance 0.004000 €" in _status(cli, MACHINE)

    _co_signed(cli, USER, MACHINE, tmp_path, "close", "1", "--cooperative")
    assert "settled" in _status(cli, USER)
    assert "internal balance 9.995679 €" in _status(cli, USER)


def test_bad_input_is_rejected_with_a_clear_error(
    network: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cli = Cli(network, tmp_path / "data", capsys)
    assert cli(USER, "open", MACHINE_ADDRESS, "--deposit", "5")[0] == 0
    cases = [
        (("pay", "1", "1.5x"), "not an amount"),
        (("pay", "1", "0.0000001"), "more than 6 decimals"),
        (("pay", "1", "-1"), "non-negative"),
        (("pay", "7", "1"), "no channel 7"),
        (("pay", "1", "6"), "rejected"),  # more than the deposit
        (("open", "0x1234", "--deposit", "1"), "not an address"),
        (("settle", "1"), "not closed"),
        (("open", MACHINE_ADDRESS, "--deposit", "5000"), "your wallet holds"),
        (("deposit", "1", "3"), "must exceed the current"),
    ]
    for argv, message in cases:
        code, out, err = cli(USER, *argv)
        assert code != 0, argv
        assert message in err, (argv, err)
        assert out == "", argv
    assert "nonces sent 0" in _status(cli, USER)
    code, _, err = cli.deliver(USER, '{"from": "0x00", "to": "x"}', tmp_path)
    assert code == 2 and "not a message envelope" in err
    code, _, err = cli(99, "status")
    assert code == 2 and "--account 99" in err


@pytest.fixture
def fast_network(tmp_path: Path) -> Iterator[Path]:
    """A chain whose challenge period is the contract's minimum, 5 blocks (~5 s at a block/s)."""
    with running_chain(tmp_path / "network.json", settle_timeout=5) as path:
        yield path


def test_unilateral_close_is_disputed_and_settled(
    fast_network: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cli = Cli(fast_network, tmp_path / "data", capsys)
    assert cli(USER, "open", MACHINE_ADDRESS, "--deposit", "2")[0] == 0
    for amount in ("0.1", "0.2"):
        code, envelope, err = cli(USER, "pay", "1", amount)
        assert code == 0, err
        assert cli.deliver(MACHINE, envelope, tmp_path)[0] == 0
    # the user closes alone; the machine's next acting command (`sync`; `status` only reads, and
    # says the update is due) sees the close and submits the user's latest proof (0.3
    # transferred) before the challenge period ends
    assert cli(USER, "close", "1")[0] == 0
    assert "due on chain: ContractSendUpdateBalanceProof" in _status(cli, MACHINE)
    assert cli(MACHINE, "sync")[0] == 0
    assert "closed" in _status(cli, MACHINE)
    code, _, err = cli(USER, "settle", "1")
    assert code == 2 and "challenge period runs until block" in err
    deadline = time.monotonic() + 30
    while "settled" not in _status(cli, MACHINE):
        assert time.monotonic() < deadline, "never settled"
        assert cli(MACHINE, "sync")[0] == 0
        time.sleep(1)
    assert "internal balance 0.300000 €" in _status(cli, MACHINE)
    assert "internal balance 1.700000 €" in _status(cli, USER)


def test_chain_refuses_a_challenge_period_out_of_bounds(tmp_path: Path) -> None:
    with pytest.raises(CliError, match="--settle-timeout must be in"):
        run_chain(0, str(tmp_path / "n.json"), threading.Event(), 4)


def test_unreachable_node_and_unreadable_files_are_clear_errors(
    network: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cli = Cli(network, tmp_path / "data", capsys)
    code, _, err = cli(USER, "receive", str(tmp_path / "missing.jsonl"))
    assert code == 2 and "cannot read" in err
    dead = json.loads(network.read_text())
    dead["rpc_url"] = "http://127.0.0.1:9"  # discard port: nothing answers
    dead_file = tmp_path / "dead.json"
    dead_file.write_text(json.dumps(dead))
    code, _, err = Cli(dead_file, tmp_path / "data", capsys)(USER, "status")
    assert code == 2 and "cannot reach the node" in err
    wrong = json.loads(network.read_text())
    wrong["chain_id"] = 1
    wrong_file = tmp_path / "wrong.json"
    wrong_file.write_text(json.dumps(wrong))
    code, _, err = Cli(wrong_file, tmp_path / "data", capsys)(USER, "status")
    assert code == 2 and "runs chain 31337" in err


def test_chain_refuses_a_bad_port_and_a_node_that_cannot_start(tmp_path: Path) -> None:
    with pytest.raises(CliError, match="--port must be in"):
        run_chain(70_000, str(tmp_path / "n.json"), threading.Event())
    with running_chain(tmp_path / "first.json", settle_timeout=20) as first:
        port = int(json.loads(first.read_text())["rpc_url"].rsplit(":", 1)[1])
        with pytest.raises(CliError, match="anvil did not start"):
            run_chain(port, str(tmp_path / "second.json"), threading.Event())
    assert not (tmp_path / "second.json").exists()

"""`cise network deploy` and `cise network check` on anvil and ganache (as processes, except where
only a file's content differs: those run `cise.main.main` here, to keep the suite short).

A network deployed by a keystore account onto a running chain must check clean; a network file
whose chain id, addresses or token do not match the chain, a node that does not answer and a node
that answers garbage must each be refused with an error naming the problem (and every command
that uses the chain refuses the same way: `cise gov status` stands for them). Deploying over an
existing file or onto a token that is not one writes nothing.
"""

from __future__ import annotations

import dataclasses
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
from eth_account import Account

from channels.chain.artifacts import load_artifact
from channels.chain.code_check import check_deployment
from channels.chain.connection import Connection
from channels.chain.deploy import deploy_contract
from channels.chain.nodes import LocalNode, free_port, open_anvil
from channels.core.types import to_checksum
from cise.main import main
from cise.network import load_network
from tests.integration.chain_env import ChainEnv

pytestmark = pytest.mark.node

CISE = Path(sys.executable).with_name("cise")
RUN_S = 120
PASSWORD = "correct horse"


def run_cise(*argv: str) -> subprocess.CompletedProcess[str]:
    """`cise argv...` as its own process, bounded."""
    return subprocess.run(
        [str(CISE), *argv], capture_output=True, text=True, timeout=RUN_S, check=False
    )


def _keystore(directory: Path, name: str, key: bytes) -> tuple[Path, Path]:
    """A keystore folder holding `key` as account `name`, and a password file."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    keyfile = Account.encrypt(key, PASSWORD, kdf="scrypt", iterations=1024)
    path = directory / f"{name}.json"
    path.write_text(json.dumps(keyfile))
    path.chmod(0o600)
    password = directory.parent / "password.txt"
    password.write_text(PASSWORD + "\n")
    return directory, password


def _deploy(node: LocalNode, tmp: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    keystore, password = _keystore(tmp / "keystore", "deployer", node.private_keys[-1])
    return run_cise(
        "network",
        "deploy",
        "--rpc",
        node.url,
        "--account",
        "deployer",
        "--keystore-dir",
        str(keystore),
        "--password-file",
        str(password),
        *extra,
    )


@pytest.fixture(scope="module")
def deployed(anvil_node: LocalNode, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A network deployed on the session's anvil with a new token, by a keystore account."""
    tmp = tmp_path_factory.mktemp("network")
    out = tmp / "network.json"
    founder = Account.create().address
    done = _deploy(
        anvil_node, tmp, "--new-token", "Test Euro", "--founders", founder, "--out", str(out)
    )
    assert done.returncode == 0, done.stderr
    return out


def _variant(deployed: Path, tmp_path: Path, **changes: object) -> Path:
    raw = json.loads(deployed.read_text())
    raw.update(changes)
    path = tmp_path / "variant.json"
    path.write_text(json.dumps(raw))
    return path


def test_a_deployed_network_checks_clean_and_holds_no_key(
    deployed: Path, anvil_node: LocalNode
) -> None:
    raw = json.loads(deployed.read_text())
    assert raw["dev"] is False and raw["dev_private_keys"] == []
    assert anvil_node.private_keys[-1].hex() not in deployed.read_text()
    assert set(raw["code_hashes"]) == {
        "token",
        "channel_manager",
        "asset_registry",
        "membership",
        "governor",
        "timelock",
        "network_parameters",
        "financing_factory",
        "treasury",
    }
    done = run_cise("network", "check", str(deployed))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "channel_manager" in done.stdout and "ok" in done.stdout
    status = run_cise("gov", "status", "--network", str(deployed))
    assert status.returncode == 0, status.stderr


def _check_here(path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """`cise network check PATH` in this process (a file's content is not a process matter)."""
    code = main(["network", "check", str(path)])
    return code, capsys.readouterr().out


def test_a_wrong_chain_id_is_refused_by_check_and_by_every_command(
    deployed: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wrong = _variant(deployed, tmp_path, chain_id=5)
    code, out = _check_here(wrong, capsys)
    assert code == 1
    assert "runs chain 31337, the network file says 5" in out
    status = run_cise("gov", "status", "--network", str(wrong))
    assert status.returncode == 2 and "runs chain 31337" in status.stderr


def test_addresses_of_other_contracts_are_wrong_code(
    deployed: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = json.loads(deployed.read_text())
    swapped = _variant(
        deployed,
        tmp_path,
        channel_manager=raw["asset_registry"],
        asset_registry=raw["channel_manager"],
    )
    code, out = _check_here(swapped, capsys)
    assert code == 1
    lines = [line for line in out.splitlines() if "wrong code" in line]
    assert {line.split()[0] for line in lines} == {"channel_manager", "asset_registry"}
    assert main(["gov", "status", "--network", str(swapped)]) == 2
    assert "wrong code" in capsys.readouterr().err


def test_a_token_without_code_is_refused(
    deployed: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    nobody = Account.create().address
    code, out = _check_here(_variant(deployed, tmp_path, token=nobody), capsys)
    assert code == 1
    assert f"token at {nobody}: no code at the address" in out


def test_a_node_that_does_not_answer_is_a_clear_error(deployed: Path, tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nobody listens there
    started = time.monotonic()
    done = run_cise("network", "check", str(_variant(deployed, tmp_path, rpc_url=url)))
    assert done.returncode == 2 and f"cannot reach the node at {url}" in done.stderr
    # a node that takes the connection and never answers: bounded by the check's timeout
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        started = time.monotonic()
        done = run_cise("network", "check", str(_variant(deployed, tmp_path, rpc_url=url)))
    assert done.returncode == 2 and f"cannot reach the node at {url}" in done.stderr
    assert "no answer within" in done.stderr
    assert time.monotonic() - started < 30


@pytest.fixture
def garbage_node() -> Iterator[dict[str, str]]:
    """An HTTP server on 127.0.0.1 answering every POST with `node["body"]`, or, when
    `node["each"]` is set, with a JSON-RPC batch answering each request with that result."""
    node = {"body": "<html>hello</html>", "each": ""}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            request = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            body = node["body"]
            if node["each"]:
                ids = [r["id"] for r in json.loads(request)]
                body = json.dumps(
                    [{"jsonrpc": "2.0", "id": i, "result": node["each"]} for i in ids]
                )
            self.send_response(200)
            self.send_header("Content-Length", str(len(body.encode())))
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    node["url"] = f"http://127.0.0.1:{server.server_port}"
    try:
        yield node
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_a_node_answering_garbage_is_a_clear_error(
    deployed: Path, tmp_path: Path, garbage_node: dict[str, str]
) -> None:
    url = garbage_node["url"]
    network = _variant(deployed, tmp_path, rpc_url=url)
    done = run_cise("network", "check", str(network))
    assert done.returncode == 2 and f"cannot reach the node at {url}" in done.stderr
    assert "not JSON" in done.stderr
    garbage_node["body"] = json.dumps({"jsonrpc": "2.0", "id": 0, "result": "0x1"})
    done = run_cise("gov", "status", "--network", str(network))
    assert done.returncode == 2 and "not a JSON-RPC batch" in done.stderr
    garbage_node["each"] = "banana"  # every answer, the chain id's too
    done = run_cise("network", "check", str(network))
    assert done.returncode == 2 and "'banana', not a number" in done.stderr


def test_deploy_refuses_a_token_without_code_and_an_existing_file(
    anvil_node: LocalNode, deployed: Path, tmp_path: Path
) -> None:
    out = tmp_path / "net.json"
    done = _deploy(anvil_node, tmp_path, "--token", Account.create().address, "--out", str(out))
    assert done.returncode == 2 and "no code at the address" in done.stderr
    assert not out.exists()
    before = deployed.read_text()
    done = _deploy(anvil_node, tmp_path, "--new-token", "X", "--out", str(deployed))
    assert done.returncode == 2 and "exists (use --force" in done.stderr
    assert deployed.read_text() == before
    (tmp_path / "password.txt").write_text("wrong horse\n")
    done = run_cise(
        "network",
        "deploy",
        "--rpc",
        anvil_node.url,
        "--account",
        "deployer",
        "--keystore-dir",
        str(tmp_path / "keystore"),
        "--password-file",
        str(tmp_path / "password.txt"),
        "--new-token",
        "X",
        "--out",
        str(out),
    )
    assert done.returncode == 2 and "wrong password for account 'deployer'" in done.stderr
    assert not out.exists()


def test_confirmations_that_do_not_come_are_a_bounded_wait_and_lose_nothing(
    anvil_node: LocalNode, tmp_path: Path
) -> None:
    """The session's anvil mines only when sent a transaction: no block comes on top."""
    out = tmp_path / "net.json"
    started = time.monotonic()
    done = _deploy(
        anvil_node,
        tmp_path,
        "--new-token",
        "Late Euro",
        "--confirmations",
        "1",
        "--confirmations-timeout",
        "2",
        "--out",
        str(out),
    )
    assert done.returncode == 2 and "no 1 confirmations within 2 s" in done.stderr
    assert time.monotonic() - started < 60
    assert not out.exists()
    pending = tmp_path / "net.json.unconfirmed"
    assert str(pending) in done.stderr
    assert run_cise("network", "check", str(pending)).returncode == 0


def test_deploy_with_an_existing_token_and_interval_blocks_waits_for_confirmations(
    tmp_path: Path,
) -> None:
    """No automine (a block a second), free gas, accounts without ether: every creation waits for
    its block, and the file is written only once the last one has 2 blocks on top."""
    with open_anvil(accounts=2, block_time=1, gas_price=0, base_fee=0, balance=0) as node:
        connection = Connection.from_url(node.url, node.private_keys)
        issuer = Account.from_key(node.private_keys[0])
        created = deploy_contract(
            connection, issuer, load_artifact("Token"), "Bank Euro", "bEUR", issuer.address
        )
        assert created.contract_address is not None
        token = to_checksum(created.contract_address)
        out = tmp_path / "net.json"
        done = _deploy(node, tmp_path, "--token", token, "--confirmations", "2", "--out", str(out))
        assert done.returncode == 0, done.stderr
        assert "2 confirmations" in done.stdout
        raw = json.loads(out.read_text())
        assert raw["token"] == token
        assert connection.block_number() >= raw["deployment_block"] + 2
        check = run_cise("network", "check", str(out))
        assert check.returncode == 0, check.stdout + check.stderr


def test_deploy_on_ganache_with_a_new_token(ganache_node: LocalNode, tmp_path: Path) -> None:
    out = tmp_path / "network.json"
    done = _deploy(ganache_node, tmp_path, "--new-token", "Ganache Euro", "--out", str(out))
    assert done.returncode == 0, done.stderr
    check = run_cise("network", "check", str(out))
    assert check.returncode == 0, check.stdout + check.stderr
    assert json.loads(out.read_text())["chain_id"] == ganache_node.chain_id


def test_check_deployment_reads_the_embedded_chain_and_a_node_alike(
    embedded_chain: ChainEnv, deployed: Path, anvil_node: LocalNode
) -> None:
    """`check_deployment` given a Connection: call by call on py-evm, one batch over HTTP."""
    found = embedded_chain.deployment
    assert check_deployment(embedded_chain.connection, found) == []
    swapped = dataclasses.replace(found, treasury=found.membership)
    assert [m.field for m in check_deployment(embedded_chain.connection, swapped)] == ["treasury"]
    network = load_network(deployed)
    connection = Connection.from_url(anvil_node.url)
    assert check_deployment(connection, network.deployment, network.code_hashes) == []
    other = dataclasses.replace(network.deployment, chain_id=1)
    assert [m.field for m in check_deployment(connection, other)] == ["chain_id"]

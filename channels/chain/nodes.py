"""Local EVM nodes (anvil, ganache from npm) run as child processes for tests and demos.

Each `open_*` context manager picks a free 127.0.0.1 port, starts the node with deterministic
accounts derived from `DEV_MNEMONIC`, waits (bounded) until its JSON-RPC answers, yields a
`LocalNode`, and always stops the process (terminate, then kill) on the way out. A node that does
not come up raises `NodeStartError` with the tail of its output.

This module must never listen on anything but 127.0.0.1, never leave a process running, and never
be used for a production chain (the mnemonic is public).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from eth_account import Account

# The well-known development mnemonic (anvil's and hardhat's default): public, test-only.
DEV_MNEMONIC = "test test test test test test test test test test test junk"
DEV_ACCOUNTS = 10
DEV_BALANCE_ETH = 10_000
START_TIMEOUT = 30.0
STOP_TIMEOUT = 5.0
HOST = "127.0.0.1"


class NodeStartError(RuntimeError):
    """A local node did not answer JSON-RPC in time; the message carries its output tail."""


@dataclass(frozen=True, slots=True)
class LocalNode:
    """A running local node: its RPC URL, chain id and prefunded dev private keys."""

    kind: str
    url: str
    chain_id: int
    private_keys: tuple[bytes, ...]
    pid: int


def dev_private_keys(count: int = DEV_ACCOUNTS, mnemonic: str = DEV_MNEMONIC) -> tuple[bytes, ...]:
    """The private keys at m/44'/60'/0'/0/i of `mnemonic`, as anvil and ganache derive them."""
    Account.enable_unaudited_hdwallet_features()
    return tuple(
        bytes(Account.from_mnemonic(mnemonic, account_path=f"m/44'/60'/0'/0/{i}").key)
        for i in range(count)
    )


def find_node_modules() -> Path:
    """`$CISE_NODE_MODULES`, else the first `node_modules` with a `.bin` walking up from here."""
    override = os.environ.get("CISE_NODE_MODULES")
    if override:
        path = Path(override)
        if not (path / ".bin").is_dir():
            raise FileNotFoundError(f"CISE_NODE_MODULES={override} has no .bin folder")
        return path
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "node_modules"
        if (candidate / ".bin").is_dir():
            return candidate
    raise FileNotFoundError(
        "no node_modules/.bin above channels/chain; run `npm ci` or set CISE_NODE_MODULES"
    )


def node_binary(name: str) -> Path:
    """The path of an npm-installed executable such as `anvil` or `ganache`."""
    path = find_node_modules() / ".bin" / name
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist; run `npm ci`")
    return path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def rpc_call(url: str, method: str, params: list[object], timeout: float = 2.0) -> object:
    """One JSON-RPC call over HTTP (no web3); raises on a transport error or an RPC error."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        answer = json.loads(response.read())
    if "error" in answer:
        raise RuntimeError(f"{method} failed: {answer['error']}")
    return answer["result"]


def _tail(log: IO[bytes], limit: int = 2000) -> str:
    log.flush()
    log.seek(0)
    return log.read().decode(errors="replace")[-limit:]


def _port_answers(port: int) -> bool:
    """True when something already accepts TCP connections on HOST:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        return probe.connect_ex((HOST, port)) == 0


def _wait_ready(process: subprocess.Popen[bytes], url: str, log: IO[bytes], timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise NodeStartError(
                f"node exited with code {process.returncode} before answering {url}:\n{_tail(log)}"
            )
        try:
            chain_id = rpc_call(url, "eth_chainId", [], timeout=1.0)
            assert isinstance(chain_id, str)
            return int(chain_id, 16)
        except (OSError, urllib.error.URLError, RuntimeError):
            pass
        if time.monotonic() > deadline:
            raise NodeStartError(f"node did not answer {url} within {timeout:.0f} s:\n{_tail(log)}")
        time.sleep(0.05)


def _signal_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    # The npm `anvil` is a node wrapper around the native binary: signal the whole group
    # (the process leads its own session), so no child outlives a SIGKILL of the wrapper.
    with suppress(ProcessLookupError):
        os.killpg(process.pid, sig)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        _signal_group(process, signal.SIGTERM)
        with suppress(subprocess.TimeoutExpired):
            process.wait(timeout=STOP_TIMEOUT)
    _signal_group(process, signal.SIGKILL)  # stragglers in the group, if any
    if process.poll() is None:
        process.wait(timeout=STOP_TIMEOUT)


@contextmanager
def run_node(
    kind: str, argv: list[str], port: int, timeout: float, keys: tuple[bytes, ...]
) -> Iterator[LocalNode]:
    url = f"http://{HOST}:{port}"
    if _port_answers(port):
        # Another process would answer our readiness probe and pass for the new node.
        raise NodeStartError(f"{HOST}:{port} is already in use")
    with tempfile.TemporaryFile() as log:
        # A file, not a pipe: a chatty node can never block on a full pipe buffer.
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            chain_id = _wait_ready(process, url, log, timeout)
            yield LocalNode(kind, url, chain_id, keys, process.pid)
        finally:
            _stop(process)


@contextmanager
def open_anvil(
    accounts: int = DEV_ACCOUNTS,
    chain_id: int = 31337,
    timeout: float = START_TIMEOUT,
    port: int | None = None,
    block_time: int | None = None,
    gas_price: int | None = None,
    base_fee: int | None = None,
    balance: int = DEV_BALANCE_ETH,
) -> Iterator[LocalNode]:
    """Run `anvil` (history pruned so it writes nothing to the home folder).

    Without `block_time` it mines a block per transaction (automine); with it, only one block
    every `block_time` seconds (interval mining, no automine: a sent transaction waits for the
    next block, as on a Besu QBFT or GoQuorum network). `gas_price` / `base_fee` (wei) set the
    node's gas price and base fee; `gas_price=0, base_fee=0` is the "free gas" profile of a
    permissioned chain (no minimum tip either). `balance`: ether of each dev account.
    """
    if block_time is not None and block_time < 1:
        raise ValueError(f"block_time must be >= 1 second, got {block_time}")
    if (gas_price is not None and gas_price < 0) or (base_fee is not None and base_fee < 0):
        raise ValueError("gas_price and base_fee must not be negative")
    free_gas = gas_price == 0 or base_fee == 0
    port = port or free_port()
    argv = [
        str(node_binary("anvil")),
        "--host", HOST,
        "--port", str(port),
        "--prune-history",
        "--silent",
        "--mnemonic", DEV_MNEMONIC,
        "--accounts", str(accounts),
        "--balance", str(balance),
        "--chain-id", str(chain_id),
        *(["--block-time", str(block_time)] if block_time else []),
        *(["--gas-price", str(gas_price)] if gas_price is not None else []),
        *(["--base-fee", str(base_fee)] if base_fee is not None else []),
        *(["--disable-min-priority-fee"] if free_gas else []),
    ]  # fmt: skip
    with run_node("anvil", argv, port, timeout, dev_private_keys(accounts)) as node:
        yield node


@contextmanager
def open_ganache(
    accounts: int = DEV_ACCOUNTS,
    chain_id: int = 1337,
    timeout: float = START_TIMEOUT,
    block_time: int | None = None,
    gas_price: int | None = None,
    hardfork: str = "shanghai",
) -> Iterator[LocalNode]:
    """Run `ganache` (shanghai, quiet; instamine unless `block_time` seconds are given).

    `gas_price` (wei) is its default gas price. Ganache has no base-fee option: on shanghai the
    base fee starts at 1 gwei and only decays with empty blocks, so it has no free-gas profile;
    on a pre-London `hardfork` (legacy transactions, `gas_price=0`) gas is free, but the CISE
    contracts (compiled for shanghai, PUSH0) do not run there.
    """
    port = free_port()
    argv = [
        str(node_binary("ganache")),
        "--server.host", HOST,
        "--server.port", str(port),
        "--chain.hardfork", hardfork,
        "--chain.chainId", str(chain_id),
        "--wallet.mnemonic", DEV_MNEMONIC,
        "--wallet.totalAccounts", str(accounts),
        "--wallet.defaultBalance", str(DEV_BALANCE_ETH),
        "--logging.quiet",
        *(["--miner.blockTime", str(block_time)] if block_time else []),
        *(["--miner.defaultGasPrice", str(gas_price)] if gas_price is not None else []),
    ]  # fmt: skip
    node = shutil.which("node")
    if node is None:
        raise FileNotFoundError("ganache needs `node` on PATH")
    with run_node("ganache", argv, port, timeout, dev_private_keys(accounts)) as running:
        yield running


@contextmanager
def open_local_node(kind: str, timeout: float = START_TIMEOUT) -> Iterator[LocalNode]:
    """`open_anvil` or `open_ganache` by name."""
    if kind == "anvil":
        with open_anvil(timeout=timeout) as node:
            yield node
    elif kind == "ganache":
        with open_ganache(timeout=timeout) as node:
            yield node
    else:
        raise ValueError(f"unknown node kind {kind!r} (want 'anvil' or 'ganache')")

"""`cise chain`: run a local anvil with CISE deployed, for several processes to share.

Starts anvil on 127.0.0.1, deploys the token and channel manager, funds the dev accounts with
tokens, writes the network file, mines an empty block every second so that challenge periods pass,
and runs until interrupted (the node is always stopped on exit).
"""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path

from eth_account import Account

from channels.chain.client import Web3ChainClient
from channels.chain.connection import Connection
from channels.chain.deploy import deploy
from channels.chain.nodes import NodeStartError, open_anvil
from channels.core.types import Address, to_checksum
from channels.signer import LocalSigner
from cise.errors import CliError
from cise.network import Network

DEV_TOKENS_PER_ACCOUNT = 1_000 * 1_000_000  # €1,000 each
CHAIN_SETTLE_TIMEOUT = 20  # blocks
# The channel manager's hard bounds (ChannelManager.MIN/MAX_SETTLE_TIMEOUT).
MIN_SETTLE_TIMEOUT, MAX_SETTLE_TIMEOUT = 5, 1_000_000


def run_chain(
    port: int,
    network_file: str,
    stop: threading.Event | None = None,
    settle_timeout: int = CHAIN_SETTLE_TIMEOUT,
) -> int:
    """Run until SIGINT/SIGTERM (or `stop` is set, for tests)."""
    if not MIN_SETTLE_TIMEOUT <= settle_timeout <= MAX_SETTLE_TIMEOUT:
        raise CliError(
            f"--settle-timeout must be in [{MIN_SETTLE_TIMEOUT}, {MAX_SETTLE_TIMEOUT}] blocks, "
            f"got {settle_timeout}"
        )
    if not 0 <= port <= 65_535:
        raise CliError(f"--port must be in [0, 65535] (0 = any free port), got {port}")
    path = Path(network_file)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CliError(f"--network-file {path}: {exc.strerror}") from None
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
    try:
        return _serve(port, path, stop, settle_timeout)
    except (NodeStartError, FileNotFoundError) as exc:  # anvil missing or not answering
        raise CliError(f"anvil did not start: {exc}") from None


def _serve(port: int, path: Path, stop: threading.Event, settle_timeout: int) -> int:
    with open_anvil(port=port or None) as node:
        connection = Connection.from_url(node.url, node.private_keys)
        deployer = Account.from_key(node.private_keys[0])
        deployment = deploy(connection, deployer, settle_timeout=settle_timeout)
        minter = Web3ChainClient(connection, deployment, deployer)
        for key in node.private_keys:
            minter.mint(Address(LocalSigner(key).address), DEV_TOKENS_PER_ACCOUNT)
        path.write_text(Network(node.url, deployment, node.private_keys).to_json() + "\n")
        print(f"anvil at {node.url}, chain id {deployment.chain_id}")
        print(
            f"channel manager {to_checksum(deployment.manager)}, token {to_checksum(deployment.token)}"
        )
        print(f"network file {path}; dev accounts 0..{len(node.private_keys) - 1} hold €1,000 each")
        print("Ctrl-C stops the node.", flush=True)
        # Transactions are mined at once; an extra empty block every second lets challenge
        # periods and lock expirations pass for parties that never mine themselves.
        while not stop.wait(1.0):
            connection.mine(1)
    print("node stopped", file=sys.stderr)
    return 0

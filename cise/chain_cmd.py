"""`cise chain`: run a local anvil with CISE deployed, for several processes to share.

Starts anvil on 127.0.0.1, deploys the token and channel manager, funds the dev accounts with
tokens, writes the network file, mines an empty block every second so that challenge periods pass,
and runs until SIGINT/SIGTERM (`cise.lifecycle`: exit 0; the anvil child is always stopped first).
"""

from __future__ import annotations

import sys
import threading
from contextlib import ExitStack
from pathlib import Path

import trio
from eth_account import Account

from channels.chain.client import Web3ChainClient
from channels.chain.connection import Connection
from channels.chain.deploy import Deployment, deploy
from channels.chain.nodes import LocalNode, NodeStartError, open_anvil
from channels.core.types import Address, to_checksum
from channels.signer import LocalSigner
from cise.errors import CliError
from cise.lifecycle import run_until_stopped
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
    """Run until SIGINT/SIGTERM (or `stop` is set, for tests); 0 either way, the node stopped."""
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
    return run_until_stopped(_serve, port, path, stop, settle_timeout, name="node")


async def _serve(port: int, path: Path, stop: threading.Event | None, settle_timeout: int) -> int:
    with ExitStack() as stack:  # the node is stopped on every way out, a signal's included
        try:
            node = await trio.to_thread.run_sync(stack.enter_context, open_anvil(port=port or None))
        except (NodeStartError, FileNotFoundError) as exc:  # anvil missing or not answering
            raise CliError(f"anvil did not start: {exc}") from None
        connection = Connection.from_url(node.url, node.private_keys)
        deployment = await trio.to_thread.run_sync(_deploy, connection, node, settle_timeout)
        await trio.to_thread.run_sync(
            path.write_text, Network(node.url, deployment, node.private_keys).to_json() + "\n"
        )
        print(f"anvil at {node.url}, chain id {deployment.chain_id}")
        print(
            f"channel manager {to_checksum(deployment.manager)}, token {to_checksum(deployment.token)}"
        )
        print(f"network file {path}; dev accounts 0..{len(node.private_keys) - 1} hold €1,000 each")
        print("Ctrl-C stops the node.", flush=True)
        async with trio.open_nursery() as nursery:
            if stop is not None:
                nursery.start_soon(_wait_stop, stop, nursery.cancel_scope)
            # Transactions are mined at once; an extra empty block every second lets challenge
            # periods and lock expirations pass for parties that never mine themselves.
            while True:
                await trio.sleep(1.0)
                await trio.to_thread.run_sync(connection.mine, 1)
    print("node stopped", file=sys.stderr)  # stopped by `stop` (a signal prints it itself)
    return 0


def _deploy(connection: Connection, node: LocalNode, settle_timeout: int) -> Deployment:
    deployer = Account.from_key(node.private_keys[0])
    deployment = deploy(connection, deployer, settle_timeout=settle_timeout)
    minter = Web3ChainClient(connection, deployment, deployer)
    for key in node.private_keys:
        minter.mint(Address(LocalSigner(key).address), DEV_TOKENS_PER_ACCOUNT)
    return deployment


async def _wait_stop(stop: threading.Event, scope: trio.CancelScope) -> None:
    await trio.to_thread.run_sync(stop.wait, abandon_on_cancel=True)
    scope.cancel()

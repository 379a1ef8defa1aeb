"""`cise chain`: run a local anvil with CISE deployed, for several processes to share.

Starts anvil on 127.0.0.1, deploys the token and the governed set, funds the dev accounts with
tokens, writes the network file and runs until SIGINT/SIGTERM (`cise.lifecycle`: exit 0; the anvil
child is always stopped first). By default a block is mined per transaction plus an empty one every
second (so challenge periods pass). The permissioned profile (`--block-time S --gas-price 0`, as a
Besu QBFT / GoQuorum network runs): anvil mines only every S seconds (no block per transaction, no
extra mining loop) and gas is free (gas price 0, base fee 0: accounts need no ether). The set-up
transactions are mined at once (automine) before the network file is written; interval mining
starts before any command can see the network. `--accounts N` dev accounts, of which the first
`--founders F` (the deployer first) are founding members with every role; the others may apply.

The network file is a dev file: it holds the public dev keys. This module must never run anything
but a local dev node.
"""

from __future__ import annotations

import sys
import threading
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import trio
from eth_account import Account

from channels.chain.client import Web3ChainClient
from channels.chain.connection import Connection
from channels.chain.deploy import ALL_ROLES, Deployment, deploy
from channels.chain.nodes import DEV_ACCOUNTS, LocalNode, NodeStartError, open_anvil, rpc_call
from channels.core.types import Address, to_checksum
from channels.signer import LocalSigner
from cise.errors import CliError
from cise.lifecycle import run_until_stopped
from cise.network import Network, write_network_file

DEV_TOKENS_PER_ACCOUNT = 1_000 * 1_000_000  # €1,000 each
CHAIN_SETTLE_TIMEOUT = 20  # blocks
# The channel manager's hard bounds (ChannelManager.MIN/MAX_SETTLE_TIMEOUT).
MIN_SETTLE_TIMEOUT, MAX_SETTLE_TIMEOUT = 5, 1_000_000
MIN_BLOCK_TIME, MAX_BLOCK_TIME = 1, 60  # seconds (--block-time)
MAX_ACCOUNTS = 100  # dev accounts (--accounts); each is minted tokens at start


@dataclass(frozen=True, slots=True)
class ChainProfile:
    """How the local chain runs: `block_time` None = a block per transaction (+ one a second);
    `free_gas` = gas price and base fee 0; `accounts` dev accounts, the first `founders` of which
    are founding members."""

    block_time: int | None = None
    free_gas: bool = False
    accounts: int = DEV_ACCOUNTS
    founders: int | None = None  # None: all the dev accounts

    @classmethod
    def from_options(
        cls,
        block_time: int | None = None,
        gas_price: int | None = None,
        accounts: int | None = None,
        founders: int | None = None,
    ) -> ChainProfile:
        """The profile of `cise chain`'s options; `CliError` naming the bad one."""
        if block_time is not None and not MIN_BLOCK_TIME <= block_time <= MAX_BLOCK_TIME:
            raise CliError(
                f"--block-time must be in [{MIN_BLOCK_TIME}, {MAX_BLOCK_TIME}] seconds, "
                f"got {block_time}"
            )
        if gas_price is not None and gas_price != 0:
            raise CliError(
                f"--gas-price: only 0 (free gas: gas price and base fee 0) is supported, "
                f"got {gas_price}; leave it out for anvil's default fees"
            )
        count = DEV_ACCOUNTS if accounts is None else accounts
        if not 1 <= count <= MAX_ACCOUNTS:
            raise CliError(f"--accounts must be in [1, {MAX_ACCOUNTS}], got {count}")
        if founders is not None and not 1 <= founders <= count:
            raise CliError(
                f"--founders must be in [1, {count}] (the deployer, account 0, is always one; "
                f"--accounts is {count}), got {founders}"
            )
        return cls(block_time, gas_price == 0, count, founders)


def run_chain(
    port: int,
    network_file: str,
    stop: threading.Event | None = None,
    settle_timeout: int = CHAIN_SETTLE_TIMEOUT,
    profile: ChainProfile | None = None,
) -> int:
    """Run until SIGINT/SIGTERM (or `stop` is set, for tests); 0 either way, the node stopped."""
    profile = profile or ChainProfile()
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
    return run_until_stopped(_serve, port, path, stop, settle_timeout, profile, name="node")


async def _serve(
    port: int,
    path: Path,
    stop: threading.Event | None,
    settle_timeout: int,
    profile: ChainProfile,
) -> int:
    zero = 0 if profile.free_gas else None
    anvil = open_anvil(
        accounts=profile.accounts,
        port=port or None,
        block_time=profile.block_time,
        gas_price=zero,
        base_fee=zero,
    )
    with ExitStack() as stack:  # the node is stopped on every way out, a signal's included
        try:
            node = await trio.to_thread.run_sync(stack.enter_context, anvil)
        except (NodeStartError, FileNotFoundError) as exc:  # anvil missing or not answering
            raise CliError(f"anvil did not start: {exc}") from None
        connection = Connection.from_url(node.url, node.private_keys)
        deployment = await trio.to_thread.run_sync(
            _set_up, connection, node, settle_timeout, profile
        )
        await trio.to_thread.run_sync(
            write_network_file,
            path,
            Network(node.url, deployment, node.private_keys).to_json() + "\n",
            True,
        )
        print(f"anvil at {node.url}, chain id {deployment.chain_id}")
        print(
            f"channel manager {to_checksum(deployment.manager)}, token {to_checksum(deployment.token)}"
        )
        print(f"network file {path}; dev accounts 0..{len(node.private_keys) - 1} hold €1,000 each")
        founders = profile.founders or profile.accounts
        print(f"founding members: dev accounts 0..{founders - 1} (every role)")
        print(_profile_line(profile))
        print("Ctrl-C stops the node.", flush=True)
        async with trio.open_nursery() as nursery:
            if stop is not None:
                nursery.start_soon(_wait_stop, stop, nursery.cancel_scope)
            if profile.block_time is not None:  # anvil mines every block_time seconds itself
                await trio.sleep_forever()
            # Transactions are mined at once; an extra empty block every second lets challenge
            # periods and lock expirations pass for parties that never mine themselves.
            while True:
                await trio.sleep(1.0)
                await trio.to_thread.run_sync(connection.mine, 1)
    print("node stopped", file=sys.stderr)  # stopped by `stop` (a signal prints it itself)
    return 0


def profile_argv(profile: ChainProfile) -> list[str]:
    """The `cise chain` options that give `profile` (for a detached child)."""
    argv = ["--accounts", str(profile.accounts)]
    if profile.block_time is not None:
        argv += ["--block-time", str(profile.block_time)]
    if profile.free_gas:
        argv += ["--gas-price", "0"]
    if profile.founders is not None:
        argv += ["--founders", str(profile.founders)]
    return argv


def _profile_line(profile: ChainProfile) -> str:
    blocks = (
        "a block per transaction (+1 a second)"
        if profile.block_time is None
        else f"a block every {profile.block_time} s (no block per transaction)"
    )
    return f"{blocks}; " + (
        "free gas (gas price and base fee 0)" if profile.free_gas else "gas paid in ether"
    )


def _set_up(
    connection: Connection, node: LocalNode, settle_timeout: int, profile: ChainProfile
) -> Deployment:
    """Deploy and mint with a block per transaction, then start interval mining (if asked)."""
    if profile.block_time is not None:
        rpc_call(node.url, "evm_setAutomine", [True], timeout=10.0)
    deployment = _deploy(connection, node, settle_timeout, profile.founders)
    if profile.block_time is not None:
        rpc_call(node.url, "evm_setIntervalMining", [profile.block_time], timeout=10.0)
    return deployment


def _deploy(
    connection: Connection, node: LocalNode, settle_timeout: int, founders: int | None = None
) -> Deployment:
    deployer = Account.from_key(node.private_keys[0])
    members = {
        Address(LocalSigner(key).address): ALL_ROLES
        for key in node.private_keys[: founders or len(node.private_keys)]
    }
    deployment = deploy(
        connection, deployer, settle_timeout=settle_timeout, founding_members=members
    )
    minter = Web3ChainClient(connection, deployment, deployer)
    for key in node.private_keys:
        minter.mint(Address(LocalSigner(key).address), DEV_TOKENS_PER_ACCOUNT)
    return deployment


async def _wait_stop(stop: threading.Event, scope: trio.CancelScope) -> None:
    await trio.to_thread.run_sync(stop.wait, abandon_on_cancel=True)
    scope.cancel()

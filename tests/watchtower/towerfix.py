"""Shared pieces of the watchtower tests: a chain with fresh contracts and funded actors, towers and
node services running on it, blocks mined on demand, many transactions in one block.

Nothing here is a fake: the chain is py-evm (embedded) or anvil, the towers and the parties' nodes
are the real services over loopback TCP and sqlite.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import trio
from eth_account import Account
from eth_account.signers.local import LocalAccount

from channels import wire
from channels.chain.abi import DecodedEvent
from channels.chain.client import Web3ChainClient
from channels.chain.connection import Connection, SentTransaction
from channels.chain.deploy import Deployment, deploy
from channels.core import state_changes as sc
from channels.core.types import Address, BlockNumber, ChannelId, PaymentId, TokenAmount
from channels.records import core_record_codec
from channels.service import NodeService, restore_chain_node, run_on_chain
from channels.signer import LocalSigner
from channels.store import SqliteStore
from channels.transport import TcpTransport, serve_connections
from watchtower.core import response_block
from watchtower.service import Watchtower
from watchtower.store import TowerStore

SETTLE_TIMEOUT = 20  # blocks: 5 response slots of 2 blocks in the first half
POLL = 0.02  # seconds between chain polls of every service in these tests
OPEN_GAS = 300_000  # explicit gas limits: no estimate (py-evm's costs ~13 executions)
CLOSE_GAS = 200_000
STEP = 20.0  # seconds any one wait of a test may take


@dataclass
class Actor:
    """A dev account: its message signer and its chain client."""

    key: bytes
    signer: LocalSigner
    client: Web3ChainClient

    @property
    def address(self) -> Address:
        return Address(self.signer.address)

    @property
    def account(self) -> LocalAccount:
        return Account.from_key(self.key)


@dataclass
class TowerChain:
    """Fresh contracts on a chain; `actors[i]` is dev account i + 1 (account 0 deploys)."""

    backend: str
    connection: Connection
    deployment: Deployment
    admin: Web3ChainClient
    actors: list[Actor]
    lock: trio.Lock  # one chain call at a time from this process (py-evm is not thread-safe)

    def fund(self, actor: Actor, amount: int) -> None:
        self.admin.mint(actor.address, amount)
        actor.client.approve(amount)

    def open(
        self, opener: Actor, partner: Actor, deposit: int, partner_deposit: int = 0
    ) -> ChannelId:
        channel_id, _ = opener.client.open_channel(partner.address, deposit)
        if partner_deposit:
            partner.client.set_total_deposit(channel_id, opener.address, partner_deposit)
        return channel_id

    def head(self) -> BlockNumber:
        return self.connection.block_number()

    async def mine(self, blocks: int = 1) -> BlockNumber:
        async with self.lock:
            return await trio.to_thread.run_sync(self.connection.mine, blocks)


def make_tower_chain(connection: Connection, backend: str, settle_timeout: int) -> TowerChain:
    keys = connection.dev_keys
    deployment = deploy(connection, Account.from_key(keys[0]), settle_timeout)
    admin = Web3ChainClient.from_key(connection, deployment, keys[0])
    actors = [
        Actor(key, LocalSigner(key), admin.for_account(Account.from_key(key))) for key in keys[1:]
    ]
    return TowerChain(backend, connection, deployment, admin, actors, trio.Lock())


def in_one_block(
    chain: TowerChain, sends: Sequence[Callable[[], SentTransaction]], event: str
) -> list[DecodedEvent]:
    """Send every transaction with automine off, mine them all in one block, and return the
    `event`s the block emitted (one per transaction, or the test fails). Synchronous."""
    connection = chain.connection
    connection.set_automine(False)
    try:
        for send in sends:
            send()
        block = connection.mine(1)
    finally:
        connection.set_automine(True)
    abi = chain.admin.manager_abi
    events = [e for e in connection.get_logs(chain.deployment.manager, block, block, abi)]
    found = [e for e in events if e.name == event]
    assert len(found) == len(sends), f"{len(found)} {event} in block {block}, not {len(sends)}"
    return found


def manager_send(actor: Actor, function: str, *args: object, gas: int) -> SentTransaction:
    """A channel-manager transaction of `actor`, sent without waiting and without an estimate."""
    client = actor.client
    data = client.manager_abi.function(function).encode_call(args)
    return client.connection.send(
        actor.account, client.deployment.manager, data, client.manager_abi, function, gas=gas
    )


def slot_of(tower: Address, channel_id: int, chain: TowerChain) -> int:
    """The tower's response slot for a channel (0: answers in the close block's turn)."""
    timeout = chain.deployment.settle_timeout
    return (response_block(tower, channel_id, 1000, 1000 + timeout) - 1000) // 2


@asynccontextmanager
async def running_tower(
    chain: TowerChain,
    actor: Actor,
    path: Path,
    *,
    confirmations: int = 1,
) -> AsyncIterator[tuple[Watchtower, int]]:
    """A tower on `path` serving on a free loopback port until the block ends (then cancelled
    without any graceful step, as a killed process would stop)."""
    store = TowerStore(
        path,
        tower=actor.address,
        chain_id=chain.deployment.chain_id,
        manager=chain.deployment.manager,
        start_cursor=BlockNumber(chain.deployment.block_number - 1),
    )
    tower = Watchtower(
        actor.signer,
        actor.client,
        store,
        confirmations=confirmations,
        poll_interval=POLL,
        chain_lock=chain.lock,
    )
    try:
        async with trio.open_nursery() as nursery:
            with trio.fail_after(STEP):
                port: int = await nursery.start(tower.serve)
            yield tower, port
            nursery.cancel_scope.cancel()
    finally:
        store.close()


def open_node(chain: TowerChain, actor: Actor, path: Path) -> NodeService:
    store = SqliteStore(path, core_record_codec())
    node = restore_chain_node(actor.signer, actor.client, store)
    return NodeService(actor.signer, store, node, chain_lock=chain.lock)


@asynccontextmanager
async def running_node(
    chain: TowerChain, service: NodeService, *, serve: bool = False
) -> AsyncIterator[tuple[trio.Nursery, int]]:
    """The service's commit loop and chain follower (and a listener for peers, when `serve`)."""
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(service.run_commits)
            nursery.start_soon(
                lambda: run_on_chain(service, _client_of(chain, service), poll_interval=POLL)
            )
            port = 0
            if serve:
                with trio.fail_after(STEP):
                    port = await nursery.start(
                        lambda task_status: serve_connections(
                            service.signer,
                            wire,
                            service.dispatch_table().lookup(),
                            on_connection=service.attach,
                            task_status=task_status,
                        )
                    )
            yield nursery, port
            nursery.cancel_scope.cancel()
    finally:
        service.store.close()


def _client_of(chain: TowerChain, service: NodeService) -> Web3ChainClient:
    for actor in chain.actors:
        if actor.address == service.address:
            return actor.client
    raise LookupError("no actor for this service")


async def connect(service: NodeService, peer: Address, port: int, nursery: trio.Nursery) -> None:
    """Keep `service` connected to the peer serving on `port` (until the nursery ends)."""
    transport = TcpTransport(service.signer, wire, service.dispatch_table().lookup())

    async def run() -> None:
        async with transport.open_connection("127.0.0.1", port, expected_peer=peer) as connection:
            await service.attach(connection)

    nursery.start_soon(run)


@dataclass
class PaidPair:
    """A machine (actor 1) paid over a channel by a payer (actor 2): both nodes running."""

    machine: NodeService
    payer: NodeService
    channel_id: ChannelId
    machine_tasks: trio.Nursery
    paid: int = 0

    async def pay(self, count: int, amount: int) -> None:
        """`count` direct payments of `amount`; returns once the machine holds the last proof."""
        first = self.paid + 1
        for payment in range(first, first + count):
            self.payer.handle(
                sc.ActionTransfer(self.channel_id, TokenAmount(amount), PaymentId(payment))
            )
        self.paid += count
        channels = self.machine.channels
        await wait_until(
            lambda: (
                self.channel_id in channels
                and channels[self.channel_id].partner.balance_proof.nonce == self.paid
            ),
            "the machine received every payment",
        )


@asynccontextmanager
async def paid_pair(
    chain: TowerChain, tmp: Path, machine_deposit: int, payer_deposit: int
) -> AsyncIterator[PaidPair]:
    """A fresh channel payer -> machine with both deposits, and both nodes running, connected over
    loopback TCP, until the block ends (then the machine is offline)."""
    machine, payer = chain.actors[0], chain.actors[1]
    chain.fund(machine, machine_deposit)
    chain.fund(payer, payer_deposit)
    channel_id = chain.open(payer, machine, payer_deposit, machine_deposit)
    machine_node = open_node(chain, machine, tmp / "machine.sqlite")
    payer_node = open_node(chain, payer, tmp / "payer.sqlite")
    async with (
        running_node(chain, machine_node, serve=True) as (machine_tasks, port),
        running_node(chain, payer_node) as (payer_tasks, _),
    ):
        await wait_until(lambda: channel_id in payer_node.channels, "the payer sees the channel")
        await connect(payer_node, machine.address, port, payer_tasks)
        yield PaidPair(machine_node, payer_node, channel_id, machine_tasks)


async def wait_until(predicate: Callable[[], bool], what: str) -> None:
    """Poll `predicate` until it holds (bounded by STEP seconds)."""
    with trio.fail_after(STEP):
        while not predicate():  # noqa: ASYNC110  # state of other services, polled
            await trio.sleep(0.01)
    assert predicate(), what


async def mine_until(
    chain: TowerChain,
    predicate: Callable[[], bool],
    what: str,
    max_blocks: int,
    block_s: float = 6 * POLL,
) -> int:
    """Mine a block every `block_s` seconds (the services poll in between) until `predicate`
    holds; return the blocks mined. Fails after `max_blocks`."""
    for mined in range(max_blocks + 1):
        for _ in range(max(1, round(block_s / POLL))):
            if predicate():
                return mined
            await trio.sleep(POLL)
        if mined < max_blocks:
            await chain.mine(1)
    raise AssertionError(f"{what}: not within {max_blocks} blocks")

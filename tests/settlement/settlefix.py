"""A hub network on the embedded chain for the settlement tests: a hub, two users paying through
it (alice, bob) and a washer paid by them, each a real `NodeService` following the chain."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import trio
from eth_account import Account

from channels.chain.client import Web3ChainClient
from channels.chain.connection import Connection
from channels.chain.deploy import ALL_ROLES, deploy, dev_founders
from channels.core.fees import FeeSchedule
from channels.core.types import Address
from cise.local_net import LocalNet, run_local_net
from hub.mediator import MediationTerms
from settlement.planner import SettlementPolicy
from settlement.service import SettlementConfig, SettlementService
from settlement.store import SettlementStore

TERMS = MediationTerms(
    FeeSchedule(flat=10, ppm=1_000, cap=5_000), reveal_timeout=5, lock_timeout=30
)
USER_DEPOSIT = 10_000_000
HUB_TO_WASHER = 5_000_000
POLICY = SettlementPolicy(
    period_s=86_400, amount_trigger=0, min_withdraw=1, liquidity_target=1_000_000, expiry_blocks=30
)
NAMES = ("hub", "alice", "bob", "washer")


@dataclass
class SettleNet:
    net: LocalNet
    connection: Connection
    clients: dict[str, Web3ChainClient]
    tokens: int  # every token minted

    def service(self, store: SettlementStore, **config: float) -> SettlementService:
        return SettlementService(
            self.net.services["hub"], self.clients["hub"], store, SettlementConfig(POLICY, **config)
        )

    def channel_id(self, name: str) -> int:
        """The id of `name`'s (only) channel with the hub, open or not."""
        [channel_id] = self.net.services[name].channels
        return int(channel_id)

    def held_by_manager(self) -> int:
        """Tokens the channel manager holds: every internal balance plus every channel's total."""
        hub = self.clients["hub"]
        internal = sum(hub.balance_of(c.address) for c in self.clients.values())
        in_channels = sum(
            hub.get_channel(self.channel_id(n), hub.address, self.clients[n].address).total
            for n in NAMES[1:]
        )
        return internal + in_channels


@asynccontextmanager
async def settle_net(
    tmp: Path, members: Sequence[bytes] = (), connection: Connection | None = None
) -> AsyncIterator[SettleNet]:
    """The network; `members`: more addresses admitted at the start (the hub may open channels
    with them); `connection`: the chain (default: a new embedded one)."""
    connection = connection or Connection.embedded()
    keys = connection.dev_keys
    operator = Account.from_key(keys[0])
    founders = dev_founders(connection, operator)
    founders.update({Address(m): ALL_ROLES for m in members})
    deployment = deploy(connection, operator, 5, founding_members=founders)
    named = dict(zip(NAMES, keys[1:5], strict=True))
    clients = {
        n: Web3ChainClient(connection, deployment, Account.from_key(k)) for n, k in named.items()
    }
    minter = Web3ChainClient(connection, deployment, operator)
    minter.mint(clients["hub"].address, HUB_TO_WASHER)
    for user in ("alice", "bob"):
        minter.mint(clients[user].address, USER_DEPOSIT)
        clients[user].approve(USER_DEPOSIT)
        clients[user].open_channel(clients["hub"].address, USER_DEPOSIT)
    clients["hub"].approve(HUB_TO_WASHER)
    clients["hub"].open_channel(clients["washer"].address, HUB_TO_WASHER)
    async with run_local_net(clients, named, tmp, TERMS) as net:
        yield SettleNet(net, connection, clients, HUB_TO_WASHER + 2 * USER_DEPOSIT)


async def wait_for(condition: object, seconds: float = 30.0) -> None:
    """Poll `condition()` until it is true (the followers see the chain every half second)."""
    with trio.fail_after(seconds):
        while not condition():  # type: ignore[operator]  # noqa: ASYNC110
            await trio.sleep(0.05)

"""A chain with freshly deployed CISE contracts and funded parties, for integration tests."""

from __future__ import annotations

from dataclasses import dataclass

from eth_account import Account

from channels.chain.client import Web3ChainClient
from channels.chain.connection import Connection
from channels.chain.deploy import Deployment, deploy
from channels.signer import LocalSigner

SETTLE_TIMEOUT = 5  # the contract's minimum: keeps "mine past the challenge period" short


@dataclass
class Party:
    """A participant: its message signer and its chain client (same key)."""

    signer: LocalSigner
    client: Web3ChainClient

    @property
    def address(self) -> bytes:
        return self.client.address


@dataclass
class ChainEnv:
    """A chain with freshly deployed contracts and three funded parties besides the deployer."""

    backend: str
    connection: Connection
    deployment: Deployment
    admin: Web3ChainClient
    alice: Party
    bob: Party
    carol: Party


def make_env(connection: Connection, backend: str) -> ChainEnv:
    keys = connection.dev_keys
    deployment = deploy(connection, Account.from_key(keys[0]), SETTLE_TIMEOUT)
    admin = Web3ChainClient.from_key(connection, deployment, keys[0])

    def party(key: bytes) -> Party:
        return Party(LocalSigner(key), admin.for_account(Account.from_key(key)))

    return ChainEnv(
        backend, connection, deployment, admin, party(keys[1]), party(keys[2]), party(keys[3])
    )

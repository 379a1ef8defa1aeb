"""The Party shell: persist before progress, restart from the store, bad frames change nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from eth_account import Account

from channels import wire
from channels.chain.client import Web3ChainClient
from channels.chain.connection import Connection
from channels.chain.deploy import deploy
from channels.core import state_changes as sc
from channels.core.types import ChannelId, PaymentId, TokenAmount
from channels.party import Party, deliver
from channels.signer import LocalSigner
from channels.wire import WireError


def _parties(tmp_path: Path) -> tuple[Connection, Web3ChainClient, Party, Party]:
    connection = Connection.embedded()
    keys = connection.dev_keys
    deployment = deploy(connection, Account.from_key(keys[0]), settle_timeout=10)
    operator = Web3ChainClient.from_key(connection, deployment, keys[0])

    def party(index: int) -> Party:
        client = Web3ChainClient.from_key(connection, deployment, keys[index])
        return Party.open(LocalSigner(keys[index]), client, tmp_path / f"p{index}.sqlite")

    return connection, operator, party(1), party(2)


def _message_id(party: Party) -> int:
    (message,) = wire.unpack(wire.decode(party.outbox[-1].payload))
    return message.message_id


def test_restart_restores_state_and_payments_continue(tmp_path: Path) -> None:
    _, operator, user, machine = _parties(tmp_path)
    operator.mint(user.address, 10_000)
    user.client.approve(10_000)
    channel_id, _ = user.client.open_channel(machine.address, 10_000)
    user.sync_chain()
    machine.sync_chain()
    ids = []
    for payment in range(1, 11):
        user.handle(sc.ActionTransfer(ChannelId(channel_id), TokenAmount(7), PaymentId(payment)))
        ids.append(_message_id(user))
        deliver([user, machine])
    before = machine.state
    machine.close()
    user.close()

    user = Party.open(user.signer, user.client, tmp_path / "p1.sqlite")
    machine = Party.open(machine.signer, machine.client, tmp_path / "p2.sqlite")
    assert machine.state == before
    assert machine.state.channels[channel_id].partner.balance_proof.transferred == 70
    user.handle(sc.ActionTransfer(ChannelId(channel_id), TokenAmount(5), PaymentId(11)))
    ids.append(_message_id(user))
    assert ids == sorted(set(ids)), "message ids repeat or go back across a restart"
    deliver([user, machine])
    assert machine.state.channels[channel_id].partner.balance_proof.nonce == 11
    assert machine.state.channels[channel_id].partner.balance_proof.transferred == 75


def test_a_malformed_frame_changes_nothing(tmp_path: Path) -> None:
    _, _, user, machine = _parties(tmp_path)
    before, last_id = machine.state, machine.store.last_state_change_id
    with pytest.raises(WireError):
        machine.receive(b"\x81\xa4junk\xc3", user.address)
    assert machine.state is before
    assert machine.store.last_state_change_id == last_id


def test_a_store_of_another_account_is_refused(tmp_path: Path) -> None:
    _, _, user, machine = _parties(tmp_path)
    user.close()
    with pytest.raises(ValueError, match="another account"):
        Party.open(machine.signer, machine.client, tmp_path / "p1.sqlite")

"""Reverts surface as `ChainError` with the exact custom error and its arguments, on every backend.

Covers the three paths a revert takes: rejected by the gas estimate (most), mined and failed (a
transaction sent with a fixed gas limit skips the estimate; the error is then named by replay), and
a token error bubbling up through the channel manager.
"""

from __future__ import annotations

import pytest
import trio

from channels.chain.client import ordered
from channels.chain.errors import ChainError
from channels.chain.executor import DigestMismatchError, execute
from channels.codec.eip712 import withdraw_digest
from channels.codec.keccak import keccak
from channels.core.events import ContractSendChannelWithdraw
from channels.core.types import Address, BlockNumber, ChannelId, Signature, TokenAmount
from tests.integration.chain_env import ChainEnv


def funded_channel(env: ChainEnv) -> ChannelId:
    env.admin.mint(Address(env.alice.address), 1_000)
    env.alice.client.approve(1_000)
    channel_id, _ = env.alice.client.open_channel(Address(env.bob.address), 600)
    return channel_id


def test_custom_errors_are_decoded(chain: ChainEnv) -> None:
    env = chain
    alice, bob, carol = env.alice, env.bob, env.carol
    a, b = Address(alice.address), Address(bob.address)

    with pytest.raises(ChainError) as raised:
        alice.client.open_channel(a, 0)
    assert raised.value.name == "ChannelManagerInvalidParticipants"
    assert raised.value.error_args == (a, a)
    assert raised.value.function == "ChannelManager.openChannel"

    with pytest.raises(ChainError) as raised:  # the token's error, through SafeERC20
        bob.client.open_channel(a, 10)
    assert raised.value.name == "ERC20InsufficientAllowance"
    assert raised.value.error_args == (env.deployment.manager, 0, 10)

    with pytest.raises(ChainError) as raised:
        bob.client.mint(b, 1)
    assert raised.value.name == "AccessControlUnauthorizedAccount"
    assert raised.value.error_args == (b, keccak(b"MINTER_ROLE"))

    channel_id = funded_channel(env)
    expiry = env.admin.block_number() + 10
    digest = withdraw_digest(env.admin.domain(), channel_id, a, 100, expiry)
    forged = carol.signer.sign_digest(digest)
    with pytest.raises(ChainError) as raised:
        alice.client.withdraw(
            channel_id, a, b, 100, expiry, alice.signer.sign_digest(digest), forged
        )
    assert raised.value.name == "ChannelManagerWrongSigner"
    assert raised.value.error_args == (b, Address(carol.address))

    with pytest.raises(ChainError) as raised:
        alice.client.withdraw(channel_id, a, b, 100, expiry, b"\x01" * 64, forged)
    assert raised.value.name == "ChannelManagerInvalidSignature"

    with pytest.raises(ChainError) as raised:
        alice.client.withdraw_from_balance(5)
    assert raised.value.name == "ChannelManagerInsufficientBalance"
    assert raised.value.error_args == (a, 0, 5)


def test_a_mined_revert_is_named_by_replay(chain: ChainEnv) -> None:
    env = chain
    alice = env.alice
    manager_abi = alice.client.manager_abi
    data = manager_abi.function("withdrawFromBalance").encode_call([7, alice.address])
    account = alice.client._account  # the test drives the connection directly
    with pytest.raises(ChainError) as raised:
        env.connection.transact(
            account, env.deployment.manager, data, manager_abi, "w", gas=200_000
        )
    error = raised.value
    assert error.name == "ChannelManagerInsufficientBalance"
    assert error.transaction_hash is not None and error.gas_used is not None
    assert 21_000 < error.gas_used < 200_000
    # the nonce moved on: the next transaction goes through
    env.admin.mint(Address(alice.address), 1)
    alice.client.approve(1)
    alice.client.deposit_to_balance(1)
    assert env.admin.balance_of(Address(alice.address)) == 1


def test_executor_refuses_a_foreign_digest(embedded_chain: ChainEnv) -> None:
    env = embedded_chain
    a, b = Address(env.alice.address), Address(env.bob.address)
    channel_id = funded_channel(env)
    expiry = BlockNumber(env.admin.block_number() + 10)
    good = withdraw_digest(env.admin.domain(), channel_id, a, 100, expiry)
    partner_sig = Signature(env.bob.signer.sign_digest(good))
    wrong = withdraw_digest(env.admin.domain(), channel_id, a, 101, expiry)
    event = ContractSendChannelWithdraw(
        channel_id, a, b, TokenAmount(100), expiry, partner_sig, wrong
    )
    with pytest.raises(DigestMismatchError):
        execute(env.alice.client, env.alice.signer, event)
    event = ContractSendChannelWithdraw(
        channel_id, a, b, TokenAmount(100), expiry, partner_sig, good
    )
    receipt = execute(env.alice.client, env.alice.signer, event)
    assert receipt.event("ChannelWithdrawn").args["totalWithdraw"] == 100


async def test_the_trio_shell_calls_it_from_many_threads(chain: ChainEnv) -> None:
    # concurrent transactions from one account: the nonces must not collide, on any backend
    env = chain
    recipients = [Address(bytes([i]) * 20) for i in range(1, 9)]
    gas: list[int] = []

    async def mint(to: Address, amount: int) -> None:
        receipt = await trio.to_thread.run_sync(env.admin.mint, to, amount)
        gas.append(receipt.gas_used)

    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            for i, to in enumerate(recipients):
                nursery.start_soon(mint, to, i + 1)
        balances = [await trio.to_thread.run_sync(env.admin.token_balance, to) for to in recipients]
    assert balances == list(range(1, 9)) and len(gas) == 8
    assert await trio.to_thread.run_sync(env.admin.token_total_supply) == sum(balances)


def test_settle_lands_in_the_first_block_after_the_challenge_period(chain: ChainEnv) -> None:
    # anvil estimates "latest" with block.number = head: the client must estimate on "pending"
    env = chain
    a, b = Address(env.alice.address), Address(env.bob.address)
    channel_id, _ = env.alice.client.open_channel(b, 0)
    receipt = env.alice.client.close_channel(channel_id, b, 0, 0, 0, b"\x00" * 32, b"")
    settle_block = receipt.event("ChannelClosed").args["settleBlock"]
    env.connection.mine_until(settle_block)
    assert env.connection.block_number() == settle_block
    receipt = env.bob.client.settle_channel(channel_id, *ordered(a, b))
    assert receipt.block_number == settle_block + 1

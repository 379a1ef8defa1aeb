"""The chain client port (`ChainClient`) and its web3 implementation (`Web3ChainClient`).

One typed method per function of the CISE Token and ChannelManager (docs/protocol.md): each
builds the call, signs it locally with this client's account, sends it raw, waits for the receipt
and returns it (with `gas_used`); a revert raises `ChainError` naming the contract's custom error.
Synchronous: the trio shell calls it via `trio.to_thread.run_sync`.

It must never decide anything about channels (the core does), never sign messages (the signer
does; signatures come in as arguments), and never hold more than one account's key.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from eth_account import Account
from eth_account.signers.local import LocalAccount

from channels.chain.abi import ContractAbi
from channels.chain.artifacts import load_artifact
from channels.chain.connection import Connection, Receipt, SentTransaction
from channels.chain.deploy import Deployment
from channels.codec.eip712 import Domain
from channels.core.state import Lock
from channels.core.types import (
    Address,
    BlockNumber,
    ChannelId,
    LocksRoot,
    Nonce,
    Secret,
    SecretHash,
    TokenAmount,
)

ZERO_ADDRESS = Address(b"\x00" * 20)


class ChannelState(enum.IntEnum):
    """`getChannel`'s state: NONE also after settle or cooperative close."""

    NONE = 0
    OPENED = 1
    CLOSED = 2


@dataclass(frozen=True, slots=True)
class ChannelInfo:
    """`getChannel(channelId, a, b)`; deposits/withdrawals in participant-address order."""

    state: ChannelState
    settle_block: BlockNumber
    closer: Address | None
    deposit1: TokenAmount
    deposit2: TokenAmount
    withdrawn1: TokenAmount
    withdrawn2: TokenAmount

    @property
    def total(self) -> TokenAmount:
        """What the channel holds: D1 + D2 - W1 - W2."""
        return TokenAmount(self.deposit1 + self.deposit2 - self.withdrawn1 - self.withdrawn2)


@dataclass(frozen=True, slots=True)
class StoredBalanceProof:
    """`getBalanceProof(channelId, sender, receiver)`: what the contract holds for a direction."""

    nonce: Nonce
    transferred: TokenAmount
    locked: TokenAmount
    locks_root: LocksRoot


def ordered(a: Address, b: Address) -> tuple[Address, Address]:
    """The two participants as the contract orders them: (participant1, participant2)."""
    return (a, b) if int.from_bytes(a, "big") < int.from_bytes(b, "big") else (b, a)


class ChainClient(Protocol):
    """The port the shell uses to act on and read the chain (as one account: `address`)."""

    @property
    def address(self) -> Address: ...
    @property
    def deployment(self) -> Deployment: ...
    def domain(self) -> Domain: ...
    def block_number(self) -> BlockNumber: ...

    # token
    def mint(self, to: Address, amount: int) -> Receipt: ...
    def approve(self, amount: int, spender: Address | None = None) -> Receipt: ...
    def transfer_token(self, to: Address, amount: int) -> Receipt: ...
    def token_balance(self, account: Address) -> TokenAmount: ...
    def token_allowance(self, owner: Address, spender: Address | None = None) -> TokenAmount: ...
    def token_total_supply(self) -> TokenAmount: ...

    # internal balances
    def deposit_to_balance(self, amount: int) -> Receipt: ...
    def withdraw_from_balance(self, amount: int, to: Address | None = None) -> Receipt: ...
    def balance_of(self, account: Address) -> TokenAmount: ...

    # channels
    def open_channel(self, partner: Address, amount: int) -> tuple[ChannelId, Receipt]: ...
    def open_channel_from_balance(
        self, partner: Address, amount: int
    ) -> tuple[ChannelId, Receipt]: ...
    def set_total_deposit(
        self, channel_id: ChannelId, partner: Address, total_deposit: int
    ) -> Receipt: ...
    def set_total_deposit_from_balance(
        self, channel_id: ChannelId, partner: Address, total_deposit: int
    ) -> Receipt: ...
    def withdraw(
        self,
        channel_id: ChannelId,
        participant: Address,
        partner: Address,
        total_withdraw: int,
        expiry: int,
        participant_signature: bytes,
        partner_signature: bytes,
    ) -> Receipt: ...
    def cooperative_close(
        self,
        channel_id: ChannelId,
        participant1: Address,
        participant2: Address,
        balance1: int,
        balance2: int,
        signature1: bytes,
        signature2: bytes,
    ) -> Receipt: ...
    def close_channel(
        self,
        channel_id: ChannelId,
        partner: Address,
        nonce: int,
        transferred: int,
        locked: int,
        locks_root: bytes,
        partner_signature: bytes,
    ) -> Receipt: ...
    def update_balance_proof(
        self,
        channel_id: ChannelId,
        closer: Address,
        nonce: int,
        transferred: int,
        locked: int,
        locks_root: bytes,
        closer_signature: bytes,
    ) -> Receipt: ...
    def update_balance_proof_for(
        self,
        channel_id: ChannelId,
        closer: Address,
        non_closer: Address,
        nonce: int,
        transferred: int,
        locked: int,
        locks_root: bytes,
        closer_signature: bytes,
        reward: int,
        monitor_signature: bytes,
    ) -> Receipt: ...
    def settle_channel(
        self, channel_id: ChannelId, participant1: Address, participant2: Address
    ) -> Receipt: ...
    def register_secret(self, secret: Secret) -> Receipt: ...
    def unlock(
        self,
        channel_id: ChannelId,
        sender: Address,
        receiver: Address,
        lock: Lock,
        slot: int,
        proof: Sequence[bytes],
    ) -> Receipt: ...

    # views
    def channel_count(self) -> int: ...
    def settle_timeout(self) -> int: ...
    def domain_separator(self) -> bytes: ...
    def get_channel(self, channel_id: ChannelId, a: Address, b: Address) -> ChannelInfo: ...
    def get_balance_proof(
        self, channel_id: ChannelId, sender: Address, receiver: Address
    ) -> StoredBalanceProof: ...
    def get_monitor_reward(
        self, channel_id: ChannelId, a: Address, b: Address
    ) -> tuple[Address | None, TokenAmount]: ...
    def secret_reveal_block(self, secrethash: SecretHash) -> BlockNumber: ...
    def is_lock_resolved(
        self, channel_id: ChannelId, sender: Address, receiver: Address, slot: int
    ) -> bool: ...


class Web3ChainClient:
    """`ChainClient` over a `Connection` (embedded py-evm or JSON-RPC), acting as `account`."""

    def __init__(
        self, connection: Connection, deployment: Deployment, account: LocalAccount
    ) -> None:
        self.connection = connection
        self._deployment = deployment
        self._account = account
        token, manager = load_artifact("Token"), load_artifact("ChannelManager")
        self.token_abi: ContractAbi = token.abi.merged(manager.abi)
        # Token errors bubble up through the manager (SafeERC20), so decode both.
        self.manager_abi: ContractAbi = manager.abi.merged(token.abi)
        self._domain = Domain(deployment.chain_id, deployment.manager)

    @classmethod
    def from_key(
        cls, connection: Connection, deployment: Deployment, private_key: bytes
    ) -> Web3ChainClient:
        """A client acting as the account of `private_key`."""
        return cls(connection, deployment, Account.from_key(private_key))

    def for_account(self, account: LocalAccount) -> Web3ChainClient:
        """A client on the same connection and deployment acting as another account."""
        return Web3ChainClient(self.connection, self._deployment, account)

    @property
    def address(self) -> Address:
        """The account this client sends transactions as."""
        return Address(bytes.fromhex(self._account.address[2:]))

    @property
    def account(self) -> LocalAccount:
        """The account this client signs transactions with (for a transaction manager)."""
        return self._account

    @property
    def deployment(self) -> Deployment:
        """The contracts this client talks to."""
        return self._deployment

    def domain(self) -> Domain:
        """The EIP-712 domain of this deployment."""
        return self._domain

    def block_number(self) -> BlockNumber:
        """The latest block number."""
        return self.connection.block_number()

    # ------------------------------------------------------------------ plumbing

    def _send_token(self, function: str, *args: Any) -> Receipt:
        data = self.token_abi.function(function).encode_call(args)
        return self.connection.transact(
            self._account, self._deployment.token, data, self.token_abi, f"Token.{function}"
        )

    def _send(self, function: str, *args: Any) -> Receipt:
        return self.wait(self._send_nowait(function, *args))

    def _send_nowait(self, function: str, *args: Any, gas: int | None = None) -> SentTransaction:
        data = self.manager_abi.function(function).encode_call(args)
        return self.connection.send(
            self._account,
            self._deployment.manager,
            data,
            self.manager_abi,
            f"ChannelManager.{function}",
            gas=gas,
        )

    def _simulate(self, function: str, *args: Any) -> None:
        data = self.manager_abi.function(function).encode_call(args)
        self.connection.call(
            self._deployment.manager,
            data,
            self.manager_abi,
            f"ChannelManager.{function}",
            sender=self.address,
        )

    def wait(self, sent: SentTransaction) -> Receipt:
        """The receipt of a transaction sent without waiting; `ChainError` if it reverted."""
        return self.connection.wait(sent)

    def _view(self, to: Address, abi: ContractAbi, function: str, *args: Any) -> tuple[Any, ...]:
        spec = abi.function(function)
        raw = self.connection.call(to, spec.encode_call(args), abi, function)
        return spec.decode_result(raw)

    def _manager_view(self, function: str, *args: Any) -> tuple[Any, ...]:
        return self._view(self._deployment.manager, self.manager_abi, function, *args)

    def _token_view(self, function: str, *args: Any) -> tuple[Any, ...]:
        return self._view(self._deployment.token, self.token_abi, function, *args)

    # ------------------------------------------------------------------ token

    def mint(self, to: Address, amount: int) -> Receipt:
        """Token.mint (needs MINTER_ROLE: the deployer on dev networks)."""
        return self._send_token("mint", to, amount)

    def approve(self, amount: int, spender: Address | None = None) -> Receipt:
        """Token.approve(spender = the channel manager by default, amount)."""
        return self._send_token("approve", spender or self._deployment.manager, amount)

    def transfer_token(self, to: Address, amount: int) -> Receipt:
        """Token.transfer(to, amount)."""
        return self._send_token("transfer", to, amount)

    def token_balance(self, account: Address) -> TokenAmount:
        """Token.balanceOf(account): ERC20 units outside the manager."""
        return TokenAmount(self._token_view("balanceOf", account)[0])

    def token_allowance(self, owner: Address, spender: Address | None = None) -> TokenAmount:
        """Token.allowance(owner, spender = the channel manager by default)."""
        return TokenAmount(
            self._token_view("allowance", owner, spender or self._deployment.manager)[0]
        )

    def token_total_supply(self) -> TokenAmount:
        """Token.totalSupply()."""
        return TokenAmount(self._token_view("totalSupply")[0])

    # ------------------------------------------------------------------ internal balances

    def deposit_to_balance(self, amount: int) -> Receipt:
        """depositToBalance(amount): ERC20 in (needs an allowance)."""
        return self._send("depositToBalance", amount)

    def withdraw_from_balance(self, amount: int, to: Address | None = None) -> Receipt:
        """withdrawFromBalance(amount, to = ourselves): ERC20 out."""
        return self._send("withdrawFromBalance", amount, to or self.address)

    def balance_of(self, account: Address) -> TokenAmount:
        """The internal balance of `account` in the manager."""
        return TokenAmount(self._manager_view("balanceOf", account)[0])

    # ------------------------------------------------------------------ channels

    def _opened(self, receipt: Receipt) -> tuple[ChannelId, Receipt]:
        return ChannelId(int(receipt.event("ChannelOpened").args["channelId"])), receipt

    def open_channel(self, partner: Address, amount: int) -> tuple[ChannelId, Receipt]:
        """openChannel(partner, amount): returns the new channel id (from ChannelOpened)."""
        return self._opened(self._send("openChannel", partner, amount))

    def check_open(self, partner: Address) -> None:
        """Run openChannel(partner, 0) as a call: `ChainError` naming why an open would revert
        (a party not a member, a channel already open), before anything (an approve) is sent."""
        self._simulate("openChannel", partner, 0)

    def open_channel_from_balance(self, partner: Address, amount: int) -> tuple[ChannelId, Receipt]:
        """openChannelFromBalance(partner, amount)."""
        return self._opened(self._send("openChannelFromBalance", partner, amount))

    def set_total_deposit(
        self, channel_id: ChannelId, partner: Address, total_deposit: int
    ) -> Receipt:
        """setTotalDeposit(channelId, partner, totalDeposit): the increase comes from ERC20."""
        return self._send("setTotalDeposit", channel_id, partner, total_deposit)

    def set_total_deposit_from_balance(
        self, channel_id: ChannelId, partner: Address, total_deposit: int
    ) -> Receipt:
        """setTotalDepositFromBalance: the increase comes from the internal balance."""
        return self._send("setTotalDepositFromBalance", channel_id, partner, total_deposit)

    def withdraw(
        self,
        channel_id: ChannelId,
        participant: Address,
        partner: Address,
        total_withdraw: int,
        expiry: int,
        participant_signature: bytes,
        partner_signature: bytes,
    ) -> Receipt:
        """withdraw(...): a co-signed Withdraw, credited to `participant`'s internal balance."""
        return self._send(
            "withdraw",
            channel_id,
            participant,
            partner,
            total_withdraw,
            expiry,
            participant_signature,
            partner_signature,
        )

    def settle_batch(
        self, expiry: int, withdraws: bytes, deposits: bytes = b"", *, gas: int | None = None
    ) -> Receipt:
        """settleBatch(expiry, withdraws, deposits): many Withdraws each signed by both participants,
        then this account's re-deposits, in one transaction (packed by `settlement.batch`). With
        `gas` the estimate is skipped (a batch's estimate is a binary search of executions)."""
        return self.wait(self._send_nowait("settleBatch", expiry, withdraws, deposits, gas=gas))

    def settle_hub_batch(
        self,
        hub: Address,
        expiry: int,
        hub_signature: bytes,
        withdraws: bytes,
        deposits: bytes = b"",
        *,
        gas: int | None = None,
    ) -> Receipt:
        """settleHubBatch(hub, expiry, hubSig, withdraws, deposits): the hub signed the whole batch
        once (SettlementBatch), each counterparty its own item (packed by `settlement.batch`)."""
        return self.wait(
            self._send_nowait(
                "settleHubBatch", hub, expiry, hub_signature, withdraws, deposits, gas=gas
            )
        )

    def estimate_settle_hub_batch(
        self,
        hub: Address,
        expiry: int,
        hub_signature: bytes,
        withdraws: bytes,
        deposits: bytes = b"",
        *,
        cap: int,
    ) -> int | None:
        """The chain's estimate (eth_estimateGas, no margin) of `settle_hub_batch` sent by this
        account now: None when it needs more than `cap` gas, `ChainError` when it would revert."""
        return self._estimate(
            cap, "settleHubBatch", hub, expiry, hub_signature, withdraws, deposits
        )

    def estimate_settle_batch(
        self, expiry: int, withdraws: bytes, deposits: bytes = b"", *, cap: int
    ) -> int | None:
        """`estimate_settle_hub_batch` for `settle_batch`."""
        return self._estimate(cap, "settleBatch", expiry, withdraws, deposits)

    def _estimate(self, cap: int, function: str, *args: Any) -> int | None:
        data = self.manager_abi.function(function).encode_call(args)
        return self.connection.estimate(
            self.address,
            self._deployment.manager,
            data,
            self.manager_abi,
            f"ChannelManager.{function}",
            cap,
        )

    def cooperative_close(
        self,
        channel_id: ChannelId,
        participant1: Address,
        participant2: Address,
        balance1: int,
        balance2: int,
        signature1: bytes,
        signature2: bytes,
    ) -> Receipt:
        """cooperativeClose(...): both signed CooperativeClose, participants in address order."""
        return self._send(
            "cooperativeClose",
            channel_id,
            participant1,
            participant2,
            balance1,
            balance2,
            signature1,
            signature2,
        )

    def close_channel(
        self,
        channel_id: ChannelId,
        partner: Address,
        nonce: int,
        transferred: int,
        locked: int,
        locks_root: bytes,
        partner_signature: bytes,
    ) -> Receipt:
        """closeChannel(...) with the partner's latest proof (nonce 0: none, signature ignored)."""
        return self._send(
            "closeChannel",
            channel_id,
            partner,
            nonce,
            transferred,
            locked,
            locks_root,
            partner_signature,
        )

    def update_balance_proof(
        self,
        channel_id: ChannelId,
        closer: Address,
        nonce: int,
        transferred: int,
        locked: int,
        locks_root: bytes,
        closer_signature: bytes,
    ) -> Receipt:
        """updateBalanceProof(...): the non-closer submits the closer's newer proof."""
        return self._send(
            "updateBalanceProof",
            channel_id,
            closer,
            nonce,
            transferred,
            locked,
            locks_root,
            closer_signature,
        )

    def update_balance_proof_for(
        self,
        channel_id: ChannelId,
        closer: Address,
        non_closer: Address,
        nonce: int,
        transferred: int,
        locked: int,
        locks_root: bytes,
        closer_signature: bytes,
        reward: int,
        monitor_signature: bytes,
    ) -> Receipt:
        """updateBalanceProofFor(...): a watchtower submits with the non-closer's MonitorRequest."""
        return self.wait(
            self.send_update_balance_proof_for(
                channel_id,
                closer,
                non_closer,
                nonce,
                transferred,
                locked,
                locks_root,
                closer_signature,
                reward,
                monitor_signature,
            )
        )

    def send_update_balance_proof_for(
        self,
        channel_id: ChannelId,
        closer: Address,
        non_closer: Address,
        nonce: int,
        transferred: int,
        locked: int,
        locks_root: bytes,
        closer_signature: bytes,
        reward: int,
        monitor_signature: bytes,
        *,
        gas: int | None = None,
    ) -> SentTransaction:
        """updateBalanceProofFor(...) sent without waiting for it to be mined (`wait` for it): a
        watchtower answering a block full of closes sends every update, then waits. With `gas`
        the estimate is skipped (`check_update_balance_proof_for` first costs one execution)."""
        return self._send_nowait(
            "updateBalanceProofFor",
            channel_id,
            closer,
            non_closer,
            nonce,
            transferred,
            locked,
            locks_root,
            closer_signature,
            reward,
            monitor_signature,
            gas=gas,
        )

    def check_update_balance_proof_for(
        self,
        channel_id: ChannelId,
        closer: Address,
        non_closer: Address,
        nonce: int,
        transferred: int,
        locked: int,
        locks_root: bytes,
        closer_signature: bytes,
        reward: int,
        monitor_signature: bytes,
    ) -> None:
        """Run updateBalanceProofFor(...) as an eth_call from this account on the latest block:
        `ChainError` naming the revert if it would fail now (free: nothing is sent)."""
        self._simulate(
            "updateBalanceProofFor",
            channel_id,
            closer,
            non_closer,
            nonce,
            transferred,
            locked,
            locks_root,
            closer_signature,
            reward,
            monitor_signature,
        )

    def settle_channel(
        self, channel_id: ChannelId, participant1: Address, participant2: Address
    ) -> Receipt:
        """settleChannel(channelId, participant1, participant2) after the challenge period."""
        return self._send("settleChannel", channel_id, participant1, participant2)

    def register_secret(self, secret: Secret) -> Receipt:
        """registerSecret(secret)."""
        return self._send("registerSecret", secret)

    def unlock(
        self,
        channel_id: ChannelId,
        sender: Address,
        receiver: Address,
        lock: Lock,
        slot: int,
        proof: Sequence[bytes],
    ) -> Receipt:
        """unlock(channelId, sender, receiver, lock, slot, proof[9]) after settle."""
        return self._send(
            "unlock",
            channel_id,
            sender,
            receiver,
            (lock.amount, lock.expiration, lock.secrethash),
            slot,
            list(proof),
        )

    # ------------------------------------------------------------------ views

    def channel_count(self) -> int:
        """The id of the last opened channel (0 before the first)."""
        return int(self._manager_view("channelCount")[0])

    def settle_timeout(self) -> int:
        """The challenge period, in blocks, of a close started now."""
        return int(self._manager_view("settleTimeout")[0])

    def domain_separator(self) -> bytes:
        """The contract's EIP-712 domain separator (equal to `domain().separator`)."""
        return bytes(self._manager_view("domainSeparator")[0])

    def get_channel(self, channel_id: ChannelId, a: Address, b: Address) -> ChannelInfo:
        """getChannel(channelId, a, b) (either order)."""
        state, settle_block, closer, d1, d2, w1, w2 = self._manager_view(
            "getChannel", channel_id, a, b
        )
        return ChannelInfo(
            ChannelState(state),
            BlockNumber(settle_block),
            None if closer == ZERO_ADDRESS else Address(closer),
            TokenAmount(d1),
            TokenAmount(d2),
            TokenAmount(w1),
            TokenAmount(w2),
        )

    def get_balance_proof(
        self, channel_id: ChannelId, sender: Address, receiver: Address
    ) -> StoredBalanceProof:
        """getBalanceProof(channelId, sender, receiver)."""
        nonce, transferred, locked, root = self._manager_view(
            "getBalanceProof", channel_id, sender, receiver
        )
        return StoredBalanceProof(
            Nonce(nonce), TokenAmount(transferred), TokenAmount(locked), LocksRoot(bytes(root))
        )

    def get_monitor_reward(
        self, channel_id: ChannelId, a: Address, b: Address
    ) -> tuple[Address | None, TokenAmount]:
        """getMonitorReward: (watchtower or None, reward)."""
        watchtower, reward = self._manager_view("getMonitorReward", channel_id, a, b)
        return (None if watchtower == ZERO_ADDRESS else Address(watchtower)), TokenAmount(reward)

    def secret_reveal_block(self, secrethash: SecretHash) -> BlockNumber:
        """The block of the first registration of the secret of `secrethash` (0: never)."""
        return BlockNumber(self._manager_view("secretRevealBlock", secrethash)[0])

    def is_lock_resolved(
        self, channel_id: ChannelId, sender: Address, receiver: Address, slot: int
    ) -> bool:
        """Whether `unlock` already resolved `slot` of `sender`'s direction."""
        return bool(self._manager_view("isLockResolved", channel_id, sender, receiver, slot)[0])


def _conforms(client: Web3ChainClient) -> ChainClient:
    return client  # mypy proves Web3ChainClient implements the ChainClient port

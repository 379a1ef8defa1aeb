"""Carry out the core's `ContractSend*` events as transactions through a `ChainClient`.

One small function per event type, dispatched through a table. Where the transaction needs our own
signature (co-signed withdraw, cooperative close) the event carries the EIP-712 digest; the
executor recomputes that digest from the event's fields and this deployment's domain, and signs
only when both agree, so a stale or foreign digest can never be signed blindly.

`execute` sends one transaction and waits for it; `prepare` only builds the call (address, data,
ABI), with the same checks and signatures, for a transaction manager that sends many at once.

It must never decide whether to send (the core did), and never hold a key (the signer does).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from channels.chain.abi import ContractAbi
from channels.chain.client import ChainClient, Web3ChainClient
from channels.chain.connection import Receipt
from channels.codec.eip712 import cooperative_close_digest, withdraw_digest
from channels.core.events import (
    ContractSendChannelClose,
    ContractSendChannelCooperativeClose,
    ContractSendChannelDeposit,
    ContractSendChannelSettle,
    ContractSendChannelWithdraw,
    ContractSendEvent,
    ContractSendSecretRegister,
    ContractSendUnlock,
    ContractSendUpdateBalanceProof,
)


class DigestSigner(Protocol):
    """What the executor needs from `channels.signer.LocalSigner`."""

    @property
    def address(self) -> bytes: ...
    def sign_digest(self, digest: bytes) -> bytes: ...


class DigestMismatchError(ValueError):
    """An event's digest is not the one its fields give under this deployment's domain."""


def _sign_checked(signer: DigestSigner, digest: bytes, expected: bytes, what: str) -> bytes:
    if digest != expected:
        raise DigestMismatchError(
            f"{what}: digest 0x{digest.hex()} != 0x{expected.hex()} computed for this deployment"
        )
    return signer.sign_digest(digest)


def _deposit(c: ChainClient, s: DigestSigner, e: ContractSendChannelDeposit) -> Receipt:
    if e.from_balance:
        return c.set_total_deposit_from_balance(e.channel_id, e.partner, e.total_deposit)
    return c.set_total_deposit(e.channel_id, e.partner, e.total_deposit)


def _withdraw(c: ChainClient, s: DigestSigner, e: ContractSendChannelWithdraw) -> Receipt:
    expected = withdraw_digest(c.domain(), e.channel_id, e.participant, e.total_withdraw, e.expiry)
    ours = _sign_checked(s, e.digest, expected, "ContractSendChannelWithdraw")
    return c.withdraw(
        e.channel_id,
        e.participant,
        e.partner,
        e.total_withdraw,
        e.expiry,
        ours,
        e.partner_signature,
    )


def _cooperative_close(
    c: ChainClient, s: DigestSigner, e: ContractSendChannelCooperativeClose
) -> Receipt:
    expected = cooperative_close_digest(c.domain(), e.channel_id, e.balance1, e.balance2)
    ours = _sign_checked(s, e.digest, expected, "ContractSendChannelCooperativeClose")
    sig1, sig2 = (
        (ours, e.partner_signature) if e.we_are_participant1 else (e.partner_signature, ours)
    )
    return c.cooperative_close(
        e.channel_id, e.participant1, e.participant2, e.balance1, e.balance2, sig1, sig2
    )


def _close(c: ChainClient, s: DigestSigner, e: ContractSendChannelClose) -> Receipt:
    bp = e.balance_proof
    return c.close_channel(
        e.channel_id, e.partner, bp.nonce, bp.transferred, bp.locked, bp.locks_root, bp.signature
    )


def _update(c: ChainClient, s: DigestSigner, e: ContractSendUpdateBalanceProof) -> Receipt:
    bp = e.balance_proof
    return c.update_balance_proof(
        e.channel_id, e.closer, bp.nonce, bp.transferred, bp.locked, bp.locks_root, bp.signature
    )


def _settle(c: ChainClient, s: DigestSigner, e: ContractSendChannelSettle) -> Receipt:
    return c.settle_channel(e.channel_id, e.participant1, e.participant2)


def _register(c: ChainClient, s: DigestSigner, e: ContractSendSecretRegister) -> Receipt:
    return c.register_secret(e.secret)


def _unlock(c: ChainClient, s: DigestSigner, e: ContractSendUnlock) -> Receipt:
    return c.unlock(e.channel_id, e.sender, e.receiver, e.lock, e.slot, e.proof)


HANDLERS: Mapping[type[Any], Callable[[ChainClient, DigestSigner, Any], Receipt]] = {
    ContractSendChannelDeposit: _deposit,
    ContractSendChannelWithdraw: _withdraw,
    ContractSendChannelCooperativeClose: _cooperative_close,
    ContractSendChannelClose: _close,
    ContractSendUpdateBalanceProof: _update,
    ContractSendChannelSettle: _settle,
    ContractSendSecretRegister: _register,
    ContractSendUnlock: _unlock,
}


def execute(client: ChainClient, signer: DigestSigner, event: ContractSendEvent) -> Receipt:
    """Send the transaction `event` asks for; `ChainError` when the contract rejects it."""
    handler = HANDLERS.get(type(event))
    if handler is None:
        raise TypeError(f"no transaction for {type(event).__name__}")
    return handler(client, signer, event)


@dataclass(frozen=True, slots=True)
class PreparedCall:
    """One ChannelManager call ready to be signed as a transaction (nothing sent)."""

    to: bytes
    data: bytes
    abi: ContractAbi
    function: str  # "ChannelManager.<name>", for errors and logs


def _call_of(c: Web3ChainClient, s: DigestSigner, e: Any) -> tuple[str, tuple[Any, ...]]:
    """The ChannelManager function and arguments `e` asks for (what `execute`'s handlers send)."""
    if isinstance(e, ContractSendChannelDeposit):
        name = "setTotalDepositFromBalance" if e.from_balance else "setTotalDeposit"
        return name, (e.channel_id, e.partner, e.total_deposit)
    if isinstance(e, ContractSendChannelWithdraw):
        digest = withdraw_digest(
            c.domain(), e.channel_id, e.participant, e.total_withdraw, e.expiry
        )
        ours = _sign_checked(s, e.digest, digest, "ContractSendChannelWithdraw")
        return "withdraw", (
            e.channel_id,
            e.participant,
            e.partner,
            e.total_withdraw,
            e.expiry,
            ours,
            e.partner_signature,
        )
    if isinstance(e, ContractSendChannelCooperativeClose):
        digest = cooperative_close_digest(c.domain(), e.channel_id, e.balance1, e.balance2)
        ours = _sign_checked(s, e.digest, digest, "ContractSendChannelCooperativeClose")
        sig1, sig2 = (
            (ours, e.partner_signature) if e.we_are_participant1 else (e.partner_signature, ours)
        )
        return "cooperativeClose", (
            e.channel_id,
            e.participant1,
            e.participant2,
            e.balance1,
            e.balance2,
            sig1,
            sig2,
        )
    if isinstance(e, ContractSendChannelClose | ContractSendUpdateBalanceProof):
        bp = e.balance_proof
        name = "closeChannel" if isinstance(e, ContractSendChannelClose) else "updateBalanceProof"
        other = e.partner if isinstance(e, ContractSendChannelClose) else e.closer
        return name, (
            e.channel_id,
            other,
            bp.nonce,
            bp.transferred,
            bp.locked,
            bp.locks_root,
            bp.signature,
        )
    if isinstance(e, ContractSendChannelSettle):
        return "settleChannel", (e.channel_id, e.participant1, e.participant2)
    if isinstance(e, ContractSendSecretRegister):
        return "registerSecret", (e.secret,)
    if isinstance(e, ContractSendUnlock):
        lock = (e.lock.amount, e.lock.expiration, e.lock.secrethash)
        return "unlock", (e.channel_id, e.sender, e.receiver, lock, e.slot, list(e.proof))
    raise TypeError(f"no transaction for {type(e).__name__}")


def prepare(
    client: Web3ChainClient, signer: DigestSigner, event: ContractSendEvent
) -> PreparedCall:
    """The call `event` asks for, built and signed where it needs our signature, not sent;
    `DigestMismatchError` when a digest is not this deployment's, TypeError for another event."""
    name, args = _call_of(client, signer, event)
    abi = client.manager_abi
    data = abi.function(name).encode_call(args)
    return PreparedCall(client.deployment.manager, data, abi, f"ChannelManager.{name}")

"""The pure encoding of a settlement batch (issue 5): items, their hash, the packed calldata.

`ChannelManager.settleBatch(expiry, withdraws, deposits)` takes `Withdraw`s signed by both
participants; `settleHubBatch(hub, expiry, hubSig, withdraws, deposits)` takes items whose
counterparty signed its `Withdraw` while the hub signed `SettlementBatch(itemsHash, expiry)` once
(DESIGN §3). Every item of a batch carries the batch's `expiry` in its `Withdraw`. Packed layouts
(big-endian, no padding), as the contract reads them:

- `settleBatch` item, 190 bytes: uint64 channelId ‖ participant ‖ partner ‖ uint96 totalWithdraw ‖
  participantSig (65) ‖ partnerSig (65)
- `settleHubBatch` item, 106 bytes: uint64 channelId ‖ counterparty ‖ uint8 hubWithdraws ‖
  uint96 totalWithdraw ‖ counterpartySig (65)
- re-deposit item (by the submitter, from its internal balance), 40 bytes: uint64 channelId ‖
  partner ‖ uint96 totalDeposit

`itemsHash` = keccak256 of the items' `hashStruct(Withdraw)` concatenated in order (EIP-712's
encoding of a `Withdraw[]`). Consecutive items crediting the same account write its on-chain
balance once: `by_recipient` orders items so (sort before the hub signs: the order is signed).

Pure: no I/O, no keys; signatures come in as arguments.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from channels.codec.eip712 import Domain, settlement_batch_digest, withdraw_struct_hash
from channels.codec.keccak import keccak

BATCH_ITEM_SIZE = 190
HUB_BATCH_ITEM_SIZE = 106
BATCH_DEPOSIT_SIZE = 40
SIGNATURE_SIZE = 65
UINT64_MAX = 2**64 - 1
UINT96_MAX = 2**96 - 1


class BatchEncodingError(ValueError):
    """An item that the contract's packed layout cannot carry (or a batch it would refuse)."""


@dataclass(frozen=True, slots=True)
class WithdrawItem:
    """One `Withdraw(channelId, participant, totalWithdraw, expiry)` of a batch (expiry: the batch's)."""

    channel_id: int
    participant: bytes
    partner: bytes
    total_withdraw: int

    def __post_init__(self) -> None:
        _check_uint(self.channel_id, UINT64_MAX, "channel id", positive=True)
        _check_uint(self.total_withdraw, UINT96_MAX, "total withdraw", positive=True)
        _check_address(self.participant)
        _check_address(self.partner)
        if self.participant == self.partner:
            raise BatchEncodingError("participant and partner are the same address")

    def struct_hash(self, expiry: int) -> bytes:
        """hashStruct(Withdraw) of this item under the batch's expiry."""
        return withdraw_struct_hash(self.channel_id, self.participant, self.total_withdraw, expiry)

    def digest(self, domain: Domain, expiry: int) -> bytes:
        """What each participant (or, in a hub batch, the counterparty) signs."""
        return domain.digest(self.struct_hash(expiry))


@dataclass(frozen=True, slots=True)
class DepositItem:
    """A re-deposit by the batch's submitter: its total deposit in `channel_id` becomes `total_deposit`."""

    channel_id: int
    partner: bytes
    total_deposit: int

    def __post_init__(self) -> None:
        _check_uint(self.channel_id, UINT64_MAX, "channel id", positive=True)
        _check_uint(self.total_deposit, UINT96_MAX, "total deposit", positive=True)
        _check_address(self.partner)


def items_hash(items: Iterable[WithdrawItem], expiry: int) -> bytes:
    """The `itemsHash` of a `SettlementBatch`: keccak256 of the items' struct hashes, in order."""
    return keccak(b"".join(item.struct_hash(expiry) for item in items))


def batch_digest(domain: Domain, items: Sequence[WithdrawItem], expiry: int) -> bytes:
    """The digest the hub signs once for a whole batch."""
    return settlement_batch_digest(domain, items_hash(items, expiry), expiry)


def by_recipient(items: Iterable[WithdrawItem]) -> list[WithdrawItem]:
    """The items grouped by who receives (stable), so each recipient's balance is written once."""
    return sorted(items, key=lambda item: item.participant)


def pack_withdraws(
    items: Sequence[WithdrawItem], signatures: Sequence[tuple[bytes, bytes]]
) -> bytes:
    """`settleBatch`'s `withdraws`: each item with (participant's, partner's) signature."""
    if len(items) != len(signatures):
        raise BatchEncodingError(f"{len(items)} items but {len(signatures)} signature pairs")
    out = bytearray()
    for item, (participant_sig, partner_sig) in zip(items, signatures, strict=True):
        out += item.channel_id.to_bytes(8, "big") + item.participant + item.partner
        out += item.total_withdraw.to_bytes(12, "big")
        out += _checked_signature(participant_sig) + _checked_signature(partner_sig)
    return bytes(out)


def pack_hub_withdraws(
    hub: bytes, items: Sequence[WithdrawItem], counterparty_signatures: Sequence[bytes]
) -> bytes:
    """`settleHubBatch`'s `withdraws`: every item has `hub` as a participant; each carries its
    counterparty's signature of its `Withdraw`."""
    _check_address(hub)
    if len(items) != len(counterparty_signatures):
        raise BatchEncodingError(
            f"{len(items)} items but {len(counterparty_signatures)} counterparty signatures"
        )
    out = bytearray()
    for item, signature in zip(items, counterparty_signatures, strict=True):
        hub_withdraws = item.participant == hub
        if not hub_withdraws and item.partner != hub:
            raise BatchEncodingError(f"channel {item.channel_id}: the hub is not a participant")
        counterparty = item.partner if hub_withdraws else item.participant
        out += item.channel_id.to_bytes(8, "big") + counterparty + bytes([hub_withdraws])
        out += item.total_withdraw.to_bytes(12, "big") + _checked_signature(signature)
    return bytes(out)


def counterparty(hub: bytes, item: WithdrawItem) -> bytes:
    """Who signs `item` in a hub batch: the participant of its channel that is not the hub."""
    return item.partner if item.participant == hub else item.participant


def pack_deposits(items: Sequence[DepositItem]) -> bytes:
    """The `deposits` of either batch function."""
    return b"".join(
        item.channel_id.to_bytes(8, "big") + item.partner + item.total_deposit.to_bytes(12, "big")
        for item in items
    )


def _check_uint(value: int, maximum: int, what: str, *, positive: bool) -> None:
    if not (1 if positive else 0) <= value <= maximum:
        raise BatchEncodingError(f"{what} {value} outside [{int(positive)}, {maximum}]")


def _check_address(value: bytes) -> None:
    if len(value) != 20:
        raise BatchEncodingError(f"expected a 20-byte address, got {len(value)} bytes")


def _checked_signature(signature: bytes) -> bytes:
    if len(signature) != SIGNATURE_SIZE:
        raise BatchEncodingError(f"expected a 65-byte signature, got {len(signature)} bytes")
    return signature

"""settlement.batch: the packed layouts ChannelManager.settleBatch / settleHubBatch read, and itemsHash."""

from __future__ import annotations

import pytest
from eth_abi import encode
from eth_utils import keccak

from channels.codec.eip712 import Domain, settlement_batch_digest
from settlement.batch import (
    BATCH_DEPOSIT_SIZE,
    BATCH_ITEM_SIZE,
    HUB_BATCH_ITEM_SIZE,
    BatchEncodingError,
    DepositItem,
    WithdrawItem,
    batch_digest,
    by_recipient,
    counterparty,
    items_hash,
    pack_deposits,
    pack_hub_withdraws,
    pack_withdraws,
)

HUB, A, B = b"\x11" * 20, b"\xaa" * 20, b"\xbb" * 20
SIG1, SIG2 = b"\x01" * 65, b"\x02" * 65
WITHDRAW_TYPEHASH = keccak(
    b"Withdraw(uint256 channelId,address participant,uint256 totalWithdraw,uint256 expiry)"
)


def struct_hash(channel_id: int, participant: bytes, total: int, expiry: int) -> bytes:
    return keccak(
        encode(
            ["bytes32", "uint256", "address", "uint256", "uint256"],
            [WITHDRAW_TYPEHASH, channel_id, participant, total, expiry],
        )
    )


def test_items_hash_is_eip712_array_encoding() -> None:
    items = [WithdrawItem(7, A, HUB, 1_000), WithdrawItem(9, HUB, B, 2**96 - 1)]
    expected = keccak(struct_hash(7, A, 1_000, 50) + struct_hash(9, HUB, 2**96 - 1, 50))
    assert items_hash(items, 50) == expected
    domain = Domain(1337, b"\x22" * 20)
    assert batch_digest(domain, items, 50) == settlement_batch_digest(domain, expected, 50)
    assert items_hash(items[::-1], 50) != expected  # the order is signed


def test_pack_withdraws_layout() -> None:
    packed = pack_withdraws([WithdrawItem(258, A, B, 5)], [(SIG1, SIG2)])
    assert len(packed) == BATCH_ITEM_SIZE
    assert packed == (258).to_bytes(8, "big") + A + B + (5).to_bytes(12, "big") + SIG1 + SIG2


def test_pack_hub_withdraws_layout_and_flag() -> None:
    items = [WithdrawItem(3, A, HUB, 10), WithdrawItem(4, HUB, B, 20)]
    packed = pack_hub_withdraws(HUB, items, [SIG1, SIG2])
    assert len(packed) == 2 * HUB_BATCH_ITEM_SIZE
    assert packed[:HUB_BATCH_ITEM_SIZE] == (
        (3).to_bytes(8, "big") + A + b"\x00" + (10).to_bytes(12, "big") + SIG1
    )
    assert packed[HUB_BATCH_ITEM_SIZE:] == (
        (4).to_bytes(8, "big") + B + b"\x01" + (20).to_bytes(12, "big") + SIG2
    )
    assert [counterparty(HUB, item) for item in items] == [A, B]


def test_pack_deposits_layout() -> None:
    packed = pack_deposits([DepositItem(5, A, 99)])
    assert len(packed) == BATCH_DEPOSIT_SIZE
    assert packed == (5).to_bytes(8, "big") + A + (99).to_bytes(12, "big")


def test_by_recipient_groups_stably() -> None:
    items = [WithdrawItem(1, B, HUB, 1), WithdrawItem(2, A, HUB, 1), WithdrawItem(3, B, HUB, 2)]
    assert [item.channel_id for item in by_recipient(items)] == [2, 1, 3]


@pytest.mark.parametrize(
    "make",
    [
        lambda: WithdrawItem(0, A, B, 1),
        lambda: WithdrawItem(2**64, A, B, 1),
        lambda: WithdrawItem(1, A, B, 0),
        lambda: WithdrawItem(1, A, B, 2**96),
        lambda: WithdrawItem(1, A, A, 1),
        lambda: WithdrawItem(1, A[:19], B, 1),
        lambda: DepositItem(1, A, 2**96),
        lambda: pack_withdraws([WithdrawItem(1, A, B, 1)], [(SIG1, SIG2[:64])]),
        lambda: pack_withdraws([WithdrawItem(1, A, B, 1)], []),
        lambda: pack_hub_withdraws(HUB, [WithdrawItem(1, A, B, 1)], [SIG1]),
    ],
)
def test_rejects_what_the_layout_cannot_carry(make) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(BatchEncodingError):
        make()

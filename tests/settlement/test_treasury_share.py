"""The rules of `settlement.treasury` on channel states built by hand: the part is the floor of the
income's ppm, nothing is counted with ppm 0, the first round with a part only counts, a round
without positive income (or whose part rounds to 0) counts nothing, and income is never counted
twice."""

from __future__ import annotations

import pytest
from msgspec.structs import replace

from channels.core.state import ChannelState, EndState, empty_balance_proof
from channels.core.types import Address, ChannelId, TokenAmount
from settlement.treasury import NOTHING, net_of, part, treasury_share

HUB, USER = Address(b"\x01" * 20), Address(b"\x02" * 20)


def _channel(channel_id: int, received: int, sent: int) -> ChannelState:
    def end(address: Address, transferred: int) -> EndState:
        proof = replace(
            empty_balance_proof(ChannelId(channel_id)), transferred=TokenAmount(transferred)
        )
        return EndState(address=address, balance_proof=proof)

    return ChannelState(ChannelId(channel_id), end(HUB, sent), end(USER, received), 20)


def test_the_part_is_the_floor() -> None:
    assert part(1_283, 150_000) == 192 and part(999, 1) == 0 and part(10**30, 10**6) == 10**30
    for income, ppm in ((-1, 1), (1, -1), (1, 10**6 + 1)):
        with pytest.raises(ValueError):
            part(income, ppm)


def test_rounds_count_each_unit_of_income_once() -> None:
    payer, payee = _channel(1, received=1_010_000, sent=0), _channel(2, received=0, sent=1_000_000)
    assert net_of(payer) + net_of(payee) == 10_000  # the fee
    assert treasury_share([payer, payee], {}, 0) is NOTHING  # no part: nothing at all
    first = treasury_share([payer, payee], {}, 100_000)  # the part starts: only counts
    assert (first.income, first.amount) == (0, 0) and first.counted == {1: 1_010_000, 2: -1_000_000}
    same = treasury_share([payer, payee], first.counted, 100_000)
    assert same is NOTHING  # no new income
    payer2, payee2 = _channel(1, 2_030_010, 0), _channel(2, 0, 2_010_000)  # +20,010 of fees
    second = treasury_share([payer2, payee2], first.counted, 100_000)
    assert (second.income, second.amount) == (10_010, 1_001)
    # half a payment: the hub sent on, the payer has not unlocked yet: nothing counted, kept
    payee3 = _channel(2, 0, 3_010_000)
    assert treasury_share([payer2, payee3], second.counted, 100_000) is NOTHING
    payer3 = _channel(1, 3_040_020, 0)
    third = treasury_share([payer3, payee3], second.counted, 100_000)
    assert (third.income, third.amount) == (10_010, 1_001)
    # a part that rounds to 0 waits for more income
    assert treasury_share([_channel(1, 3_040_029, 0), payee3], third.counted, 100_000) is NOTHING

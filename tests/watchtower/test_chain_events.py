"""What a poll's chain events do to the tower's channel records (`watchtower.core.apply_events`),
in any order and any grouping into polls: a channel opened and closed within one poll (a tower that
was paused, or slow blocks), opened, closed and settled, events about channels never seen opened,
and events seen twice. Pure: no chain, no trio."""

from __future__ import annotations

from collections.abc import Sequence

from hypothesis import given, settings
from hypothesis import strategies as st

from channels.core import state_changes as sc
from channels.core.types import Address, BlockNumber, ChannelId, Nonce, TokenAmount
from watchtower.core import ChannelEvent, WatchedChannel, apply_events, channel_after

P1, P2 = Address(b"\x01" * 20), Address(b"\x02" * 20)
TX = b"\x00" * 32
Channels = dict[ChannelId, WatchedChannel]


def opened(cid: int, block: int = 1) -> ChannelEvent:
    return sc.ContractReceiveChannelOpened(TX, BlockNumber(block), ChannelId(cid), P1, P2, 20)


def closed(cid: int, closer: Address = P1, block: int = 2) -> ChannelEvent:
    return sc.ContractReceiveChannelClosed(
        TX, BlockNumber(block), ChannelId(cid), closer, Nonce(0), BlockNumber(block + 20)
    )


def updated(cid: int, nonce: int, closer: Address = P1) -> ChannelEvent:
    return sc.ContractReceiveChannelBalanceProofUpdated(
        TX, BlockNumber(3), ChannelId(cid), closer, Nonce(nonce)
    )


def settled(cid: int) -> ChannelEvent:
    zero = TokenAmount(0)
    return sc.ContractReceiveChannelSettled(TX, BlockNumber(30), ChannelId(cid), zero, zero)


def coop_closed(cid: int) -> ChannelEvent:
    zero = TokenAmount(0)
    return sc.ContractReceiveChannelCooperativelyClosed(
        TX, BlockNumber(2), ChannelId(cid), zero, zero
    )


def one_at_a_time(channels: Channels, events: Sequence[ChannelEvent]) -> Channels:
    """The reference: each event applied on its own, as if every poll held one event."""
    records = dict(channels)
    for event in events:
        after = channel_after(records.get(event.channel_id), event)
        if after is None:
            records.pop(event.channel_id, None)
        else:
            records[event.channel_id] = after
    return records


def apply_poll(channels: Channels, events: Sequence[ChannelEvent]) -> Channels:
    """What the tower keeps after a poll of `events`, checking the delta's promises."""
    delta = apply_events(channels, events)
    assert delta.gone <= channels.keys(), "only followed channels are forgotten"
    assert not delta.gone & delta.changed.keys()
    records = {cid: r for cid, r in channels.items() if cid not in delta.gone}
    records.update(delta.changed)
    return records


def test_opened_and_cooperatively_closed_in_one_poll_leaves_nothing() -> None:
    delta = apply_events({}, [opened(1), coop_closed(1)])
    assert (delta.changed, delta.gone) == ({}, frozenset())


def test_opened_closed_and_settled_in_one_poll_leaves_nothing() -> None:
    delta = apply_events({}, [opened(1), closed(1), updated(1, 3), settled(1)])
    assert (delta.changed, delta.gone, delta.closes) == ({}, frozenset(), 1)


def test_events_of_a_channel_never_seen_opened_are_ignored() -> None:
    delta = apply_events({}, [closed(5), updated(5, 2), settled(5), coop_closed(6)])
    assert (delta.changed, delta.gone, delta.closes) == ({}, frozenset(), 0)


def test_a_followed_channel_closed_cooperatively_is_gone() -> None:
    known = {ChannelId(1): WatchedChannel(ChannelId(1), P1, P2)}
    delta = apply_events(known, [coop_closed(1), coop_closed(1)])
    assert (delta.changed, delta.gone) == ({}, frozenset({ChannelId(1)}))


def test_an_event_seen_twice_changes_nothing() -> None:
    """A second open does not reopen a closing channel; a second close does not forget the
    closer's proof already on chain (the tower would send an update for nothing)."""
    after = apply_poll({}, [opened(1), closed(1, P2), updated(1, 4, P2)])
    assert after[ChannelId(1)].closer_nonce == 4
    assert apply_poll(after, [opened(1), closed(1, P2, block=9)]) == after


_KINDS = st.sampled_from(["opened", "closed", "updated", "settled", "coop"])


@st.composite
def event_streams(draw: st.DrawFn) -> tuple[list[ChannelEvent], list[int]]:
    """Random events over three channel ids, and where the polls split them."""
    events: list[ChannelEvent] = []
    for _ in range(draw(st.integers(0, 30))):
        cid = draw(st.integers(1, 3))
        kind = draw(_KINDS)
        closer = draw(st.sampled_from([P1, P2]))
        if kind == "opened":
            events.append(opened(cid))
        elif kind == "closed":
            events.append(closed(cid, closer, draw(st.integers(1, 50))))
        elif kind == "updated":
            events.append(updated(cid, draw(st.integers(0, 6)), closer))
        elif kind == "settled":
            events.append(settled(cid))
        else:
            events.append(coop_closed(cid))
    cuts = sorted(draw(st.lists(st.integers(0, len(events)), max_size=6)))
    return events, cuts


@settings(max_examples=400, deadline=None)
@given(event_streams())
def test_any_events_in_any_polls_give_the_records_of_one_event_at_a_time(
    stream: tuple[list[ChannelEvent], list[int]],
) -> None:
    events, cuts = stream
    records: Channels = {}
    for start, end in zip([0, *cuts], [*cuts, len(events)], strict=True):
        records = apply_poll(records, events[start:end])  # never raises
    assert records == one_at_a_time({}, events)
    # the whole stream in one poll (a tower paused for all of it) ends the same
    assert apply_poll({}, events) == records

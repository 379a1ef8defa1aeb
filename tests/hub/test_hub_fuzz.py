"""Fuzzed frames against a running hub: thousands of frames from an authenticated peer.

Each Hypothesis example starts a hub with alice, washer and the raw peer mallory (startup takes
milliseconds), then mallory sends the example's frames, reconnecting whenever the hub drops it.
The frames are (a) random bytes, (b) well-formed wire messages with random field values, Batches
of them included, (c) correctly signed messages of mallory's own core with one signed field
spoiled, and (d) encoded messages with bytes flipped or cut.

Invariants, per example: the hub drops the connection exactly on the frames that do not decode
(never on a well-formed message, however wrong), it never raises (its nursery would fail the
example), no channel changes, alice can still pay washer through it afterwards and that payment
moves exactly its amount and fee, and the hub's balances add up to the deposits.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import msgspec
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from channels import wire
from channels.bench.synthetic import address_of, domain, hub_channels, key_of
from channels.codec.ecdsa import SECP256K1_HALF_N, SECP256K1_N
from channels.codec.keccak import keccak
from channels.core import events as ev
from channels.core import state_changes as sc
from channels.core.channel import channel_transition
from channels.core.locktree import MAX_PENDING_LOCKS
from channels.core.node import context_of, node_transition
from channels.core.state import NodeState
from channels.core.types import (
    UINT96_MAX,
    Address,
    BlockNumber,
    ChannelId,
    PaymentId,
    SecretHash,
    TokenAmount,
)
from channels.signer import LocalSigner
from channels.transport import TransportError
from tests.hub.netfix import DEPOSIT, HUB_DEPOSIT, TERMS
from tests.hub.rawpeer import RawNet, running_hub

NAMES = ["alice", "washer", "mallory"]
KNOWN = [address_of(n) for n in ("hub", *NAMES, "eve")]
MALLORY = LocalSigner(key_of("mallory"))
PAYMENT = 1_000
EXAMPLES = 50
FRAMES_PER_EXAMPLE = 80  # EXAMPLES * FRAMES_PER_EXAMPLE = 4,000 frames per run


# --------------------------------------------------------------------------- mallory's core


def _mallory_messages() -> list[tuple[wire.PeerMessage, tuple[str, ...]]]:
    """Valid messages of mallory (channel 3, nonce 1) and the fields their signature covers."""
    hub = address_of("hub")
    opening = hub_channels(hub, [address_of(n) for n in NAMES], DEPOSIT, HUB_DEPOSIT)
    node = NodeState(Address(MALLORY.address), domain(), BlockNumber(0))
    for change in opening:
        node = node_transition(node, change).new_state
    channel = node.channels[ChannelId(3)]
    ctx = context_of(node)
    secrethash = SecretHash(keccak(b"fuzz secrethash"))
    actions: list[tuple[sc.StateChange, tuple[str, ...]]] = [
        (sc.ActionTransfer(channel.channel_id, TokenAmount(700), PaymentId(5)), ()),
        (
            sc.ActionLockedTransfer(
                channel.channel_id,
                TokenAmount(1_500),
                BlockNumber(130),
                secrethash,
                PaymentId(6),
                address_of("washer"),
            ),
            ("amount", "expiration", "secrethash", "slot"),
        ),
        (sc.ActionWithdraw(channel.channel_id, TokenAmount(10_000), BlockNumber(150)), ()),
        (sc.ActionCooperativeClose(channel.channel_id), ()),
    ]
    proof_fields = ("channel_id", "nonce", "transferred", "locked", "locks_root", "signature")
    signed_fields = {
        wire.DirectTransfer: proof_fields,
        wire.LockedTransfer: proof_fields,
        wire.WithdrawRequest: (
            "channel_id",
            "participant",
            "total_withdraw",
            "expiry",
            "signature",
        ),
        wire.CooperativeCloseRequest: ("channel_id", "balance1", "balance2", "signature"),
    }
    messages = []
    for index, (action, extra) in enumerate(actions):
        result = channel_transition(channel, action, ctx)
        send = next(e for e in result.events if isinstance(e, ev.SendEvent))
        digest: bytes = getattr(send, "digest")  # noqa: B009  # every send here is signed
        signature = MALLORY.sign_digest(digest)
        message = wire.from_event(send, 100 + index, signature)
        messages.append((message, signed_fields[type(message)] + extra))
    return messages


VALID = _mallory_messages()


# --------------------------------------------------------------------------- strategies

u64 = st.one_of(st.integers(0, 4), st.integers(0, 2**64 - 1))
blocks = st.one_of(st.integers(90, 200), st.integers(0, 2**64 - 1))
amounts = st.one_of(
    st.integers(0, 5_000).map(wire.amount_to_wire),
    st.integers(0, UINT96_MAX).map(wire.amount_to_wire),
    st.binary(max_size=wire.AMOUNT_BYTES),  # leading zeros are well-formed too
)
addresses = st.one_of(st.sampled_from(KNOWN), st.binary(min_size=20, max_size=20))
bytes32 = st.binary(min_size=32, max_size=32)


def _plausible_signature(r: int, s: int, v: int) -> bytes:
    return r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes([v])


signatures = st.one_of(
    st.binary(min_size=65, max_size=65),
    st.builds(  # in range, low s: recovers to some random address
        _plausible_signature,
        st.integers(1, SECP256K1_N - 1),
        st.integers(1, SECP256K1_HALF_N),
        st.sampled_from([27, 28]),
    ),
    bytes32.map(MALLORY.sign_digest),  # mallory's, over the wrong digest
)
reasons = st.text(max_size=60)

FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "message_id": u64,
    "channel_id": st.one_of(st.integers(0, 4), u64),
    "nonce": st.one_of(st.integers(0, 3), u64),
    "transferred": amounts,
    "locked": amounts,
    "locks_root": bytes32,
    "signature": signatures,
    "payment_id": u64,
    "amount": amounts,
    "expiration": blocks,
    "expiry": blocks,
    "block_number": blocks,
    "secrethash": bytes32,
    "secret": bytes32,
    "slot": st.integers(0, MAX_PENDING_LOCKS - 1),
    "target": addresses,
    "participant": addresses,
    "payer": addresses,
    "payee": addresses,
    "total_withdraw": amounts,
    "balance1": amounts,
    "balance2": amounts,
    "reason": reasons,
    "message_ids": st.lists(u64, max_size=8),
    "flat_fee": amounts,
    "fee_ppm": st.integers(0, 1_000_000),
    "fee_cap": amounts,
    "lock_timeout": u64,
    "reveal_timeout": u64,
    "count": st.integers(1, wire.MAX_INVOICE_BOOK),
    "first_payment_id": u64,
    "secrethashes": st.lists(bytes32, min_size=1, max_size=8),
    "asset": addresses,
    "user": addresses,
    "entry": st.binary(min_size=1, max_size=64),
    "batch": st.booleans(),
}


def _builds(kind: type) -> st.SearchStrategy[Any]:
    fields = msgspec.structs.fields(kind)
    return st.builds(kind, **{f.name: FIELDS[f.name] for f in fields})


ITEM_KINDS = [*wire.PEER_MESSAGE_KINDS, wire.Processed, *wire.ROUTING_KINDS]
items = st.one_of([_builds(kind) for kind in ITEM_KINDS])
messages = st.one_of(items, st.builds(wire.Batch, messages=st.lists(items, min_size=2, max_size=8)))


AMOUNT_FIELDS = {"transferred", "locked", "amount", "total_withdraw", "balance1", "balance2"}


@st.composite
def spoiled(draw: st.DrawFn) -> Any:
    """One of mallory's valid messages with one signed field replaced by another value."""
    message, signed = draw(st.sampled_from(VALID))
    name = draw(st.sampled_from(signed))
    original = getattr(message, name)
    value = draw(FIELDS[name])
    # make it differ (a filter would make Hypothesis retry a lot); an amount must differ as a
    # number: b"" and b"\x00" are both 0, and the signature covers the number, not the bytes
    if name in AMOUNT_FIELDS:
        number = wire.amount_from_wire(value)
        if number == wire.amount_from_wire(original):
            value = wire.amount_to_wire(number + 1 if number < UINT96_MAX else number - 1)
    elif value == original:
        if isinstance(value, int):
            value = value + 1 if value < 2**64 - 1 else value - 1
        elif value:
            value = bytes([value[0] ^ 1]) + value[1:]
        else:
            value = b"\x01"
    return msgspec.structs.replace(message, **{name: value})


def _flip(payload: bytes, flips: list[tuple[int, int]], cut: int | None) -> bytes:
    data = bytearray(payload)
    for position, mask in flips:
        data[position % len(data)] ^= mask
    return bytes(data[:cut] if cut is not None else data)


well_formed = st.one_of(
    messages, spoiled(), st.builds(wire.Batch, messages=st.lists(spoiled(), min_size=2, max_size=4))
)
frames = st.one_of(
    st.binary(max_size=200),
    well_formed.map(wire.encode),
    st.builds(
        _flip,
        st.one_of(messages, spoiled()).map(wire.encode),
        st.lists(st.tuples(st.integers(0, 10_000), st.integers(1, 255)), min_size=1, max_size=3),
        st.none() | st.integers(0, 200),
    ),
)


# --------------------------------------------------------------------------- the test


def _decodes(frame: bytes) -> bool:
    try:
        wire.decode(frame)
    except Exception:  # WireError, or (a wire.decode bug) UnicodeDecodeError: see the report
        return False
    return True


def _runs(frames: list[bytes]) -> list[list[bytes]]:
    """The frames cut after each undecodable one: what one connection carries."""
    runs: list[list[bytes]] = [[]]
    for frame in frames:
        runs[-1].append(frame)
        if not _decodes(frame):
            runs.append([])
    return [run for run in runs if run]


async def _feed(net: RawNet, frames: list[bytes]) -> None:
    mallory = net.raw["mallory"]
    for number, run in enumerate(_runs(frames)):
        dropped = not _decodes(run[-1])
        # a valid, unsigned message that changes nothing: its ack proves everything before it
        # on this connection was handled and committed
        sentinel = wire.SecretRequest(
            message_id=2**64 - 1 - number,
            channel_id=3,
            payment_id=0,
            secrethash=bytes(32),
            amount=b"",
        )
        with trio.fail_after(10):
            try:
                async with mallory.connect(net.port) as connection:
                    for frame in run:
                        connection.send_nowait(frame)
                    if dropped:
                        await connection.wait_closed()
                    else:
                        connection.send_nowait(sentinel)
                        await mallory.processed(sentinel.message_id)
                        assert not connection.closed, "the hub dropped a well-formed message"
            except TransportError:
                assert dropped, "the hub dropped a connection that only carried messages"


async def _fuzz(tmp: Path, frames: list[bytes]) -> None:
    async with running_hub(tmp, NAMES) as net:
        alice, washer = net.agents["alice"], net.agents["washer"]
        before = net.snapshot()
        balances = net.hub_balances()

        await _feed(net, frames)

        # nothing the fuzzer sent changed a channel (a spoiled signed message included)
        assert net.snapshot() == before
        # the hub still serves: alice and washer are connected and a payment goes through
        assert {net.address("alice"), net.address("washer")} <= set(net.hub.service.connections)
        with trio.fail_after(10):
            outcome = await alice.pay(net.address("washer"), PAYMENT, payment_id=1)
            received = await washer.received.receive()
        fee = TERMS.fees.fee(PAYMENT)
        assert outcome.fee == fee and received.amount == PAYMENT
        await net.wait_no_locks("alice", "washer")
        after = net.hub_balances()
        a, w, m = (net.channel_id(n) for n in NAMES)
        assert after[a] == (balances[a][0] + PAYMENT + fee, balances[a][1] - PAYMENT - fee)
        assert after[w] == (balances[w][0] - PAYMENT, balances[w][1] + PAYMENT)
        assert after[m] == balances[m]
        assert net.snapshot()[m] == before[m]
        # the agents agree with the hub on their channels
        for name in ("alice", "washer"):
            [mine] = net.agents[name].service.channels.values()
            theirs = net.hub.service.channels[mine.channel_id]
            for ours, partners in ((mine.our, theirs.partner), (mine.partner, theirs.our)):
                # our own proofs carry no signature; the partner's copy does
                ours_proof, partners_proof = ours.balance_proof, partners.balance_proof
                assert ours_proof.nonce == partners_proof.nonce
                assert ours_proof.transferred == partners_proof.transferred
                assert ours_proof.locked == partners_proof.locked
        # money is conserved: every hub channel's two balances add up to its deposits
        assert sum(sum(pair) for pair in after.values()) == net.total_deposits()
        assert net.total_deposits() == len(NAMES) * (DEPOSIT + HUB_DEPOSIT)


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.lists(frames, min_size=FRAMES_PER_EXAMPLE, max_size=FRAMES_PER_EXAMPLE))
def test_fuzzed_frames_neither_crash_nor_corrupt_the_hub(frames: list[bytes]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        trio.run(_fuzz, Path(tmp), frames)

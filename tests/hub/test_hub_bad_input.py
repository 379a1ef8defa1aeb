"""Bad input against a running hub: every case gets a clear error reply (or, for abuse of the
transport, a dropped connection), changes no channel, and blocks nobody else.

"mallory" has a channel with the hub (channel 3) but runs no service: the tests drive it by
hand through `RawPeer`, which runs mallory's own core to make correctly signed messages and then
spoils them one way at a time. "eve" has no channel at all. After each case alice still pays
washer through the same hub.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import msgspec
import pytest
import trio

from channels import wire
from channels.agent import ReceivedPayment
from channels.bench.synthetic import key_of
from channels.codec.eip712 import secrethash_of
from channels.codec.keccak import keccak
from channels.core import events as ev
from channels.core import state_changes as sc
from channels.core.types import BlockNumber, ChannelId
from channels.signer import LocalSigner
from channels.transport import DEFAULT_MAX_FRAME_SIZE, TransportError, open_stream_connection
from tests.hub.netfix import DEPOSIT, TERMS
from tests.hub.rawpeer import RawCodec, RawNet, RawPeer, running_hub

NAMES = ["alice", "washer", "mallory"]
START_BLOCK = 100  # the synthetic opening's chain head; nothing advances it in these tests
LOCK_EXPIRATION = START_BLOCK + TERMS.lock_timeout


# --------------------------------------------------------------------------- helpers


async def others_still_pay(net: RawNet, payment_id: int, amount: int = 1_000) -> None:
    """Alice pays washer through the hub, and washer receives it."""
    alice, washer = net.agents["alice"], net.agents["washer"]
    with trio.fail_after(10):
        outcome = await alice.pay(net.address("washer"), amount, payment_id)
        received: ReceivedPayment = await washer.received.receive()
    assert outcome.amount == amount and outcome.fee == TERMS.fees.fee(amount)
    assert received.payment_id == payment_id and received.payer == net.address("alice")
    assert received.amount == amount
    await net.wait_no_locks("alice", "washer")  # the hub has alice's Unlock too


def assert_unchanged(
    net: RawNet, channels: dict[ChannelId, Any], balances: dict[ChannelId, tuple[int, int]]
) -> None:
    assert net.snapshot() == channels
    assert net.hub_balances() == balances


async def wait_disconnected(net: RawNet, peer: RawPeer) -> None:
    """Until the hub no longer holds a connection to `peer`."""
    with trio.fail_after(5):
        while peer.address in net.hub.service.connections:  # noqa: ASYNC110  # another task's effect
            await trio.sleep(0.01)


async def send_expecting_drop(net: RawNet, peer: RawPeer, *frames: Any) -> None:
    """Send `frames` on a fresh connection; the hub must close it (within 10 s)."""
    with trio.fail_after(10):
        try:
            async with peer.connect(net.port) as connection:
                await peer.expect(lambda m: isinstance(m, wire.HubTerms))  # served at first
                for frame in frames:
                    connection.send_nowait(frame)
                await connection.wait_closed()
        except TransportError:
            pass  # a reset while we were still writing is a drop as well
    await wait_disconnected(net, peer)


# --------------------------------------------------------------------------- transport abuse


@pytest.mark.parametrize(
    ("frame", "logged"),
    [
        pytest.param(b"\xc1\xff\x00garbage", "undecodable", id="undecodable-msgpack"),
        pytest.param(b"", "undecodable", id="empty-frame"),
        pytest.param(
            msgspec.msgpack.encode({"type": "Frobnicate", "message_id": 5}),
            "Frobnicate",
            id="unknown-tag",
        ),
        pytest.param(
            msgspec.msgpack.encode({"type": "Batch", "messages": [{"type": "Batch"}]}),
            "invalid message",
            id="nested-batch",
        ),
        pytest.param(
            msgspec.msgpack.encode({"type": "Processed", "message_ids": [-1]}),
            "invalid message",
            id="negative-id",
        ),
        pytest.param(
            b"\x82\xa4type\xaaErrorReply\xa6reason\xa2\xff\xfe",
            "can't decode byte 0xff",
            id="invalid-utf8",
        ),
        pytest.param(b"\x00" * (DEFAULT_MAX_FRAME_SIZE + 1), "FrameTooLargeError", id="oversized"),
    ],
)
async def test_a_frame_that_is_not_a_message_drops_the_connection(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, frame: bytes, logged: str
) -> None:
    caplog.set_level(logging.WARNING, logger="channels.transport")
    async with running_hub(tmp_path, NAMES) as net:
        mallory = net.raw["mallory"]
        channels, balances = net.snapshot(), net.hub_balances()
        await send_expecting_drop(net, mallory, frame)
        assert_unchanged(net, channels, balances)
        assert any(logged in record.getMessage() for record in caplog.records), caplog.text
        await others_still_pay(net, payment_id=1)
        # the dropped peer may come back and is served again
        async with mallory.connect(net.port):
            await mallory.expect(lambda m: isinstance(m, wire.HubTerms))


async def test_an_oversized_frame_header_alone_drops_the_connection(tmp_path: Path) -> None:
    """The hub refuses a frame as soon as its header announces more than 1 MiB."""
    async with running_hub(tmp_path, NAMES) as net:
        mallory = net.raw["mallory"]
        channels, balances = net.snapshot(), net.hub_balances()
        with trio.fail_after(10):
            stream = await trio.open_tcp_stream("127.0.0.1", net.port)
            try:
                async with open_stream_connection(
                    stream,
                    signer=mallory.signer,
                    codec=RawCodec(),
                    handlers=mallory.dispatch_table().lookup(),
                    expected_peer=net.address("hub"),
                ) as connection:
                    await mallory.expect(lambda m: isinstance(m, wire.HubTerms))
                    # only the header of a 1 MiB + 1 frame, and a few bytes of it, ever leave
                    header = (DEFAULT_MAX_FRAME_SIZE + 1).to_bytes(4, "big")
                    await stream.send_all(header + b"\x00" * 16)
                    await connection.wait_closed()
            except TransportError:
                pass
        await wait_disconnected(net, mallory)
        assert_unchanged(net, channels, balances)
        await others_still_pay(net, payment_id=1)


# --------------------------------------------------------------------------- signed but invalid


def _secrethash(label: str) -> bytes:
    return secrethash_of(keccak(label.encode()))


def _wrong_signature(net: RawNet, mallory: RawPeer) -> wire.LockedTransfer:
    return mallory.locked_transfer(
        1_000,
        _secrethash("wrong signature"),
        expiration=LOCK_EXPIRATION,
        target=net.address("washer"),
        signer=LocalSigner(key_of("eve")),
    )


def _nonce_skips(net: RawNet, mallory: RawPeer) -> wire.LockedTransfer:
    mallory.locked_transfer(  # nonce 1: made, never sent
        1_000, _secrethash("lost"), expiration=LOCK_EXPIRATION, target=net.address("washer")
    )
    return mallory.locked_transfer(  # nonce 2
        1_000, _secrethash("skips"), expiration=LOCK_EXPIRATION, target=net.address("washer")
    )


def _past_expiry(net: RawNet, mallory: RawPeer) -> wire.LockedTransfer:
    # mallory's core believes it is block 50, so it makes a lock expiring at block 90
    return mallory.locked_transfer(
        1_000,
        _secrethash("expired"),
        expiration=START_BLOCK - 10,
        target=net.address("washer"),
        block_number=START_BLOCK - 50,
    )


def _above_capacity(net: RawNet, mallory: RawPeer) -> wire.LockedTransfer:
    # mallory's core believes it deposited ten times what it did
    assert mallory.channel is not None
    inflated = msgspec.structs.replace(
        mallory.channel,
        our=msgspec.structs.replace(mallory.channel.our, deposit=10 * DEPOSIT),
    )
    return mallory.locked_transfer(
        DEPOSIT + 1,
        _secrethash("too much"),
        expiration=LOCK_EXPIRATION,
        target=net.address("washer"),
        channel=inflated,
    )


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        pytest.param(
            _wrong_signature,
            f"signature recovers to 0x{LocalSigner(key_of('eve')).address.hex()}, not the partner",
            id="wrong-signature",
        ),
        pytest.param(_nonce_skips, "nonce 2 skips ahead (expected 1)", id="nonce-plus-two"),
        pytest.param(
            _above_capacity,
            f"lock amount {DEPOSIT + 1} exceeds the sender's capacity",
            id="above-capacity",
        ),
    ],
)
async def test_an_invalid_locked_transfer_gets_an_error_reply_and_changes_nothing(
    tmp_path: Path, make: Any, reason: str
) -> None:
    async with running_hub(tmp_path, NAMES) as net:
        mallory = net.raw["mallory"]
        channels, balances = net.snapshot(), net.hub_balances()
        message = make(net, mallory)
        async with mallory.connect(net.port) as connection:
            await mallory.expect(lambda m: isinstance(m, wire.HubTerms))
            connection.send_nowait(message)
            reply = await mallory.error_reply(message.message_id)
            assert reason in reply.reason
            # not acknowledged: an honest sender keeps a refused proof and sends it again (a
            # refusal from a passing view then heals instead of splitting the channel)
            assert not any(
                isinstance(m, wire.Processed) and message.message_id in m.message_ids
                for m in mallory.received
            )
            assert_unchanged(net, channels, balances)
            assert net.hub.stats.forwarded == 0
            assert not connection.closed  # a refused message is not abuse: still connected
            await others_still_pay(net, payment_id=1)
        assert net.hub.service.stats.invalid_received == 1


async def test_a_lock_expired_by_the_hubs_head_is_taken_and_refused(tmp_path: Path) -> None:
    """Mallory's head lags the hub's: its lock expires before the hub's head. The hub takes the
    signed proof (acknowledged: the views stay equal), never forwards the lock, and refuses it."""
    async with running_hub(tmp_path, NAMES) as net:
        mallory = net.raw["mallory"]
        balances = net.hub_balances()
        message = _past_expiry(net, mallory)
        async with mallory.connect(net.port) as connection:
            await mallory.expect(lambda m: isinstance(m, wire.HubTerms))
            connection.send_nowait(message)
            await mallory.processed(message.message_id)
            refusal = await mallory.seen(lambda m: isinstance(m, wire.LockRefused))
            assert refusal.secrethash == message.secrethash
            assert "lock already expired at block 90" in refusal.reason
            assert not any(isinstance(m, wire.ErrorReply) for m in mallory.received)
            assert net.hub.stats.forwarded == 0
            assert net.hub_balances() == balances
            await others_still_pay(net, payment_id=1)


async def test_a_replayed_locked_transfer_is_refused_by_its_nonce(tmp_path: Path) -> None:
    async with running_hub(tmp_path, NAMES) as net:
        mallory = net.raw["mallory"]
        hub_address = net.address("hub")
        # a valid lock the hub refuses at once (it takes no payments for itself)
        message = mallory.locked_transfer(
            1_000, _secrethash("replayed"), expiration=LOCK_EXPIRATION, target=hub_address
        )
        async with mallory.connect(net.port) as connection:
            await mallory.expect(lambda m: isinstance(m, wire.HubTerms))
            connection.send_nowait(message)
            await mallory.processed(message.message_id)
            refusal = await mallory.seen(lambda m: isinstance(m, wire.LockRefused))
            assert refusal.secrethash == message.secrethash
            assert "takes no payments for itself" in refusal.reason
            assert not any(isinstance(m, wire.ErrorReply) for m in mallory.received)
            [lock] = net.hub_channel("mallory").partner.locks.values()
            assert lock.amount == 1_000
            channels, balances = net.snapshot(), net.hub_balances()

            connection.send_nowait(message)  # the very same signed message again
            await mallory.processed(message.message_id)
            reply = await mallory.error_reply(message.message_id)
            assert "nonce 1 does not increase (previous 1)" in reply.reason
            assert_unchanged(net, channels, balances)
            await others_still_pay(net, payment_id=1)


# --------------------------------------------------------------------------- protocol abandoned


async def test_a_payer_that_never_unlocks_still_gets_its_payee_paid(tmp_path: Path) -> None:
    """Mallory locks, washer reveals, the hub pays washer and reveals to mallory, and mallory
    never sends the Unlock: the hub's incoming lock stays pending (it can claim it on chain),
    and mallory hanging up disturbs nobody."""
    async with running_hub(tmp_path, NAMES) as net:
        mallory, washer = net.raw["mallory"], net.agents["washer"]
        amount = 5_000
        fee = TERMS.fees.fee(amount)
        hub_before = net.hub_balances()
        async with mallory.connect(net.port) as connection:
            await mallory.expect(lambda m: isinstance(m, wire.HubTerms))
            connection.send_nowait(
                wire.InvoiceRequest(
                    payment_id=42,
                    payer=mallory.address,
                    payee=net.address("washer"),
                    amount=wire.amount_to_wire(amount),
                )
            )
            invoice = await mallory.expect(lambda m: isinstance(m, wire.Invoice))
            assert invoice.payee == net.address("washer") and invoice.payment_id == 42
            lock_message = mallory.locked_transfer(
                amount + fee,
                invoice.secrethash,
                expiration=LOCK_EXPIRATION,
                target=net.address("washer"),
                payment_id=42,
            )
            connection.send_nowait(lock_message)
            await mallory.processed(lock_message.message_id)
            reveal = await mallory.seen(lambda m: isinstance(m, wire.SecretReveal))
            assert secrethash_of(reveal.secret) == invoice.secrethash
            with trio.fail_after(10):
                received = await washer.received.receive()
            assert received.payment_id == 42 and received.payer == mallory.address
            assert received.amount == amount
            # mallory stops here: no Unlock
            await trio.sleep(0.2)
            incoming = net.hub_channel("mallory")
            [lock] = incoming.partner.locks.values()
            assert lock.secrethash == invoice.secrethash and lock.amount == amount + fee
            assert invoice.secrethash in incoming.secrets  # the hub can claim it
            assert not net.hub_channel("washer").our.locks  # the payee is paid off chain
        await wait_disconnected(net, mallory)
        after = net.hub_balances()
        washer_id, mallory_id = net.channel_id("washer"), net.channel_id("mallory")
        assert after[washer_id] == (
            hub_before[washer_id][0] - amount,
            hub_before[washer_id][1] + amount,
        )
        assert after[mallory_id] == hub_before[mallory_id]  # the lock is pending, not paid
        still = net.hub_channel("mallory")
        assert still == incoming  # hanging up changed nothing

        await others_still_pay(net, payment_id=1)
        assert net.hub_channel("mallory") == incoming

        # near the lock's expiry the hub registers the secret on chain to claim it
        events = net.hub.service.handle(
            sc.Block(BlockNumber(LOCK_EXPIRATION - net.hub.service.node.reveal_timeout))
        )
        registers = [e for e in events if isinstance(e, ev.ContractSendSecretRegister)]
        assert [e.secret for e in registers] == [reveal.secret]


# --------------------------------------------------------------------------- who may talk


async def test_a_peer_without_a_channel_gets_an_error_reply_and_is_not_attached(
    tmp_path: Path,
) -> None:
    async with running_hub(tmp_path, NAMES, raw=("mallory", "eve")) as net:
        eve = net.raw["eve"]
        assert eve.channel is None
        channels, balances = net.snapshot(), net.hub_balances()
        refused = net.hub.stats.peers_refused
        with trio.fail_after(10):
            try:
                async with eve.connect(net.port):
                    reply = await eve.error_reply(0)
                    assert "has no open channel with this hub: open one first" in reply.reason
                    assert eve.address.hex() in reply.reason
                    await trio.sleep(0.2)
            except TransportError:
                pass
        assert not any(isinstance(m, wire.HubTerms) for m in eve.received)  # not served
        assert eve.address not in net.hub.service.connections
        assert net.hub.stats.peers_refused == refused + 1
        assert_unchanged(net, channels, balances)
        await others_still_pay(net, payment_id=1)


async def test_a_peer_without_a_channel_is_disconnected(tmp_path: Path) -> None:
    async with running_hub(tmp_path, NAMES, raw=("mallory", "eve")) as net:
        eve = net.raw["eve"]
        with trio.fail_after(10):
            try:
                async with eve.connect(net.port) as connection:
                    await eve.error_reply(0)
                    with trio.fail_after(2):
                        await connection.wait_closed()
            except TransportError:
                pass


async def test_a_peer_without_a_channel_is_not_served(tmp_path: Path) -> None:
    async with running_hub(tmp_path, NAMES, raw=("mallory", "eve")) as net:
        eve, washer = net.raw["eve"], net.agents["washer"]
        invoices = dict(washer.invoices)
        state_changes = net.hub.service.stats.state_changes
        with trio.fail_after(10):
            try:
                async with eve.connect(net.port) as connection:
                    await eve.error_reply(0)
                    connection.send_nowait(
                        wire.InvoiceRequest(
                            payment_id=1,
                            payer=eve.address,
                            payee=net.address("washer"),
                            amount=wire.amount_to_wire(10),
                        )
                    )
                    connection.send_nowait(
                        wire.SecretRequest(
                            message_id=7,
                            channel_id=2,
                            payment_id=1,
                            secrethash=bytes(32),
                            amount=b"",
                        )
                    )
                    await trio.sleep(0.5)
            except TransportError:
                pass
        assert net.hub.stats.relayed == 0
        assert washer.invoices == invoices
        assert net.hub.service.stats.state_changes == state_changes
        assert not any(isinstance(m, wire.Processed) for m in eve.received)


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        pytest.param(
            lambda net, me: wire.InvoiceRequest(
                payment_id=9,
                payer=net.address("alice"),
                payee=net.address("washer"),
                amount=wire.amount_to_wire(700),
            ),
            "an invoice request must name its sender as payer",
            id="invoice-request-for-another-payer",
        ),
        pytest.param(
            lambda net, me: wire.Invoice(
                payment_id=9,
                payer=net.address("alice"),
                payee=net.address("washer"),
                amount=wire.amount_to_wire(700),
                secrethash=_secrethash("forged invoice"),
            ),
            "an invoice must name its sender as payee",
            id="invoice-for-another-payee",
        ),
        pytest.param(
            lambda net, me: wire.InvoiceRefused(
                payment_id=9,
                payer=net.address("alice"),
                payee=net.address("washer"),
                reason="not me",
            ),
            "only the payer or the payee can refuse an invoice",
            id="refusal-by-a-third-party",
        ),
        pytest.param(
            lambda net, me: wire.HubTerms(
                flat_fee=b"",
                fee_ppm=0,
                fee_cap=b"",
                lock_timeout=1,
                reveal_timeout=1,
                block_number=1,
            ),
            "a hub takes no HubTerms",
            id="terms-to-the-hub",
        ),
    ],
)
async def test_a_routing_message_on_behalf_of_someone_else_is_refused(
    tmp_path: Path, make: Any, reason: str
) -> None:
    async with running_hub(tmp_path, NAMES) as net:
        mallory = net.raw["mallory"]
        alice, washer = net.agents["alice"], net.agents["washer"]
        channels, balances = net.snapshot(), net.hub_balances()
        invoices, payments = dict(washer.invoices), dict(alice.payments)
        relayed = net.hub.stats.relayed
        async with mallory.connect(net.port) as connection:
            await mallory.expect(lambda m: isinstance(m, wire.HubTerms))
            connection.send_nowait(make(net, mallory))
            reply = await mallory.error_reply(0)
            assert reply.reason == reason
            assert not connection.closed
        assert net.hub.stats.relayed == relayed  # nothing reached alice or washer
        assert washer.invoices == invoices and alice.payments == payments
        assert_unchanged(net, channels, balances)
        await others_still_pay(net, payment_id=1)


def test_wire_decode_reports_invalid_utf8_as_a_wire_error() -> None:
    with pytest.raises(wire.WireError):
        wire.decode(b"\x82\xa4type\xaaErrorReply\xa6reason\xa2\xff\xfe")


async def test_a_peer_flooding_invalid_messages_is_disconnected_and_others_are_served(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("hub.service.MAX_INVALID_IN_A_ROW", 20)
    async with running_hub(tmp_path, NAMES) as net:
        mallory = net.raw["mallory"]
        channels, balances = net.snapshot(), net.hub_balances()
        message = _nonce_skips(net, mallory)  # invalid: nonce 2 skips ahead, every time
        with trio.fail_after(10):
            try:
                async with mallory.connect(net.port) as connection:
                    await mallory.expect(lambda m: isinstance(m, wire.HubTerms))
                    for _ in range(25):
                        connection.send_nowait(message)
                    await connection.wait_closed()  # dropped for abuse
            except TransportError:
                pass
        assert sum(isinstance(m, wire.ErrorReply) for m in mallory.received) <= 21
        assert_unchanged(net, channels, balances)
        await others_still_pay(net, payment_id=1)


async def test_copies_of_proofs_the_hub_has_are_not_abuse(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("hub.service.MAX_INVALID_IN_A_ROW", 5)
    async with running_hub(tmp_path, NAMES) as net:
        mallory = net.raw["mallory"]
        message = mallory.locked_transfer(
            1_000, _secrethash("copies"), expiration=LOCK_EXPIRATION, target=net.address("hub")
        )
        async with mallory.connect(net.port) as connection:
            await mallory.expect(lambda m: isinstance(m, wire.HubTerms))
            for _ in range(10):  # the first is taken (and refused: the hub is no payee)
                connection.send_nowait(message)
            with trio.fail_after(10):
                while (  # noqa: ASYNC110  # the replies come from the hub's next commits
                    sum(
                        isinstance(m, wire.ErrorReply) and "does not increase" in m.reason
                        for m in mallory.received
                    )
                    < 9
                ):
                    await trio.sleep(0.01)
            assert not connection.closed  # nine copies, limit five: still connected


async def test_a_peer_refusing_one_of_our_channel_messages_is_logged_loudly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A refused channel message means the two views of the channel now differ (the crash
    campaign found a payee refusing every hub proof after one refusal, silently): the hub says so
    at warning level, naming the peer, the message and the reason."""
    caplog.set_level(logging.INFO, logger="hub.service")
    async with running_hub(tmp_path, NAMES) as net:
        mallory = net.raw["mallory"]
        channels, balances = net.snapshot(), net.hub_balances()
        async with mallory.connect(net.port) as connection:
            await mallory.expect(lambda m: isinstance(m, wire.HubTerms))
            connection.send_nowait(
                wire.ErrorReply(message_id=4242, reason="lock already expired at block 7")
            )
            connection.send_nowait(wire.ErrorReply(message_id=0, reason="routine"))
            with trio.fail_after(10):
                while not any("routine" in r.getMessage() for r in caplog.records):  # noqa: ASYNC110
                    await trio.sleep(0.01)
        [loud] = [r for r in caplog.records if "4242" in r.getMessage()]
        assert loud.levelno == logging.WARNING
        assert "lock already expired at block 7" in loud.getMessage()
        assert mallory.address.hex() in loud.getMessage()
        [quiet] = [r for r in caplog.records if "routine" in r.getMessage()]
        assert quiet.levelno == logging.INFO
        assert_unchanged(net, channels, balances)

"""The transport: framing, authentication, dispatch, batching, and bad peers (real sockets and
in-memory streams, every wait bounded)."""

from __future__ import annotations

import logging
from typing import Any

import msgspec
import pytest
import trio
import trio.testing

from channels.codec.keccak import keccak
from channels.fakes import FakeClock, MemoryNetwork, MemoryTransport
from channels.ports import TrioClock
from channels.signer import LocalSigner
from channels.transport import (
    AuthenticationError,
    Connection,
    DispatchTable,
    FrameDecoder,
    FrameTooLargeError,
    MalformedMessageError,
    TcpTransport,
    auth_digest,
    encode_frame,
    open_stream_connection,
)

TIMEOUT = 10


class Ping(msgspec.Struct, tag=True):
    n: int


class Pong(msgspec.Struct, tag=True):
    n: int
    peer: bytes


class Blob(msgspec.Struct, tag=True):
    data: bytes


class Codec:
    def __init__(self) -> None:
        self._encoder = msgspec.msgpack.Encoder()
        self._decoder = msgspec.msgpack.Decoder(Ping | Pong | Blob)

    def encode(self, message: Any) -> bytes:
        return self._encoder.encode(message)

    def decode(self, payload: bytes) -> Any:
        return self._decoder.decode(payload)


class GarbageCodec(Codec):
    """Sends bytes no honest peer would: valid frames, undecodable payloads."""

    def encode(self, message: Any) -> bytes:
        return b"\xc1 not msgpack"


ALICE = LocalSigner(keccak(b"alice"))
BOB = LocalSigner(keccak(b"bob"))
MALLORY = LocalSigner(keccak(b"mallory"))


class Node:
    """Answers each Ping with a Pong naming the authenticated peer; collects Pongs."""

    def __init__(self) -> None:
        self.pongs: list[Pong] = []
        self.got_pongs = trio.Event()
        self.expect = 0
        self.table = DispatchTable()
        self.table.register(Ping, self.on_ping)
        self.table.register(Pong, self.on_pong)

    async def on_ping(self, connection: Connection, message: Ping) -> None:
        connection.send_nowait(Pong(message.n, connection.peer))

    async def on_pong(self, connection: Connection, message: Pong) -> None:
        self.pongs.append(message)
        if len(self.pongs) >= self.expect:
            self.got_pongs.set()


def test_dispatch_table_refuses_a_second_handler() -> None:
    node = Node()
    with pytest.raises(ValueError, match="Ping is already registered"):
        node.table.register(Ping, node.on_ping)


@pytest.mark.parametrize("chunk", [1, 3, 7, 1000])
def test_frame_decoder_reassembles_any_split(chunk: int) -> None:
    payloads = [b"", b"a", b"hello" * 50, bytes(range(256))]
    wire = b"".join(encode_frame(p) for p in payloads)
    decoder = FrameDecoder(1024)
    out: list[bytes] = []
    for i in range(0, len(wire), chunk):
        out += decoder.feed(wire[i : i + chunk])
    assert out == payloads
    assert decoder.pending == 0


def test_frame_decoder_refuses_a_big_header_at_once() -> None:
    decoder = FrameDecoder(1024)
    with pytest.raises(FrameTooLargeError, match="frame of 1025 bytes; the limit is 1024"):
        decoder.feed((1025).to_bytes(4, "big"))


def test_encode_frame_refuses_big_payloads() -> None:
    with pytest.raises(FrameTooLargeError, match="refusing to send a frame of 11 bytes"):
        encode_frame(b"x" * 11, max_frame_size=10)


async def test_tcp_loopback_authenticates_and_batches() -> None:
    server_node, client_node = Node(), Node()
    client_node.expect = 2000
    server = TcpTransport(BOB, Codec(), server_node.table.lookup())
    client = TcpTransport(ALICE, Codec(), client_node.table.lookup())
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            port = await nursery.start(server.serve)
            async with client.open_connection("127.0.0.1", port, expected_peer=BOB.address) as conn:
                assert conn.peer == BOB.address
                for n in range(2000):
                    conn.send_nowait(Ping(n))
                await client_node.got_pongs.wait()
                stats = conn.statistics()
            nursery.cancel_scope.cancel()
    assert [p.n for p in client_node.pongs] == list(range(2000))
    assert {p.peer for p in client_node.pongs} == {ALICE.address}  # the server knows who we are
    assert stats.frames_sent == 2000
    assert stats.writes < 100  # frames queued together leave in one write
    assert stats.frames_received == 2000


async def test_memory_stream_pair_connection() -> None:
    left, right = trio.testing.memory_stream_pair()
    alice, bob = Node(), Node()
    alice.expect = 3
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:

            async def bob_side() -> None:
                async with open_stream_connection(
                    right, signer=BOB, codec=Codec(), handlers=bob.table.lookup()
                ) as conn:
                    assert conn.peer == ALICE.address
                    await conn.wait_closed()

            nursery.start_soon(bob_side)
            async with open_stream_connection(
                left, signer=ALICE, codec=Codec(), handlers=alice.table.lookup()
            ) as conn:
                assert conn.peer == BOB.address
                for n in range(3):
                    await conn.send(Ping(n))
                await alice.got_pongs.wait()
    assert [p.n for p in alice.pongs] == [0, 1, 2]


async def test_unexpected_peer_is_refused() -> None:
    server = TcpTransport(MALLORY, Codec(), Node().table.lookup())
    client = TcpTransport(ALICE, Codec(), Node().table.lookup())
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            port = await nursery.start(server.serve)
            with pytest.raises(AuthenticationError, match=r"expected peer 0x[0-9a-f]{40}"):
                async with client.open_connection("127.0.0.1", port, expected_peer=BOB.address):
                    pytest.fail("must not get here")
            nursery.cancel_scope.cancel()


async def _server_survives(port: int, caplog: pytest.LogCaptureFixture, expected: str) -> None:
    """After a bad peer: the server logged why and still serves an honest client."""
    good = Node()
    good.expect = 1
    async with TcpTransport(ALICE, Codec(), good.table.lookup()).open_connection(
        "127.0.0.1", port
    ) as conn:
        conn.send_nowait(Ping(7))
        await good.got_pongs.wait()
    assert good.pongs[0].n == 7
    assert expected in caplog.text


async def test_malformed_frame_closes_only_that_connection(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="channels.transport")
    server = TcpTransport(BOB, Codec(), Node().table.lookup())
    bad = TcpTransport(MALLORY, GarbageCodec(), Node().table.lookup())
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            port = await nursery.start(server.serve)
            async with bad.open_connection("127.0.0.1", port) as conn:
                conn.send_nowait(Ping(1))
                await conn.wait_closed()  # the server hangs up on us
            await _server_survives(port, caplog, "MalformedMessageError: undecodable frame")
            nursery.cancel_scope.cancel()


async def test_oversized_frame_closes_only_that_connection(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="channels.transport")
    server = TcpTransport(BOB, Codec(), Node().table.lookup(), max_frame_size=1024)
    big = TcpTransport(MALLORY, Codec(), Node().table.lookup(), max_frame_size=1 << 20)
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            port = await nursery.start(server.serve)
            async with big.open_connection("127.0.0.1", port) as conn:
                conn.send_nowait(Blob(b"x" * 5000))
                await conn.wait_closed()
            await _server_survives(port, caplog, "the limit is 1024")
            nursery.cancel_scope.cancel()


async def test_sending_an_oversized_message_raises_before_writing() -> None:
    server = TcpTransport(BOB, Codec(), Node().table.lookup())
    client = TcpTransport(ALICE, Codec(), Node().table.lookup(), max_frame_size=100)
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            port = await nursery.start(server.serve)
            async with client.open_connection("127.0.0.1", port) as conn:
                with pytest.raises(FrameTooLargeError, match="refusing to send a frame"):
                    conn.send_nowait(Blob(b"x" * 200))
                assert conn.statistics().queued_bytes == 0
            nursery.cancel_scope.cancel()


async def test_non_cise_peer_fails_the_handshake(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="channels.transport")
    server = TcpTransport(BOB, Codec(), Node().table.lookup())
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            port = await nursery.start(server.serve)
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            async with stream:
                await stream.send_all(encode_frame(b"GET / HTTP/1.1\r\n\r\n"))
                received = b""
                while chunk := await stream.receive_some(4096):  # until the server hangs up
                    received += chunk
            assert received.startswith(b"\x00\x00\x00\x28CISEHELO")
            await _server_survives(port, caplog, "is not a CISE hello")
            nursery.cancel_scope.cancel()


async def test_bad_message_from_the_server_raises_in_the_client() -> None:
    """A client whose peer sends garbage: its block is cancelled and the error raised."""
    left, right = trio.testing.memory_stream_pair()
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:

            async def evil_server() -> None:
                async with open_stream_connection(
                    right, signer=MALLORY, codec=GarbageCodec(), handlers={}
                ) as conn:
                    conn.send_nowait(Ping(0))
                    await conn.wait_closed()

            nursery.start_soon(evil_server)
            with pytest.raises(MalformedMessageError, match="undecodable frame"):
                async with open_stream_connection(
                    left, signer=ALICE, codec=Codec(), handlers=Node().table.lookup()
                ):
                    await trio.sleep_forever()


async def test_message_without_handler_is_an_error() -> None:
    left, right = trio.testing.memory_stream_pair()
    only_pings = DispatchTable()

    async def ignore(connection: Connection, message: Ping) -> None:
        pass

    only_pings.register(Ping, ignore)
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:

            async def sender() -> None:
                async with open_stream_connection(
                    right, signer=BOB, codec=Codec(), handlers={}
                ) as conn:
                    conn.send_nowait(Blob(b"?"))
                    await conn.wait_closed()

            nursery.start_soon(sender)
            with pytest.raises(MalformedMessageError, match="no handler for message type Blob"):
                async with open_stream_connection(
                    left, signer=ALICE, codec=Codec(), handlers=only_pings.lookup()
                ):
                    await trio.sleep_forever()


async def test_peer_hanging_up_mid_frame_is_an_error() -> None:
    left, right = trio.testing.memory_stream_pair()
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:

            async def truncating_peer() -> None:
                # a correct handshake by hand, then half a frame and EOF
                decoder = FrameDecoder(1 << 20)
                await right.send_all(encode_frame(b"CISEHELO" + b"\x01" * 32))
                frames: list[bytes] = []
                while not frames:
                    frames += decoder.feed(await right.receive_some(1024))
                challenge = frames[0][8:]
                await right.send_all(
                    encode_frame(b"CISEAUTH" + BOB.sign_digest(auth_digest(challenge)))
                )
                await right.send_all((100).to_bytes(4, "big") + b"only ten b")
                await right.aclose()

            nursery.start_soon(truncating_peer)
            with pytest.raises(MalformedMessageError, match="in the middle of a frame"):
                async with open_stream_connection(
                    left, signer=ALICE, codec=Codec(), handlers={}, expected_peer=BOB.address
                ):
                    await trio.sleep_forever()


async def test_silent_peer_times_out_the_handshake() -> None:
    left, _right = trio.testing.memory_stream_pair()
    with (
        trio.fail_after(TIMEOUT),
        pytest.raises(AuthenticationError, match="handshake took longer"),
    ):
        async with open_stream_connection(
            left, signer=ALICE, codec=Codec(), handlers={}, handshake_timeout=0.2
        ):
            pytest.fail("must not get here")


async def test_memory_transport_is_a_drop_in_fake() -> None:
    network = MemoryNetwork()
    server_node, client_node = Node(), Node()
    client_node.expect = 10
    server = MemoryTransport(network, BOB, Codec(), server_node.table.lookup())
    client = MemoryTransport(network, ALICE, Codec(), client_node.table.lookup())
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            port = await nursery.start(server.serve)
            async with client.open_connection("memory", port, expected_peer=BOB.address) as conn:
                for n in range(10):
                    conn.send_nowait(Ping(n))
                await client_node.got_pongs.wait()
            nursery.cancel_scope.cancel()
    assert [p.n for p in client_node.pongs] == list(range(10))


async def test_fake_clock_moves_only_when_told(autojump_clock: trio.abc.Clock) -> None:
    clock = FakeClock(monotonic=5.0, wall=100.0)
    await clock.sleep(2.5)
    clock.advance(0.5)
    assert (clock.monotonic(), clock.wall()) == (8.0, 103.0)
    with pytest.raises(ValueError, match="never goes back"):
        clock.advance(-1)
    real = TrioClock()
    before = real.monotonic()
    await real.sleep(60)  # the autojump clock makes this instant
    assert real.monotonic() - before == pytest.approx(60)

"""The transport over TLS: real sockets on 127.0.0.1 and 127.0.0.2, certificates made in a data
directory, the signed challenge bound to the server's certificate, and the bad peers of issue
"Services on other machines" (wrong key, a relay in the middle, plain against TLS both ways, a
stalled handshake, a non-member), each refused with a reason while the server serves others.
Every wait is bounded."""

from __future__ import annotations

import logging
import os
import socket
import stat
import time
from pathlib import Path

import pytest
import trio
from cryptography import x509
from cryptography.x509.oid import NameOID

from channels.core.types import to_checksum
from channels.signer import LocalSigner
from channels.tls import PlainTransportRefusedError, TlsConfig, TlsConfigError, certificate_hash
from channels.transport import (
    CHALLENGE_SIZE,
    DENY_MAGIC,
    HELLO_MAGIC,
    PROOF_MAGIC,
    ROLE_CLIENT,
    AuthenticationError,
    FrameDecoder,
    PeerRefusedError,
    TcpTransport,
    TransportError,
    auth_digest_v2,
    encode_frame,
    serve_connections,
)
from tests.unit.test_transport import ALICE, BOB, MALLORY, Codec, Node, Ping

TIMEOUT = 15
TRANSPORT_LOG = "channels.transport"


def tls_for(tmp_path: Path, signer: LocalSigner) -> TlsConfig:
    return TlsConfig.load(tmp_path / f"data-{signer.address.hex()[:8]}", signer.address)


async def ping_once(connection_node: Node, connection: object, n: int = 7) -> None:
    """Send one Ping and wait for its Pong on `connection_node`."""
    connection_node.expect = len(connection_node.pongs) + 1
    connection_node.got_pongs = trio.Event()
    connection.send_nowait(Ping(n))  # type: ignore[attr-defined]
    await connection_node.got_pongs.wait()


# -- certificates -------------------------------------------------------------------------------


def test_certificate_is_made_once_named_after_the_address_with_a_private_key(
    tmp_path: Path,
) -> None:
    first = TlsConfig.load(tmp_path, ALICE.address)
    name = "0x" + ALICE.address.hex()
    assert first.key_path == tmp_path / f"tls-{name}.key"
    assert first.certificate_path == tmp_path / f"tls-{name}.crt"
    assert stat.S_IMODE(first.key_path.stat().st_mode) == 0o600
    certificate = x509.load_der_x509_certificate(first.certificate_der)
    common_name = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert common_name == to_checksum(ALICE.address)
    assert certificate.issuer == certificate.subject  # self-signed
    again = TlsConfig.load(tmp_path, ALICE.address)
    assert again.certificate_der == first.certificate_der  # kept, not remade


def test_bad_certificate_files_are_refused_naming_the_file(tmp_path: Path) -> None:
    config = TlsConfig.load(tmp_path, ALICE.address)
    config.key_path.chmod(0o644)
    with pytest.raises(TlsConfigError, match=r"readable by others \(mode 644\); run: chmod 600"):
        TlsConfig.load(tmp_path, ALICE.address)
    config.key_path.chmod(0o600)
    config.certificate_path.unlink()
    with pytest.raises(TlsConfigError, match=r"\.key exists but .*\.crt does not"):
        TlsConfig.load(tmp_path, ALICE.address)
    other = TlsConfig.load(tmp_path / "other", BOB.address)
    config.certificate_path.write_bytes(other.certificate_path.read_bytes())  # not ALICE's key
    with pytest.raises(TlsConfigError, match="do not make a usable pair"):
        TlsConfig.load(tmp_path, ALICE.address)


# -- plain TCP only on the loopback -----------------------------------------------------------


async def test_plain_tcp_is_refused_off_the_loopback_before_any_socket() -> None:
    with trio.fail_after(TIMEOUT):
        with pytest.raises(PlainTransportRefusedError, match=r"listen on 192\.0\.2\.1 without TLS"):
            await serve_connections(BOB, Codec(), {}, host="192.0.2.1")
        client = TcpTransport(ALICE, Codec(), {})
        with pytest.raises(
            PlainTransportRefusedError, match=r"connect to example\.org without TLS"
        ):
            async with client.open_connection("example.org", 9):
                pass


# -- TLS between two hosts --------------------------------------------------------------------


async def test_tls_peers_on_two_loopback_addresses_talk_both_ways(tmp_path: Path) -> None:
    alice_node, bob_node = Node(), Node()
    alice = TcpTransport(ALICE, Codec(), alice_node.table.lookup(), tls=tls_for(tmp_path, ALICE))
    bob = TcpTransport(BOB, Codec(), bob_node.table.lookup(), tls=tls_for(tmp_path, BOB))
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            bob_port = await nursery.start(
                lambda task_status: bob.serve(host="127.0.0.2", task_status=task_status)
            )
            alice_port = await nursery.start(
                lambda task_status: alice.serve(host="127.0.0.1", task_status=task_status)
            )
            async with alice.open_connection("127.0.0.2", bob_port, expected_peer=BOB.address) as a:
                assert a.peer == BOB.address
                await ping_once(alice_node, a)
                assert alice_node.pongs[-1].peer == ALICE.address  # BOB authenticated ALICE
            async with bob.open_connection(
                "127.0.0.1", alice_port, expected_peer=ALICE.address
            ) as b:
                assert b.peer == ALICE.address
                await ping_once(bob_node, b)
                assert bob_node.pongs[-1].peer == BOB.address
            nursery.cancel_scope.cancel()


async def test_client_expecting_another_address_is_refused_naming_both(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """MALLORY serves (with a perfectly good certificate of its own); ALICE expects BOB."""
    server = TcpTransport(MALLORY, Codec(), Node().table.lookup(), tls=tls_for(tmp_path, MALLORY))
    client_node = Node()
    client = TcpTransport(ALICE, Codec(), client_node.table.lookup(), tls=tls_for(tmp_path, ALICE))
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            port = await nursery.start(server.serve)
            with pytest.raises(AuthenticationError) as refused:
                async with client.open_connection("127.0.0.1", port, expected_peer=BOB.address):
                    pass
            message = str(refused.value)
            assert f"expected peer 0x{BOB.address.hex()}" in message
            assert f"signed by 0x{MALLORY.address.hex()}" in message
            # the server still serves a client that expects it
            async with client.open_connection(
                "127.0.0.1", port, expected_peer=MALLORY.address
            ) as connection:
                await ping_once(client_node, connection)
            nursery.cancel_scope.cancel()


async def _relay(tls: TlsConfig, target_port: int, *, task_status: trio.TaskStatus[int]) -> None:
    """A man in the middle: terminates TLS from the client with its own certificate, opens TLS to
    the server, and forwards the decrypted bytes both ways unchanged."""
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")

    async def pump(source: trio.abc.Stream, sink: trio.abc.Stream) -> None:
        try:
            while data := await source.receive_some(65536):
                await sink.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            await trio.aclose_forcefully(sink)
            await trio.aclose_forcefully(source)

    async def handle(sock: trio.SocketStream) -> None:
        front = trio.SSLStream(sock, tls.server_context, server_side=True)
        back = trio.SSLStream(
            await trio.open_tcp_stream("127.0.0.1", target_port), tls.client_context
        )
        try:
            await front.do_handshake()
            await back.do_handshake()
        except trio.BrokenResourceError:
            return
        async with trio.open_nursery() as nursery:
            nursery.start_soon(pump, front, back)
            nursery.start_soon(pump, back, front)

    async with trio.open_nursery() as nursery:
        await nursery.start(trio.serve_listeners, handle, listeners)
        task_status.started(listeners[0].socket.getsockname()[1])


async def test_a_relay_in_the_middle_with_its_own_certificate_fails_the_binding(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=TRANSPORT_LOG)
    server = TcpTransport(BOB, Codec(), Node().table.lookup(), tls=tls_for(tmp_path, BOB))
    client = TcpTransport(ALICE, Codec(), Node().table.lookup(), tls=tls_for(tmp_path, ALICE))
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            port = await nursery.start(server.serve)
            relay_port = await nursery.start(_relay, tls_for(tmp_path, MALLORY), port)
            with pytest.raises(AuthenticationError) as refused:
                async with client.open_connection(
                    "127.0.0.1", relay_port, expected_peer=BOB.address
                ):
                    pass
            assert "not bound to this TLS session" in str(refused.value)
            # and directly, without the relay, the same two parties connect
            async with client.open_connection("127.0.0.1", port, expected_peer=BOB.address) as c:
                assert c.peer == BOB.address
            nursery.cancel_scope.cancel()
    logged = [r.getMessage() for r in caplog.records if r.name == TRANSPORT_LOG]
    assert any(
        f"claims to be 0x{ALICE.address.hex()} but its answer is not bound" in line
        for line in logged
    ), logged


async def test_plain_client_to_a_tls_server_fails_with_a_reason_in_time(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=TRANSPORT_LOG)
    server = TcpTransport(BOB, Codec(), Node().table.lookup(), tls=tls_for(tmp_path, BOB))
    plain = TcpTransport(ALICE, Codec(), Node().table.lookup())
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            port = await nursery.start(server.serve)
            started = time.monotonic()
            with pytest.raises(TransportError, match="is it a TLS service"):
                async with plain.open_connection("127.0.0.1", port, expected_peer=BOB.address):
                    pass
            assert time.monotonic() - started < 5
            nursery.cancel_scope.cancel()
    logged = [r.getMessage() for r in caplog.records if r.name == TRANSPORT_LOG]
    assert any("the TLS handshake failed" in line for line in logged), logged


async def test_tls_client_to_a_plain_server_fails_with_a_reason_in_time(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=TRANSPORT_LOG)
    server = TcpTransport(BOB, Codec(), Node().table.lookup())
    client = TcpTransport(ALICE, Codec(), Node().table.lookup(), tls=tls_for(tmp_path, ALICE))
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            port = await nursery.start(server.serve)
            started = time.monotonic()
            with pytest.raises(AuthenticationError, match="the TLS handshake failed"):
                async with client.open_connection("127.0.0.1", port, expected_peer=BOB.address):
                    pass
            assert time.monotonic() - started < 5
            nursery.cancel_scope.cancel()
    logged = [r.getMessage() for r in caplog.records if r.name == TRANSPORT_LOG]
    assert any("the peer started a TLS handshake" in line for line in logged), logged


async def test_a_stalled_tls_handshake_is_dropped_while_others_are_served(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=TRANSPORT_LOG)
    tls = tls_for(tmp_path, BOB)
    client_node = Node()
    client = TcpTransport(ALICE, Codec(), client_node.table.lookup(), tls=tls_for(tmp_path, ALICE))
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            port = await nursery.start(
                lambda task_status: serve_connections(
                    BOB,
                    Codec(),
                    Node().table.lookup(),
                    tls=tls,
                    handshake_timeout=1.0,
                    task_status=task_status,
                )
            )
            staller = trio.socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            await staller.connect(("127.0.0.1", port))
            await staller.send(b"\x16\x03\x01\x02\x00\x01")  # half a TLS ClientHello, then silence
            stalled_at = time.monotonic()
            async with client.open_connection("127.0.0.1", port, expected_peer=BOB.address) as c:
                await ping_once(client_node, c)  # served while the other one stalls
            assert time.monotonic() - stalled_at < 1.0
            assert await staller.recv(100) == b""  # the server hung up on the staller
            assert 0.9 < time.monotonic() - stalled_at < 5
            staller.close()
            nursery.cancel_scope.cancel()
    logged = [r.getMessage() for r in caplog.records if r.name == TRANSPORT_LOG]
    assert any("handshake took longer than 1.0 s" in line for line in logged), logged


async def test_a_server_refuses_a_non_member_with_a_reason_and_serves_members(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=TRANSPORT_LOG)
    members = {ALICE.address}
    server = TcpTransport(
        BOB,
        Codec(),
        Node().table.lookup(),
        tls=tls_for(tmp_path, BOB),
        admit=members.__contains__,
    )
    outsider = TcpTransport(MALLORY, Codec(), Node().table.lookup(), tls=tls_for(tmp_path, MALLORY))
    member_node = Node()
    member = TcpTransport(ALICE, Codec(), member_node.table.lookup(), tls=tls_for(tmp_path, ALICE))
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            port = await nursery.start(server.serve)
            with pytest.raises(PeerRefusedError) as refused:
                async with outsider.open_connection("127.0.0.1", port, expected_peer=BOB.address):
                    pass
            assert str(refused.value) == (
                "the peer refused the connection: "
                f"0x{MALLORY.address.hex()} is not admitted here (not a member)"
            )
            async with member.open_connection("127.0.0.1", port, expected_peer=BOB.address) as c:
                await ping_once(member_node, c)
            nursery.cancel_scope.cancel()
    logged = [r.getMessage() for r in caplog.records if r.name == TRANSPORT_LOG]
    assert any(
        line.startswith("connection from 127.0.0.1:")
        and f"0x{MALLORY.address.hex()} is not admitted here" in line
        for line in logged
    ), logged


async def _next_frame(stream: trio.abc.Stream, decoder: FrameDecoder) -> bytes:
    while True:
        data = await stream.receive_some(65536)
        assert data, "the server hung up"
        frames = decoder.feed(data)
        if frames:
            assert len(frames) == 1
            return frames[0]


async def test_a_server_answer_reflected_as_a_client_answer_is_refused(tmp_path: Path) -> None:
    """MALLORY opens two sessions to BOB and hands BOB's challenge of the first to BOB in the
    second; BOB's (server) answer there must not pass as a client answer in the first."""
    tls = tls_for(tmp_path, MALLORY)
    server = TcpTransport(BOB, Codec(), Node().table.lookup(), tls=tls_for(tmp_path, BOB))
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            port = await nursery.start(server.serve)
            first = trio.SSLStream(
                await trio.open_tcp_stream("127.0.0.1", port), tls.client_context
            )
            first_frames = FrameDecoder(1 << 20)
            await first.send_all(encode_frame(HELLO_MAGIC + os.urandom(CHALLENGE_SIZE)))
            bob_challenge = (await _next_frame(first, first_frames))[len(HELLO_MAGIC) :]

            second = trio.SSLStream(
                await trio.open_tcp_stream("127.0.0.1", port), tls.client_context
            )
            second_frames = FrameDecoder(1 << 20)
            await second.send_all(encode_frame(HELLO_MAGIC + bob_challenge))
            second_challenge = (await _next_frame(second, second_frames))[len(HELLO_MAGIC) :]
            binding = certificate_hash(second.getpeercert(binary_form=True) or b"")
            digest = auth_digest_v2(ROLE_CLIENT, second_challenge, binding)
            await second.send_all(
                encode_frame(PROOF_MAGIC + MALLORY.address + MALLORY.sign_digest(digest))
            )
            bob_answer = await _next_frame(second, second_frames)
            assert bob_answer.startswith(PROOF_MAGIC + BOB.address)  # signed over bob_challenge

            await first.send_all(encode_frame(bob_answer))  # "I am BOB"
            verdict = await _next_frame(first, first_frames)
            assert verdict.startswith(DENY_MAGIC), verdict[:40]
            assert b"not bound to this TLS session" in verdict
            await trio.aclose_forcefully(first)
            await trio.aclose_forcefully(second)
            nursery.cancel_scope.cancel()


async def test_an_admit_check_that_fails_refuses_and_the_server_keeps_serving(
    tmp_path: Path,
) -> None:
    calls: list[bytes] = []

    def admit(address: bytes) -> bool:
        calls.append(address)
        if len(calls) == 1:
            raise OSError("membership view unreadable")
        return True

    server = TcpTransport(
        BOB, Codec(), Node().table.lookup(), tls=tls_for(tmp_path, BOB), admit=admit
    )
    client_node = Node()
    client = TcpTransport(ALICE, Codec(), client_node.table.lookup(), tls=tls_for(tmp_path, ALICE))
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            port = await nursery.start(server.serve)
            with pytest.raises(
                PeerRefusedError, match="is admitted here: OSError: membership view unreadable"
            ):
                async with client.open_connection("127.0.0.1", port, expected_peer=BOB.address):
                    pass
            async with client.open_connection("127.0.0.1", port, expected_peer=BOB.address) as c:
                await ping_once(client_node, c)
            nursery.cancel_scope.cancel()
    assert calls == [ALICE.address, ALICE.address]

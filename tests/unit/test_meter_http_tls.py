"""The meter endpoint off 127.0.0.1: any loopback host plain; HTTPS with the asset agent's own
certificate (`channels.tls`), which a client pins as its only CA; a plain client against the HTTPS
endpoint, and one that stalls in the handshake, are dropped with a log line while it serves on."""

from __future__ import annotations

import logging
import ssl
from pathlib import Path

import pytest
import trio

from assets.meter_sources import serve_http
from channels.tls import TlsConfig
from tests.unit.test_meter_sources import Agent

TIMEOUT = 10


def pinned(tls: TlsConfig) -> ssl.SSLContext:
    """What `cise asset service --server-cert FILE` builds: the certificate as the only CA."""
    context = ssl.create_default_context(cafile=str(tls.certificate_path))
    context.check_hostname = False  # the certificate names an address, not a host
    return context


async def get_health(stream: trio.abc.Stream) -> bytes:
    await stream.send_all(b"GET /health HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
    answer = b""
    while chunk := await stream.receive_some(4096):
        answer += chunk
    return answer


async def test_plain_on_any_loopback_host() -> None:
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            port = await nursery.start(lambda task_status: serve_http(
                Agent(), host="127.0.0.2", task_status=task_status))  # fmt: skip
            stream = await trio.open_tcp_stream("127.0.0.2", port)
            async with stream:
                assert b'{"ok":true}' in await get_health(stream)
            nursery.cancel_scope.cancel()


async def test_https_with_a_pinned_certificate(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    tls = TlsConfig.load(tmp_path, b"\x11" * 20)
    other = TlsConfig.load(tmp_path / "other", b"\x22" * 20)
    caplog.set_level(logging.WARNING, logger="assets.meter_sources")
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            port = await nursery.start(lambda task_status: serve_http(
                Agent(), host="127.0.0.3", ssl_context=tls.server_context, timeout_s=1.0,
                task_status=task_status))  # fmt: skip
            plain = await trio.open_tcp_stream("127.0.0.3", port)
            async with plain:  # plain HTTP against HTTPS: dropped, logged
                assert b"200" not in await get_health(plain)
            stalled = await trio.open_tcp_stream("127.0.0.3", port)  # sends nothing
            secure = trio.SSLStream(
                await trio.open_tcp_stream("127.0.0.3", port),
                pinned(tls),
                server_hostname="x",
                https_compatible=True,
            )
            async with secure:  # served while the other stalls
                answer = await get_health(secure)
                assert answer.startswith(b"HTTP/1.1 200") and b'{"ok":true}' in answer
            wrong = trio.SSLStream(
                await trio.open_tcp_stream("127.0.0.3", port), pinned(other), server_hostname="x"
            )
            with pytest.raises(trio.BrokenResourceError):  # another certificate: not the agent
                await wrong.do_handshake()
            await wrong.transport_stream.aclose()
            await trio.sleep(1.5)  # the stalled handshake times out
            await stalled.aclose()
            nursery.cancel_scope.cancel()
    logged = caplog.text
    assert "TLS handshake with 127.0.0.1 failed: [SSL: HTTP_REQUEST]" in logged, logged
    assert "stalled for 1.0 s, dropped" in logged, logged

"""`cise.metrics.MetricsBoard` over a real loopback socket: /metrics in Prometheus text from the
board's own registry, /health 200 while following and 503 when behind or the node is unreachable,
payments counted from events, and a misbehaving client never stops the board."""

from __future__ import annotations

import json
import socket

import pytest
import trio

from channels.core import events as ev
from channels.core.types import Address, ChannelId, PaymentId, SecretHash, TokenAmount
from cise.errors import CliError
from cise.lifecycle import run_until_stopped
from cise.metrics import Following, MetricsBoard, failure_reason, run_with_metrics

PARTNER = Address(b"\x22" * 20)


async def _get(port: int, request: bytes) -> tuple[int, bytes]:
    with trio.fail_after(5):
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream:
            await stream.send_all(request)
            data = b""
            while chunk := await stream.receive_some(65536):
                data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), body


async def get(port: int, path: str) -> tuple[int, bytes]:
    return await _get(port, f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())


class Chain:
    """A node's head as a test sets it; `None`: the node is down."""

    def __init__(self) -> None:
        self.head: int | None = 100
        self.processed = 100

    def block_number(self) -> int:
        if self.head is None:
            raise ConnectionError("refused")
        return self.head


async def test_metrics_and_health_follow_the_service() -> None:
    chain = Chain()
    following = Following(lambda: chain.processed, chain.block_number)
    board = MetricsBoard("hub", port=0, max_behind=5, following=following)
    async with trio.open_nursery() as nursery:
        port = await nursery.start(board.serve)
        with trio.fail_after(5):
            while following.head is None:  # noqa: ASYNC110  # the probe task sets it
                await trio.sleep(0.01)
        status, body = await get(port, "/health")
        assert status == 200 and json.loads(body) == {
            "ok": True, "service": "hub", "block": 100, "blocks_behind": 0,
        }  # fmt: skip

        board.count_events([
            ev.EventUnlockReceived(ChannelId(1), PARTNER, SecretHash(b"\1" * 32), TokenAmount(5)),
            ev.EventPaymentSendFailed(ChannelId(1), PaymentId(9), "over capacity: 12 > 3"),
            ev.EventPaymentSendFailed(ChannelId(2), PaymentId(10), "over capacity: 99 > 1"),
        ])  # fmt: skip
        status, body = await get(port, "/metrics")
        text = body.decode()
        assert status == 200
        assert 'cise_payments_total{direction="in",outcome="completed"} 1.0' in text
        assert 'cise_payments_total{direction="out",outcome="failed"} 2.0' in text
        assert 'cise_payment_failures_total{reason="over_capacity"} 2.0' in text
        assert "cise_blocks_behind 0.0" in text and "cise_node_reachable 1.0" in text

        following.head = chain.head = 110  # 10 behind, over the threshold of 5
        status, body = await get(port, "/health")
        answer = json.loads(body)
        assert status == 503 and answer["ok"] is False and answer["blocks_behind"] == 10
        assert "10 blocks behind" in answer["reason"]
        _, body = await get(port, "/metrics")
        assert "cise_blocks_behind 10.0" in body.decode()

        chain.head = None  # the node goes away: the next probe says so
        with trio.fail_after(10):
            while following.reachable:  # noqa: ASYNC110  # the probe task clears it
                await trio.sleep(0.05)
        status, body = await get(port, "/health")
        assert status == 503 and "unreachable" in json.loads(body)["reason"]
        nursery.cancel_scope.cancel()


async def test_bad_requests_get_an_error_and_the_board_serves_on() -> None:
    board = MetricsBoard("api", port=0)
    async with trio.open_nursery() as nursery:
        port = await nursery.start(board.serve)
        assert (await get(port, "/nothing"))[0] == 404
        assert (await _get(port, b"POST /metrics HTTP/1.1\r\n\r\n"))[0] == 405
        assert (await _get(port, b"garbage\r\n\r\n"))[0] == 400
        with trio.fail_after(5):  # a client that connects and goes away says nothing
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            await stream.aclose()
        status, body = await get(port, "/health")
        assert status == 200 and json.loads(body) == {"ok": True, "service": "api"}
        nursery.cancel_scope.cancel()


async def test_two_boards_in_one_process_do_not_collide() -> None:
    one, two = MetricsBoard("a"), MetricsBoard("b")
    one.count_events([ev.EventPaymentSent(ChannelId(1), PARTNER, PaymentId(1), TokenAmount(1))])
    assert one.render("/metrics")[2] != two.render("/metrics")[2]
    assert b'outcome="completed"} 1.0' in one.render("/metrics")[2]


async def test_run_with_metrics_returns_main_and_stops_the_board() -> None:
    board = MetricsBoard("x", port=0)

    async def main(value: int) -> int:
        await trio.lowlevel.checkpoint()
        return value

    with trio.fail_after(5):
        assert await run_with_metrics(board, main, 7) == 7
        assert await run_with_metrics(None, main, 8) == 8


def test_a_taken_metrics_port_is_a_clear_error_before_the_service_starts() -> None:
    started = []

    async def main() -> int:
        started.append(True)
        return 0

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        board = MetricsBoard("hub", port=taken.getsockname()[1])
        with pytest.raises(CliError, match=r"metrics cannot listen on 127\.0\.0\.1:\d+: "):
            run_until_stopped(run_with_metrics, board, main, name="hub")
    assert not started


async def test_the_metrics_line_is_json_where_stdout_is_json_lines(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for json_line in (False, True):
        board = MetricsBoard("agent", port=0, json_line=json_line)
        async with trio.open_nursery() as nursery:
            port = await nursery.start(board.serve)
            nursery.cancel_scope.cancel()
        out = capsys.readouterr().out.strip()
        where = f"127.0.0.1:{port}"
        assert out == (json.dumps({"metrics": where}) if json_line else f"metrics on {where}")


def test_failure_reasons_are_a_small_set_of_words() -> None:
    assert failure_reason("over capacity: 12 > 3") == "over_capacity"
    assert failure_reason("no channel with 0xABCDEF0123") == "no_channel_with"
    assert failure_reason("12345") == "unknown"
    assert len(failure_reason("x " * 100)) <= 48

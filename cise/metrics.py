"""Health and Prometheus metrics of a long-running `cise` command, on `--metrics-port`.

`add_metrics_options` adds `--metrics-port P` (off unless given; 0: any free port),
`--metrics-host` (127.0.0.1) and `--health-max-behind N`; `board_from(args, ...)` makes the
command's `MetricsBoard` (None when the port is not given), and `run_with_metrics(board, main,
*args)` runs the command's trio main with the board serving beside it. The board prints
`metrics on HOST:PORT` on stdout once it listens (`{"metrics": "HOST:PORT"}` for the commands
whose stdout is JSON lines: `agent receive`, `asset run`), then answers on that port, in this process, on
the trio thread (no server thread):

- `GET /metrics`: Prometheus text (`prometheus_client.generate_latest` of the board's own
  registry, never the global default): `cise_payments_total{outcome,direction}`,
  `cise_payment_failures_total{reason}`, `cise_channel_capacity_units{channel,partner}` (our
  side), `cise_transactions_pending`, `cise_deadlines_at_risk`, `cise_block`,
  `cise_blocks_behind`, `cise_node_reachable`, and what the service adds (`watch_hub`,
  `watch_tower`, `add_gauges`).
- `GET /health`: 200 `{"ok": true, "block": N, "blocks_behind": K}` while the service follows
  the chain, 503 with `"ok": false` and a `reason` when it is more than `--health-max-behind`
  blocks behind or its node did not answer the last probe.

What it must never do: change a service's state or wait on it. Payments are counted by a
listener as the service reports them; everything else is read at scrape time from what the
service holds in memory (no store read, no RPC). The only I/O besides the socket is the chain
head probe, in a worker thread every few seconds, bounded by a timeout. A scrape that fails or a
client that misbehaves gets an error answer or a closed connection; the service goes on.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import re
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import trio
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from assets.agent import AssetAgent
from channels.chain.client import Web3ChainClient
from channels.core import events as ev
from channels.core.channel import get_capacity
from channels.core.types import to_checksum
from channels.service import NodeService
from cise.errors import CliError
from cise.logs import add_log_options
from hub.service import Hub
from watchtower.service import Watchtower

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_MAX_BEHIND = 10  # blocks: /health says 503 beyond this
PROBE_INTERVAL = 2.0  # seconds between chain head probes
PROBE_TIMEOUT = 5.0  # seconds a probe may take before the node counts as unreachable
READ_TIMEOUT = 5.0  # seconds a client has to send its request
MAX_REQUEST = 8192  # bytes of request head read at most
JSON_STDOUT = frozenset({"agent", "asset"})  # commands whose stdout is JSON lines
RISK_BLOCKS = 3  # a transaction this close to its deadline and not yet mined is at risk
_REASON_LEN = 48
_NUMBERS = re.compile(r"0x[0-9a-fA-F]+|\d+")

Gauges = Callable[[], Iterable[Metric]]


def add_metrics_options(parser: argparse.ArgumentParser) -> None:
    """`--metrics-port`, `--metrics-host` and `--health-max-behind` on a service's parser."""
    parser.add_argument(
        "--metrics-port", type=int, default=None,
        help="serve /metrics and /health on this port (0: any free; default: off)",
    )  # fmt: skip
    parser.add_argument(
        "--metrics-host", default=DEFAULT_HOST, help="address to bind the metrics on"
    )
    parser.add_argument(
        "--health-max-behind", type=int, default=DEFAULT_MAX_BEHIND,
        help="blocks behind the chain head before /health answers 503",
    )  # fmt: skip


def add_service_options(parser: argparse.ArgumentParser) -> None:
    """The options every long-running command has: logging and metrics."""
    add_log_options(parser)
    add_metrics_options(parser)


def failure_reason(text: str) -> str:
    """A failure's reason as a label: its words without numbers or addresses, shortened (a label
    value must come from a small set, or every failure would make a new series)."""
    words = _NUMBERS.sub("", text.split(":", 1)[0]).lower()
    reason = "_".join(re.findall(r"[a-z]+", words))[:_REASON_LEN]
    return reason or "unknown"


@dataclass(slots=True)
class Following:
    """Where the service is on the chain: the block it has taken in (`processed`, read from
    memory) against the head its node reports (`head_of_chain`, a blocking call, probed in a
    worker thread)."""

    processed: Callable[[], int]
    head_of_chain: Callable[[], int]
    head: int | None = None
    reachable: bool = False
    problem: str = "the node was not asked yet"
    # one probe thread at most: a probe the node never answers is abandoned but keeps its thread,
    # and must not take the threads the service itself needs (trio's default limiter)
    threads: trio.CapacityLimiter = field(default_factory=lambda: trio.CapacityLimiter(1))

    def behind(self) -> int | None:
        return None if self.head is None else max(0, self.head - self.processed())

    async def probe(self, interval: float = PROBE_INTERVAL, limit: float = PROBE_TIMEOUT) -> None:
        """Ask the node for its head every `interval` seconds; never returns."""
        while True:
            try:
                with trio.fail_after(limit):
                    head = await trio.to_thread.run_sync(
                        self.head_of_chain, abandon_on_cancel=True, limiter=self.threads
                    )
                self.head, self.reachable, self.problem = int(head), True, ""
            except trio.TooSlowError:
                self.reachable, self.problem = False, f"the node did not answer within {limit:g} s"
            except Exception as exc:  # any failure of the node's RPC: reported, never fatal
                self.reachable, self.problem = (
                    False,
                    f"the node is unreachable: {type(exc).__name__}",
                )
            await trio.sleep(interval)


class _Snapshots(Collector):
    """The board's gauges, computed at each scrape from the services' memory."""

    def __init__(self, parts: list[Gauges]) -> None:
        self._parts = parts

    def collect(self) -> Iterable[Metric]:
        for part in list(self._parts):
            yield from part()


@dataclass
class MetricsBoard:
    """One process's metrics (see the module docstring)."""

    name: str
    host: str = DEFAULT_HOST
    port: int = 0
    max_behind: int = DEFAULT_MAX_BEHIND
    following: Following | None = None
    registry: CollectorRegistry = field(
        default_factory=lambda: CollectorRegistry(auto_describe=True)
    )
    parts: list[Gauges] = field(default_factory=list)
    json_line: bool = False  # the command's stdout is JSON lines: say where as {"metrics": ...}
    ours: bytes = b""  # the watched node's address (the direction of an expired lock)

    def __post_init__(self) -> None:
        self.payments = Counter(
            "cise_payments", "Payments completed or failed, into (in) or out of (out) this node",
            ["outcome", "direction"], registry=self.registry,
        )  # fmt: skip
        self.failures = Counter(
            "cise_payment_failures", "Payments of ours that failed, by reason", ["reason"],
            registry=self.registry,
        )  # fmt: skip
        self.registry.register(_Snapshots(self.parts))
        self.parts.append(self._following_gauges)

    # -- what the services report

    def add_gauges(self, gauges: Gauges) -> None:
        """Gauges a service adds; `gauges` runs at each scrape and must only read memory."""
        self.parts.append(gauges)

    def count_events(self, events: Sequence[ev.Event]) -> None:
        """A `NodeService` listener: count the payments among a durable group's events."""
        for event in events:
            kind = type(event)
            if kind is ev.EventPaymentReceived or kind is ev.EventUnlockReceived:
                self.payments.labels("completed", "in").inc()
            elif kind is ev.EventPaymentSent or kind is ev.EventUnlockSent:
                self.payments.labels("completed", "out").inc()
            elif isinstance(event, ev.EventPaymentSendFailed):
                self.payments.labels("failed", "out").inc()
                self.failures.labels(failure_reason(event.reason)).inc()
            elif isinstance(event, ev.EventLockRefused):
                self.payments.labels("failed", "out").inc()
                self.failures.labels("refused_" + failure_reason(event.reason)).inc()
            elif isinstance(event, ev.EventLockExpired):
                direction = "out" if event.sender == self.ours else "in"
                self.payments.labels("failed", direction).inc()
                self.failures.labels("lock_expired").inc()

    def watch_node(self, service: NodeService) -> None:
        """A node service's payments, channels and transactions."""
        self.ours = bytes(service.address)
        service.listeners.append(self.count_events)
        self.parts.append(partial(node_gauges, service))

    # -- serving

    async def serve(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        """Answer on host:port (and probe the chain head) until cancelled; started(bound port)."""
        try:
            listeners = await trio.open_tcp_listeners(self.port, host=self.host)
        except OSError as exc:
            raise CliError(
                f"metrics cannot listen on {self.host}:{self.port}: {exc.strerror}"
            ) from None
        bound = int(listeners[0].socket.getsockname()[1])
        async with trio.open_nursery() as nursery:
            if self.following is not None:
                nursery.start_soon(self.following.probe)
            nursery.start_soon(partial(trio.serve_listeners, self._answer, listeners))
            where = f"{self.host}:{bound}"
            print(
                json.dumps({"metrics": where}) if self.json_line else f"metrics on {where}",
                flush=True,
            )
            log.info("metrics on %s:%d", self.host, bound, extra={"metrics_port": bound})
            task_status.started(bound)

    def health(self) -> tuple[int, dict[str, Any]]:
        """(HTTP status, body) of /health."""
        if self.following is None:
            return 200, {"ok": True, "service": self.name}
        follow = self.following
        behind = follow.behind()
        body: dict[str, Any] = {
            "ok": False, "service": self.name, "block": follow.processed(), "blocks_behind": behind,
        }  # fmt: skip
        if not follow.reachable:
            body["reason"] = follow.problem
        elif behind is not None and behind > self.max_behind:
            body["reason"] = f"{behind} blocks behind the chain head (more than {self.max_behind})"
        else:
            body["ok"] = True
            return 200, body
        return 503, body

    def render(self, path: str) -> tuple[int, str, bytes]:
        """(status, content type, body) for a GET of `path`."""
        route = path.split("?", 1)[0]
        if route == "/metrics":
            return 200, CONTENT_TYPE_LATEST, generate_latest(self.registry)
        if route in ("/health", "/healthz"):
            status, body = self.health()
            return status, "application/json", json.dumps(body).encode()
        return 404, "text/plain; charset=utf-8", b"not found: /metrics or /health\n"

    async def _answer(self, stream: trio.SocketStream) -> None:
        try:
            with trio.fail_after(READ_TIMEOUT):
                head = await _read_head(stream)
            await stream.send_all(self._respond(head))
        except (trio.TooSlowError, trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass  # the client went away or was too slow: nothing of ours depends on it
        finally:
            with trio.move_on_after(1):
                await stream.aclose()

    def _respond(self, head: bytes) -> bytes:
        line = head.split(b"\r\n", 1)[0].decode("latin-1")
        parts = line.split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            return _response(400, "text/plain; charset=utf-8", b"bad request line\n")
        method, path = parts[0], parts[1]
        if method not in ("GET", "HEAD"):
            return _response(405, "text/plain; charset=utf-8", b"only GET\n")
        try:
            status, content_type, body = self.render(path)
        except Exception:  # a scrape must never stop the service: logged, answered 500
            log.exception("metrics: the %s answer failed", path)
            status, content_type, body = 500, "text/plain; charset=utf-8", b"internal error\n"
        return _response(status, content_type, b"" if method == "HEAD" else body)

    def _following_gauges(self) -> Iterable[Metric]:
        follow = self.following
        if follow is None:
            return
        yield _gauge("cise_block", "The block the service has taken in", follow.processed())
        behind = follow.behind()
        yield _gauge(
            "cise_blocks_behind", "Blocks between the chain head and the service (NaN: unknown)",
            math.nan if behind is None else behind,
        )  # fmt: skip
        yield _gauge(
            "cise_node_reachable", "1 if the node answered the last probe", int(follow.reachable)
        )


def node_gauges(service: NodeService) -> Iterable[Metric]:
    """A node service's channel capacities, transactions in flight and deadlines at risk."""
    capacity = GaugeMetricFamily(
        "cise_channel_capacity_units", "What we can still pay in each open channel, in units",
        labels=["channel", "partner"],
    )  # fmt: skip
    for channel_id, channel in service.channels.items():
        if channel.is_open:
            capacity.add_metric(
                [str(int(channel_id)), to_checksum(channel.partner.address)],
                get_capacity(channel.our, channel.partner),
            )
    yield capacity
    manager = service.transactions
    pending = 0 if manager is None else manager.pending
    at_risk = 0
    if manager is not None and manager.head >= 0:
        at_risk = manager.scheduler.count_at_risk(manager.head, RISK_BLOCKS)
    yield _gauge(
        "cise_transactions_pending", "Our transactions not yet mined and confirmed", pending
    )
    yield _gauge(
        "cise_deadlines_at_risk",
        f"Our transactions within {RISK_BLOCKS} blocks of their deadline and not yet mined",
        at_risk,
    )


def hub_gauges(hub: Hub) -> Iterable[Metric]:
    """A hub's payments forwarded, fees earned, locks refused and channels low on capacity."""
    stats = hub.stats
    yield _counter("cise_hub_forwarded", "Payments the hub forwarded", stats.forwarded)
    yield _counter("cise_hub_fees_earned_units", "Fees the hub earned, in units", stats.fees_earned)
    yield _counter("cise_hub_refused", "Payments the hub refused to forward", stats.refused)
    yield _counter("cise_hub_peers_refused", "Connections the hub refused", stats.peers_refused)
    yield _gauge(
        "cise_hub_low_capacity_channels", "Channels below --low-water", len(hub.low_capacity)
    )


def node_board(
    args: argparse.Namespace, name: str, service: NodeService, client: Web3ChainClient
) -> MetricsBoard | None:
    """`board_from` for a node service following `client`'s chain, watching `service`."""
    following = Following(lambda: int(service.block_number), lambda: int(client.block_number()))
    board = board_from(args, name, following, json_line=name in JSON_STDOUT)
    if board is not None:
        board.watch_node(service)
    return board


def asset_gauges(asset: AssetAgent) -> Iterable[Metric]:
    """An asset agent's uses (accepted, refused, charged into the ledger) and shares paid."""
    stats = asset.stats
    yield _counter("cise_asset_uses_accepted", "Meter events accepted as uses", stats.accepted)
    yield _counter(
        "cise_asset_uses_refused", "Meter events refused", stats.refused + stats.rejected
    )
    yield _counter("cise_asset_uses_charged", "Uses charged and in the ledger", stats.ledgered)
    yield _counter("cise_asset_shares_paid", "Beneficiary shares paid", stats.shares_paid)
    yield _counter("cise_asset_share_retries", "Share payments tried again", stats.share_retries)
    yield _counter(
        "cise_asset_routing_fees_units", "Routing fees paid for shares", stats.routing_fees
    )


def tower_gauges(tower: Watchtower) -> Iterable[Metric]:
    """A watchtower's channels and proofs guarded, updates sent and its transactions."""
    stats = tower.stats
    yield _gauge("cise_tower_channels_guarded", "Channels the tower watches", len(tower.channels))
    yield _gauge("cise_tower_proofs_guarded", "Balance proofs the tower holds", len(tower.guards))
    yield _counter("cise_tower_requests_accepted", "Monitor requests accepted", stats.accepted)
    yield _counter("cise_tower_updates_sent", "Updates the tower sent", stats.updates_sent)
    yield _counter("cise_tower_updates_mined", "Updates mined", stats.updates_mined)
    yield _counter("cise_tower_updates_failed", "Updates reverted on chain", stats.updates_failed)
    yield _counter("cise_tower_missed", "Challenge periods ended before an update", stats.missed)
    manager = tower.transactions
    yield _gauge("cise_transactions_pending", "Our transactions not yet mined", manager.pending)
    at_risk = manager.scheduler.count_at_risk(manager.head, RISK_BLOCKS) if manager.head >= 0 else 0
    yield _gauge("cise_deadlines_at_risk", "Transactions near their deadline, unmined", at_risk)


def tower_board(args: argparse.Namespace, tower: Watchtower) -> MetricsBoard | None:
    """`board_from` for a watchtower: it follows the chain up to its cursor."""
    client = tower.client
    board = board_from(
        args, "watchtower", Following(lambda: int(tower.cursor), client.block_number)
    )
    if board is not None:
        board.add_gauges(partial(tower_gauges, tower))
    return board


def head_board(
    args: argparse.Namespace, name: str, head_of_chain: Callable[[], int]
) -> MetricsBoard | None:
    """`board_from` for a service that reads the chain at its head (the API): never behind,
    healthy while its node answers."""
    following = Following(lambda: 0, head_of_chain)
    following.processed = lambda: following.head or 0
    return board_from(args, name, following)


def _counter(name: str, documentation: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, documentation, value=value)


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


async def _read_head(stream: trio.SocketStream) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data and b"\n\n" not in data:
        chunk = await stream.receive_some(MAX_REQUEST)
        if not chunk:
            break
        data += chunk
        if len(data) > MAX_REQUEST:
            break
    return data


_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
            500: "Internal Server Error", 503: "Service Unavailable"}  # fmt: skip


def _response(status: int, content_type: str, body: bytes) -> bytes:
    head = (
        f"HTTP/1.1 {status} {_REASONS[status]}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode("latin-1") + body


def board_from(
    args: argparse.Namespace,
    name: str,
    following: Following | None = None,
    *,
    json_line: bool = False,
) -> MetricsBoard | None:
    """The command's board from `--metrics-port` and friends (None: metrics are off)."""
    port = getattr(args, "metrics_port", None)
    if port is None:
        return None
    if not 0 <= port < 65536:
        raise CliError(f"--metrics-port must be 0..65535, got {port}")
    max_behind = getattr(args, "health_max_behind", DEFAULT_MAX_BEHIND)
    if max_behind < 0:
        raise CliError(f"--health-max-behind must not be negative, got {max_behind}")
    host = getattr(args, "metrics_host", DEFAULT_HOST)
    return MetricsBoard(name, host, port, max_behind, following, json_line=json_line)


async def run_with_metrics(
    board: MetricsBoard | None, main: Callable[..., Awaitable[Any]], *args: Any
) -> Any:
    """`await main(*args)`, with `board` serving beside it (if any) until main returns."""
    if board is None:
        return await main(*args)
    async with trio.open_nursery() as nursery:
        await nursery.start(board.serve)
        result = await main(*args)
        nursery.cancel_scope.cancel()
    return result


__all__ = [
    "DEFAULT_MAX_BEHIND",
    "Following",
    "MetricsBoard",
    "add_metrics_options",
    "add_service_options",
    "asset_gauges",
    "board_from",
    "failure_reason",
    "head_board",
    "hub_gauges",
    "node_board",
    "node_gauges",
    "run_with_metrics",
    "tower_board",
    "tower_gauges",
]

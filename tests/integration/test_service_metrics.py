"""The long-running commands as services, as real processes on a `cise chain`: with
`--metrics-port 0 --log-format json` each prints `metrics on 127.0.0.1:P`, answers `/health`
(200 while following the chain) and `/metrics` (Prometheus text), counts a payment, writes only
JSON lines on stderr, and on SIGTERM exits 0 with no traceback (its last line a JSON "stopped").
Covered: `hub serve`, `agent receive`, `watchtower serve`, `asset run --source http` and
`api serve`, in one test on one chain (about 20 s).
"""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

import pytest

from cise.main import main
from tests.integration.test_cli_hub import _cli
from tests.integration.test_signals import (
    ASSET_AGENT,
    HUB,
    MACHINE,
    START_S,
    STOP_S,
    TARIFF,
    TOWER,
    USER,
    Net,
    Running,
    net,
    spawn,
)

pytestmark = pytest.mark.node
__all__ = ["net"]  # the chain with its channels and asset (test_signals' fixture)

JSON_METRICS = ["--metrics-port", "0", "--log-format", "json"]


def scrape(port: int, path: str) -> tuple[int, str]:
    """(HTTP status, body) of GET 127.0.0.1:`port``path`."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def metrics_port(running: Running, json_stdout: bool = False) -> int:
    """The port of `metrics on 127.0.0.1:P`, or of `{"metrics": "127.0.0.1:P"}` on a command
    whose stdout is JSON lines (every stdout line of those stays JSON)."""
    if json_stdout:
        where = json.loads(running.wait_line('{"metrics": "127.0.0.1:'))["metrics"]
        return int(where.rsplit(":", 1)[1])
    return int(running.wait_line("metrics on 127.0.0.1:").rsplit(":", 1)[1])


def healthy(port: int, seconds: float = 20.0) -> dict[str, object]:
    """/health once it says 200 (the service has caught up with the chain)."""
    deadline = time.monotonic() + seconds
    while True:
        status, body = scrape(port, "/health")
        if status == 200 or time.monotonic() > deadline:
            assert status == 200, body
            answer: dict[str, object] = json.loads(body)
            return answer
        time.sleep(0.2)


def sample(text: str, series: str) -> float:
    """The value of one series (name and labels exactly) in Prometheus text."""
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    raise AssertionError(f"no {series} in\n{text}")


def capacity_series(text: str, partner: str) -> str:
    """The capacity series of our channel with `partner` (its channel id as the node numbered it)."""
    for line in text.splitlines():
        if line.startswith("cise_channel_capacity_units{") and f'partner="{partner}"' in line:
            return line.rsplit(" ", 1)[0]
    raise AssertionError(f"no channel with {partner} in\n{text}")


def wait_sample(port: int, series: str, until: Callable[[float], bool]) -> float:
    """The series' value once `until(value)` holds (-1: the series is absent), or after STOP_S."""
    deadline = time.monotonic() + STOP_S
    while True:
        text = scrape(port, "/metrics")[1]
        value = sample(text, series) if _has(text, series) else -1.0
        if until(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.2)


def _has(text: str, series: str) -> bool:
    return any(line.startswith(series + " ") for line in text.splitlines())


def assert_json_stop(running: Running) -> None:
    """SIGTERM: exit 0 within seconds, no traceback, every stderr line a JSON object, the last
    one saying the service stopped."""
    code, seconds, err = running.stop(signal.SIGTERM)
    assert code == 0 and "Traceback" not in err, (code, err)
    assert seconds < STOP_S, seconds
    lines = [json.loads(line) for line in err.splitlines()]  # every line parses
    assert lines and all({"time", "level", "logger", "message"} <= set(e) for e in lines), err
    assert lines[-1]["message"].endswith("stopped") and lines[-1]["signal"] == "SIGTERM", err


def test_services_serve_health_and_metrics_and_stop_on_sigterm(net: Net, tmp_path: Path) -> None:
    with ExitStack() as stack:
        hub = stack.enter_context(
            spawn(_cli(net.file, net.data, HUB, "hub", "serve", *JSON_METRICS), tmp_path)
        )
        hub_port = hub.wait_line("listening on 127.0.0.1:").rsplit(":", 1)[1].strip()
        hub_metrics = metrics_port(hub)
        hub_args = ["--hub", net.addr[HUB], "--hub-port", hub_port]
        agent = stack.enter_context(spawn(
            _cli(net.file, net.data, MACHINE, "agent", "receive", *hub_args, *JSON_METRICS),
            tmp_path,
        ))  # fmt: skip
        agent_metrics = metrics_port(agent, json_stdout=True)
        agent.wait_line("connected")
        tower = stack.enter_context(spawn(
            _cli(net.file, net.data, TOWER, "watchtower", "serve", "--poll-interval", "0.1",
                 *JSON_METRICS),
            tmp_path,
        ))  # fmt: skip
        tower_metrics = metrics_port(tower)
        asset = stack.enter_context(spawn(
            _cli(net.file, net.data, ASSET_AGENT, "asset", "run", net.asset, *hub_args,
                 "--tariff", TARIFF, "--source", "http", "--http-port", "0", *JSON_METRICS),
            tmp_path,
        ))  # fmt: skip
        asset_metrics = metrics_port(asset, json_stdout=True)
        asset.wait_line("listening", seconds=START_S)
        api = stack.enter_context(spawn(
            ["api", "serve", "--network", str(net.file), "--data-dir", str(net.data),
             "--port", "0", *JSON_METRICS],
            tmp_path,
        ))  # fmt: skip
        api_metrics = metrics_port(api)

        for port in (hub_metrics, agent_metrics, tower_metrics, asset_metrics, api_metrics):
            health = healthy(port)
            assert health["ok"] is True and health["blocks_behind"] in (0, 1), health
            assert isinstance(health["block"], int) and health["block"] > 0, health

        hub_text = scrape(hub_metrics, "/metrics")[1]
        machine = net.addr[MACHINE]
        assert sample(hub_text, "cise_hub_forwarded_total") == 0
        assert sample(hub_text, "cise_transactions_pending") == 0
        assert sample(hub_text, "cise_deadlines_at_risk") == 0
        channel = capacity_series(hub_text, machine)
        assert sample(hub_text, channel) == 1_000_000, hub_text  # the hub's deposit: 1 euro
        tower_text = scrape(tower_metrics, "/metrics")[1]
        assert sample(tower_text, "cise_tower_channels_guarded") >= 0
        assert sample(scrape(asset_metrics, "/metrics")[1], "cise_asset_uses_accepted_total") == 0

        paid_in = 'cise_payments_total{direction="in",outcome="completed"}'
        assert not _has(scrape(agent_metrics, "/metrics")[1], paid_in)  # no payment yet
        code = main(_cli(net.file, net.data, USER, "agent", "pay", *hub_args, machine, "0.01",
                         "--payment-id", str(os.getpid() % 1_000_000 + 7)))  # fmt: skip
        assert code == 0
        agent.wait_line('"payer"', seconds=STOP_S)
        assert wait_sample(agent_metrics, paid_in, lambda v: v >= 1) == 1
        assert wait_sample(hub_metrics, "cise_hub_forwarded_total", lambda v: v >= 1) == 1
        assert wait_sample(hub_metrics, paid_in, lambda v: v >= 1) == 1  # the user paid the hub
        assert wait_sample(hub_metrics, channel, lambda v: v < 1_000_000) == 1_000_000 - 10_000

        for running in (agent, asset):  # their stdout is JSON lines, the metrics line too
            assert all(json.loads(line) is not None for line in running.lines), running.lines
        for running in (api, asset, agent, tower, hub):
            assert_json_stop(running)

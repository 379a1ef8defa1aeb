"""A machine's meter events over an authenticated endpoint, through the real processes.

On a `cise chain` network, `cise asset run --source http --meter-token-file FILE` serves a
washer; a POST without the machine's token, or with a wrong one, is refused (401) and charges
nothing; `cise meter send` with the token gets the events charged. The agent is then killed
(SIGKILL) while a `cise meter send` runs: it keeps the events it could not send buffered (exit
1); once the agent runs again, a re-run sends them first, and the ledger holds every event exactly once (the replayed one is
answered as before, with its first ledger seq).
"""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from assets.ledger_store import LedgerStore
from channels.core.types import Address, to_checksum
from channels.signer import LocalSigner
from cise.main import main
from cise.network import load_network
from tests.integration.test_cli_asset import TARIFF, load_asset_id
from tests.integration.test_cli_channel import running_chain
from tests.integration.test_cli_hub import _cli, _spawn, _stop

pytestmark = pytest.mark.node

OPERATOR, HUB, USER, MACHINE, MAKER, SERVICER = 0, 4, 5, 6, 7, 8
WRONG = "0f" * 32


def _post(url: str, token: str | None) -> tuple[int, str]:
    headers = {"content-type": "application/json"}
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    request = urllib.request.Request(
        f"{url}/events", data=b'{"event_id": "x"}', headers=headers, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _lines_of(process: subprocess.Popen[str], count: int, timeout: float) -> list[str]:
    """The next `count` stdout lines of `process`, waiting at most `timeout` seconds in all (a
    thread reads them: a pipe's buffered reader can hold several lines that select() misses)."""
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        assert process.stdout is not None
        for _ in range(count):
            lines.put(process.stdout.readline())

    threading.Thread(target=read, daemon=True).start()
    deadline = time.monotonic() + timeout
    return [lines.get(timeout=max(0.0, deadline - time.monotonic())) for _ in range(count)]


def _send(
    url: str, token_file: Path, buffer: Path, events: list[dict[str, object]], *more: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cise.main", "meter", "send", "--url", url,
         "--token-file", str(token_file), "--buffer", str(buffer), *more],
        input="".join(json.dumps(e) + "\n" for e in events),
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_meter_events_need_the_token_and_survive_a_killed_agent_charged_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    tokens = tmp_path / "tokens"  # the agent's file: every machine's line
    machine_token = tmp_path / "washer-3.token"  # the machine's own line
    buffer = tmp_path / "washer-3-buffer.sqlite"
    assert main(["meter", "token", "washer-3", "--append", str(tokens)]) == 0
    machine_token.write_text(tokens.read_text())
    machine_token.chmod(0o600)
    token = tokens.read_text().split()[1]
    with running_chain(tmp_path / "network.json", settle_timeout=20) as network_file:
        keys = load_network(network_file).dev_keys
        addr = {i: to_checksum(Address(LocalSigner(keys[i]).address)) for i in range(9)}

        def cli(account: int, *argv: str) -> int:
            return main(_cli(network_file, data, account, *argv))

        assert cli(USER, "channel", "open", addr[HUB], "--deposit", "10") == 0
        for partner in (MACHINE, MAKER, SERVICER):
            assert cli(HUB, "channel", "open", addr[partner], "--deposit", "5") == 0
        split = f"{addr[MAKER]}=600000,{addr[SERVICER]}=400000"
        assert cli(OPERATOR, "asset", "register", "washer-3", "--agent", addr[MACHINE],
                   "--split", split) == 0  # fmt: skip
        capsys.readouterr()

        hub = _spawn(_cli(network_file, data, HUB, "hub", "serve", "--fee-flat", "0",
                          "--fee-ppm", "0"))  # fmt: skip
        processes: list[subprocess.Popen[str]] = [hub]
        try:
            assert hub.stdout is not None
            line = hub.stdout.readline()
            assert "listening on 127.0.0.1:" in line, line + _stop(hub)[1]
            hub_args = ["--hub", addr[HUB], "--hub-port", line.rsplit(":", 1)[1].strip()]
            user_args = ["--accept-charges-from", addr[MACHINE], "--max-charge", "2"]
            for account, extra in ((USER, user_args), (MAKER, []), (SERVICER, [])):
                peer = _spawn(
                    _cli(network_file, data, account, "agent", "receive", *hub_args,
                         "--seconds", "180", *extra)
                )  # fmt: skip
                processes.append(peer)
                assert peer.stdout is not None and "connected" in peer.stdout.readline()

            def start_agent() -> tuple[subprocess.Popen[str], str]:
                agent = _spawn(
                    _cli(network_file, data, MACHINE, "asset", "run", "washer-3", *hub_args,
                         "--tariff", TARIFF, "--users", addr[USER], "--source", "http",
                         "--seconds", "120", "--meter-token-file", str(tokens))
                )  # fmt: skip
                processes.append(agent)
                assert agent.stdout is not None
                first = agent.stdout.readline()
                assert "listening" in first, first + _stop(agent)[1]
                return agent, f"http://{json.loads(first)['listening']}"

            agent, url = start_agent()
            # no token, a wrong one: 401, and nothing reaches the agent
            for presented in (None, WRONG):
                status, answer = _post(url, presented)
                assert status == 401 and "meter token" in json.loads(answer)["error"]

            now = int(time.time())
            user = addr[USER].lower()

            def use(event_id: str, at: int) -> dict[str, object]:
                return {"event_id": event_id, "user": user, "units": 1, "at": at, "prepaid": True}

            sent = _send(url, machine_token, buffer, [use("m1", now - 50), use("m2", now - 40)])
            assert sent.returncode == 0, sent.stderr
            outcomes = [json.loads(x) for x in sent.stdout.splitlines()]
            assert [(o["event_id"], o["status"]) for o in outcomes] == [
                ("m1", "charged"), ("m2", "charged"),
            ]  # fmt: skip
            first_m1_seq = outcomes[0]["seq"]
            wrong_token = tmp_path / "wrong.token"
            wrong_token.write_text(f"washer-3 {WRONG}\n")
            wrong_token.chmod(0o600)
            refused = _send(url, wrong_token, buffer, [use("m3", now - 30)])
            assert refused.returncode == 2, refused.stderr
            assert "the asset agent refused the meter token" in refused.stderr

            # a sender that runs on: it sends m3 (kept by the refused run) and m4, then the
            # agent is killed (SIGKILL) and the machine meters m5 and replays m1
            sender = subprocess.Popen(
                [sys.executable, "-m", "cise.main", "meter", "send", "--url", url,
                 "--token-file", str(machine_token), "--buffer", str(buffer),
                 "--drain-timeout", "2", "--retry-max", "1"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )  # fmt: skip
            processes.append(sender)
            assert sender.stdin is not None
            sender.stdin.write(json.dumps(use("m4", now - 20)) + "\n")
            sender.stdin.flush()
            answered = [json.loads(x) for x in _lines_of(sender, 2, 60)]
            assert [(o["event_id"], o["status"]) for o in answered] == [
                ("m3", "charged"), ("m4", "charged"),
            ]  # fmt: skip
            agent.send_signal(signal.SIGKILL)
            agent.communicate(timeout=15)
            later = [use("m5", now - 10), use("m1", now - 50)]  # m1 again: a replay
            out, err = sender.communicate("".join(json.dumps(e) + "\n" for e in later), 60)
            assert sender.returncode == 1, err
            assert "2 events still buffered" in err and out == ""

            agent, url = start_agent()  # back, on another port: the re-run sends m5, m1 first
            resent = _send(url, machine_token, buffer, [])
            assert resent.returncode == 0, resent.stderr
            outcomes = [json.loads(x) for x in resent.stdout.splitlines()]
            assert [(o["event_id"], o["status"]) for o in outcomes] == [
                ("m5", "charged"), ("m1", "charged"),
            ]  # fmt: skip
            assert outcomes[1]["seq"] == first_m1_seq  # the replay, answered as before
            assert _post(url, None)[0] == 401  # logged by the agent, which keeps serving
            _, agent_log = _stop(agent)
        finally:
            for process in reversed(processes):
                if process.poll() is None:
                    _stop(process)
    assert "POST /events from 127.0.0.1 refused: no meter token" in agent_log
    assert token not in agent_log and WRONG not in agent_log
    with LedgerStore(data / f"asset-{load_asset_id('washer-3')}-ledger.sqlite") as ledger:
        charged = [e.decode_use_body().event_id for e in ledger.entries() if e.kind == 1]
    assert sorted(charged) == ["m1", "m2", "m3", "m4", "m5"]  # each once; m1 was sent twice

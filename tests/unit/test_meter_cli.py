"""`cise meter token`, `cise meter send`'s refusals of bad input and of a server without the pinned
certificate, and `cise asset run --meter-token-file` refusing an unusable file: before any network
(chain) is needed."""

from __future__ import annotations

import contextlib
import io
import json
import socket
import stat
import sys
import threading
from pathlib import Path

import pytest

from assets.meter_auth import load_tokens
from assets.meter_outbox import MeterOutbox
from channels.tls import TlsConfig
from cise.main import main

HUB = "0x" + "44" * 20
TARIFF = '{"kind": "cycle", "price": 1234567, "max_units": 1}'


def test_meter_token_appends_fresh_lines_to_a_private_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "tokens"
    assert main(["meter", "token", "washer-1", "--append", str(path)]) == 0
    assert main(["meter", "token", "washer-2", "--append", str(path)]) == 0
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    tokens = load_tokens(path)
    assert sorted(tokens) == ["washer-1", "washer-2"]
    assert tokens["washer-1"].decode() not in capsys.readouterr().out  # never printed
    assert main(["meter", "token", "washer-1", "--append", str(path)]) == 2
    assert "has a token for 'washer-1' already" in capsys.readouterr().err
    assert main(["meter", "token", "bad name!", "--append", str(path)]) == 2
    assert "machine name" in capsys.readouterr().err
    path.chmod(0o644)
    assert main(["meter", "token", "washer-3", "--append", str(path)]) == 2
    assert "chmod 600" in capsys.readouterr().err
    assert len(path.read_text().splitlines()) == 2  # nothing was added


def test_asset_run_refuses_an_unusable_token_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "tokens"
    path.write_text("washer " + "ab" * 32 + "\n")
    path.chmod(0o644)
    run = ["asset", "run", "washer", "--hub", HUB, "--hub-port", "1", "--tariff", TARIFF,
           "--network", str(tmp_path / "no-network.json")]  # fmt: skip
    assert main([*run, "--source", "http", "--meter-token-file", str(path)]) == 2
    assert "group or others may access it (mode 0644); run: chmod 600" in capsys.readouterr().err
    path.chmod(0o600)
    assert main([*run, "--source", "stdin", "--meter-token-file", str(path)]) == 2
    assert "--meter-token-file is for --source http" in capsys.readouterr().err
    path.write_text("washer short\n")
    assert main([*run, "--source", "http", "--meter-token-file", str(path)]) == 2
    assert "line 1: the token of 'washer' must be at least 32 bytes" in capsys.readouterr().err


def test_meter_send_buffers_only_events_and_reports_what_is_left(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    token = tmp_path / "washer.token"
    assert main(["meter", "token", "washer", "--append", str(token)]) == 0
    buffer = tmp_path / "buffer.sqlite"
    lines = ['{"event_id": "a1", "user": "0x00", "units": 1, "at": 1}', "{not json",
             '{"event_id": "a' + "x" * 70_000 + '"}', "[1, 2]", "", '{"event_id": "a2"}']  # fmt: skip
    send = ["meter", "send", "--url", "http://127.0.0.1:9", "--token-file", str(token),
            "--buffer", str(buffer), "--drain-timeout", "1"]  # fmt: skip
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO("\n".join(lines).encode())))
    capsys.readouterr()
    assert main(send) == 1
    out, err = capsys.readouterr()
    assert "2 events still buffered" in err  # a1 and a2: port 9 answers nobody
    refused = [json.loads(x) for x in out.splitlines()]
    assert [(o["status"], o["reason"].split(":")[0]) for o in refused] == [
        ("rejected", "line 2"), ("rejected", "line 3"), ("rejected", "line 4"),
    ]  # fmt: skip
    assert "longer than 65536 bytes" in refused[1]["reason"]
    with MeterOutbox(buffer) as outbox:
        conn = outbox.connection()
        assert [b.event_id for b in conn.oldest(10)] == ["a1", "a2"]
        conn.close()
    for bad_url in ("ftp://127.0.0.1:1", "http://", "http://127.0.0.1:1?x=1"):
        assert main([*send[:3], bad_url, *send[4:]]) == 2
        assert "--url must be" in capsys.readouterr().err


def test_meter_send_refuses_a_server_without_the_pinned_certificate_and_keeps_the_events(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An HTTPS server showing another certificate than --server-cert is not the agent: a fatal
    'TLS refused' naming the pinned file (not retried as an agent that did not answer), exit 2,
    the event kept in the buffer."""
    server_tls = TlsConfig.load(tmp_path / "server", b"\x11" * 20)
    pinned = TlsConfig.load(tmp_path / "pinned", b"\x22" * 20).certificate_path
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    served: list[str] = []

    def serve() -> None:  # handshakes until closed; never answers an event
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn, contextlib.suppress(OSError):
                conn.settimeout(5)
                server_tls.server_context.wrap_socket(conn, server_side=True).close()
                served.append("handshake")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    token = tmp_path / "washer.token"
    assert main(["meter", "token", "washer", "--append", str(token)]) == 0
    buffer = tmp_path / "buffer.sqlite"
    event = '{"event_id": "a1", "user": "0x' + "55" * 20 + '", "units": 1, "at": 1}\n'
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(event.encode())))
    capsys.readouterr()
    try:
        code = main(["meter", "send", "--url", f"https://127.0.0.1:{port}", "--server-cert",
                     str(pinned), "--token-file", str(token), "--buffer", str(buffer),
                     "--drain-timeout", "20"])  # fmt: skip
    finally:
        listener.close()
        thread.join(timeout=10)
    out, err = capsys.readouterr()
    assert code == 2 and out == "", err
    assert f"TLS refused: the server at https://127.0.0.1:{port}" in err, err
    assert str(pinned) in err and "retrying" not in err, err
    assert "1 events stay in" in err
    with MeterOutbox(buffer) as outbox:
        conn = outbox.connection()
        assert [b.event_id for b in conn.oldest(10)] == ["a1"]
        conn.close()

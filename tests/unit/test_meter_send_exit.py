"""`cise meter send` as a real process ends with its own exit code when the agent refuses its
token while stdin is still open (a controller's pipe that never closes). Before, the stdin reader
thread sat in `readline` and the interpreter aborted at exit (SIGABRT, "could not acquire lock for
<stdin>") instead of exiting 2."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from cise.main import main


class _Refusing(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", "0")))
        body = b'{"error": "a wrong meter token"}'
        self.send_response(401)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def refusing_agent() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Refusing)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_refused_token_exits_2_while_stdin_is_still_open(
    refusing_agent: str, tmp_path: Path
) -> None:
    token = tmp_path / "washer.token"
    assert main(["meter", "token", "washer", "--append", str(token)]) == 0
    command = [sys.executable, "-m", "cise.main", "meter", "send", "--url", refusing_agent,
               "--token-file", str(token), "--buffer", str(tmp_path / "buffer.sqlite")]  # fmt: skip
    process = subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        assert process.stdin is not None
        process.stdin.write(b'{"event_id": "e1", "user": "0x00", "units": 1, "at": 1}\n')
        process.stdin.flush()  # and the pipe stays open: more events could follow
        process.wait(timeout=60)  # not communicate(): that would close stdin
        assert process.stderr is not None
        err = process.stderr.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
    text = err.decode()
    assert process.returncode == 2, (process.returncode, text)
    assert "refused the meter token" in text and "Fatal Python error" not in text, text
    assert b"Traceback" not in err

"""`cise.tls_options`: PORT or HOST:PORT, when TLS is on, and the pinned HTTPS client context."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from channels.tls import TlsConfig
from cise.errors import CliError
from cise.main import build_parser
from cise.tls_options import host_port, load_tls, pinned_context, wants_tls


def test_host_port() -> None:
    assert host_port("9000", "--tower-port") == ("127.0.0.1", 9000)
    assert host_port("127.0.0.3:9000", "--tower-port") == ("127.0.0.3", 9000)
    assert host_port("[::1]:9000", "--tower-port") == ("::1", 9000)
    for bad in ("", "x", "127.0.0.3:", ":9000", "127.0.0.3:0", "127.0.0.3:70000", "h:p"):
        with pytest.raises(CliError, match="--tower-port"):
            host_port(bad, "--tower-port")


def test_tls_when_forced_or_off_the_loopback() -> None:
    assert not wants_tls(False, "127.0.0.1", "127.0.0.2", "localhost", "::1")
    assert wants_tls(True, "127.0.0.1")
    assert wants_tls(False, "127.0.0.1", "10.0.0.2")
    assert wants_tls(False, "hub.example.org")


def test_pinned_context(tmp_path: Path) -> None:
    tls = TlsConfig.load(tmp_path, b"\x33" * 20)
    context = pinned_context(tls.certificate_path)
    assert context.verify_mode is ssl.CERT_REQUIRED and not context.check_hostname
    with pytest.raises(CliError, match="needs --server-cert"):
        pinned_context(None)
    with pytest.raises(CliError, match="--server-cert"):
        pinned_context(tmp_path / "missing.crt")


def test_a_key_readable_by_others_is_named(tmp_path: Path) -> None:
    tls = TlsConfig.load(tmp_path, b"\x44" * 20)
    tls.key_path.chmod(0o644)
    with pytest.raises(CliError, match="chmod 600"):
        load_tls(tmp_path, b"\x44" * 20)


def test_every_service_command_takes_host_and_tls() -> None:
    parser = build_parser()
    for argv in (
        ["hub", "serve", "--host", "127.0.0.2", "--tls"],
        ["watchtower", "serve", "--host", "127.0.0.3", "--tls"],
        ["api", "serve", "--host", "127.0.0.4", "--tls"],
        ["agent", "receive", "--hub", "0x" + "11" * 20, "--hub-port", "1", "--hub-host", "h",
         "--tls"],
        ["asset", "run", "a", "--hub", "0x" + "11" * 20, "--hub-port", "1", "--hub-host", "h",
         "--tariff", "{}", "--host", "127.0.0.5", "--tls"],
    ):  # fmt: skip
        args = parser.parse_args(argv)
        assert args.tls is True

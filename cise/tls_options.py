"""The `--host`/`--tls` options of the service commands and the HOST:PORT form of a peer.

A server binds `--host` (default 127.0.0.1); a client names its peer's host (`--hub-host`, a tower's
HOST:PORT). TLS (`channels.tls`: the party's self-signed certificate in its data directory, made on
first use) is used when `--tls` is given or the host is not a loopback address (plain TCP is
refused there by the transport). Both ends must agree: a plain client cannot talk to a TLS server
on the loopback, nor the reverse; each end says so.

Parsing only: who a peer is stays the transport's signed challenge.
"""

from __future__ import annotations

import argparse
import ssl
from pathlib import Path

from channels.tls import TlsConfig, TlsConfigError, is_loopback_host
from cise.errors import CliError

DEFAULT_HOST = "127.0.0.1"
TLS_HELP = (
    "use TLS (always on for a host that is not a loopback address; both ends must agree: "
    "a plain end and a TLS end refuse each other)"
)


def add_host_argument(parser: argparse.ArgumentParser, option: str = "--host") -> None:
    """`--host` (a server's bind address) or `--hub-host` (where a client connects)."""
    what = "address to listen on" if option == "--host" else "the hub's host"
    parser.add_argument(option, default=DEFAULT_HOST, help=f"{what} (default {DEFAULT_HOST})")


def add_tls_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tls", action="store_true", help=TLS_HELP)


def wants_tls(forced: bool, *hosts: str) -> bool:
    """TLS when forced or when any of `hosts` is not a loopback address."""
    return forced or any(not is_loopback_host(host) for host in hosts)


def load_tls(data_dir: str | Path, address: bytes) -> TlsConfig:
    """The party's TLS key and certificate (made on first use); CliError naming the file."""
    try:
        return TlsConfig.load(Path(data_dir), address)
    except (TlsConfigError, OSError) as exc:
        raise CliError(f"TLS: {exc}") from None


def tls_for(
    forced: bool, hosts: list[str], data_dir: str | Path, address: bytes
) -> TlsConfig | None:
    """`load_tls` when `wants_tls`, else None (plain TCP, loopback only)."""
    return load_tls(data_dir, address) if wants_tls(forced, *hosts) else None


def add_server_cert_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--server-cert",
        type=Path,
        help="https: the agent's certificate file (it prints its path), pinned as the only CA",
    )


def pinned_context(certificate: Path | None) -> ssl.SSLContext:
    """An HTTPS client context trusting `certificate` only (the server's self-signed one; its
    name is an address, so host names are not checked); CliError without it or when unusable."""
    if certificate is None:
        raise CliError("an https URL needs --server-cert FILE (the server's certificate)")
    try:
        context = ssl.create_default_context(cafile=str(certificate))
    except (OSError, ssl.SSLError) as exc:
        raise CliError(f"--server-cert {certificate}: {exc}") from None
    context.check_hostname = False
    return context


def host_port(text: str, what: str, default_host: str = DEFAULT_HOST) -> tuple[str, int]:
    """PORT or HOST:PORT (an IPv6 host in brackets: [::1]:PORT); CliError naming `what`."""
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = default_host, text
    host = host.removeprefix("[").removesuffix("]")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise CliError(f"{what} {text!r}: want PORT or HOST:PORT (port 1..65535)")
    return host, int(port)


def show(host: str) -> str:
    """`host` as it goes before :PORT (an IPv6 address in brackets)."""
    return f"[{host}]" if ":" in host else host


__all__ = [
    "DEFAULT_HOST",
    "add_host_argument",
    "add_server_cert_argument",
    "add_tls_argument",
    "host_port",
    "load_tls",
    "pinned_context",
    "show",
    "tls_for",
    "wants_tls",
]

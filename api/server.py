"""Serving the API app with hypercorn's trio worker: plain HTTP on the loopback, HTTPS anywhere.

`serve(app, port=0)` binds `127.0.0.1:<port>` (0: any free port), reports the bound port through
`task_status.started(port)` and serves until cancelled; `host=` binds another address and
`certificate=(certfile, keyfile)` serves HTTPS (TLS 1.2+, hypercorn's own context). What it must
never do: bind a host that is not a loopback address without TLS, or serve HTTP/3 or anything but
the app given.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

import trio
from hypercorn.config import Config
from hypercorn.trio import serve as hypercorn_serve
from starlette.applications import Starlette

from channels.tls import is_loopback_host

HOST = "127.0.0.1"


def _config(port: int, host: str = HOST, certificate: tuple[Path, Path] | None = None) -> Config:
    config = Config()
    config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    if certificate is not None:
        config.certfile, config.keyfile = str(certificate[0]), str(certificate[1])
    config.accesslog = None
    config.loglevel = "WARNING"  # hypercorn's own "Running on ..." line: the caller prints one
    config.graceful_timeout = 1.0
    return config


async def serve(
    app: Starlette,
    *,
    port: int = 0,
    host: str = HOST,
    certificate: tuple[Path, Path] | None = None,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve `app` on `host`:`port` until cancelled (HTTPS with `certificate` = (certificate
    file, key file)); `task_status.started(bound port)`. ValueError for a host that is not a
    loopback address without a certificate."""
    if not 0 <= port <= 65535:
        raise ValueError(f"port must be 0..65535, got {port}")
    if certificate is None and not is_loopback_host(host):
        raise ValueError(f"refusing to serve plain HTTP on {host}: off the loopback only HTTPS")
    config = _config(port, host, certificate)
    async with trio.open_nursery() as nursery:
        binds = cast("list[str]", await nursery.start(_hypercorn, cast("Any", app), config))
        bound = urlsplit(binds[0]).port
        if bound is None:  # pragma: no cover - hypercorn always names the port
            raise RuntimeError(f"hypercorn reported no port: {binds}")
        task_status.started(bound)


async def _hypercorn(app: Any, config: Config, *, task_status: trio.TaskStatus[list[str]]) -> None:
    await hypercorn_serve(app, config, task_status=task_status)


__all__ = ["HOST", "serve"]

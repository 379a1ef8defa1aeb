"""Serving the API app with hypercorn's trio worker, on 127.0.0.1 only.

`serve(app, port=0)` binds `127.0.0.1:<port>` (0: any free port), reports the bound port through
`task_status.started(port)` and serves until cancelled. What it must never do: bind any other
address (there is no host parameter), or serve TLS, HTTP/3 or anything but the app given.
"""

from __future__ import annotations

from typing import Any, cast
from urllib.parse import urlsplit

import trio
from hypercorn.config import Config
from hypercorn.trio import serve as hypercorn_serve
from starlette.applications import Starlette

HOST = "127.0.0.1"


def _config(port: int) -> Config:
    config = Config()
    config.bind = [f"{HOST}:{port}"]
    config.accesslog = None
    config.loglevel = "WARNING"  # hypercorn's own "Running on ..." line: the caller prints one
    config.graceful_timeout = 1.0
    return config


async def serve(
    app: Starlette,
    *,
    port: int = 0,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve `app` on 127.0.0.1:`port` until cancelled; `task_status.started(bound port)`."""
    if not 0 <= port <= 65535:
        raise ValueError(f"port must be 0..65535, got {port}")
    async with trio.open_nursery() as nursery:
        binds = cast("list[str]", await nursery.start(_hypercorn, cast("Any", app), _config(port)))
        bound = urlsplit(binds[0]).port
        if bound is None:  # pragma: no cover - hypercorn always names the port
            raise RuntimeError(f"hypercorn reported no port: {binds}")
        task_status.started(bound)


async def _hypercorn(app: Any, config: Config, *, task_status: trio.TaskStatus[list[str]]) -> None:
    await hypercorn_serve(app, config, task_status=task_status)


__all__ = ["HOST", "serve"]

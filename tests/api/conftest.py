"""One real Bundles demo day on the embedded chain, kept for the API tests, and the API over it.

Session-scoped: the day runs once (~15 s); its files (ledgers, the hub's settlement file) stay in
a temporary folder; the API is served for real by `api.server.serve` on a free 127.0.0.1 port in
a thread of its own, and the tests talk HTTP to it.
"""

from __future__ import annotations

import contextlib
import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio
from eth_account import Account
from starlette.applications import Starlette

from api.app import create_app
from api.server import serve
from api.sources import ApiSources
from channels.chain.connection import Connection
from channels.chain.deploy import deploy
from cise.demo_bundles import MACHINES, BundlesResult, asset_id_of, run_bundles

SETTLE_TIMEOUT = 20  # blocks, as `cise demo`
USES = 12


@dataclass(frozen=True)
class Served:
    """The demo day, its sources and the URL the API answers on."""

    url: str
    sources: ApiSources
    result: BundlesResult
    keep_dir: Path

    def get(self, path: str) -> tuple[int, Any]:
        return self.request("GET", path)

    def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, Any]:
        headers = {"content-type": "application/json"} if body is not None else {}
        req = urllib.request.Request(self.url + path, data=body, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=30) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                return exc.code, json.loads(raw)
            except ValueError:
                return exc.code, raw


@pytest.fixture(scope="session")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    keep_dir = tmp_path_factory.mktemp("bundles")
    connection = Connection.embedded()
    operator = Account.from_key(connection.dev_keys[0])
    deployment = deploy(connection, operator, SETTLE_TIMEOUT)
    result = run_bundles(connection, operator, deployment, uses=USES, keep_dir=keep_dir)
    sources = ApiSources(
        connection=connection,
        deployment=deployment,
        ledgers={asset_id_of(n): keep_dir / f"{n}-ledger.sqlite" for n in MACHINES},
        names={asset_id_of(n): n for n in MACHINES},
        settlement=keep_dir / "settlement.sqlite",
        towers=[],
        live=None,
    )
    with serving(create_app(sources)) as url:
        yield Served(url, sources, result, keep_dir)


@contextlib.contextmanager
def serving(app: Starlette) -> Iterator[str]:
    """`app` served by `api.server.serve` on a free 127.0.0.1 port, in a thread with its own trio
    loop; yields the base URL and stops the server at the end."""
    ready = threading.Event()
    state: dict[str, Any] = {}

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            state["port"] = await nursery.start(partial(serve, app, port=0))
            state["token"] = trio.lowlevel.current_trio_token()
            state["scope"] = nursery.cancel_scope
            ready.set()

    def run() -> None:
        try:
            trio.run(main)
        except BaseException as exc:  # reported below
            state["error"] = exc
            ready.set()

    thread = threading.Thread(target=run, name="api-server", daemon=True)
    thread.start()
    assert ready.wait(30), "the API server did not start"
    if "error" in state:
        raise state["error"]
    try:
        yield f"http://127.0.0.1:{state['port']}"
    finally:
        trio.from_thread.run_sync(state["scope"].cancel, trio_token=state["token"])
        thread.join(10)
        assert not thread.is_alive(), "the API server did not stop"

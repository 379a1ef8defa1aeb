"""The HTTP API as a Starlette app: the routes of docs/api.md, `/openapi.json`, and the dashboard.

`create_app(sources)` builds it. Each GET handler checks its parameters (a bad one is a 400, an
unknown asset a 404, both as `{"error": ...}`), then runs one blocking read of `api.sources` in a
worker thread, holding `sources.lock` (one chain or sqlite read at a time). The one write is
`POST /api/settlement/requests` (`api.auth`). `/` serves the static dashboard in `api/static/`
(mounted last, so every `/api/...` route wins; an unknown `/api/...` path is a JSON 404).

What it must never do: write anything outside `api.auth`'s signed endpoint, or show a traceback:
an unexpected exception answers 500 `{"error": "internal error"}` (a 5xx is a bug, and the tests
look for them) and is logged by the server.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import trio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from api import sources as reads
from api.auth import MAX_BODY_BYTES, ApiError, request_settlement
from api.openapi import LIMIT_DEFAULT, LIMIT_MAX, SEQ_MAX, openapi_document
from api.sources import ApiSources, NotFoundError

STATIC_DIR = Path(__file__).parent / "static"
_ASSET_ID = re.compile(r"^0x[0-9a-fA-F]{64}$")
_INTEGER = re.compile(r"^[+-]?[0-9]{1,30}$")

Handler = Callable[[Request], Awaitable[Response]]


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _asset_id(request: Request) -> bytes:
    text = request.path_params.get("asset_id", "")
    if not isinstance(text, str) or not _ASSET_ID.match(text):
        raise ApiError(400, "asset_id: must be 0x + 64 hex digits")
    return bytes.fromhex(text[2:])


def _int_query(request: Request, name: str, default: int, low: int, high: int) -> int:
    values = request.query_params.getlist(name)
    if not values:
        return default
    text = values[-1]
    if not _INTEGER.match(text):
        raise ApiError(400, f"{name}: must be an integer")
    value = int(text)
    if not low <= value <= high:
        raise ApiError(400, f"{name}: must be {low}..{high}")
    return value


async def _read_body(request: Request, max_bytes: int = MAX_BODY_BYTES) -> bytes:
    """A JSON request body, read in pieces: 415 for a content-type other than JSON (none is taken
    as JSON), 413 as soon as the declared length or the bytes read pass `max_bytes` (the rest is
    never buffered)."""
    content_type = request.headers.get("content-type")
    if content_type is not None:
        media = content_type.split(";", 1)[0].strip().lower()
        if media != "application/json" and not media.endswith("+json"):
            raise ApiError(
                415, f"content-type must be application/json, not {content_type[:100]!r}"
            )
    too_large = ApiError(413, f"the body is larger than the limit of {max_bytes} bytes")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise too_large
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            raise too_large
    return bytes(body)


async def _read(sources: ApiSources, function: Callable[..., Any], *args: Any) -> Any:
    async with sources.lock:
        return await trio.to_thread.run_sync(function, sources, *args)


def create_app(sources: ApiSources) -> Starlette:
    """The API over `sources` (docs/api.md), the OpenAPI document and the dashboard at `/`."""

    def handler(produce: Callable[[Request], Awaitable[Any]]) -> Handler:
        async def endpoint(request: Request) -> Response:
            try:
                return JSONResponse(await produce(request))
            except ApiError as exc:
                return _error(exc.status, exc.message)
            except NotFoundError as exc:
                return _error(404, str(exc.args[0]) if exc.args else "not found")

        return endpoint

    def simple(function: Callable[[ApiSources], Any]) -> Handler:
        async def produce(request: Request) -> Any:
            return await _read(sources, function)

        return handler(produce)

    async def asset(request: Request) -> Any:
        return await _read(sources, reads.read_asset, _asset_id(request))

    async def ledger(request: Request) -> Any:
        asset_id = _asset_id(request)
        from_seq = _int_query(request, "from_seq", 1, 1, SEQ_MAX)
        limit = _int_query(request, "limit", LIMIT_DEFAULT, 1, LIMIT_MAX)
        return await _read(sources, reads.read_ledger_page, asset_id, from_seq, limit)

    async def verification(request: Request) -> Any:
        return await _read(sources, reads.read_verification, _asset_id(request))

    async def settlement_request(request: Request) -> Any:
        return await request_settlement(sources, await _read_body(request))

    async def openapi(request: Request) -> Response:
        return JSONResponse(openapi_document())

    async def unknown(request: Request) -> Response:
        return _error(404, f"no such API route: {request.method} {request.url.path}")

    async def internal_error(request: Request, exc: Exception) -> Response:
        return _error(500, "internal error")

    routes: list[BaseRoute] = [
        Route("/openapi.json", openapi, methods=["GET"]),
        Route("/api/network", simple(reads.read_network), methods=["GET"]),
        Route("/api/members", simple(reads.read_members), methods=["GET"]),
        Route("/api/channels", simple(reads.read_channels), methods=["GET"]),
        Route("/api/assets", simple(reads.read_assets), methods=["GET"]),
        Route("/api/assets/{asset_id}", handler(asset), methods=["GET"]),
        Route("/api/assets/{asset_id}/ledger", handler(ledger), methods=["GET"]),
        Route("/api/assets/{asset_id}/verification", handler(verification), methods=["GET"]),
        Route("/api/settlement", simple(reads.read_settlement), methods=["GET"]),
        Route("/api/settlement/requests", handler(settlement_request), methods=["POST"]),
        Route("/api/pools", simple(reads.read_pools), methods=["GET"]),
        Route("/api/watchtowers", simple(reads.read_watchtowers), methods=["GET"]),
        Route("/api/stats", simple(reads.read_stats), methods=["GET"]),
        Route("/api/{rest:path}", unknown, methods=["GET", "POST", "PUT", "DELETE", "PATCH"]),
    ]
    dashboard = StaticFiles(directory=STATIC_DIR, html=True, check_dir=False)
    routes.append(Mount("/", app=dashboard, name="dashboard"))
    return Starlette(routes=routes, exception_handlers={Exception: internal_error})


__all__ = ["STATIC_DIR", "create_app"]

"""The API's one write: a member's signed request for a settlement round.

`POST /api/settlement/requests` takes `{"request": {"action": "settle", "timestamp": T},
"signature": "0x..."}` (optionally `"signer": "0x..."`, the address the client believes signed:
a mismatch is then a 401 instead of a 403). The signature is over the EIP-712
`ApiRequest(string action,uint256 timestamp)` under the network's domain (the channel manager's;
`channels.codec.eip712.api_request_digest`). The checks, in order, each answering with its status
and `{"error": ...}`:

- 413: the body is larger than `MAX_BODY_BYTES` (refused as soon as its declared length or the
  bytes read pass it: `api.app` reads it in pieces); 415: a content-type other than JSON;
- 400: the body is not JSON (checked before it is parsed by `channels.input_limits`: UTF-8,
  nesting at most `MAX_JSON_DEPTH` deep), or a field is missing or malformed (the error names the
  field); an action other than "settle";
- 404: the API has no settlement file (no hub to ask);
- 403: the network has no membership on chain (nobody can be a member);
- 401: the signature is malformed for recovery, does not recover, recovers to another address
  than `signer`, or the timestamp is more than `MAX_SKEW_S` seconds from the server's clock (a
  stale or future request is not authenticated: a replayed request dies after 300 s);
- 403: the signer is not an active member on chain;

then `SettlementStore(path, requests_only=True).request_round()` (the one write beside the hub
that owns the file; the hub takes open requests into its next round) and 200 with
`{"request_id": N}`.

What it must never do: write anything before every check passed, write anything but that one
request row, or trust an address the client names (the signer is always recovered).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

import trio

from api.sources import ApiSources, is_active_member
from channels.codec.ecdsa import InvalidSignature, recover_signer
from channels.codec.eip712 import api_request_digest
from channels.core.types import Address, to_checksum
from channels.input_limits import MAX_JSON_DEPTH, InputError, load_json
from settlement.store import SettlementStore, SettlementStoreError

MAX_SKEW_S = 300
MAX_BODY_BYTES = 16 * 1024  # a signed request is ~250 bytes
ACTIONS = ("settle",)
_SIGNATURE = re.compile(r"^0x[0-9a-fA-F]{130}$")
_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")


class ApiError(Exception):
    """A request the API refuses: `status` and the `{"error": message}` it answers with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """A parsed (not yet checked) signed API request."""

    action: str
    timestamp: int
    signature: bytes
    signer: Address | None


def parse_signed_request(body: bytes) -> SignedRequest:
    """The request in a POST body; `ApiError(400)` naming the field that is wrong."""
    try:
        data = load_json(body, max_bytes=MAX_BODY_BYTES, max_depth=MAX_JSON_DEPTH, what="the body")
    except InputError as exc:
        raise ApiError(400, str(exc)) from None
    if not isinstance(data, dict):
        raise ApiError(400, "the body must be a JSON object")
    request = data.get("request")
    if not isinstance(request, dict):
        raise ApiError(400, "request: must be an object {action, timestamp}")
    action = request.get("action")
    if not isinstance(action, str):
        raise ApiError(400, "request.action: must be a string")
    if action not in ACTIONS:
        raise ApiError(400, f"request.action: unknown action (known: {', '.join(ACTIONS)})")
    timestamp = request.get("timestamp")
    if not isinstance(timestamp, int) or isinstance(timestamp, bool):
        raise ApiError(400, "request.timestamp: must be an integer (unix seconds)")
    if not 0 <= timestamp < 2**256:
        raise ApiError(400, "request.timestamp: out of range")
    signature = data.get("signature")
    if not isinstance(signature, str) or not _SIGNATURE.match(signature):
        raise ApiError(400, "signature: must be 0x + 130 hex digits (65 bytes r, s, v)")
    signer = data.get("signer")
    if signer is not None and (not isinstance(signer, str) or not _ADDRESS.match(signer)):
        raise ApiError(400, "signer: must be an address (0x + 40 hex digits)")
    return SignedRequest(
        action,
        timestamp,
        bytes.fromhex(signature[2:]),
        None if signer is None else Address(bytes.fromhex(signer[2:])),
    )


def authenticate(sources: ApiSources, request: SignedRequest, now: float) -> Address:
    """The recovered signer of a fresh request; `ApiError(401)` otherwise."""
    digest = api_request_digest(sources.domain, request.action, request.timestamp)
    try:
        signer = Address(recover_signer(digest, request.signature))
    except InvalidSignature as exc:
        raise ApiError(401, f"signature: {exc}") from None
    if request.signer is not None and request.signer != signer:
        raise ApiError(401, "signature: not signed by the named signer")
    if abs(request.timestamp - now) > MAX_SKEW_S:
        raise ApiError(
            401, f"request.timestamp: more than {MAX_SKEW_S} s from the server's time ({int(now)})"
        )
    return signer


def _record_request(sources: ApiSources, signer: Address) -> int:
    """Under `sources.lock`, in a worker thread: the membership check, then the one write."""
    if not is_active_member(sources, signer):
        raise ApiError(403, f"{to_checksum(signer)} is not an active member")
    path = sources.settlement
    if path is None or not path.is_file():
        raise ApiError(404, "no settlement file: this API serves no hub")
    try:
        store = SettlementStore(path, requests_only=True)  # beside the hub that owns it
    except SettlementStoreError as exc:
        raise ApiError(404, f"the settlement file cannot be opened: {exc}") from None
    try:
        return store.request_round()
    finally:
        store.close()


async def request_settlement(
    sources: ApiSources, body: bytes, now: float | None = None
) -> dict[str, Any]:
    """Handle `POST /api/settlement/requests` (see the module docstring); `ApiError` on refusal."""
    request = parse_signed_request(body)
    if sources.settlement is None or not sources.settlement.is_file():
        raise ApiError(404, "no settlement file: this API serves no hub")
    if not sources.deployment.governed:
        raise ApiError(403, "this network has no membership on chain: writes are refused")
    signer = authenticate(sources, request, time.time() if now is None else now)
    async with sources.lock:
        request_id = await trio.to_thread.run_sync(_record_request, sources, signer)
    return {"request_id": request_id, "signer": to_checksum(signer)}


__all__ = [
    "ACTIONS",
    "MAX_BODY_BYTES",
    "MAX_SKEW_S",
    "ApiError",
    "SignedRequest",
    "authenticate",
    "parse_signed_request",
    "request_settlement",
]

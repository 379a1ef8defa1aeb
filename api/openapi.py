"""The OpenAPI 3.1 document of the HTTP API (docs/api.md), served at `GET /openapi.json`.

Hand-written, so it says exactly what the handlers in `api.app` accept and answer: every route,
its parameters with their types and limits, the POST's body, and the response shapes (required
fields and their types). It must never describe a route the app does not serve, or accept a
value there that the handler refuses with anything but a 4xx.
"""

from __future__ import annotations

from typing import Any

ASSET_ID_PATTERN = "^0x[0-9a-fA-F]{64}$"
LIMIT_MAX = 500
LIMIT_DEFAULT = 100
SEQ_MAX = 2**63 - 1

_ADDRESS = {"type": "string", "pattern": "^0x[0-9a-fA-F]{40}$"}
_ADDRESS_OR_NULL = {"type": ["string", "null"], "pattern": "^0x[0-9a-fA-F]{40}$"}
_UNITS = {"type": "integer", "minimum": 0}
_INT = {"type": "integer"}
_STR = {"type": "string"}


def _object(required: dict[str, Any], optional: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": required | (optional or {}),
        "required": sorted(required),
    }


def _array(items: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": items}


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


_SCHEMAS: dict[str, Any] = {
    "Error": _object({"error": _STR}),
    "Network": _object(
        {
            "chain_id": _INT,
            "manager": _ADDRESS,
            "token": _ADDRESS,
            "registry": _ADDRESS_OR_NULL,
            "membership": _ADDRESS_OR_NULL,
            "governor": _ADDRESS_OR_NULL,
            "financing_factory": _ADDRESS_OR_NULL,
            "treasury": _ADDRESS_OR_NULL,
            "block_number": _INT,
            "settle_timeout": _INT,
            "parameters": {
                "oneOf": [
                    {"type": "null"},
                    _object(
                        {
                            "hub_fee_cap_units": _UNITS,
                            "settlement_period_s": _INT,
                            "settle_timeout_blocks": _INT,
                        },
                        # the community treasury, on a network that has one
                        {"treasury_fee_ppm": _INT, "treasury_balance_units": _UNITS},
                    ),
                ]
            },
        }
    ),
    "Members": _object(
        {
            "members": _array(
                _object(
                    {"address": _ADDRESS, "roles": _array(_STR), "status": _STR},
                    {"token": _INT, "since": _INT},
                )
            ),
            "count": _INT,
        }
    ),
    "Channels": _object(
        {
            "channels": _array(
                _object(
                    {
                        "channel_id": _INT,
                        "participant1": _ADDRESS,
                        "participant2": _ADDRESS,
                        "state": {"type": "string", "enum": ["opened", "closed", "settled"]},
                        "deposit1_units": _UNITS,
                        "deposit2_units": _UNITS,
                        "withdrawn1_units": _UNITS,
                        "withdrawn2_units": _UNITS,
                        "total_units": _INT,
                        "capacity1_units": {"type": ["integer", "null"]},
                        "capacity2_units": {"type": ["integer", "null"]},
                    }
                )
            )
        }
    ),
    "Asset": _object(
        {
            "asset_id": {"type": "string", "pattern": ASSET_ID_PATTERN},
            "name": _STR,
            "operator": _ADDRESS_OR_NULL,
            "agent": _ADDRESS_OR_NULL,
            "split_version": _INT,
            "beneficiaries": _array(_object({"address": _ADDRESS, "ppm": _INT})),
            "uses": _INT,
            "revenue_units": _UNITS,
            "anchored_to_seq": _INT,
            "verified": {"type": "boolean"},
        },
        {"registered": {"type": "boolean"}, "entries": _INT},
    ),
    "Assets": _object({"assets": _array(_ref("Asset"))}),
    "AssetDetail": {
        "allOf": [
            _ref("Asset"),
            _object(
                {
                    "revenue_by_hour": _array(
                        _object({"t": _INT, "uses": _INT, "revenue_units": _UNITS})
                    ),
                    "income": _array(_object({"beneficiary": _ADDRESS, "units": _UNITS})),
                }
            ),
        ]
    },
    "LedgerPage": _object(
        {
            "entries": _array(
                _object(
                    {
                        "seq": _INT,
                        "kind": _STR,
                        "time": _INT,
                        "event_id": _STR,
                        "user": {"type": ["string", "null"]},
                        "fee_units": _UNITS,
                        "shares": _array(
                            _object({"beneficiary": _ADDRESS, "units": _UNITS, "payment_id": _INT})
                        ),
                    }
                )
            ),
            "next_seq": {"type": ["integer", "null"]},
        }
    ),
    "Verification": _object(
        {
            "ok": {"type": "boolean"},
            "problem": {"type": ["string", "null"]},
            "anchored_to_seq": _INT,
            "entries": _INT,
        }
    ),
    "Settlement": _object(
        {
            "rounds": _array(
                _object({"round": _INT, "status": _STR, "reason": _STR, "gas_used": _INT})
            ),
            "status": {"type": ["object", "null"]},
        }
    ),
    "Pools": _object(
        {
            "pools": _array(
                _object(
                    {
                        "pool": _ADDRESS,
                        "asset_id": {"type": "string", "pattern": ASSET_ID_PATTERN},
                        "status": {
                            "type": "string",
                            "enum": ["open", "raised", "funded", "failed"],
                        },
                        "target_units": _UNITS,
                        "raised_units": _UNITS,
                        "repaid_units": _UNITS,
                        "cap_units": _UNITS,
                        "to_operator_units": _UNITS,
                        "contributors": _INT,
                    }
                )
            )
        }
    ),
    "Watchtowers": _object(
        {
            "towers": _array(
                _object({"tower": _ADDRESS, "channels": _INT, "guards": _INT, "cursor": _INT})
            )
        }
    ),
    "Stats": _object({"payments": _INT, "uses": _INT, "time": {"type": "number"}}),
    "SettlementRequest": {
        "type": "object",
        "properties": {
            "request": {
                "type": "object",
                "properties": {
                    "action": {"type": "string", "enum": ["settle"]},
                    "timestamp": {"type": "integer", "minimum": 0},
                },
                "required": ["action", "timestamp"],
            },
            "signature": {"type": "string", "pattern": "^0x[0-9a-fA-F]{130}$"},
            "signer": _ADDRESS,
        },
        "required": ["request", "signature"],
    },
    "RequestAccepted": _object({"request_id": _INT}, {"signer": _ADDRESS}),
}


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": _ref("Error")}},
    }


def _ok(schema: str, description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(schema)}}}


_ASSET_PARAM = {
    "name": "asset_id",
    "in": "path",
    "required": True,
    "description": "the asset id: 0x + 64 hex digits",
    "schema": {"type": "string", "pattern": ASSET_ID_PATTERN},
}


def _get(summary: str, schema: str, *, asset: bool = False, **extra: Any) -> dict[str, Any]:
    responses: dict[str, Any] = {"200": _ok(schema)}
    if asset:
        responses["400"] = _error("a malformed asset id or parameter")
        responses["404"] = _error("an unknown asset")
    operation: dict[str, Any] = {
        "summary": summary,
        "operationId": extra.pop("operation_id"),
        "responses": responses,
    }
    parameters = ([_ASSET_PARAM] if asset else []) + extra.pop("parameters", [])
    if parameters:
        operation["parameters"] = parameters
    return {"get": operation}


def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 document (a fresh dict each call)."""
    paths: dict[str, Any] = {
        "/api/network": _get(
            "the network's contracts and parameters", "Network", operation_id="network"
        ),
        "/api/members": _get("members and applicants", "Members", operation_id="members"),
        "/api/channels": _get("every channel on chain", "Channels", operation_id="channels"),
        "/api/assets": _get("every asset with a ledger", "Assets", operation_id="assets"),
        "/api/assets/{asset_id}": _get(
            "one asset, with revenue per hour and income",
            "AssetDetail",
            asset=True,
            operation_id="asset",
        ),
        "/api/assets/{asset_id}/ledger": _get(
            "a page of the asset's ledger",
            "LedgerPage",
            asset=True,
            operation_id="ledger",
            parameters=[
                {
                    "name": "from_seq",
                    "in": "query",
                    "required": False,
                    "description": "the first seq to show (default 1)",
                    "schema": {"type": "integer", "minimum": 1, "maximum": SEQ_MAX},
                },
                {
                    "name": "limit",
                    "in": "query",
                    "required": False,
                    "description": f"entries per page, 1..{LIMIT_MAX} (default {LIMIT_DEFAULT})",
                    "schema": {"type": "integer", "minimum": 1, "maximum": LIMIT_MAX},
                },
            ],
        ),
        "/api/assets/{asset_id}/verification": _get(
            "the ledger audited against the chain",
            "Verification",
            asset=True,
            operation_id="verification",
        ),
        "/api/settlement": _get(
            "settlement rounds and status", "Settlement", operation_id="settlement"
        ),
        "/api/pools": _get("financing pools", "Pools", operation_id="pools"),
        "/api/watchtowers": _get("watchtowers", "Watchtowers", operation_id="watchtowers"),
        "/api/stats": _get("payment and use counters", "Stats", operation_id="stats"),
        "/api/settlement/requests": {
            "post": {
                "summary": "a member asks the hub for a settlement round (EIP-712 ApiRequest)",
                "operationId": "request_settlement",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("SettlementRequest")}},
                },
                "responses": {
                    "200": _ok("RequestAccepted", "the request is recorded"),
                    "400": _error("a malformed body or field"),
                    "401": _error("a bad signature or a timestamp more than 300 s off"),
                    "403": _error("not an active member, or a network without membership"),
                    "404": _error("no settlement file"),
                    "413": _error("a body larger than 16 KiB"),
                    "415": _error("a content-type other than application/json"),
                },
            }
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "CISE API",
            "version": "1",
            "description": "Read-only views of a CISE network, and one signed write (docs/api.md).",
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {"schemas": _SCHEMAS},
    }


__all__ = ["ASSET_ID_PATTERN", "LIMIT_DEFAULT", "LIMIT_MAX", "SEQ_MAX", "openapi_document"]

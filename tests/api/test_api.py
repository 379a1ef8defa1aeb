"""The HTTP API over a real Bundles demo day (embedded chain): the numbers it serves are the
ledgers', the settlement file's and the chain's; bad input is a 4xx; the one signed write records
a settlement request for an active member and nothing on any refusal."""

from __future__ import annotations

import dataclasses
import json
import os
import sqlite3
import time
from pathlib import Path

import pytest
from eth_account import Account

from api.app import create_app
from api.sources import ApiSources, LiveView, read_ledger_file
from assets.ledger import revenue_totals
from channels.chain.financing import FinancingPoolClient
from channels.codec.eip712 import api_request_digest
from channels.codec.keccak import keccak
from channels.core.types import to_checksum
from channels.signer import LocalSigner
from cise.demo_bundles import (
    BENEFICIARIES,
    MACHINES,
    POOL_MACHINE,
    USERS,
    address_of,
    asset_id_of,
    key_of,
)
from tests.api.conftest import Served, serving

# One worker builds the demo day that `served` serves (a session fixture), not each worker.
pytestmark = pytest.mark.xdist_group("api-served")

NOT_A_MEMBER = keccak(b"cise api test: not a member")


def _hex(asset: str) -> str:
    return "0x" + asset_id_of(asset).hex()


def _requests(path: Path) -> int:
    db = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True)
    try:
        return int(db.execute("SELECT COUNT(*) FROM requests").fetchone()[0])
    finally:
        db.close()


def _signed(
    served: Served, key: bytes, timestamp: int, action: str = "settle"
) -> dict[str, object]:
    digest = api_request_digest(served.sources.domain, action, timestamp)
    signature = LocalSigner(key).sign_digest(digest)
    return {
        "request": {"action": action, "timestamp": timestamp},
        "signature": "0x" + signature.hex(),
    }


def _post(served: Served, body: object) -> tuple[int, object]:
    return served.request("POST", "/api/settlement/requests", json.dumps(body).encode())


def test_network(served: Served) -> None:
    status, body = served.get("/api/network")
    assert status == 200
    deployment = served.sources.deployment
    assert body["chain_id"] == deployment.chain_id
    assert body["manager"] == to_checksum(deployment.manager)
    assert body["parameters"]["hub_fee_cap_units"] > 0
    assert body["parameters"]["settlement_period_s"] > 0


def test_assets_are_the_ledgers(served: Served) -> None:
    status, body = served.get("/api/assets")
    assert status == 200
    by_id = {a["asset_id"]: a for a in body["assets"]}
    assert set(by_id) == {_hex(n) for n in MACHINES}
    for name in MACHINES:
        entries, _ = read_ledger_file(served.keep_dir / f"{name}-ledger.sqlite")
        totals = revenue_totals(entries)
        asset = by_id[_hex(name)]
        assert asset["name"] == name
        assert asset["uses"] == totals.uses == served.result.machines[name].uses
        assert asset["revenue_units"] == totals.fee_total == served.result.machines[name].revenue
        assert asset["verified"] is True
        assert asset["anchored_to_seq"] == served.result.machines[name].anchored_to
        assert asset["agent"] == to_checksum(address_of(name))
        assert sum(b["ppm"] for b in asset["beneficiaries"]) == 1_000_000
    assert sum(a["uses"] for a in body["assets"]) == 12


def test_one_asset_and_its_ledger(served: Served) -> None:
    name = "machine-2"
    status, asset = served.get(f"/api/assets/{_hex(name)}")
    assert status == 200
    assert sum(h["uses"] for h in asset["revenue_by_hour"]) == asset["uses"]
    assert sum(h["revenue_units"] for h in asset["revenue_by_hour"]) == asset["revenue_units"]
    income = {i["beneficiary"]: i["units"] for i in asset["income"]}
    for party, units in served.result.income.items():
        if units[name]:
            assert income[to_checksum(address_of(party))] == units[name]
    status, page = served.get(f"/api/assets/{_hex(name)}/ledger?limit=2")
    assert status == 200
    assert [e["seq"] for e in page["entries"]] == [1, 2]
    assert page["next_seq"] == 3
    status, rest = served.get(f"/api/assets/{_hex(name)}/ledger?from_seq=3&limit=500")
    assert status == 200
    assert rest["next_seq"] is None
    entries = page["entries"] + rest["entries"]
    assert sum(e["fee_units"] for e in entries) == asset["revenue_units"]
    for entry in entries:
        assert entry["kind"] == "use"
        assert sum(s["units"] for s in entry["shares"]) == entry["fee_units"]


def test_service_event_in_machine_1s_ledger(served: Served) -> None:
    status, page = served.get(f"/api/assets/{_hex('machine-1')}/ledger")
    assert status == 200
    kinds = [e["kind"] for e in page["entries"]]
    assert "service" in kinds and kinds.count("use") == served.result.machines["machine-1"].uses


def test_verification(served: Served) -> None:
    for name in MACHINES:
        status, body = served.get(f"/api/assets/{_hex(name)}/verification")
        assert status == 200
        assert body["ok"] is True and body["problem"] is None
        assert body["anchored_to_seq"] == served.result.machines[name].anchored_to
        assert body["entries"] == len(served.result.machines[name].entries)


def test_settlement_history(served: Served) -> None:
    status, body = served.get("/api/settlement")
    assert status == 200
    report = served.result.settlement
    assert report is not None
    (last,) = [r for r in body["rounds"] if r["round"] == report.round_id]
    assert last["status"] == "settled"
    assert last["reason"] == "end of day"
    assert last["to_counterparties_units"] == report.to_counterparties
    assert last["hub_withdrawn_units"] == report.hub_withdrawn
    assert last["signed"] == last["planned"] == report.planned
    assert body["status"]["last_round"]["round"] == report.round_id


def test_pools(served: Served) -> None:
    status, body = served.get("/api/pools")
    assert status == 200
    financing = served.result.financing
    assert financing is not None
    (pool,) = [p for p in body["pools"] if p["asset_id"] == _hex(POOL_MACHINE)]
    assert pool["pool"] == to_checksum(financing.pool)
    assert pool["status"] == "funded"
    assert pool["cap_units"] == financing.cap
    assert pool["repaid_units"] == financing.repaid
    factory = served.sources.deployment.financing_factory
    assert factory is not None
    client = FinancingPoolClient(served.sources.connection, factory, Account.from_key(NOT_A_MEMBER))
    state = client.state(financing.pool)
    assert pool["raised_units"] == state.raised == client.terms(financing.pool).target
    assert pool["contributors"] == state.contributors == 2


def test_members(served: Served) -> None:
    status, body = served.get("/api/members")
    assert status == 200
    active = {m["address"] for m in body["members"] if m["status"] == "active"}
    for name in ("hub", *MACHINES, *USERS, *BENEFICIARIES):
        assert to_checksum(address_of(name)) in active
    assert body["count"] == len(body["members"])


def test_channels_stats_and_towers(served: Served) -> None:
    status, body = served.get("/api/channels")
    assert status == 200
    hub = to_checksum(address_of("hub"))
    hub_channels = [c for c in body["channels"] if hub in (c["participant1"], c["participant2"])]
    assert len(hub_channels) >= len(MACHINES) + len(USERS)
    for channel in body["channels"]:
        assert channel["capacity1_units"] is None  # no live hub attached
        if channel["state"] == "opened":
            assert channel["total_units"] == (
                channel["deposit1_units"] + channel["deposit2_units"]
                - channel["withdrawn1_units"] - channel["withdrawn2_units"]
            )  # fmt: skip
    status, stats = served.get("/api/stats")
    assert status == 200 and stats["uses"] == 12 and stats["payments"] > stats["uses"]
    assert served.get("/api/watchtowers") == (200, {"towers": []})


def test_openapi_and_dashboard(served: Served) -> None:
    status, doc = served.get("/openapi.json")
    assert status == 200 and doc["openapi"].startswith("3.1")
    limit = next(
        p for p in doc["paths"]["/api/assets/{asset_id}/ledger"]["get"]["parameters"]
        if p["name"] == "limit"
    )  # fmt: skip
    assert limit["schema"] == {"type": "integer", "minimum": 1, "maximum": 500}
    with __import__("urllib.request").request.urlopen(served.url + "/", timeout=10) as page:
        assert page.status == 200 and b"<html" in page.read().lower()


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/api/assets/0x" + "ab" * 32, 404),
        ("/api/assets/0x" + "ab" * 32 + "/ledger", 404),
        ("/api/assets/0x" + "ab" * 32 + "/verification", 404),
        ("/api/assets/0x1234", 400),
        ("/api/assets/machine-1", 400),
        ("/api/assets/0x" + "zz" * 32, 400),
        ("/api/assets/{m1}/ledger?limit=0", 400),
        ("/api/assets/{m1}/ledger?limit=501", 400),
        ("/api/assets/{m1}/ledger?limit=ten", 400),
        ("/api/assets/{m1}/ledger?from_seq=0", 400),
        ("/api/assets/{m1}/ledger?from_seq=-1", 400),
        ("/api/nothing-here", 404),
    ],
)
def test_bad_reads(served: Served, path: str, status: int) -> None:
    got, body = served.get(path.replace("{m1}", _hex("machine-1")))
    assert got == status
    assert isinstance(body, dict) and isinstance(body["error"], str) and body["error"]


def test_signed_settlement_request(served: Served) -> None:
    settlement = served.sources.settlement
    assert settlement is not None
    before = _requests(settlement)
    now = int(time.time())
    member = key_of("user-3")

    refusals: list[tuple[object, int, str]] = [
        (_signed(served, NOT_A_MEMBER, now), 403, "not an active member"),
        (_signed(served, member, now - 301), 401, "request.timestamp"),
        (_signed(served, member, now + 301), 401, "request.timestamp"),
        (
            {"request": {"action": "settle"}, "signature": "0x" + "00" * 65},
            400,
            "request.timestamp",
        ),
        ({"request": {"action": "settle", "timestamp": now}}, 400, "signature"),
        (
            {"request": {"action": "settle", "timestamp": "now"}, "signature": "0x"},
            400,
            "request.timestamp",
        ),
        (
            {"request": {"action": "settle", "timestamp": now}, "signature": "0x12"},
            400,
            "signature",
        ),
        ({"signature": "0x" + "00" * 65}, 400, "request"),
        (_signed(served, member, now, action="close"), 400, "request.action"),
        ([1, 2], 400, "body"),
    ]
    good = _signed(served, member, now)
    signature = bytes.fromhex(str(good["signature"])[2:])
    # v out of range: no signer recovers
    bad_v = dict(good, signature="0x" + (signature[:64] + bytes([29])).hex())
    refusals.append((bad_v, 401, "signature"))
    # a changed byte of r, checked against the named signer
    tampered = bytes([signature[0] ^ 1]) + signature[1:]
    named = dict(good, signature="0x" + tampered.hex(), signer=to_checksum(address_of("user-3")))
    refusals.append((named, 401, "signature"))
    # a signature over another timestamp
    other = dict(_signed(served, member, now - 1), request=good["request"])
    other["signer"] = to_checksum(address_of("user-3"))
    refusals.append((other, 401, "signature"))
    for body, status, field in refusals:
        got, answer = _post(served, body)
        assert (got, field) == (status, field) and field in answer["error"], (body, answer)
    got, answer = served.request("POST", "/api/settlement/requests", b"{not json")
    assert got == 400 and "JSON" in answer["error"]
    assert _requests(settlement) == before  # nothing written on any refusal

    got, answer = _post(served, good)
    assert got == 200, answer
    assert answer["signer"] == to_checksum(address_of("user-3"))
    assert _requests(settlement) == before + 1
    db = sqlite3.connect(settlement.resolve().as_uri() + "?mode=ro", uri=True)
    try:
        row = db.execute("SELECT id, round_id FROM requests ORDER BY id DESC LIMIT 1").fetchone()
    finally:
        db.close()
    assert row == (answer["request_id"], None)  # open: the hub takes it into its next round


def test_a_network_without_governance_refuses_writes(served: Served) -> None:
    """The same chain seen through a deployment that names no membership (an old network file):
    no member list, no parameters, and the signed write is a 403 that writes nothing."""
    deployment = dataclasses.replace(
        served.sources.deployment, membership=None, governor=None, timelock=None, parameters=None
    )
    sources = dataclasses.replace(served.sources, deployment=deployment)
    sources.lock = type(served.sources.lock)()
    settlement = served.sources.settlement
    assert settlement is not None
    before = _requests(settlement)
    with serving(create_app(sources)) as url:
        other = Served(url, sources, served.result, served.keep_dir)
        assert other.get("/api/members") == (200, {"members": [], "count": 0})
        status, network = other.get("/api/network")
        assert status == 200 and network["parameters"] is None
        got, answer = _post(other, _signed(served, key_of("user-3"), int(time.time())))
        assert got == 403 and "membership" in answer["error"]
    assert _requests(settlement) == before


def test_no_settlement_file_is_a_404(served: Served) -> None:
    sources = ApiSources(served.sources.connection, served.sources.deployment, settlement=None)
    with serving(create_app(sources)) as url:
        other = Served(url, sources, served.result, served.keep_dir)
        assert other.get("/api/settlement") == (200, {"rounds": [], "status": None})
        got, answer = _post(other, _signed(served, key_of("user-3"), int(time.time())))
        assert got == 404 and "settlement" in answer["error"]


def test_live_view_and_an_unexpected_error(served: Served) -> None:
    """Capacities and counters come from the live view when one is attached; an exception a
    handler did not expect is a 500 with a JSON error and no traceback."""
    channel = served.get("/api/channels")[1]["channels"][0]["channel_id"]
    live = LiveView(capacities={channel: (5, 7)}, payments=40, uses=9)
    sources = ApiSources(served.sources.connection, served.sources.deployment, live=lambda: live)
    with serving(create_app(sources)) as url:
        other = Served(url, sources, served.result, served.keep_dir)
        status, stats = other.get("/api/stats")
        assert status == 200 and (stats["payments"], stats["uses"]) == (40, 9)
        (first,) = [
            c for c in other.get("/api/channels")[1]["channels"] if c["channel_id"] == channel
        ]
        assert (first["capacity1_units"], first["capacity2_units"]) == (5, 7)

    def broken() -> LiveView:
        raise RuntimeError("the hub view broke: secret detail")

    sources = ApiSources(served.sources.connection, served.sources.deployment, live=broken)
    with serving(create_app(sources)) as url:
        status, body = Served(url, sources, served.result, served.keep_dir).get("/api/stats")
    assert (status, body) == (500, {"error": "internal error"})


def test_an_asset_is_audited_once_per_block_and_ledger_state(served: Served) -> None:
    """Repeated reads reuse the audit; a write to the ledger file (or a new block) redoes it."""
    asset_id = asset_id_of("machine-1")
    assert served.get("/api/assets")[0] == 200
    key, read = served.sources.asset_reads[asset_id]
    assert served.get(f"/api/assets/0x{asset_id.hex()}/verification")[0] == 200
    assert served.sources.asset_reads[asset_id][1] is read  # the same audit, not a new one
    ledger = served.keep_dir / "machine-1-ledger.sqlite"
    stat = ledger.stat()
    os.utime(ledger, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    status, body = served.get(f"/api/assets/0x{asset_id.hex()}/verification")
    assert status == 200 and body["ok"]
    new_key, new_read = served.sources.asset_reads[asset_id]
    assert new_key != key and new_read is not read

"""Service events on an asset's ledger: signed by the servicer, counter-signed by the agent's
entry, in the same hash chain; who may record, in what order, and what verify catches."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
from msgspec.structs import replace

from assets.ledger import (
    KIND_ADMISSION,
    KIND_SERVICE,
    LedgerError,
    ServiceBody,
    encode_body,
    make_entry,
    verify_chain,
)
from assets.service_events import (
    ACTIONS,
    ServiceEventError,
    service_event_from_json,
    service_event_to_json,
    sign_service_event,
    verify_service_events,
)
from channels.bench.synthetic import address_of, key_of
from channels.signer import LocalSigner
from tests.assets.assetfix import ASSET_ID, REGISTRY_DOMAIN, running_asset, split
from tests.assets.test_asset_agent import AT, use

NOW = 2_000_000_000


def signed(
    servicer: str, action: int, at: int, event_id: str, *, part: str = "", version: int = 1
) -> ServiceBody:
    return sign_service_event(
        LocalSigner(key_of(servicer)).sign_digest,
        REGISTRY_DOMAIN,
        asset_id=ASSET_ID,
        event_id=event_id,
        action=action,
        time=at,
        part_id=part or ("pump-7731" if action == 3 else ""),
        details=f"{ACTIONS[action]} by {servicer}",
        servicer=address_of(servicer),
        split_version=version,
    )


async def test_every_kind_of_service_event_is_recorded_between_uses(tmp_path: Path) -> None:
    async with running_asset(tmp_path) as a:
        with trio.fail_after(10):
            await a.asset.handle(use(1))
        seqs = []
        for action in range(1, 7):  # inspection .. relocation; end of life last
            body = signed("maintenance", action, AT + 10 + action, f"svc-{action}")
            seqs.append(await a.asset.record_service(body))
        with trio.fail_after(10):
            assert (await a.asset.handle(use(20))).status == "charged"
        assert await a.asset.record_service(signed("maintenance", 7, AT + 30, "svc-7")) == 9
        with trio.fail_after(10):
            after = await a.asset.handle(use(40))
        assert after.status == "rejected" and "end of life" in after.reason
        assert seqs == [2, 3, 4, 5, 6, 7]
        entries = list(a.ledger.entries())
        assert [e.kind for e in entries] == [1, 2, 2, 2, 2, 2, 2, 1, 2]
        verify_chain(entries, ASSET_ID, a.asset.address, REGISTRY_DOMAIN, splits={1: split()})
        verify_service_events(entries, ASSET_ID, REGISTRY_DOMAIN, {1: split()})
        # the same event again is answered with its seq (idempotent), changing nothing
        assert await a.asset.record_service(signed("maintenance", 1, AT + 11, "svc-1")) == 2
        assert a.ledger.count() == 9


async def test_bad_service_events_are_refused_and_change_nothing(tmp_path: Path) -> None:
    async with running_asset(tmp_path, extra=("stranger",)) as a:
        await a.asset.record_service(signed("maintenance", 2, AT + 100, "svc-1"))
        forged = replace(signed("maintenance", 2, AT + 101, "svc-2"), details="changed after")
        cases = {
            "neither a beneficiary": signed("stranger", 1, AT + 101, "svc-3"),
            "not signed by the servicer": forged,
            "before the previous service event": signed("maintenance", 1, AT + 50, "svc-4"),
            "already used": signed("detergent", 1, AT + 102, "svc-1"),
            "in the future": signed("maintenance", 1, NOW + 10_000, "svc-5"),
        }
        for problem, body in cases.items():
            with pytest.raises(ServiceEventError, match=problem):
                await a.asset.record_service(body)
        assert a.ledger.count() == 1
        # an admitted servicer may record; a removed one may not
        await a.asset.admit_servicer(address_of("stranger"), note="refurbisher under contract")
        assert await a.asset.record_service(signed("stranger", 5, AT + 110, "svc-6")) == 3
        await a.asset.admit_servicer(address_of("stranger"), admitted=False)
        with pytest.raises(ServiceEventError, match="neither a beneficiary"):
            await a.asset.record_service(signed("stranger", 1, AT + 120, "svc-7"))
        status, answer = await a.asset.service_json({"event_id": "x"})
        assert status == 400 and "missing field" in str(answer["error"])
        entries = list(a.ledger.entries())
        assert [e.kind for e in entries] == [
            KIND_SERVICE,
            KIND_ADMISSION,
            KIND_SERVICE,
            KIND_ADMISSION,
        ]
        verify_service_events(entries, ASSET_ID, REGISTRY_DOMAIN, {1: split()})


def _ledger_with(bodies: list[ServiceBody]) -> list:  # type: ignore[type-arg]
    entries = []
    sign = LocalSigner(key_of("asset")).sign_digest
    prev = bytes(32)
    for seq, body in enumerate(bodies, start=1):
        entry = make_entry(
            sign, REGISTRY_DOMAIN, asset_id=ASSET_ID, seq=seq, prev_hash=prev, time=body.time,
            body=body,
        )  # fmt: skip
        entries.append(entry)
        prev = entry.entry_hash
    return entries


def test_verify_catches_a_tampered_or_disallowed_service_history() -> None:
    good = [signed("maintenance", 2, AT, "a"), signed("detergent", 3, AT + 5, "b")]
    entries = _ledger_with(good)
    verify_service_events(entries, ASSET_ID, REGISTRY_DOMAIN, {1: split()})
    agent = address_of("asset")
    # the operator's agent re-signs an entry whose event it changed: the servicer's signature fails
    forged = _ledger_with([good[0], replace(good[1], part_id="cheap-copy")])
    verify_chain(forged, ASSET_ID, agent, REGISTRY_DOMAIN)  # the chain itself is fine
    with pytest.raises(LedgerError, match="not signed by the servicer"):
        verify_service_events(forged, ASSET_ID, REGISTRY_DOMAIN, {1: split()})
    # an entry's bytes changed after signing: the agent's counter-signature no longer holds
    tampered = [entries[0], replace(entries[1], body=encode_body(replace(good[1], details="x")))]
    with pytest.raises(LedgerError, match="not signed by the agent"):
        verify_chain(tampered, ASSET_ID, agent, REGISTRY_DOMAIN)
    out_of_order = _ledger_with([good[1], signed("maintenance", 2, AT - 1, "a")])
    with pytest.raises(LedgerError, match="before the previous service event"):
        verify_service_events(out_of_order, ASSET_ID, REGISTRY_DOMAIN, {1: split()})
    outsider = _ledger_with([signed("stranger", 1, AT, "c")])
    with pytest.raises(LedgerError, match="neither a beneficiary"):
        verify_service_events(outsider, ASSET_ID, REGISTRY_DOMAIN, {1: split()})
    duplicate = _ledger_with([good[0], signed("maintenance", 1, AT + 9, "a")])
    with pytest.raises(LedgerError, match="already used"):
        verify_chain(duplicate, ASSET_ID, agent, REGISTRY_DOMAIN)


def test_service_events_round_trip_as_json_and_bad_json_is_named() -> None:
    body = signed("maintenance", 3, AT, "svc-json")
    assert service_event_from_json(service_event_to_json(body)) == body
    bad = {
        "missing field": {"event_id": "e"},
        "unknown action": {**service_event_to_json(body), "action": "polishing"},
        "servicer must be 20 bytes": {**service_event_to_json(body), "servicer": "0x12"},
        "unknown field": {**service_event_to_json(body), "colour": "red"},
        "needs its part_id": {**service_event_to_json(body), "part_id": ""},
    }
    for problem, document in bad.items():
        with pytest.raises(ServiceEventError, match=problem):
            service_event_from_json(document)


def test_the_lifecycle_counts_uses_between_services_and_per_day() -> None:
    from assets.history import ChainFact, lifecycle
    from assets.ledger import make_use_entry, use_body

    sign = LocalSigner(key_of("asset")).sign_digest
    entries = []
    prev = bytes(32)
    day = 86_400 * 20_000
    plan: list[object] = [100, 200, signed("maintenance", 2, day + 300, "s1"), 400, day + 90_000]
    for seq, item in enumerate(plan, start=1):
        if isinstance(item, int):
            at = item if item > day else day + item
            body = use_body(event_id=f"u{seq}", user=bytes(32), units=1, fee=1_000,
                            split=split(), payment_ids=[0, 0, 0, 0], charge_payment_id=seq)  # fmt: skip
            entry = make_use_entry(sign, REGISTRY_DOMAIN, asset_id=ASSET_ID, seq=seq,
                                   prev_hash=prev, time=at, body=body)  # fmt: skip
        else:
            assert isinstance(item, ServiceBody)
            entry = make_entry(sign, REGISTRY_DOMAIN, asset_id=ASSET_ID, seq=seq, prev_hash=prev,
                               time=item.time, body=item)  # fmt: skip
        entries.append(entry)
        prev = entry.entry_hash
    life = lifecycle(entries, [ChainFact(day - 5, "registered")])
    assert (life.uses, life.revenue) == (4, 4_000)
    assert [(s.action, s.uses_since_previous) for s in life.services] == [("repair", 2)]
    assert life.uses_since_last_service == 2
    assert [(p.uses, p.revenue) for p in life.periods] == [(3, 3_000), (1, 1_000)]
    assert life.timeline()[0][1] == "registered"

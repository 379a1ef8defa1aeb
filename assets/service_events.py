"""Service events: what a servicer did to an asset, signed by it and recorded on the asset's ledger.

A servicer (maintenance, a refurbisher, the manufacturer replacing a part) signs its event; the
asset's agent checks it and appends it to the ledger as an entry of kind 2, whose own signature is
the counter-signature. Normative (`docs/protocol.md`):

- EIP-712, domain `CISE`/`1`/chainId/the AssetRegistry (as ledger entries):
  `ServiceEvent(bytes32 assetId,bytes32 eventId,uint8 action,uint256 time,bytes32 detailsHash,address servicer)`
  with `eventId` = keccak256(event id text) and `detailsHash` = keccak256(msgpack([part_id, details])).
- Actions: 1 inspection, 2 repair, 3 part replaced (a `part_id` is required), 4 upgrade,
  5 refurbishment, 6 relocation, 7 end of life (nothing may be recorded after it).
- Who may record: a beneficiary of the split in force (the body names its version), or a
  servicer the operator admitted earlier in the same ledger (an entry of kind 3) and did not
  remove since.
- Order: a service event is not dated before the previous service event of the ledger.

Pure: no I/O, no clock, no key (signing takes a `sign_digest` callable). It must never accept an
event whose servicer signature does not recover to the servicer it names.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import msgspec

from assets.ledger import (
    AdmissionBody,
    LedgerError,
    ServiceBody,
    SignedEntry,
)
from channels.codec.ecdsa import InvalidSignature, recover_signer
from channels.codec.eip712 import Domain, addr, b32, u256
from channels.codec.keccak import keccak
from channels.core.splits import Split

SERVICE_EVENT_TYPE = (
    "ServiceEvent(bytes32 assetId,bytes32 eventId,uint8 action,uint256 time,"
    "bytes32 detailsHash,address servicer)"
)
SERVICE_EVENT_TYPEHASH = keccak(SERVICE_EVENT_TYPE.encode())

ACTIONS: dict[int, str] = {
    1: "inspection",
    2: "repair",
    3: "part replaced",
    4: "upgrade",
    5: "refurbishment",
    6: "relocation",
    7: "end of life",
}
PART_REPLACED = 3
END_OF_LIFE = 7
MAX_TEXT = 2_000  # characters of `details`
MAX_EVENT_ID = 128

SignDigest = Callable[[bytes], bytes]
_MSGPACK = msgspec.msgpack.Encoder()


class ServiceEventError(ValueError):
    """A service event that cannot be recorded, and why (nothing was changed)."""


def action_code(name_or_code: str | int) -> int:
    """The action's code from its code or its name ("repair", "part replaced", ...)."""
    if isinstance(name_or_code, int) and name_or_code in ACTIONS:
        return name_or_code
    for code, name in ACTIONS.items():
        if str(name_or_code).strip().lower() in (name, name.replace(" ", "-"), str(code)):
            return code
    raise ServiceEventError(
        f"unknown action {name_or_code!r}: one of {', '.join(ACTIONS.values())}"
    )


def details_hash(part_id: str, details: str) -> bytes:
    return keccak(_MSGPACK.encode([part_id, details]))


def service_event_digest(
    domain: Domain,
    asset_id: bytes,
    event_id: str,
    action: int,
    time: int,
    part_id: str,
    details: str,
    servicer: bytes,
) -> bytes:
    """The EIP-712 digest the servicer signs."""
    return domain.digest(
        keccak(
            SERVICE_EVENT_TYPEHASH
            + b32(asset_id)
            + keccak(event_id.encode())
            + u256(action)
            + u256(time)
            + details_hash(part_id, details)
            + addr(servicer)
        )
    )


def check_fields(event_id: str, action: int, part_id: str, details: str) -> None:
    """The shape rules of a service event (`ServiceEventError` naming the field)."""
    if not 0 < len(event_id) <= MAX_EVENT_ID or not event_id.isprintable():
        raise ServiceEventError(f"event_id must be 1..{MAX_EVENT_ID} printable characters")
    if action not in ACTIONS:
        raise ServiceEventError(f"unknown action {action}")
    if action == PART_REPLACED and not part_id.strip():
        raise ServiceEventError("a part replaced needs its part_id")
    if len(details) > MAX_TEXT or len(part_id) > MAX_EVENT_ID:
        raise ServiceEventError(
            f"details are at most {MAX_TEXT} characters, part_id {MAX_EVENT_ID}"
        )


def sign_service_event(
    sign_digest: SignDigest,
    domain: Domain,
    *,
    asset_id: bytes,
    event_id: str,
    action: int,
    time: int,
    part_id: str,
    details: str,
    servicer: bytes,
    split_version: int,
) -> ServiceBody:
    """The servicer's side: its signed event, as the ledger body will carry it."""
    check_fields(event_id, action, part_id, details)
    digest = service_event_digest(
        domain, asset_id, event_id, action, time, part_id, details, servicer
    )
    return ServiceBody(
        event_id, action, servicer, time, part_id, details, split_version, sign_digest(digest)
    )


def check_servicer_signature(body: ServiceBody, asset_id: bytes, domain: Domain) -> None:
    """`ServiceEventError` unless the servicer named in `body` signed it."""
    digest = service_event_digest(
        domain,
        asset_id,
        body.event_id,
        body.action,
        body.time,
        body.part_id,
        body.details,
        body.servicer,
    )
    try:
        signer = recover_signer(digest, body.servicer_signature)
    except InvalidSignature as exc:
        raise ServiceEventError(f"bad servicer signature: {exc}") from None
    if signer != body.servicer:
        raise ServiceEventError(
            f"the event is not signed by the servicer it names (0x{body.servicer.hex()}): "
            "a field was changed or another key signed"
        )


class ServiceRules:
    """What may be recorded next on one ledger: who is admitted, the last event's time, whether
    the asset reached its end of life. Fed entry by entry (`see`); pure."""

    def __init__(
        self,
        admitted: Iterable[bytes] = (),
        last_service_time: int | None = None,
        ended_at_seq: int | None = None,
    ) -> None:
        self.admitted: set[bytes] = set(admitted)
        self.last_service_time = last_service_time
        self.ended_at_seq = ended_at_seq

    def check(
        self, body: ServiceBody, asset_id: bytes, domain: Domain, splits: Mapping[int, Split]
    ) -> None:
        """`ServiceEventError` when `body` may not follow what was seen so far."""
        check_fields(body.event_id, body.action, body.part_id, body.details)
        check_servicer_signature(body, asset_id, domain)
        if self.ended_at_seq is not None:
            raise ServiceEventError(f"the asset reached its end of life at seq {self.ended_at_seq}")
        split = splits.get(body.split_version)
        if split is None:
            raise ServiceEventError(f"split version {body.split_version} is unknown")
        if body.servicer not in split.beneficiaries and body.servicer not in self.admitted:
            raise ServiceEventError(
                f"0x{body.servicer.hex()} is neither a beneficiary of split version "
                f"{split.version} nor admitted by the operator: it may not record events"
            )
        if self.last_service_time is not None and body.time < self.last_service_time:
            raise ServiceEventError(
                f"dated {body.time}, before the previous service event ({self.last_service_time})"
            )

    def see(self, entry: SignedEntry) -> None:
        """Take an entry (any kind) that is on the ledger."""
        body = entry.decode_body()
        if isinstance(body, AdmissionBody):
            if body.admitted:
                self.admitted.add(body.servicer)
            else:
                self.admitted.discard(body.servicer)
        elif isinstance(body, ServiceBody):
            self.last_service_time = body.time
            if body.action == END_OF_LIFE:
                self.ended_at_seq = entry.seq


def verify_service_events(
    entries: Sequence[SignedEntry], asset_id: bytes, domain: Domain, splits: Mapping[int, Split]
) -> None:
    """Check every service event of a whole ledger (from seq 1) against the rules; `LedgerError`
    naming the seq of the first that breaks one."""
    rules = ServiceRules()
    for entry in entries:
        if rules.ended_at_seq is not None:
            raise LedgerError(
                f"recorded after the asset's end of life (seq {rules.ended_at_seq})", entry.seq
            )
        body = entry.decode_body()
        if isinstance(body, ServiceBody):
            try:
                rules.check(body, asset_id, domain, splits)
            except ServiceEventError as exc:
                raise LedgerError(str(exc), entry.seq) from None
        rules.see(entry)


def service_event_to_json(body: ServiceBody) -> dict[str, Any]:
    """A signed event as a servicer sends it to the asset (bytes as 0x hex)."""
    return {
        "event_id": body.event_id,
        "action": ACTIONS[body.action],
        "servicer": "0x" + body.servicer.hex(),
        "time": body.time,
        "part_id": body.part_id,
        "details": body.details,
        "split_version": body.split_version,
        "signature": "0x" + body.servicer_signature.hex(),
    }


def service_event_from_json(obj: Any) -> ServiceBody:
    """The inverse of `service_event_to_json`; `ServiceEventError` naming the bad field."""
    if not isinstance(obj, dict):
        raise ServiceEventError("a service event is a JSON object")
    allowed = {"event_id", "action", "servicer", "time", "part_id", "details", "split_version",
               "signature"}  # fmt: skip
    unknown = set(obj) - allowed
    if unknown:
        raise ServiceEventError(f"unknown field(s): {', '.join(sorted(unknown))}")
    try:
        servicer = _hex(obj["servicer"], 20, "servicer")
        signature = _hex(obj["signature"], 65, "signature")
        time, version = obj["time"], obj.get("split_version", 1)
        if not all(type(v) is int and v >= 0 for v in (time, version)):
            raise ServiceEventError("time and split_version are non-negative integers")
        body = ServiceBody(
            str(obj["event_id"]),
            action_code(obj["action"]),
            servicer,
            time,
            str(obj.get("part_id", "")),
            str(obj.get("details", "")),
            version,
            signature,
        )
    except KeyError as exc:
        raise ServiceEventError(f"missing field {exc.args[0]}") from None
    check_fields(body.event_id, body.action, body.part_id, body.details)
    return body


def _hex(value: Any, size: int, what: str) -> bytes:
    if not isinstance(value, str) or not value.startswith("0x"):
        raise ServiceEventError(f"{what} must be 0x-prefixed hex")
    try:
        raw = bytes.fromhex(value[2:])
    except ValueError:
        raise ServiceEventError(f"{what} is not hex") from None
    if len(raw) != size:
        raise ServiceEventError(f"{what} must be {size} bytes, got {len(raw)}")
    return raw


__all__ = [
    "ACTIONS",
    "END_OF_LIFE",
    "PART_REPLACED",
    "SERVICE_EVENT_TYPE",
    "ServiceEventError",
    "ServiceRules",
    "action_code",
    "check_servicer_signature",
    "service_event_digest",
    "service_event_from_json",
    "service_event_to_json",
    "sign_service_event",
    "verify_service_events",
]

"""The revenue ledger of one asset: a signed hash chain of its uses, anchored on chain.

What it is for: every use of an asset (and, later, every service event) becomes one entry, signed
by the asset's agent key and linked to the previous one; the agent anchors Merkle roots of runs
of entries in the AssetRegistry contract. Anyone holding the entries, the agent's address and the
on-chain anchors can then check the revenue without trusting the operator: a changed, reordered,
removed or withheld entry is detected, and a `RevenueStatement` carries its own proofs.

What it must never do: I/O, read a clock, hold a key (signing is a `sign_digest` callable passed
in), or let a float touch money. Storage is `assets.ledger_store`.

Normative format (the AssetRegistry contract and every verifier rely on it):

- EIP-712 domain: name "CISE", version "1", chainId, verifyingContract = the AssetRegistry
  contract (`channels.codec.eip712.Domain`).
- An entry is the struct
  `LedgerEntry(bytes32 assetId,uint256 seq,bytes32 prevHash,uint8 kind,uint256 time,bytes32 bodyHash)`.
  `entry_hash` = its EIP-712 hashStruct: the link of the hash chain AND the Merkle leaf anchored
  on chain. The agent signs `domain.digest(entry_hash)` (65 bytes r‖s‖v, low-s; checked by
  recovering the signer, as `ecrecover` does).
- `seq` starts at 1 and grows by one; `prevHash` of seq 1 is 32 zero bytes, of seq n the
  entry_hash of seq n-1. `time` is unix seconds (UTC).
- `kind` 1 = use (body `UseBody`); 2 = service event (body `ServiceBody`: the servicer's own
  EIP-712 signature over its event is inside it, the agent's entry signature counter-signs it;
  see `assets.service_events`); 3 = admission of a servicer not named in the split
  (`AdmissionBody`, signed by the agent alone).
- `bodyHash` = keccak256 of the body's canonical encoding: msgspec msgpack of the body struct as an
  array (`array_like`), fields in declaration order. `UseBody` = [event_id (str), user (bytes32
  pseudonym), units, fee, split_version, shares, charge_payment_id]; a share = [beneficiary
  (20 bytes), amount, payment_id], one per beneficiary of the split in split order (amount 0 has
  payment_id 0). Integers in a body are uint64 (msgpack stops there).
- A user appears only as `pseudonym(seed, asset_id, user)` = keccak256(seed ‖ assetId ‖ user):
  per asset, unlinkable across assets without the seeds. The seed is
  keccak256(signature by the agent over keccak256("CISE pseudonym seed v1" ‖ assetId)): the key
  holder can always re-derive it, and the signature must never leave the agent.
- An anchor (from_seq, to_seq, root, head_hash) commits to the entries from_seq..to_seq:
  `root` = `channels.codec.merkle.merkle_root` of their entry hashes in seq order, `head_hash` =
  the entry hash at to_seq.
- A revenue statement is signed by the agent over
  `RevenueStatement(bytes32 assetId,uint256 firstSeq,uint256 lastSeq,bytes32 entriesRoot,uint256 feeTotal,uint256 uses)`
  where entriesRoot = merkle_root of the statement's entry hashes. It carries the entries and,
  for each on-chain anchor overlapping them, the Merkle proof of each of its entries in that
  anchor's range, so each entry is checked against the chain on its own.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Annotated, Any, TypeVar

import msgspec
import msgspec.inspect as mi

from channels.codec.ecdsa import InvalidSignature, recover_signer
from channels.codec.eip712 import Domain, b32, u256
from channels.codec.keccak import keccak
from channels.codec.merkle import merkle_proof, merkle_root, verify_proof
from channels.core.splits import Split, split_fee

LEDGER_ENTRY_TYPE = (
    "LedgerEntry(bytes32 assetId,uint256 seq,bytes32 prevHash,uint8 kind,uint256 time,"
    "bytes32 bodyHash)"
)
REVENUE_STATEMENT_TYPE = (
    "RevenueStatement(bytes32 assetId,uint256 firstSeq,uint256 lastSeq,bytes32 entriesRoot,"
    "uint256 feeTotal,uint256 uses)"
)
LEDGER_ENTRY_TYPEHASH = keccak(LEDGER_ENTRY_TYPE.encode())
REVENUE_STATEMENT_TYPEHASH = keccak(REVENUE_STATEMENT_TYPE.encode())

KIND_USE = 1
KIND_SERVICE = 2  # a servicer's signed service event, counter-signed by the agent's entry
KIND_ADMISSION = 3  # the operator (through its agent) admits or removes a servicer
GENESIS_PREV_HASH = bytes(32)
PSEUDONYM_SEED_TAG = b"CISE pseudonym seed v1"

SignDigest = Callable[[bytes], bytes]  # 32-byte digest -> 65-byte r‖s‖v (LocalSigner.sign_digest)
Head = tuple[int, bytes]  # (seq, entry_hash) of the last entry

# msgspec bounds must fit an int64, so the uint64 ceiling is msgpack's own (encoding refuses more).
U64 = Annotated[int, msgspec.Meta(ge=0)]
Seq = Annotated[int, msgspec.Meta(ge=1)]
U8 = Annotated[int, msgspec.Meta(ge=0, le=255)]
AddressBytes = Annotated[bytes, msgspec.Meta(min_length=20, max_length=20)]
Bytes32 = Annotated[bytes, msgspec.Meta(min_length=32, max_length=32)]
SignatureBytes = Annotated[bytes, msgspec.Meta(min_length=65, max_length=65)]


class LedgerError(ValueError):
    """A ledger, anchor or statement that does not check out; names the seq when there is one."""

    def __init__(self, problem: str, seq: int | None = None) -> None:
        super().__init__(problem if seq is None else f"seq {seq}: {problem}")
        self.problem = problem
        self.seq = seq


# ---------------------------------------------------------------------------------------------
# Bodies


class Share(msgspec.Struct, frozen=True, array_like=True, forbid_unknown_fields=True):
    """One beneficiary's part of a use fee, and the payment that carried it (0: none)."""

    beneficiary: AddressBytes
    amount: U64
    payment_id: U64


class UseBody(msgspec.Struct, frozen=True, array_like=True, forbid_unknown_fields=True):
    """What one use was: who (pseudonym), how much was metered, charged and paid to whom."""

    event_id: str
    user: Bytes32
    units: U64
    fee: U64
    split_version: U64
    shares: tuple[Share, ...]
    charge_payment_id: U64


class ServiceBody(msgspec.Struct, frozen=True, array_like=True, forbid_unknown_fields=True):
    """What a servicer did to the asset, as it signed it (`assets.service_events`)."""

    event_id: str
    action: U8  # assets.service_events.ACTIONS
    servicer: AddressBytes
    time: U64  # when the servicer says it happened (unix seconds)
    part_id: str  # the part replaced or fitted ("" when none)
    details: str
    split_version: U64  # the split in force when it was recorded
    servicer_signature: SignatureBytes


class AdmissionBody(msgspec.Struct, frozen=True, array_like=True, forbid_unknown_fields=True):
    """The operator admits (or removes) a servicer that is not a beneficiary of the split."""

    event_id: str
    servicer: AddressBytes
    admitted: bool
    note: str


# The body of an entry, by kind.
Body = UseBody | ServiceBody | AdmissionBody
_BODY_TYPES: dict[int, type[Body]] = {
    KIND_USE: UseBody,
    KIND_SERVICE: ServiceBody,
    KIND_ADMISSION: AdmissionBody,
}
_BODY_DECODERS = {kind: msgspec.msgpack.Decoder(type_) for kind, type_ in _BODY_TYPES.items()}
_MSGPACK = msgspec.msgpack.Encoder()


def encode_body(body: Body) -> bytes:
    """The canonical encoding of a body (what bodyHash hashes); checks its fields' ranges."""
    try:
        encoded = _MSGPACK.encode(body)
    except OverflowError as exc:
        raise LedgerError(f"body field out of range: {exc}") from None
    # Struct constructors do not check lengths and ranges: decoding does.
    decode_body(_kind_of(body), encoded)
    return encoded


def _kind_of(body: Body) -> int:
    for kind, type_ in _BODY_TYPES.items():
        if isinstance(body, type_):
            return kind
    raise LedgerError(f"no entry kind has a body of type {type(body).__name__}")


def decode_body(kind: int, encoded: bytes) -> Body:
    """Decode and check a body of entry kind `kind`; it must be in canonical encoding."""
    decoder = _BODY_DECODERS.get(kind)
    if decoder is None:
        raise LedgerError(
            f"entry kind {kind} has no body format (1 = use, 2 = service, 3 = admission)"
        )
    try:
        body = decoder.decode(encoded)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:  # a text field's bytes: not UTF-8
        raise LedgerError(f"body does not decode: {exc}") from None
    if _MSGPACK.encode(body) != encoded:
        raise LedgerError("body is not in canonical encoding")
    return body


def use_body(
    *,
    event_id: str,
    user: bytes,
    units: int,
    fee: int,
    split: Split,
    payment_ids: Sequence[int],
    charge_payment_id: int,
) -> UseBody:
    """The body of a use: `fee` split by `split`, `payment_ids[i]` paying beneficiary i's share."""
    amounts = split_fee(fee, split)
    if len(payment_ids) != len(amounts):
        raise LedgerError(f"{len(amounts)} shares but {len(payment_ids)} payment ids")
    shares = tuple(
        Share(beneficiary, amount, payment_id)
        for beneficiary, amount, payment_id in zip(
            split.beneficiaries, amounts, payment_ids, strict=True
        )
    )
    return UseBody(event_id, user, units, fee, split.version, shares, charge_payment_id)


# ---------------------------------------------------------------------------------------------
# Entries


def entry_struct_hash(
    asset_id: bytes, seq: int, prev_hash: bytes, kind: int, time: int, body_hash: bytes
) -> bytes:
    """hashStruct(LedgerEntry): the chain link and the Merkle leaf of an entry."""
    if not 0 <= kind <= 255:
        raise LedgerError(f"entry kind {kind} is not a uint8", seq)
    return keccak(
        LEDGER_ENTRY_TYPEHASH
        + b32(asset_id)
        + u256(seq)
        + b32(prev_hash)
        + u256(kind)
        + u256(time)
        + b32(body_hash)
    )


class SignedEntry(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One ledger entry as stored, exported and sent: the fields, the encoded body, the signature."""

    asset_id: Bytes32
    seq: Seq
    prev_hash: Bytes32
    kind: U8
    time: U64
    body: bytes  # the canonical encoding of the body
    signature: SignatureBytes

    @property
    def entry_hash(self) -> bytes:
        """hashStruct(LedgerEntry) of this entry."""
        return entry_struct_hash(
            self.asset_id, self.seq, self.prev_hash, self.kind, self.time, keccak(self.body)
        )

    def digest(self, domain: Domain) -> bytes:
        """The EIP-712 digest the agent signs."""
        return domain.digest(self.entry_hash)

    def encode(self) -> bytes:
        """`encode_entry(self)`: msgpack bytes, read back by `decode_entry`."""
        return encode_entry(self)

    def decode_body(self) -> Body:
        """The body, decoded and checked; `LedgerError` naming this seq otherwise."""
        try:
            return decode_body(self.kind, self.body)
        except LedgerError as exc:
            raise LedgerError(exc.problem, self.seq) from None

    def decode_use_body(self) -> UseBody:
        """The body of a use entry; `LedgerError` if this entry is not a use."""
        body = self.decode_body()
        if not isinstance(body, UseBody):
            raise LedgerError(f"kind {self.kind} is not a use ({KIND_USE})", self.seq)
        return body


_ENTRY_DECODER = msgspec.msgpack.Decoder(SignedEntry)


def encode_entry(entry: SignedEntry) -> bytes:
    """A signed entry as msgpack bytes (the store's row and a receipt's format)."""
    try:
        return _MSGPACK.encode(entry)
    except OverflowError as exc:
        raise LedgerError(f"entry field out of range: {exc}", entry.seq) from None


def decode_entry(raw: bytes) -> SignedEntry:
    """The inverse of `encode_entry`, checking every field's length and range."""
    try:
        return _ENTRY_DECODER.decode(raw)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise LedgerError(f"not a signed ledger entry: {exc}") from None


def make_use_entry(
    sign_digest: SignDigest,
    domain: Domain,
    *,
    asset_id: bytes,
    seq: int,
    prev_hash: bytes,
    time: int,
    body: UseBody,
) -> SignedEntry:
    """The use entry `seq` after the entry whose hash is `prev_hash`, signed by `sign_digest`.

    Refuses (`LedgerError`) a body whose shares do not sum to its fee or whose fields are out of
    range, so every entry made here passes `verify_chain`'s per-entry checks.
    """
    _check_use(seq, body, None)
    return make_entry(
        sign_digest, domain, asset_id=asset_id, seq=seq, prev_hash=prev_hash, time=time, body=body
    )


def make_entry(
    sign_digest: SignDigest,
    domain: Domain,
    *,
    asset_id: bytes,
    seq: int,
    prev_hash: bytes,
    time: int,
    body: Body,
) -> SignedEntry:
    """The entry `seq` of `body`'s kind after the entry whose hash is `prev_hash`, signed by
    `sign_digest` (use `make_use_entry` for uses: it also checks the shares)."""
    if seq == 1 and prev_hash != GENESIS_PREV_HASH:
        raise LedgerError("prevHash of the first entry must be 32 zero bytes", seq)
    kind = _kind_of(body)
    encoded = encode_body(body)
    entry_hash = entry_struct_hash(asset_id, seq, prev_hash, kind, time, keccak(encoded))
    entry = SignedEntry(
        asset_id, seq, prev_hash, kind, time, encoded, sign_digest(domain.digest(entry_hash))
    )
    return decode_entry(entry.encode())  # checks every field as a reader will


# ---------------------------------------------------------------------------------------------
# Pseudonyms


def pseudonym_seed(sign_digest: SignDigest, asset_id: bytes) -> bytes:
    """The asset's secret pseudonym seed, derived from its agent key (deterministic, RFC 6979)."""
    return keccak(sign_digest(keccak(PSEUDONYM_SEED_TAG + b32(asset_id))))


def pseudonym(seed: bytes, asset_id: bytes, user: bytes) -> bytes:
    """The bytes32 pseudonym of `user` (20-byte address) at this asset."""
    if len(user) != 20:
        raise ValueError(f"expected a 20-byte address, got {len(user)} bytes")
    return keccak(b32(seed) + b32(asset_id) + user)


# ---------------------------------------------------------------------------------------------
# Verification of a chain of entries


def _check_signature(entry: SignedEntry, agent: bytes, domain: Domain) -> None:
    try:
        signer = recover_signer(entry.digest(domain), entry.signature)
    except InvalidSignature as exc:
        raise LedgerError(f"bad signature: {exc}", entry.seq) from None
    if signer != agent:
        raise LedgerError(
            f"not signed by the agent 0x{agent.hex()} (the signature recovers to 0x{signer.hex()}:"
            " a field or the body was changed, or another key signed)",
            entry.seq,
        )


def _check_split(seq: int, body: UseBody, splits: Mapping[int, Split]) -> None:
    split = splits.get(body.split_version)
    if split is None:
        raise LedgerError(f"split version {body.split_version} is unknown", seq)
    beneficiaries = tuple(share.beneficiary for share in body.shares)
    if beneficiaries != split.beneficiaries:
        raise LedgerError(
            f"shares do not name the beneficiaries of split version {split.version}", seq
        )
    expected = split_fee(body.fee, split)
    actual = tuple(share.amount for share in body.shares)
    if actual != expected:
        raise LedgerError(
            f"shares {list(actual)} are not split version {split.version} of fee {body.fee} "
            f"({list(expected)})",
            seq,
        )


def _check_use(seq: int, body: UseBody, splits: Mapping[int, Split] | None) -> None:
    total = sum(share.amount for share in body.shares)
    if total != body.fee:
        raise LedgerError(f"shares sum to {total}, but the fee is {body.fee}", seq)
    for share in body.shares:
        if share.amount == 0 and share.payment_id != 0:
            raise LedgerError(
                f"a zero share to 0x{share.beneficiary.hex()} names payment {share.payment_id}",
                seq,
            )
    if splits is not None:
        _check_split(seq, body, splits)


def _check_link(entry: SignedEntry, previous: SignedEntry | None) -> None:
    if previous is None:
        if entry.seq == 1 and entry.prev_hash != GENESIS_PREV_HASH:
            raise LedgerError("prevHash of the first entry must be 32 zero bytes", 1)
        return
    if entry.seq != previous.seq + 1:
        raise LedgerError(
            f"expected seq {previous.seq + 1} after seq {previous.seq}: an entry is missing "
            "or out of order",
            entry.seq,
        )
    if entry.prev_hash != previous.entry_hash:
        raise LedgerError(
            f"prevHash does not link to the entry hash of seq {previous.seq}", entry.seq
        )


def _check_head(entries: Sequence[SignedEntry], head: Head) -> None:
    head_seq, head_hash = head
    first, last = entries[0].seq, entries[-1].seq
    if head_seq > last:
        raise LedgerError(f"truncated: the entries end at seq {last}, the head is seq {head_seq}")
    if head_seq < first:
        raise LedgerError(f"the head seq {head_seq} is before the first entry given (seq {first})")
    if entries[head_seq - first].entry_hash != head_hash:
        raise LedgerError("entry hash differs from the expected head hash", head_seq)


def verify_chain(
    entries: Sequence[SignedEntry],
    asset_id: bytes,
    agent: bytes,
    domain: Domain,
    *,
    splits: Mapping[int, Split] | None = None,
    expected_head: Head | None = None,
) -> None:
    """Check a contiguous run of entries of `asset_id`; raise `LedgerError` at the first problem.

    Checks: each entry signed by `agent`, seqs contiguous from the first given, prevHash links
    (and the zero prevHash of seq 1), bodies decode and are canonical, shares sum to the fee (and
    are the split of their version, when `splits` is given), no event_id twice. A run that
    starts after seq 1 cannot check its first prevHash: anchors do (`verify_anchors`). With
    `expected_head` (e.g. the last anchor's (to_seq, head_hash)) a truncated tail is detected.
    """
    previous: SignedEntry | None = None
    seen: dict[str, int] = {}
    for entry in entries:
        if entry.asset_id != asset_id:
            raise LedgerError(f"entry of another asset 0x{entry.asset_id.hex()}", entry.seq)
        _check_link(entry, previous)
        _check_signature(entry, agent, domain)
        body = entry.decode_body()
        if body.event_id in seen:
            raise LedgerError(
                f"event_id {body.event_id!r} already used at seq {seen[body.event_id]}", entry.seq
            )
        seen[body.event_id] = entry.seq
        if isinstance(body, UseBody):
            _check_use(entry.seq, body, splits)
        previous = entry
    if expected_head is not None:
        if not entries:
            raise LedgerError(f"truncated: no entries, the head is seq {expected_head[0]}")
        _check_head(entries, expected_head)


# ---------------------------------------------------------------------------------------------
# Anchors


class Anchor(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """An on-chain commitment to the entries from_seq..to_seq (see the module docstring)."""

    from_seq: Seq
    to_seq: Seq
    root: Bytes32
    head_hash: Bytes32

    def overlaps(self, first_seq: int, last_seq: int) -> bool:
        """Whether this anchor commits to any of the seqs first_seq..last_seq."""
        return self.from_seq <= last_seq and first_seq <= self.to_seq

    def describe(self) -> str:
        """How errors name this anchor."""
        return f"anchor of seq {self.from_seq}..{self.to_seq}"


def make_anchor(entries: Sequence[SignedEntry]) -> Anchor:
    """The anchor committing to `entries` (contiguous, ascending)."""
    if not entries:
        raise LedgerError("an anchor needs at least one entry")
    hashes = [entry.entry_hash for entry in entries]
    return Anchor(entries[0].seq, entries[-1].seq, merkle_root(hashes), hashes[-1])


def _anchored_hashes(by_seq: Mapping[int, SignedEntry], anchor: Anchor) -> list[bytes]:
    if anchor.from_seq > anchor.to_seq:
        raise LedgerError(f"{anchor.describe()} is empty (from_seq > to_seq)")
    hashes = []
    for seq in range(anchor.from_seq, anchor.to_seq + 1):
        entry = by_seq.get(seq)
        if entry is None:
            raise LedgerError(
                f"truncated: missing, but committed to by the {anchor.describe()}", seq
            )
        hashes.append(entry.entry_hash)
    return hashes


def verify_anchors(entries: Iterable[SignedEntry], anchors: Iterable[Anchor]) -> None:
    """Check that `entries` hold exactly what each anchor commits to; `LedgerError` otherwise.

    Only the commitments are checked here: signatures and links are `verify_chain`'s job.
    """
    by_seq = {entry.seq: entry for entry in entries}
    for anchor in anchors:
        hashes = _anchored_hashes(by_seq, anchor)
        if merkle_root(hashes) != anchor.root:
            raise LedgerError(
                f"the Merkle root of seq {anchor.from_seq}..{anchor.to_seq} differs from the "
                f"{anchor.describe()}: an entry in that range was changed"
            )
        if hashes[-1] != anchor.head_hash:
            raise LedgerError(
                f"entry hash differs from the head of the {anchor.describe()}", anchor.to_seq
            )


def entry_proof(anchor_entries: Sequence[SignedEntry], seq: int) -> list[bytes]:
    """The Merkle path of entry `seq` among `anchor_entries` (all the entries of one anchor)."""
    if not anchor_entries:
        raise LedgerError("no entries to prove against", seq)
    index = seq - anchor_entries[0].seq
    if not 0 <= index < len(anchor_entries) or anchor_entries[index].seq != seq:
        raise LedgerError("not among the anchor's entries (or they are not contiguous)", seq)
    return merkle_proof([entry.entry_hash for entry in anchor_entries], index)


# ---------------------------------------------------------------------------------------------
# Totals


class RevenueTotals(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What a run of entries adds up to; `by_beneficiary` is ascending by address."""

    uses: int
    units: int
    fee_total: int
    by_beneficiary: tuple[tuple[bytes, int], ...]
    first_seq: int | None
    last_seq: int | None
    first_time: int | None
    last_time: int | None

    def beneficiary_total(self, beneficiary: bytes) -> int:
        """The total of the shares of `beneficiary` (0 if it has none)."""
        return dict(self.by_beneficiary).get(beneficiary, 0)


def revenue_totals(entries: Sequence[SignedEntry]) -> RevenueTotals:
    """Uses, units, fees and each beneficiary's total over `entries` (uses only)."""
    uses = units = fee_total = 0
    by_beneficiary: dict[bytes, int] = {}
    for entry in entries:
        if entry.kind != KIND_USE:
            continue
        body = entry.decode_use_body()
        uses += 1
        units += body.units
        fee_total += body.fee
        for share in body.shares:
            by_beneficiary[share.beneficiary] = (
                by_beneficiary.get(share.beneficiary, 0) + share.amount
            )
    first, last = (entries[0], entries[-1]) if entries else (None, None)
    return RevenueTotals(
        uses=uses,
        units=units,
        fee_total=fee_total,
        by_beneficiary=tuple(sorted(by_beneficiary.items())),
        first_seq=first.seq if first else None,
        last_seq=last.seq if last else None,
        first_time=first.time if first else None,
        last_time=last.time if last else None,
    )


def beneficiary_shares(
    entries: Iterable[SignedEntry], beneficiary: bytes
) -> list[tuple[int, int, int]]:
    """(seq, amount, payment_id) of every share of `beneficiary` in the use entries, by seq."""
    found = []
    for entry in entries:
        if entry.kind != KIND_USE:
            continue
        for share in entry.decode_use_body().shares:
            if share.beneficiary == beneficiary:
                found.append((entry.seq, share.amount, share.payment_id))
    return found


# ---------------------------------------------------------------------------------------------
# Revenue statements


class EntryProof(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The Merkle path of entry `seq` up to an anchor's root."""

    seq: Seq
    path: tuple[Bytes32, ...]


class AnchorProofs(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """An on-chain anchor and the proofs of the statement's entries in its range."""

    anchor: Anchor
    proofs: tuple[EntryProof, ...]


class RevenueStatement(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The entries of [from_time, to_time), their totals and proofs, signed by the agent."""

    asset_id: Bytes32
    from_time: U64
    to_time: U64
    first_seq: Seq
    last_seq: Seq
    totals: RevenueTotals
    entries: tuple[SignedEntry, ...]
    anchors: tuple[AnchorProofs, ...]
    signature: SignatureBytes


class StatementCheck(msgspec.Struct, frozen=True):
    """A statement that checked out: its totals, and which seqs an on-chain anchor covers."""

    totals: RevenueTotals
    anchored: tuple[int, ...]
    unanchored: tuple[int, ...]

    @property
    def fully_anchored(self) -> bool:
        return not self.unanchored


def statement_digest(
    domain: Domain,
    asset_id: bytes,
    first_seq: int,
    last_seq: int,
    entries_root: bytes,
    fee_total: int,
    uses: int,
) -> bytes:
    """The EIP-712 digest of a RevenueStatement, signed by the agent."""
    return domain.digest(
        keccak(
            REVENUE_STATEMENT_TYPEHASH
            + b32(asset_id)
            + u256(first_seq)
            + u256(last_seq)
            + b32(entries_root)
            + u256(fee_total)
            + u256(uses)
        )
    )


def _statement_digest_of(
    domain: Domain, asset_id: bytes, entries: Sequence[SignedEntry], totals: RevenueTotals
) -> bytes:
    root = merkle_root([entry.entry_hash for entry in entries])
    return statement_digest(
        domain, asset_id, entries[0].seq, entries[-1].seq, root, totals.fee_total, totals.uses
    )


def _select_period(
    ledger: Sequence[SignedEntry], from_time: int, to_time: int
) -> list[SignedEntry]:
    chosen = [entry for entry in ledger if from_time <= entry.time < to_time]
    if not chosen:
        raise LedgerError(f"no entries in [{from_time}, {to_time})")
    for before, after in itertools.pairwise(chosen):
        if after.seq != before.seq + 1:
            raise LedgerError(
                f"the entries of [{from_time}, {to_time}) are not contiguous (time goes "
                f"backwards, or the ledger given has a gap, after seq {before.seq})",
                after.seq,
            )
    return chosen


def _prove(
    by_seq: Mapping[int, SignedEntry], anchor: Anchor, first_seq: int, last_seq: int
) -> AnchorProofs:
    hashes = _anchored_hashes(by_seq, anchor)
    if merkle_root(hashes) != anchor.root:
        raise LedgerError(f"the ledger does not match the {anchor.describe()}")
    seqs = range(max(first_seq, anchor.from_seq), min(last_seq, anchor.to_seq) + 1)
    proofs = tuple(
        EntryProof(seq, tuple(merkle_proof(hashes, seq - anchor.from_seq))) for seq in seqs
    )
    return AnchorProofs(anchor, proofs)


def make_statement(
    ledger: Sequence[SignedEntry],
    anchors: Sequence[Anchor],
    *,
    from_time: int,
    to_time: int,
    sign_digest: SignDigest,
    domain: Domain,
) -> RevenueStatement:
    """The signed statement of the entries with from_time <= time < to_time.

    `ledger` is a contiguous run of entries holding that period and every entry of each anchor
    in `anchors` that overlaps it (anchors not overlapping the period are ignored).
    """
    entries = _select_period(ledger, from_time, to_time)
    first_seq, last_seq = entries[0].seq, entries[-1].seq
    by_seq = {entry.seq: entry for entry in ledger}
    proofs = tuple(
        _prove(by_seq, anchor, first_seq, last_seq)
        for anchor in anchors
        if anchor.overlaps(first_seq, last_seq)
    )
    asset_id = entries[0].asset_id
    totals = revenue_totals(entries)
    signature = sign_digest(_statement_digest_of(domain, asset_id, entries, totals))
    return RevenueStatement(
        asset_id, from_time, to_time, first_seq, last_seq, totals, tuple(entries), proofs, signature
    )


def _check_statement_shape(statement: RevenueStatement) -> None:
    entries = statement.entries
    if not entries:
        raise LedgerError("the statement holds no entries")
    if (entries[0].seq, entries[-1].seq) != (statement.first_seq, statement.last_seq):
        raise LedgerError(
            f"the statement says seq {statement.first_seq}..{statement.last_seq} but holds "
            f"seq {entries[0].seq}..{entries[-1].seq}"
        )
    for entry in entries:
        if not statement.from_time <= entry.time < statement.to_time:
            raise LedgerError(
                f"time {entry.time} is outside the statement's period "
                f"[{statement.from_time}, {statement.to_time})",
                entry.seq,
            )


def _check_statement_signature(
    statement: RevenueStatement, agent: bytes, domain: Domain, totals: RevenueTotals
) -> None:
    digest = _statement_digest_of(domain, statement.asset_id, statement.entries, totals)
    try:
        signer = recover_signer(digest, statement.signature)
    except InvalidSignature as exc:
        raise LedgerError(f"bad statement signature: {exc}") from None
    if signer != agent:
        raise LedgerError(f"the statement is not signed by the agent 0x{agent.hex()}")


def _check_anchor_proofs(statement: RevenueStatement, on_chain: Sequence[Anchor]) -> set[int]:
    """The seqs the statement proves against on-chain anchors (raises on any bad proof)."""
    hashes = {entry.seq: entry.entry_hash for entry in statement.entries}
    proven: set[int] = set()
    for group in statement.anchors:
        anchor = group.anchor
        if anchor not in on_chain:
            raise LedgerError(f"the statement's {anchor.describe()} is not on chain")
        if anchor.to_seq in hashes and hashes[anchor.to_seq] != anchor.head_hash:
            raise LedgerError(
                f"entry hash differs from the head of the {anchor.describe()}", anchor.to_seq
            )
        for proof in group.proofs:
            if proof.seq not in hashes or not anchor.from_seq <= proof.seq <= anchor.to_seq:
                raise LedgerError(
                    f"proof for an entry outside the statement or the {anchor.describe()}",
                    proof.seq,
                )
            if not verify_proof(proof.path, anchor.root, hashes[proof.seq]):
                raise LedgerError(
                    f"entry does not prove against the {anchor.describe()}", proof.seq
                )
            proven.add(proof.seq)
    return proven


def _check_coverage(
    statement: RevenueStatement, on_chain: Sequence[Anchor], proven: set[int]
) -> None:
    for anchor in on_chain:
        if not anchor.overlaps(statement.first_seq, statement.last_seq):
            continue
        for seq in range(
            max(statement.first_seq, anchor.from_seq), min(statement.last_seq, anchor.to_seq) + 1
        ):
            if seq not in proven:
                raise LedgerError(
                    f"the on-chain {anchor.describe()} covers this entry, but the statement proves it against no anchor",
                    seq,
                )


def verify_statement(
    statement: RevenueStatement,
    agent: bytes,
    domain: Domain,
    anchors_from_chain: Sequence[Anchor],
    *,
    splits: Mapping[int, Split] | None = None,
) -> StatementCheck:
    """Recompute and check everything in `statement`; `LedgerError` at the first problem.

    Checks the entries as a chain signed by `agent`, their times against the period, the totals,
    the agent's signature over the statement, and every entry that lies in an on-chain anchor's
    range by its Merkle proof against that anchor. Returns which seqs are anchored on chain
    and which are not yet. It cannot tell whether entries just outside the period were left out.
    """
    _check_statement_shape(statement)
    verify_chain(statement.entries, statement.asset_id, agent, domain, splits=splits)
    totals = revenue_totals(statement.entries)
    if totals != statement.totals:
        raise LedgerError(
            f"the statement's totals ({statement.totals.uses} uses, fee total "
            f"{statement.totals.fee_total}) are not those of its entries ({totals.uses} uses, "
            f"fee total {totals.fee_total})"
        )
    _check_statement_signature(statement, agent, domain, totals)
    proven = _check_anchor_proofs(statement, anchors_from_chain)
    _check_coverage(statement, anchors_from_chain, proven)
    seqs = [entry.seq for entry in statement.entries]
    return StatementCheck(
        totals,
        anchored=tuple(seq for seq in seqs if seq in proven),
        unanchored=tuple(seq for seq in seqs if seq not in proven),
    )


# ---------------------------------------------------------------------------------------------
# JSON export and import (bytes as 0x-prefixed hex)

T = TypeVar("T")


def _hexify(value: Any) -> Any:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, dict):
        return {key: _hexify(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_hexify(item) for item in value]
    return value


def _unhex(value: str, path: str) -> bytes:
    if not value.startswith("0x"):
        raise LedgerError(f"{path}: bytes must be 0x-prefixed hex, got {value[:20]!r}")
    try:
        return bytes.fromhex(value[2:])
    except ValueError:
        raise LedgerError(f"{path}: not hex: {value[:20]!r}") from None


def _unhexify(value: Any, type_: mi.Type, path: str) -> Any:
    """`value` from JSON with every str where `type_` wants bytes turned back into bytes."""
    if isinstance(type_, mi.BytesType):
        return _unhex(value, path) if isinstance(value, str) else value
    if isinstance(type_, mi.StructType) and isinstance(value, dict):
        fields = {field.encode_name: field.type for field in type_.fields}
        return {
            key: _unhexify(item, fields[key], f"{path}.{key}") if key in fields else item
            for key, item in value.items()
        }
    if isinstance(type_, mi.VarTupleType | mi.ListType) and isinstance(value, list):
        return [_unhexify(item, type_.item_type, f"{path}[{i}]") for i, item in enumerate(value)]
    if isinstance(type_, mi.TupleType) and isinstance(value, list):
        types = type_.item_types
        return [
            _unhexify(item, types[i], f"{path}[{i}]") if i < len(types) else item
            for i, item in enumerate(value)
        ]
    return value


def _from_json_object(obj: Any, type_: type[T]) -> T:
    try:
        return msgspec.convert(_unhexify(obj, mi.type_info(type_), "$"), type_)
    except msgspec.ValidationError as exc:
        raise LedgerError(f"not a valid {type_.__name__}: {exc}") from None


def _from_json(data: bytes | str, type_: type[T]) -> T:
    try:
        obj = msgspec.json.decode(data)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise LedgerError(f"not JSON: {exc}") from None
    return _from_json_object(obj, type_)


def entry_to_json(entry: SignedEntry) -> dict[str, Any]:
    """A JSON-ready dict of `entry` (bytes as 0x hex)."""
    converted: dict[str, Any] = _hexify(msgspec.to_builtins(entry, builtin_types=(bytes,)))
    return converted


def entry_from_json(obj: Mapping[str, Any]) -> SignedEntry:
    """The inverse of `entry_to_json`, checking every field."""
    entry = _from_json_object(dict(obj), SignedEntry)
    encode_entry(entry)  # integers beyond uint64 cannot be stored
    return entry


def export_entries(entries: Iterable[SignedEntry]) -> bytes:
    """Entries as a JSON array (bytes as 0x hex)."""
    return msgspec.json.encode([entry_to_json(entry) for entry in entries])


def import_entries(data: bytes | str) -> list[SignedEntry]:
    """The inverse of `export_entries`."""
    entries = list(_from_json(data, tuple[SignedEntry, ...]))
    for entry in entries:
        encode_entry(entry)  # integers beyond uint64 cannot be stored
    return entries


def statement_to_json(statement: RevenueStatement) -> bytes:
    """A statement as JSON (bytes as 0x hex), for a lender."""
    return msgspec.json.encode(_hexify(msgspec.to_builtins(statement, builtin_types=(bytes,))))


def statement_from_json(data: bytes | str) -> RevenueStatement:
    """The inverse of `statement_to_json` (shape only: `verify_statement` checks the content)."""
    return _from_json(data, RevenueStatement)


__all__ = [
    "GENESIS_PREV_HASH",
    "KIND_ADMISSION",
    "KIND_SERVICE",
    "KIND_USE",
    "LEDGER_ENTRY_TYPE",
    "REVENUE_STATEMENT_TYPE",
    "AdmissionBody",
    "Anchor",
    "AnchorProofs",
    "Body",
    "EntryProof",
    "LedgerError",
    "RevenueStatement",
    "RevenueTotals",
    "ServiceBody",
    "Share",
    "SignedEntry",
    "StatementCheck",
    "UseBody",
    "beneficiary_shares",
    "decode_body",
    "decode_entry",
    "encode_body",
    "encode_entry",
    "entry_from_json",
    "entry_proof",
    "entry_struct_hash",
    "entry_to_json",
    "export_entries",
    "import_entries",
    "make_anchor",
    "make_entry",
    "make_statement",
    "make_use_entry",
    "pseudonym",
    "pseudonym_seed",
    "revenue_totals",
    "statement_digest",
    "statement_from_json",
    "statement_to_json",
    "use_body",
    "verify_anchors",
    "verify_chain",
    "verify_statement",
]

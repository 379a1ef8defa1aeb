"""The revenue ledger: format (EIP-712 equal to eth_account), chain, anchors, totals, statements.

Every tampering a dishonest operator or a broken disk could do must be caught and named by seq.
"""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from eth_account.messages import _hash_eip191_message, encode_typed_data
from msgspec.structs import replace

from assets.ledger import (
    GENESIS_PREV_HASH,
    KIND_SERVICE,
    KIND_USE,
    Anchor,
    AnchorProofs,
    EntryProof,
    LedgerError,
    RevenueStatement,
    Share,
    SignedEntry,
    UseBody,
    beneficiary_shares,
    decode_entry,
    encode_body,
    entry_from_json,
    entry_proof,
    entry_to_json,
    export_entries,
    import_entries,
    make_anchor,
    make_statement,
    make_use_entry,
    pseudonym,
    pseudonym_seed,
    revenue_totals,
    statement_from_json,
    statement_to_json,
    use_body,
    verify_anchors,
    verify_chain,
    verify_statement,
)
from channels.codec.eip712 import Domain
from channels.codec.keccak import keccak
from channels.codec.merkle import verify_proof
from channels.core.splits import Split, split_fee
from channels.core.types import Address, to_checksum
from channels.signer import LocalSigner

AGENT = LocalSigner(
    bytes.fromhex("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")
)
MALLORY = LocalSigner(keccak(b"mallory"))
REGISTRY = bytes.fromhex("5fbdb2315678afecb367f032d93f642f64180aa3")
DOMAIN = Domain(1337, REGISTRY)
ASSET = keccak(b"washing machine 7")
OTHER_ASSET = keccak(b"milk robot 3")
B1, B2, B3 = (Address(bytes([n]) * 20) for n in (0x11, 0x22, 0x33))
SPLIT = Split(1, (B1, B2, B3), (500_000, 300_000, 200_000))
SPLIT2 = Split(2, (B1, B3), (900_000, 100_000))
SPLITS = {1: SPLIT, 2: SPLIT2}
SEED = pseudonym_seed(AGENT.sign_digest, ASSET)
ALICE = Address(b"\xaa" * 20)
T0 = 1_767_225_600


def body_for(n: int, fee: int, split: Split = SPLIT) -> UseBody:
    return use_body(
        event_id=f"ev-{n}",
        user=pseudonym(SEED, ASSET, ALICE),
        units=n * 10,
        fee=fee,
        split=split,
        payment_ids=[0 if a == 0 else 1000 * n + i for i, a in enumerate(split_fee(fee, split))],
        charge_payment_id=n,
    )


def next_entry(
    ledger: list[SignedEntry], fee: int, *, time: int | None = None, split: Split = SPLIT
) -> SignedEntry:
    n = len(ledger) + 1
    entry = make_use_entry(
        AGENT.sign_digest,
        DOMAIN,
        asset_id=ASSET,
        seq=n,
        prev_hash=ledger[-1].entry_hash if ledger else GENESIS_PREV_HASH,
        time=T0 + 3600 * n if time is None else time,
        body=body_for(n, fee, split),
    )
    ledger.append(entry)
    return entry


def make_ledger(count: int = 6) -> list[SignedEntry]:
    ledger: list[SignedEntry] = []
    for n in range(1, count + 1):
        next_entry(ledger, 1_000_000 + 333 * n, split=SPLIT if n < 5 else SPLIT2)
    return ledger


def resign(entry: SignedEntry, signer: LocalSigner = AGENT, **changes: Any) -> SignedEntry:
    """The entry with `changes`, signed anew (what an operator holding the agent key can do)."""
    changed = replace(entry, **changes)
    return replace(changed, signature=signer.sign_digest(changed.digest(DOMAIN)))


def with_body(entry: SignedEntry, **changes: Any) -> SignedEntry:
    """The entry with its body changed (not re-signed)."""
    return replace(entry, body=encode_body(replace(entry.decode_use_body(), **changes)))


def check(entries: list[SignedEntry], **kwargs: Any) -> None:
    verify_chain(entries, ASSET, AGENT.address, DOMAIN, **kwargs)


def fails(entries: list[SignedEntry], message: str, seq: int | None, **kwargs: Any) -> None:
    with pytest.raises(LedgerError, match=message) as info:
        check(entries, **kwargs)
    assert info.value.seq == seq


# ---------------------------------------------------------------------------------------------
# format


def _typed(primary: str, fields: list[tuple[str, str]], message: dict[str, Any]) -> dict[str, Any]:
    return {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"},
            ],
            primary: [{"name": name, "type": type_} for name, type_ in fields],
        },
        "primaryType": primary,
        "domain": {
            "name": "CISE",
            "version": "1",
            "chainId": DOMAIN.chain_id,
            "verifyingContract": to_checksum(REGISTRY),
        },
        "message": message,
    }


def test_entry_digest_equals_eth_account() -> None:
    entry = make_ledger(2)[1]
    typed = _typed(
        "LedgerEntry",
        [
            ("assetId", "bytes32"),
            ("seq", "uint256"),
            ("prevHash", "bytes32"),
            ("kind", "uint8"),
            ("time", "uint256"),
            ("bodyHash", "bytes32"),
        ],
        {
            "assetId": entry.asset_id,
            "seq": entry.seq,
            "prevHash": entry.prev_hash,
            "kind": entry.kind,
            "time": entry.time,
            "bodyHash": keccak(entry.body),
        },
    )
    assert entry.digest(DOMAIN) == bytes(
        _hash_eip191_message(encode_typed_data(full_message=typed))
    )


def test_statement_digest_equals_eth_account() -> None:
    from assets.ledger import statement_digest

    root = keccak(b"root")
    typed = _typed(
        "RevenueStatement",
        [
            ("assetId", "bytes32"),
            ("firstSeq", "uint256"),
            ("lastSeq", "uint256"),
            ("entriesRoot", "bytes32"),
            ("feeTotal", "uint256"),
            ("uses", "uint256"),
        ],
        {
            "assetId": ASSET,
            "firstSeq": 3,
            "lastSeq": 9,
            "entriesRoot": root,
            "feeTotal": 10**9,
            "uses": 7,
        },
    )
    ours = statement_digest(DOMAIN, ASSET, 3, 9, root, 10**9, 7)
    assert ours == bytes(_hash_eip191_message(encode_typed_data(full_message=typed)))


def test_body_encoding_is_a_msgpack_array_in_field_order() -> None:
    body = UseBody("e", b"\x01" * 32, 5, 10, 1, (Share(B1, 10, 7),), 3)
    expected = msgspec.msgpack.encode(["e", b"\x01" * 32, 5, 10, 1, [[B1, 10, 7]], 3])
    assert encode_body(body) == expected


def test_entries_link_from_a_zero_genesis_and_are_signed_by_the_agent() -> None:
    ledger = make_ledger(3)
    assert ledger[0].seq == 1 and ledger[0].prev_hash == bytes(32)
    assert ledger[1].prev_hash == ledger[0].entry_hash
    assert ledger[2].kind == KIND_USE
    from channels.codec.ecdsa import recover_signer

    assert recover_signer(ledger[2].digest(DOMAIN), ledger[2].signature) == AGENT.address


def test_use_body_splits_the_fee() -> None:
    body = make_ledger(1)[0].decode_use_body()
    assert [s.amount for s in body.shares] == list(split_fee(body.fee, SPLIT))
    assert [s.beneficiary for s in body.shares] == [B1, B2, B3]
    assert body.split_version == 1


def test_pseudonyms_are_per_asset_and_deterministic() -> None:
    seed_again = pseudonym_seed(AGENT.sign_digest, ASSET)
    other_seed = pseudonym_seed(AGENT.sign_digest, OTHER_ASSET)
    assert seed_again == SEED and len(SEED) == 32
    assert other_seed != SEED
    here = pseudonym(SEED, ASSET, ALICE)
    assert here == keccak(SEED + ASSET + ALICE)
    assert pseudonym(other_seed, OTHER_ASSET, ALICE) != here
    assert pseudonym(SEED, ASSET, Address(b"\xbb" * 20)) != here
    assert pseudonym_seed(MALLORY.sign_digest, ASSET) != SEED
    with pytest.raises(ValueError, match="20-byte"):
        pseudonym(SEED, ASSET, b"\xaa" * 19)


def test_store_encoding_and_json_round_trip() -> None:
    ledger = make_ledger(3)
    for entry in ledger:
        assert decode_entry(entry.encode()) == entry
        assert entry_from_json(entry_to_json(entry)) == entry
    as_json = entry_to_json(ledger[0])
    assert as_json["asset_id"] == "0x" + ASSET.hex()
    assert as_json["seq"] == 1
    assert import_entries(export_entries(ledger)) == ledger


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("asset_id", "00" * 32, "0x-prefixed hex"),
        ("asset_id", "0xzz", "not hex"),
        ("asset_id", "0x" + "00" * 31, "length >= 32"),
        ("signature", "0x00", "length >= 65"),
        ("seq", 0, ">= 1"),
        ("seq", "1", "Expected `int`"),
        ("colour", "red", "unknown field"),
    ],
)
def test_json_import_refuses_bad_fields(field: str, value: object, message: str) -> None:
    obj = entry_to_json(make_ledger(1)[0])
    obj[field] = value
    with pytest.raises(LedgerError, match=message):
        entry_from_json(obj)


def test_bad_store_bytes_are_refused() -> None:
    with pytest.raises(LedgerError, match="not a signed ledger entry"):
        decode_entry(b"\x93\x01\x02")


def test_make_use_entry_refuses_inconsistent_bodies() -> None:
    body = body_for(1, 1000)
    with pytest.raises(LedgerError, match="shares sum to 1000, but the fee is 1001"):
        make_use_entry(
            AGENT.sign_digest,
            DOMAIN,
            asset_id=ASSET,
            seq=1,
            prev_hash=bytes(32),
            time=T0,
            body=replace(body, fee=1001),
        )
    with pytest.raises(LedgerError, match="32 zero bytes"):
        make_use_entry(
            AGENT.sign_digest,
            DOMAIN,
            asset_id=ASSET,
            seq=1,
            prev_hash=b"\x01" * 32,
            time=T0,
            body=body,
        )
    with pytest.raises(LedgerError, match="out of range"):
        make_use_entry(
            AGENT.sign_digest,
            DOMAIN,
            asset_id=ASSET,
            seq=1,
            prev_hash=bytes(32),
            time=T0,
            body=replace(body, units=2**64),
        )
    with pytest.raises(LedgerError, match="length >= 32"):
        make_use_entry(
            AGENT.sign_digest,
            DOMAIN,
            asset_id=ASSET,
            seq=1,
            prev_hash=bytes(32),
            time=T0,
            body=replace(body, user=b"short"),
        )


# ---------------------------------------------------------------------------------------------
# the chain: happy path


def test_an_honest_ledger_verifies() -> None:
    ledger = make_ledger(6)
    check(ledger)
    check(ledger, splits=SPLITS, expected_head=(6, ledger[-1].entry_hash))
    check(ledger, expected_head=(4, ledger[3].entry_hash))  # an older anchor's head
    check(ledger[2:5])  # a run from the middle
    check([])


# ---------------------------------------------------------------------------------------------
# the chain: tampering


@pytest.mark.parametrize(
    "changes",
    [
        {"fee": 5},
        {"units": 999},
        {"user": keccak(b"bob")},
        {"event_id": "other"},
        {"charge_payment_id": 9},
    ],
)
def test_a_changed_body_field_breaks_the_signature(changes: dict[str, Any]) -> None:
    ledger = make_ledger()
    ledger[2] = with_body(ledger[2], **changes)
    fails(ledger, "not signed by the agent", 3)


def test_a_changed_share_breaks_the_signature() -> None:
    ledger = make_ledger()
    body = ledger[3].decode_use_body()
    shares = (replace(body.shares[0], amount=body.shares[0].amount + 1), *body.shares[1:])
    ledger[3] = with_body(ledger[3], shares=shares)
    fails(ledger, "not signed by the agent", 4)


@pytest.mark.parametrize(("field", "value"), [("time", T0 + 1), ("kind", KIND_SERVICE)])
def test_a_changed_header_field_breaks_the_signature(field: str, value: Any) -> None:
    ledger = make_ledger()
    ledger[1] = replace(ledger[1], **{field: value})
    fails(ledger, "not signed by the agent", 2)


def test_a_changed_time_breaks_the_signature() -> None:
    ledger = make_ledger()
    ledger[4] = replace(ledger[4], time=ledger[4].time - 60)
    fails(ledger, "not signed by the agent", 5)


def test_a_re_signed_fee_change_breaks_the_shares() -> None:
    ledger = make_ledger()
    body = ledger[2].decode_use_body()
    ledger[2] = resign(ledger[2], body=encode_body(replace(body, fee=body.fee + 10)))
    fails(ledger, "shares sum to .*, but the fee is", 3)


def test_a_re_signed_share_shift_breaks_the_split() -> None:
    ledger = make_ledger()
    body = ledger[2].decode_use_body()
    a, b, c = body.shares
    moved = (replace(a, amount=a.amount - 5), replace(b, amount=b.amount + 5), c)
    ledger = [*ledger[:2], resign(ledger[2], body=encode_body(replace(body, shares=moved)))]
    check(ledger)  # consistent in itself...
    with pytest.raises(LedgerError, match="are not split version 1 of fee") as info:
        check(ledger, splits=SPLITS)  # ...but not the registered split
    assert info.value.seq == 3


def test_shares_of_an_unknown_split_or_other_beneficiaries_are_caught() -> None:
    ledger = make_ledger()
    fails(ledger, "split version 2 is unknown", 5, splits={1: SPLIT})
    body = ledger[0].decode_use_body()
    ledger[0] = resign(ledger[0], body=encode_body(replace(body, split_version=2)))
    fails(ledger, "do not name the beneficiaries of split version 2", 1, splits=SPLITS)


def test_a_changed_seq_is_caught() -> None:
    ledger = make_ledger()
    ledger[3] = replace(ledger[3], seq=7)
    fails(ledger, "expected seq 4 after seq 3", 7)
    ledger = make_ledger()
    ledger[3] = resign(ledger[3], seq=5)
    fails(ledger, "expected seq 4 after seq 3", 5)


def test_a_changed_prev_hash_is_caught() -> None:
    ledger = make_ledger()
    ledger[3] = replace(ledger[3], prev_hash=keccak(b"elsewhere"))
    fails(ledger, "prevHash does not link to the entry hash of seq 3", 4)
    ledger = make_ledger()
    ledger[0] = resign(ledger[0], prev_hash=b"\x01" * 32)
    fails(ledger, "prevHash of the first entry must be 32 zero bytes", 1)


def test_a_re_signed_entry_breaks_the_next_link() -> None:
    ledger = make_ledger()
    ledger[2] = resign(ledger[2], time=ledger[2].time + 1)
    fails(ledger, "prevHash does not link to the entry hash of seq 3", 4)


def test_garbage_and_non_canonical_bodies_are_caught() -> None:
    ledger = make_ledger()
    ledger[1] = resign(ledger[1], body=b"\xc1garbage")
    fails(ledger, "body does not decode", 2)
    ledger = make_ledger()
    body = ledger[1].decode_use_body()
    canonical = encode_body(body)
    # the same body with its charge_payment_id (last field, < 128) written as a uint64
    non_canonical = canonical[:-1] + b"\xcf" + body.charge_payment_id.to_bytes(8, "big")
    ledger[1] = resign(ledger[1], body=non_canonical)
    fails(ledger, "not in canonical encoding", 2)


@pytest.mark.parametrize("position", [0, 40, 64])
def test_a_changed_signature_is_caught(position: int) -> None:
    ledger = make_ledger()
    signature = bytearray(ledger[2].signature)
    signature[position] ^= 1
    ledger[2] = replace(ledger[2], signature=bytes(signature))
    fails(ledger, "signature", 3)


def test_a_high_s_signature_is_refused() -> None:
    from channels.codec.ecdsa import SECP256K1_N

    ledger = make_ledger()
    sig = ledger[2].signature
    s = int.from_bytes(sig[32:64], "big")
    flipped = sig[:32] + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - sig[64]])
    ledger[2] = replace(ledger[2], signature=flipped)
    fails(ledger, "bad signature: signature s is high", 3)


def test_an_entry_forged_by_another_key_is_caught() -> None:
    ledger = make_ledger()
    ledger[5] = resign(ledger[5], signer=MALLORY, time=ledger[5].time + 5)
    fails(ledger, f"recovers to 0x{MALLORY.address.hex()}", 6)


def test_two_swapped_entries_are_caught() -> None:
    ledger = make_ledger()
    ledger[2], ledger[3] = ledger[3], ledger[2]
    fails(ledger, "expected seq 3 after seq 2: an entry is missing or out of order", 4)


def test_a_removed_entry_is_caught() -> None:
    ledger = make_ledger()
    del ledger[2]
    fails(ledger, "expected seq 3 after seq 2", 4)


def test_a_truncated_tail_is_caught_given_the_head() -> None:
    ledger = make_ledger()
    head = (6, ledger[-1].entry_hash)
    check(ledger[:4])  # without the head, a prefix looks complete
    fails(
        ledger[:4],
        "truncated: the entries end at seq 4, the head is seq 6",
        None,
        expected_head=head,
    )
    fails([], "truncated: no entries", None, expected_head=head)


def test_a_replaced_tail_is_caught_given_the_head() -> None:
    ledger = make_ledger()
    head = (6, ledger[-1].entry_hash)
    ledger[5] = resign(ledger[5], time=ledger[5].time + 60)
    fails(ledger, "differs from the expected head hash", 6, expected_head=head)
    fails(
        ledger[3:], "the head seq 2 is before the first entry given", None, expected_head=(2, b"")
    )


def test_a_duplicate_event_is_caught() -> None:
    ledger = make_ledger(3)
    body = ledger[2].decode_use_body()
    ledger[2] = resign(ledger[2], body=encode_body(replace(body, event_id="ev-1")))
    fails(ledger, "event_id 'ev-1' already used at seq 1", 3)


def test_entries_of_another_asset_or_kind_are_refused() -> None:
    ledger = make_ledger(3)
    ledger[1] = resign(ledger[1], asset_id=OTHER_ASSET)
    fails(ledger, "entry of another asset", 2)
    ledger = make_ledger(3)
    ledger[2] = resign(ledger[2], kind=KIND_SERVICE)  # a use body labelled a service event
    fails(ledger, "body does not decode", 3)
    ledger = make_ledger(3)
    ledger[2] = resign(ledger[2], kind=9)
    fails(ledger, "kind 9 has no body format", 3)


def test_a_zero_share_naming_a_payment_is_caught() -> None:
    ledger: list[SignedEntry] = []
    next_entry(ledger, 1)  # 1 unit: two beneficiaries get 0
    body = ledger[0].decode_use_body()
    shares = (*body.shares[:2], replace(body.shares[2], payment_id=77))
    ledger[0] = resign(ledger[0], body=encode_body(replace(body, shares=shares)))
    fails(ledger, "a zero share to 0x3333.* names payment 77", 1)


# ---------------------------------------------------------------------------------------------
# anchors


def test_anchors_verify_and_each_entry_proves() -> None:
    ledger = make_ledger(7)
    anchors = [make_anchor(ledger[0:3]), make_anchor(ledger[3:7])]
    assert anchors[1] == Anchor(4, 7, anchors[1].root, ledger[6].entry_hash)
    verify_anchors(ledger, anchors)
    for seq in range(4, 8):
        proof = entry_proof(ledger[3:7], seq)
        assert verify_proof(proof, anchors[1].root, ledger[seq - 1].entry_hash)
    assert entry_proof(ledger[0:1], 1) == []
    with pytest.raises(LedgerError, match="not among the anchor's entries"):
        entry_proof(ledger[3:7], 3)


def test_an_anchor_root_that_does_not_match_is_caught() -> None:
    ledger = make_ledger()
    anchor = make_anchor(ledger[:4])
    with pytest.raises(LedgerError, match=r"Merkle root of seq 1..4 differs"):
        verify_anchors(ledger, [replace(anchor, root=keccak(b"forged"))])
    # a re-signed (so chain-valid) rewrite of history is caught by the anchor
    rewritten = list(ledger)
    body = rewritten[1].decode_use_body()
    rewritten[1] = resign(rewritten[1], body=encode_body(replace(body, units=1)))
    for i in range(2, len(rewritten)):
        rewritten[i] = resign(rewritten[i], prev_hash=rewritten[i - 1].entry_hash)
    check(rewritten, splits=SPLITS)
    with pytest.raises(LedgerError, match="an entry in that range was changed"):
        verify_anchors(rewritten, [anchor])


def test_an_anchor_head_that_does_not_match_is_caught() -> None:
    ledger = make_ledger()
    anchor = make_anchor(ledger[:4])
    with pytest.raises(
        LedgerError, match=r"differs from the head of the anchor of seq 1..4"
    ) as info:
        verify_anchors(ledger, [replace(anchor, head_hash=ledger[2].entry_hash)])
    assert info.value.seq == 4


def test_missing_anchored_entries_are_truncation() -> None:
    ledger = make_ledger()
    anchor = make_anchor(ledger[:5])
    with pytest.raises(LedgerError, match="truncated: missing, but committed to") as info:
        verify_anchors(ledger[:3], [anchor])
    assert info.value.seq == 4
    with pytest.raises(LedgerError, match="empty"):
        verify_anchors(ledger, [replace(anchor, from_seq=5, to_seq=4)])


# ---------------------------------------------------------------------------------------------
# totals


def test_revenue_totals_and_beneficiary_shares() -> None:
    ledger = make_ledger(6)
    totals = revenue_totals(ledger)
    fees = [1_000_000 + 333 * n for n in range(1, 7)]
    assert totals.uses == 6
    assert totals.units == sum(10 * n for n in range(1, 7))
    assert totals.fee_total == sum(fees)
    assert sum(amount for _, amount in totals.by_beneficiary) == sum(fees)
    expected_b2 = sum(split_fee(fee, SPLIT)[1] for fee in fees[:4])
    assert totals.beneficiary_total(B2) == expected_b2
    assert totals.beneficiary_total(Address(b"\x99" * 20)) == 0
    assert (totals.first_seq, totals.last_seq) == (1, 6)
    assert (totals.first_time, totals.last_time) == (T0 + 3600, T0 + 6 * 3600)
    b2 = beneficiary_shares(ledger, B2)
    assert [seq for seq, _, _ in b2] == [1, 2, 3, 4]  # split 2 has no B2
    assert b2[0] == (1, split_fee(fees[0], SPLIT)[1], 1001)
    empty = revenue_totals([])
    assert (empty.uses, empty.fee_total, empty.first_seq, empty.by_beneficiary) == (0, 0, None, ())


# ---------------------------------------------------------------------------------------------
# revenue statements


def anchored_ledger() -> tuple[list[SignedEntry], list[Anchor]]:
    """Ten entries an hour apart; anchors over 1..4 and 5..8; 9..10 not anchored yet."""
    ledger: list[SignedEntry] = []
    for n in range(1, 11):
        next_entry(ledger, 10_000 * n + n)
    return ledger, [make_anchor(ledger[0:4]), make_anchor(ledger[4:8])]


def statement_of(ledger: list[SignedEntry], anchors: list[Anchor]) -> RevenueStatement:
    # seq 3..9 (times T0 + 3h .. T0 + 9h)
    return make_statement(
        ledger,
        anchors,
        from_time=T0 + 3 * 3600,
        to_time=T0 + 9 * 3600 + 1,
        sign_digest=AGENT.sign_digest,
        domain=DOMAIN,
    )


def verify(statement: RevenueStatement, anchors: list[Anchor]) -> Any:
    return verify_statement(statement, AGENT.address, DOMAIN, anchors, splits=SPLITS)


def test_a_statement_verifies_and_says_what_is_anchored() -> None:
    ledger, anchors = anchored_ledger()
    statement = statement_of(ledger, anchors)
    assert (statement.first_seq, statement.last_seq) == (3, 9)
    assert [group.anchor for group in statement.anchors] == anchors
    assert [p.seq for p in statement.anchors[0].proofs] == [3, 4]  # the anchor starts at seq 1
    result = verify(statement, anchors)
    assert result.anchored == (3, 4, 5, 6, 7, 8)
    assert result.unanchored == (9,)
    assert not result.fully_anchored
    assert result.totals.fee_total == sum(10_000 * n + n for n in range(3, 10))
    assert result.totals.uses == 7
    # once 9..10 are anchored too, a new statement is fully anchored
    anchors.append(make_anchor(ledger[8:10]))
    assert verify(statement_of(ledger, anchors), anchors).fully_anchored


def test_a_statement_survives_json() -> None:
    ledger, anchors = anchored_ledger()
    statement = statement_of(ledger, anchors)
    again = statement_from_json(statement_to_json(statement))
    assert again == statement
    assert verify(again, anchors).anchored == (3, 4, 5, 6, 7, 8)
    with pytest.raises(LedgerError, match="not a valid RevenueStatement"):
        statement_from_json(b'{"asset_id": "0x00"}')
    with pytest.raises(LedgerError, match="not JSON"):
        statement_from_json(b"{")


def test_a_statement_with_inflated_totals_is_caught() -> None:
    ledger, anchors = anchored_ledger()
    statement = statement_of(ledger, anchors)
    inflated = replace(
        statement, totals=replace(statement.totals, fee_total=statement.totals.fee_total * 2)
    )
    with pytest.raises(LedgerError, match=r"totals .* are not those of its entries"):
        verify(inflated, anchors)
    more_uses = replace(statement, totals=replace(statement.totals, uses=99))
    with pytest.raises(LedgerError, match="99 uses"):
        verify(more_uses, anchors)


def test_a_statement_with_an_edited_entry_is_caught() -> None:
    ledger, anchors = anchored_ledger()
    statement = statement_of(ledger, anchors)
    entries = list(statement.entries)
    entries[2] = with_body(entries[2], fee=entries[2].decode_use_body().fee * 10)
    with pytest.raises(LedgerError, match="seq 5: not signed by the agent"):
        verify(replace(statement, entries=tuple(entries)), anchors)


def test_a_re_signed_history_is_caught_by_the_anchor_proofs() -> None:
    """The operator holds the agent key: it can re-sign a whole inflated history, not the chain."""
    _ledger, anchors = anchored_ledger()
    forged: list[SignedEntry] = []
    for n in range(1, 11):
        next_entry(forged, 20_000 * n)  # twice the revenue, re-signed, self-consistent
    statement = statement_of(forged, [make_anchor(forged[0:4]), make_anchor(forged[4:8])])
    check(list(statement.entries), splits=SPLITS)
    with pytest.raises(LedgerError, match=r"anchor of seq 1..4 is not on chain"):
        verify(statement, anchors)
    # dropping the forged anchors' proofs does not help: the chain's anchors cover those seqs
    with pytest.raises(
        LedgerError, match=r"seq 3: the on-chain anchor of seq 1..4 covers this entry"
    ):
        verify(replace(statement, anchors=()), anchors)


def test_a_statement_proof_that_does_not_lead_to_the_root_is_caught() -> None:
    ledger, anchors = anchored_ledger()
    statement = statement_of(ledger, anchors)
    group = statement.anchors[1]
    bad = EntryProof(6, (keccak(b"x"), *group.proofs[1].path[1:]))
    groups = (
        statement.anchors[0],
        AnchorProofs(group.anchor, (group.proofs[0], bad, *group.proofs[2:])),
    )
    with pytest.raises(
        LedgerError, match=r"seq 6: entry does not prove against the anchor of seq 5..8"
    ):
        verify(replace(statement, anchors=groups), anchors)
    misplaced = AnchorProofs(group.anchor, (EntryProof(3, group.proofs[0].path),))
    with pytest.raises(LedgerError, match="seq 3: proof for an entry outside"):
        verify(replace(statement, anchors=(misplaced,)), anchors)


def test_a_statement_missing_an_entry_or_out_of_period_is_caught() -> None:
    ledger, anchors = anchored_ledger()
    statement = statement_of(ledger, anchors)
    entries = statement.entries
    with pytest.raises(LedgerError, match="expected seq 6 after seq 5"):
        verify(replace(statement, entries=entries[:3] + entries[4:]), anchors)
    with pytest.raises(LedgerError, match=r"says seq 3..9 but holds seq 3..8"):
        verify(replace(statement, entries=entries[:-1]), anchors)
    with pytest.raises(LedgerError, match=r"seq 3: time .* is outside the statement's period"):
        verify(replace(statement, from_time=statement.from_time + 1), anchors)
    with pytest.raises(LedgerError, match="holds no entries"):
        verify(replace(statement, entries=()), anchors)


def test_a_statement_signed_by_another_key_is_caught() -> None:
    ledger, anchors = anchored_ledger()
    statement = statement_of(ledger, anchors)
    with pytest.raises(LedgerError, match="statement is not signed by the agent"):
        verify(replace(statement, signature=MALLORY.sign_digest(keccak(b"anything"))), anchors)
    with pytest.raises(LedgerError, match="bad statement signature"):
        verify(replace(statement, signature=bytes(64) + b"\x1b"), anchors)


def test_a_statement_cannot_be_made_from_too_little() -> None:
    ledger, anchors = anchored_ledger()
    with pytest.raises(LedgerError, match="no entries in"):
        make_statement(
            ledger, anchors, from_time=0, to_time=T0, sign_digest=AGENT.sign_digest, domain=DOMAIN
        )
    with pytest.raises(LedgerError, match="seq 1: truncated: missing, but committed to"):
        statement_of(ledger[2:], anchors)  # the first anchor's seq 1..2 are not given
    with pytest.raises(LedgerError, match=r"does not match the anchor of seq 1..4"):
        statement_of(ledger, [replace(anchors[0], root=keccak(b"x")), anchors[1]])
    backwards: list[SignedEntry] = []
    for n, hour in enumerate((1, 2, 9, 3), start=1):
        next_entry(backwards, n, time=T0 + hour * 3600)
    with pytest.raises(LedgerError, match="not contiguous"):
        make_statement(
            backwards,
            [],
            from_time=T0,
            to_time=T0 + 5 * 3600,
            sign_digest=AGENT.sign_digest,
            domain=DOMAIN,
        )

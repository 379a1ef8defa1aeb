"""`assets.audit`: a ledger against its chain history, a beneficiary's payments, a user's receipts.

Every way the ledger, a payout or a receipt can be wrong must come back as a failed check with a
message naming the seq or payment id; a ledger that is right must pass with the right totals.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from msgspec.structs import replace

from assets.audit import (
    ReceivedShare,
    anchors_from_history,
    audit_ledger,
    check_beneficiary,
    check_statement,
    check_user_receipts,
    receipt_uses,
    received_shares,
    splits_from_history,
)
from assets.ledger import (
    GENESIS_PREV_HASH,
    Anchor,
    LedgerError,
    SignedEntry,
    UseBody,
    encode_body,
    make_anchor,
    make_statement,
    make_use_entry,
    pseudonym,
    pseudonym_seed,
    revenue_totals,
    use_body,
)
from assets.payment_ids import charge_payment_id, share_payment_id
from channels.chain.assets import (
    AgentChanged,
    AssetEvent,
    AssetHistory,
    AssetRegistered,
    LedgerAnchored,
    SplitChanged,
)
from channels.codec.eip712 import Domain
from channels.codec.keccak import keccak
from channels.core.splits import Split, split_fee
from channels.core.types import Address, BlockNumber
from channels.records import InvoiceRecord, ReceiptRecord
from channels.signer import LocalSigner

AGENT = LocalSigner(keccak(b"asset agent key"))
AGENT2 = LocalSigner(keccak(b"new asset agent key"))
MALLORY = LocalSigner(keccak(b"mallory"))
OPERATOR = Address(b"\x0e" * 20)
DOMAIN = Domain(1337, b"\x5f" * 20)
ASSET = keccak(b"washing machine 7")
OTHER_ASSET = keccak(b"milk robot 3")
B1, B2, B3 = (Address(bytes([n]) * 20) for n in (0x11, 0x22, 0x33))
SPLIT = Split(1, (B1, B2, B3), (500_000, 300_000, 200_000))
SPLIT2 = Split(2, (B1, B3), (900_000, 100_000))
SLOTS = {B1: 1, B2: 2, B3: 3}
ALICE = Address(b"\xaa" * 20)
T0 = 1_767_225_600


# ---------------------------------------------------------------------------------------------
# fixtures: a ledger as the asset agent writes it, and the chain history of its asset


def body_for(n: int, fee: int, split: Split, counts: dict[bytes, int]) -> UseBody:
    ids = []
    for beneficiary, amount in zip(split.beneficiaries, split_fee(fee, split), strict=True):
        if amount == 0:
            ids.append(0)
            continue
        counts[beneficiary] = counts.get(beneficiary, 0) + 1
        ids.append(share_payment_id(SLOTS[beneficiary], counts[beneficiary]))
    return use_body(
        event_id=f"ev-{n}",
        user=pseudonym(pseudonym_seed(AGENT.sign_digest, ASSET), ASSET, ALICE),
        units=n * 10,
        fee=fee,
        split=split,
        payment_ids=ids,
        charge_payment_id=charge_payment_id(ASSET, f"ev-{n}"),
    )


def make_ledger(
    count: int = 6, *, signers: dict[int, LocalSigner] | None = None
) -> list[SignedEntry]:
    """`count` uses: split 1 for seq 1..4, split 2 after; seq n signed by `signers[n]` or AGENT."""
    ledger: list[SignedEntry] = []
    counts: dict[bytes, int] = {}
    for n in range(1, count + 1):
        split = SPLIT if n <= 4 else SPLIT2
        signer = (signers or {}).get(n, AGENT)
        ledger.append(
            make_use_entry(
                signer.sign_digest,
                DOMAIN,
                asset_id=ASSET,
                seq=n,
                prev_hash=ledger[-1].entry_hash if ledger else GENESIS_PREV_HASH,
                time=T0 + 3600 * n,
                body=body_for(n, 1_000_000 + 333 * n, split, counts),
            )
        )
    return ledger


def where(n: int) -> dict[str, Any]:
    return {
        "asset_id": ASSET,
        "block_number": BlockNumber(100 + n),
        "transaction_hash": keccak(f"tx {n}".encode()),
        "log_index": 0,
    }


def history(
    anchors: Sequence[Anchor] = (),
    *,
    agent_changes: tuple[LocalSigner, ...] = (),
    asset_id: bytes = ASSET,
    registered: bool = True,
) -> AssetHistory:
    events: list[AssetEvent] = []
    if registered:
        events.append(
            AssetRegistered(**where(0), operator=OPERATOR, agent=Address(AGENT.address),
                            metadata_hash=keccak(b"meta"), metadata_uri="ipfs://meta")
        )  # fmt: skip
    for split in (SPLIT, SPLIT2):
        events.append(
            SplitChanged(**where(split.version), version=split.version,
                         beneficiaries=split.beneficiaries, ppm=split.ppm)
        )  # fmt: skip
    for i, signer in enumerate(agent_changes):
        events.append(AgentChanged(**where(10 + i), agent=Address(signer.address)))
    for index, anchor in enumerate(anchors):
        events.append(
            LedgerAnchored(**where(20 + index), index=index, from_seq=anchor.from_seq,
                           to_seq=anchor.to_seq, root=anchor.root, head_hash=anchor.head_hash)
        )  # fmt: skip
    return AssetHistory(asset_id, tuple(events))


def anchored(ledger: list[SignedEntry], *ranges: tuple[int, int]) -> list[Anchor]:
    return [make_anchor(ledger[a - 1 : b]) for a, b in ranges]


def audit(entries: list[SignedEntry], chain: AssetHistory, **kwargs: Any) -> Any:
    return audit_ledger(entries, asset_id=ASSET, domain=DOMAIN, history=chain, **kwargs)


def with_body(entry: SignedEntry, **changes: Any) -> SignedEntry:
    """The entry with its body changed, not re-signed (a changed disk or file)."""
    return replace(entry, body=encode_body(replace(entry.decode_use_body(), **changes)))


def resigned(entry: SignedEntry, signer: LocalSigner = AGENT, **changes: Any) -> SignedEntry:
    """The entry with `changes`, signed anew (what a dishonest key holder can do)."""
    changed = replace(entry, **changes)
    return replace(changed, signature=signer.sign_digest(changed.digest(DOMAIN)))


# ---------------------------------------------------------------------------------------------
# chain history -> core records


def test_splits_and_anchors_come_from_the_chain_history() -> None:
    ledger = make_ledger()
    anchors = anchored(ledger, (1, 2), (3, 4))
    chain = history(anchors)
    assert splits_from_history(chain) == {1: SPLIT, 2: SPLIT2}
    assert anchors_from_history(chain) == tuple(anchors)


# ---------------------------------------------------------------------------------------------
# audit_ledger


def test_a_sound_ledger_passes_with_its_totals_and_anchoring() -> None:
    ledger = make_ledger()
    anchors = anchored(ledger, (1, 2), (3, 4))
    report = audit(ledger, history(anchors), local_anchors=anchors)
    assert report.ok, report.problem
    assert (report.entries, report.first_seq, report.last_seq) == (6, 1, 6)
    assert (report.anchored_seq, report.anchored, report.unanchored) == (4, 4, 2)
    assert report.totals == revenue_totals(ledger)
    assert report.agents == (AGENT.address,)
    assert report.split_versions == (1, 2)
    assert report.notes == ()


def test_a_ledger_with_no_anchor_yet_passes_unanchored() -> None:
    report = audit(make_ledger(3), history())
    assert report.ok
    assert (report.anchored_seq, report.anchored, report.unanchored) == (0, 0, 3)


def test_an_empty_ledger_passes_only_while_nothing_is_anchored() -> None:
    assert audit([], history()).ok
    anchors = anchored(make_ledger(), (1, 4))
    report = audit([], history(anchors))
    assert not report.ok
    assert "truncated" in (report.problem or "")


def test_a_tampered_fee_is_caught_by_its_signature() -> None:
    ledger = make_ledger()
    ledger[2] = with_body(ledger[2], fee=1)
    report = audit(ledger, history(anchored(ledger, (1, 2))))
    assert not report.ok
    assert report.problem_seq == 3
    assert "seq 3" in (report.problem or "") and "not signed by the agent" in (report.problem or "")


def test_a_fee_changed_and_resigned_is_caught_by_the_anchor() -> None:
    ledger = make_ledger()
    anchors = anchored(ledger, (1, 4))  # anchored before the key holder rewrites history
    body = ledger[1].decode_use_body()
    shares = tuple(replace(s, amount=0 if i else 7, payment_id=0 if i else s.payment_id)
                   for i, s in enumerate(body.shares))  # fmt: skip
    ledger[1] = resigned(ledger[1], body=encode_body(replace(body, fee=7, shares=shares)))
    report = audit(ledger, history(anchors))
    assert not report.ok
    # the shares no longer are split 1 of the fee: caught before the anchor even
    assert report.problem_seq == 2
    assert "split version 1" in (report.problem or "")


def test_a_resigned_relinked_rewrite_is_caught_by_the_anchor() -> None:
    ledger = make_ledger()
    anchors = anchored(ledger, (1, 4))
    rewritten = ledger[:2]
    for original in ledger[2:]:  # a new time for seq 3 and every link after it, all re-signed
        time = original.time + (60 if original.seq == 3 else 0)
        rewritten.append(resigned(original, time=time, prev_hash=rewritten[-1].entry_hash))
    report = audit(rewritten, history(anchors))
    assert not report.ok
    assert report.problem == (
        "seq 4: entry hash differs from the expected head hash (the head of the last on-chain "
        "anchor of seq 1..4)"
    )


def test_swapped_entries_are_caught() -> None:
    ledger = make_ledger()
    ledger[1], ledger[2] = ledger[2], ledger[1]
    report = audit(ledger, history())
    assert not report.ok
    assert report.problem_seq == 3
    assert "expected seq 2 after seq 1" in (report.problem or "")


def test_a_truncated_tail_is_caught_against_the_last_anchor() -> None:
    ledger = make_ledger()
    chain = history(anchored(ledger, (1, 2), (3, 5)))
    report = audit(ledger[:4], chain)
    assert not report.ok
    assert report.problem == (
        "truncated: the entries end at seq 4, the head is seq 5 (the head of the last on-chain "
        "anchor of seq 3..5)"
    )


def test_a_ledger_missing_its_start_is_caught() -> None:
    report = audit(make_ledger()[2:], history())
    assert not report.ok
    assert "starts at seq 3: seq 1..2 are missing" in (report.problem or "")


def test_an_anchor_that_does_not_match_the_entries_is_caught() -> None:
    ledger = make_ledger()
    good = anchored(ledger, (1, 2), (3, 4))
    bad = [good[0], replace(good[1], root=keccak(b"another root"))]
    report = audit(ledger, history(bad))
    assert not report.ok
    assert "Merkle root of seq 3..4 differs from the anchor of seq 3..4" in (report.problem or "")


def test_local_anchors_must_be_the_chains() -> None:
    ledger = make_ledger()
    chain_anchors = anchored(ledger, (1, 2), (3, 4))
    other = anchored(ledger, (1, 3))
    report = audit(ledger, history(chain_anchors), local_anchors=other)
    assert not report.ok
    assert "anchor 0 (anchor of seq 1..3) differs from the chain's anchor 0" in (
        report.problem or ""
    )
    extra = [*chain_anchors, make_anchor(ledger[4:6])]
    report = audit(ledger, history(chain_anchors), local_anchors=extra)
    assert "not on chain" in (report.problem or "")
    report = audit(ledger, history(chain_anchors), local_anchors=chain_anchors[:1])
    assert report.ok
    assert "records 1 of the chain's 2 anchors" in report.notes[0]


def test_a_split_version_the_chain_never_recorded_is_caught() -> None:
    ledger = make_ledger(2)
    unknown = Split(3, (B1,), (1_000_000,))
    body = use_body(event_id="ev-x", user=b"\x01" * 32, units=1, fee=100, split=unknown,
                    payment_ids=[share_payment_id(1, 9)], charge_payment_id=5)  # fmt: skip
    ledger.append(
        make_use_entry(AGENT.sign_digest, DOMAIN, asset_id=ASSET, seq=3,
                       prev_hash=ledger[-1].entry_hash, time=T0, body=body)
    )  # fmt: skip
    report = audit(ledger, history())
    assert report.problem == "seq 3: split version 3 is unknown"


def test_an_unregistered_or_other_asset_fails() -> None:
    report = audit(make_ledger(1), history(registered=False))
    assert report.problem == f"asset 0x{ASSET.hex()} is not registered on chain"
    report = audit(make_ledger(1), history(asset_id=OTHER_ASSET))
    assert "the chain history is asset" in (report.problem or "")


def test_entries_of_every_agent_the_history_names_are_accepted() -> None:
    ledger = make_ledger(signers={4: AGENT2, 5: AGENT2, 6: AGENT2})
    anchors = anchored(ledger, (1, 5))
    assert not audit(ledger, history(anchors)).ok  # AGENT2 is no agent yet
    report = audit(ledger, history(anchors, agent_changes=(AGENT2,)))
    assert report.ok, report.problem
    assert report.agents == (AGENT.address, AGENT2.address)


def test_an_entry_by_a_key_that_never_was_the_agent_is_caught() -> None:
    ledger = make_ledger(signers={4: AGENT2, 5: MALLORY, 6: AGENT2})
    report = audit(ledger, history(agent_changes=(AGENT2,)))
    assert not report.ok
    assert report.problem_seq == 5
    assert f"not signed by the agent 0x{AGENT2.address.hex()}" in (report.problem or "")


def test_a_duplicate_event_across_agents_is_caught() -> None:
    ledger = make_ledger(3)
    body = replace(ledger[0].decode_use_body(), event_id="ev-1")
    ledger.append(
        make_use_entry(AGENT2.sign_digest, DOMAIN, asset_id=ASSET, seq=4,
                       prev_hash=ledger[-1].entry_hash, time=T0, body=body)
    )  # fmt: skip
    report = audit(ledger, history(agent_changes=(AGENT2,)))
    assert report.problem == "seq 4: event_id 'ev-1' already used at seq 1"


def test_a_broken_link_between_agents_is_caught() -> None:
    ledger = make_ledger(signers={4: AGENT2, 5: AGENT2, 6: AGENT2})
    ledger[3] = resigned(ledger[3], AGENT2, prev_hash=keccak(b"elsewhere"))
    report = audit(ledger, history(agent_changes=(AGENT2,)))
    assert report.problem == "seq 4: prevHash does not link to the entry hash of seq 3"


# ---------------------------------------------------------------------------------------------
# check_beneficiary


def paid_to(ledger: list[SignedEntry], beneficiary: bytes) -> list[ReceivedShare]:
    """What the beneficiary received when every share was paid as recorded."""
    return [
        ReceivedShare(AGENT.address, share.payment_id, share.amount)
        for entry in ledger
        for share in entry.decode_use_body().shares
        if share.beneficiary == beneficiary and share.payment_id
    ]


def test_a_beneficiary_paid_in_full_checks_out() -> None:
    ledger = make_ledger()
    check = check_beneficiary(ledger, B1, paid_to(ledger, B1))
    assert check.ok, check.problems()
    assert check.shares == 6
    assert check.owed == check.received == revenue_totals(ledger).beneficiary_total(B1)


def test_a_retried_share_counts_for_the_ledger_share() -> None:
    ledger = make_ledger()
    received = paid_to(ledger, B3)
    first = received[0]
    received[0] = first._replace(payment_id=first.payment_id | 2 << 32)  # the third attempt
    assert check_beneficiary(ledger, B3, received).ok


def test_a_short_paid_share_is_reported() -> None:
    ledger = make_ledger()
    received = paid_to(ledger, B2)
    short = received[1]
    received[1] = short._replace(amount=short.amount - 1)
    check = check_beneficiary(ledger, B2, received)
    assert not check.ok
    assert check.received == check.owed - 1
    [issue] = check.differing
    assert (issue.seq, issue.payment_id) == (2, short.payment_id)
    assert check.problems() == [
        f"seq 2: share payment {short.payment_id}: the ledger says {short.amount}, "
        f"{short.amount - 1} was received"
    ]


def test_a_missing_share_and_an_unexplained_payment_are_reported() -> None:
    ledger = make_ledger()
    received = paid_to(ledger, B1)
    gone = received.pop(3)
    stray = ReceivedShare(AGENT.address, share_payment_id(1, 99), 5)
    check = check_beneficiary(ledger, B1, [*received, stray])
    assert not check.ok
    assert [(i.seq, i.payment_id, i.owed) for i in check.missing] == [
        (4, gone.payment_id, gone.amount)
    ]
    assert check.unexplained == (stray,)
    assert f"seq 4: share payment {gone.payment_id} of {gone.amount} not received" in (
        check.problems()
    )
    assert any("explained by no ledger share" in p for p in check.problems())


def test_a_share_paid_twice_is_reported() -> None:
    ledger = make_ledger()
    received = paid_to(ledger, B1)
    again = received[0]._replace(payment_id=received[0].payment_id | 1 << 32)
    check = check_beneficiary(ledger, B1, [*received, again])
    assert [issue.received for issue in check.differing] == [2 * received[0].amount]


def test_received_shares_come_from_the_assets_received_invoices_only() -> None:
    invoices = [
        InvoiceRecord(11, AGENT.address, 0, b"\x01" * 32, "received", received=500),
        InvoiceRecord(12, AGENT.address, 400, b"\x02" * 32, "received"),
        InvoiceRecord(13, AGENT.address, 0, b"\x03" * 32, "revealed", received=500),
        InvoiceRecord(14, MALLORY.address, 0, b"\x04" * 32, "received", received=500),
    ]
    assert received_shares(invoices, {AGENT.address}) == [
        ReceivedShare(AGENT.address, 11, 500),
        ReceivedShare(AGENT.address, 12, 400),
    ]


# ---------------------------------------------------------------------------------------------
# check_user_receipts


def receipt(entry: SignedEntry, agent: bytes = AGENT.address) -> ReceiptRecord:
    return ReceiptRecord(agent, entry.decode_use_body().charge_payment_id, entry.encode())


def test_receipts_the_ledger_holds_are_ok() -> None:
    ledger = make_ledger()
    check = check_user_receipts([receipt(e) for e in ledger[:3]], ledger, ASSET, DOMAIN,
                                AGENT.address)  # fmt: skip
    assert check.ok, check.problems()
    assert [line.seq for line in check.uses] == [1, 2, 3]
    assert check.fee_total == sum(e.decode_use_body().fee for e in ledger[:3])
    line = check.uses[0]
    body = ledger[0].decode_use_body()
    assert (line.time, line.units, line.fee, line.charge_payment_id) == (
        ledger[0].time, body.units, body.fee, body.charge_payment_id,
    )  # fmt: skip


def test_a_forged_receipt_is_reported() -> None:
    ledger = make_ledger()
    forged = resigned(ledger[1], MALLORY)
    check = check_user_receipts([receipt(forged)], ledger, ASSET, DOMAIN, AGENT.address)
    [line] = check.uses
    assert line.status == "bad signature"
    assert f"signed by 0x{MALLORY.address.hex()}" in line.detail
    changed = with_body(ledger[1], units=1)  # the body changed, the signature kept
    [line] = check_user_receipts([receipt(changed)], ledger, ASSET, DOMAIN, AGENT.address).uses
    assert line.status == "bad signature"


def test_a_receipt_not_in_the_ledger_is_reported() -> None:
    ledger = make_ledger()
    check = check_user_receipts([receipt(ledger[5])], ledger[:5], ASSET, DOMAIN, AGENT.address)
    assert not check.ok
    assert check.problems() == [
        f"receipt of payment {ledger[5].decode_use_body().charge_payment_id} (seq 6): "
        "missing from ledger: the ledger has no seq 6"
    ]


def test_a_receipt_for_another_entry_at_its_seq_is_reported() -> None:
    ledger = make_ledger()
    other = resigned(ledger[2], time=ledger[2].time + 1)  # signed by the agent, never ledgered
    [line] = check_user_receipts([receipt(other)], ledger, ASSET, DOMAIN, AGENT.address).uses
    assert line.status == "differs"
    assert "the ledger's seq 3 is another entry" in line.detail


def test_receipts_of_another_asset_another_charge_or_garbage_are_reported() -> None:
    ledger = make_ledger()
    wrong_charge = ReceiptRecord(AGENT.address, 42, ledger[0].encode())
    garbage = ReceiptRecord(AGENT.address, 43, b"not an entry")
    check = check_user_receipts([wrong_charge, garbage], ledger, OTHER_ASSET, DOMAIN,
                                {AGENT.address})  # fmt: skip
    assert [line.status for line in check.uses] == ["other asset", "invalid"]
    check = check_user_receipts([wrong_charge], ledger, ASSET, DOMAIN, {AGENT.address})
    assert check.uses[0].status == "invalid"
    assert "not this payment" in check.uses[0].detail


def test_receipt_uses_check_each_receipt_against_its_sender() -> None:
    ledger = make_ledger(2)
    lines = receipt_uses([receipt(ledger[0]), receipt(ledger[1], MALLORY.address)], DOMAIN)
    assert [line.status for line in lines] == ["signed", "bad signature"]
    assert lines[0].asset_id == ASSET


# ---------------------------------------------------------------------------------------------
# check_statement


def test_a_statement_checks_against_the_chain() -> None:
    ledger = make_ledger()
    anchors = anchored(ledger, (1, 4))
    statement = make_statement(ledger, anchors, from_time=T0, to_time=T0 + 3600 * 10,
                               sign_digest=AGENT.sign_digest, domain=DOMAIN)  # fmt: skip
    result = check_statement(statement, domain=DOMAIN, history=history(anchors))
    assert result.anchored == (1, 2, 3, 4)
    assert result.unanchored == (5, 6)
    forged = make_statement(ledger, anchors, from_time=T0, to_time=T0 + 3600 * 10,
                            sign_digest=MALLORY.sign_digest, domain=DOMAIN)  # fmt: skip
    with pytest.raises(LedgerError, match="no agent of asset"):
        check_statement(forged, domain=DOMAIN, history=history(anchors))
    with pytest.raises(LedgerError, match="not on chain"):
        check_statement(statement, domain=DOMAIN, history=history(anchored(ledger, (1, 3))))

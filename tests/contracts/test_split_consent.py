"""AssetRegistry.changeSplit with consent (issue 19): who must sign, every refusal, nothing changed.

A change that lowers or removes a beneficiary's share needs that beneficiary's EIP-712 `SplitConsent`
(asset, new split hash, next version, expiry), except the operator's own share; each refusal is the
exact custom error and leaves the registry's storage as it was (`Registry.assert_reverts`). The
governed registry's pool protection and governance paths are in test_split_governance.py.
"""

from __future__ import annotations

import pytest
from eth_account.messages import encode_typed_data
from eth_utils import keccak, to_canonical_address
from registry_support import PPM_TOTAL, Registry, address_of, ascending, deploy_registry

from channels.chain.assets import split_hash
from channels.codec.eip712 import Domain, split_consent_digest

ASSET = keccak(b"asset consent wm-9")
OTHER = keccak(b"asset consent other")
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
# Gas of a consented change (3 beneficiaries, one lowered with its consent): measured 89,367.
CONSENTED_CHANGE_MAX = 95_000


@pytest.fixture(scope="session")
def _registry_deployed(_deployed) -> tuple[Registry, int]:
    chain, snapshot = _deployed
    chain.tester.revert_to_snapshot(snapshot)
    registry = deploy_registry(chain)
    return registry, chain.tester.take_snapshot()


@pytest.fixture
def reg(_registry_deployed) -> Registry:
    registry, snapshot = _registry_deployed
    registry.chain.tester.revert_to_snapshot(snapshot)
    return registry


@pytest.fixture
def people(reg: Registry):
    """(operator, servicer, supplier, stranger): actors with keys."""
    a = reg.chain.actors
    return a[0], a[4], a[5], a[6]


@pytest.fixture
def registered(reg: Registry, people) -> dict[str, int]:
    """ASSET: operator 400,000, servicer 300,000, supplier 300,000 ppm; returns the parts."""
    operator, servicer, supplier, _ = people
    parts = {operator.address: 400_000, servicer.address: 300_000, supplier.address: 300_000}
    reg.register(operator, ASSET, operator, _split(parts))
    return parts


def _split(parts: dict[str, int]) -> tuple[list[str], list[int]]:
    beneficiaries = ascending([b for b, p in parts.items() if p > 0])
    return beneficiaries, [parts[b] for b in beneficiaries]


def _moved(parts: dict[str, int], source: str, target: str, ppm: int) -> dict[str, int]:
    moved = dict(parts)
    moved[source] -= ppm
    moved[target] = moved.get(target, 0) + ppm
    return moved


def _expiry(reg: Registry, blocks: int = 20) -> int:
    return reg.chain.block + blocks


def test_lowering_a_servicer_with_its_consent(reg: Registry, people, registered) -> None:
    operator, servicer, _, _ = people
    new = _split(_moved(registered, servicer.address, operator.address, 100_000))
    consent = reg.consent(servicer, ASSET, *new, version=2, expiry=_expiry(reg))
    receipt = reg.tx(reg.change(ASSET, *new, consents=[consent]), operator)
    assert receipt.gasUsed <= CONSENTED_CHANGE_MAX
    assert reg.events(receipt, "SplitChanged") == [
        {"assetId": ASSET, "version": 2, "beneficiaries": new[0], "ppm": new[1]}
    ]
    assert reg.asset(ASSET)["splitVersion"] == 2
    raw = [to_canonical_address(b) for b in new[0]]
    assert reg.f.splitHashOf(ASSET, 2).call() == split_hash(raw, new[1])


def test_without_the_consent_nothing_changes(reg: Registry, people, registered) -> None:
    operator, servicer, _, _ = people
    new = _split(_moved(registered, servicer.address, operator.address, 100_000))
    reg.assert_reverts(
        reg.change(ASSET, *new), operator, "AssetRegistrySplitConsentMissing", servicer.address
    )
    assert reg.asset(ASSET)["splitVersion"] == 1


def test_removing_a_beneficiary_needs_its_consent(reg: Registry, people, registered) -> None:
    operator, _, supplier, _ = people
    new = _split(_moved(registered, supplier.address, operator.address, 300_000))
    assert supplier.address not in new[0]
    reg.assert_reverts(
        reg.change(ASSET, *new), operator, "AssetRegistrySplitConsentMissing", supplier.address
    )
    consent = reg.consent(supplier, ASSET, *new, version=2, expiry=_expiry(reg))
    reg.tx(reg.change(ASSET, *new, consents=[consent]), operator)
    assert reg.current(ASSET) == new


def test_raising_or_adding_at_the_operators_expense_needs_only_the_operator(
    reg: Registry, people, registered
) -> None:
    operator, servicer, _, _ = people
    raised = _moved(registered, operator.address, servicer.address, 50_000)
    reg.tx(reg.change(ASSET, *_split(raised)), operator)
    added = _moved(raised, operator.address, address_of("new servicer"), 50_000)
    reg.tx(reg.change(ASSET, *_split(added)), operator)
    gone = _moved(added, operator.address, servicer.address, added[operator.address])
    reg.tx(reg.change(ASSET, *_split(gone)), operator)  # the operator may leave the split
    assert reg.asset(ASSET)["splitVersion"] == 4 and reg.current(ASSET) == _split(gone)


def test_two_lowered_need_both_consents_in_order(reg: Registry, people, registered) -> None:
    operator, servicer, supplier, _ = people
    parts = _moved(registered, servicer.address, operator.address, 100_000)
    new = _split(_moved(parts, supplier.address, operator.address, 100_000))
    expiry = _expiry(reg)
    by = {
        p.address: reg.consent(p, ASSET, *new, version=2, expiry=expiry)
        for p in (servicer, supplier)
    }
    first, second = ascending([servicer.address, supplier.address])
    reg.assert_reverts(
        reg.change(ASSET, *new, consents=[by[first]]),
        operator,
        "AssetRegistrySplitConsentMissing",
        second,
    )
    reg.assert_reverts(
        reg.change(ASSET, *new, consents=[by[second], by[first]]),
        operator,
        "AssetRegistrySplitConsentMissing",
        first,
    )
    reg.tx(reg.change(ASSET, *new, consents=[by[first], by[second]]), operator)
    assert reg.current(ASSET) == new


def test_an_expired_consent(reg: Registry, people, registered) -> None:
    operator, servicer, _, _ = people
    new = _split(_moved(registered, servicer.address, operator.address, 100_000))
    expiry = reg.chain.block
    consent = reg.consent(servicer, ASSET, *new, version=2, expiry=expiry)
    reg.chain.mine(1)
    reg.assert_reverts(
        reg.change(ASSET, *new, consents=[consent]),
        operator,
        "AssetRegistrySplitConsentExpired",
        servicer.address,
        expiry,
    )


def test_a_consent_for_another_split_asset_or_signer(reg: Registry, people, registered) -> None:
    operator, servicer, _, stranger = people
    new = _split(_moved(registered, servicer.address, operator.address, 100_000))
    other = _split(_moved(registered, servicer.address, operator.address, 200_000))
    expiry = _expiry(reg)
    bad = {
        "another split": reg.consent(servicer, ASSET, *other, version=2, expiry=expiry),
        "another asset": reg.consent(servicer, OTHER, *new, version=2, expiry=expiry),
        "another version": reg.consent(servicer, ASSET, *new, version=3, expiry=expiry),
    }
    by_stranger = reg.consent(stranger, ASSET, *new, version=2, expiry=expiry)
    bad["signed by another"] = (servicer.address, expiry, by_stranger[2])
    good = reg.consent(servicer, ASSET, *new, version=2, expiry=expiry)
    bad["another expiry"] = (servicer.address, expiry + 1, good[2])
    for what, consent in bad.items():
        reg.assert_reverts(
            reg.change(ASSET, *new, consents=[consent]),
            operator,
            "AssetRegistrySplitConsentInvalid",
            servicer.address,
        )
        assert what  # each case above is one way a consent can be for something else


def test_a_malformed_or_high_s_signature(reg: Registry, people, registered) -> None:
    operator, servicer, _, _ = people
    new = _split(_moved(registered, servicer.address, operator.address, 100_000))
    expiry = _expiry(reg)
    sig = reg.consent(servicer, ASSET, *new, version=2, expiry=expiry)[2]
    r, s, v = sig[:32], int.from_bytes(sig[32:64], "big"), sig[64]
    high_s = r + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - v])  # same key, high s
    for signature in (b"", sig[:64], sig + b"\x00", high_s, b"\x00" * 65):
        reg.assert_reverts(
            reg.change(ASSET, *new, consents=[(servicer.address, expiry, signature)]),
            operator,
            "AssetRegistrySplitConsentInvalid",
            servicer.address,
        )


def test_a_replayed_consent(reg: Registry, people, registered) -> None:
    operator, servicer, _, _ = people
    lowered = _split(_moved(registered, servicer.address, operator.address, 100_000))
    consent = reg.consent(servicer, ASSET, *lowered, version=2, expiry=_expiry(reg))
    reg.tx(reg.change(ASSET, *lowered, consents=[consent]), operator)
    # The operator gives the share back (no consent needed), then tries the same lowering again.
    reg.tx(reg.change(ASSET, *_split(registered)), operator)
    reg.assert_reverts(
        reg.change(ASSET, *lowered, consents=[consent]),
        operator,
        "AssetRegistrySplitConsentInvalid",
        servicer.address,
    )
    assert reg.asset(ASSET)["splitVersion"] == 3


def test_an_unneeded_consent(reg: Registry, people, registered) -> None:
    operator, servicer, supplier, _ = people
    new = _split(_moved(registered, servicer.address, operator.address, 100_000))
    expiry = _expiry(reg)
    needed = reg.consent(servicer, ASSET, *new, version=2, expiry=expiry)
    extra = reg.consent(supplier, ASSET, *new, version=2, expiry=expiry)
    by_operator = reg.consent(operator, ASSET, *new, version=2, expiry=expiry)
    cases = [
        ([needed, extra], supplier),
        ([needed, by_operator], operator),
        ([needed, needed], servicer),
    ]
    for consents, unneeded in cases:
        ordered = sorted(consents, key=lambda c: int(c[0], 16))
        reg.assert_reverts(
            reg.change(ASSET, *new, consents=ordered),
            operator,
            "AssetRegistrySplitConsentUnneeded",
            unneeded.address,
        )
    raised = _split(_moved(registered, operator.address, servicer.address, 1))
    reg.assert_reverts(
        reg.change(ASSET, *raised, consents=[needed]),
        operator,
        "AssetRegistrySplitConsentUnneeded",
        servicer.address,
    )


def test_the_current_split_must_be_the_one_in_force(reg: Registry, people, registered) -> None:
    operator, servicer, _, _ = people
    stale = _split(_moved(registered, operator.address, servicer.address, 10))
    new = _split(_moved(registered, operator.address, servicer.address, 20))
    reg.assert_reverts(
        reg.change(ASSET, *new, current=stale),
        operator,
        "AssetRegistryNotCurrentSplit",
        ASSET,
        1,
    )


def test_the_digest_view_is_the_python_digest(reg: Registry) -> None:
    domain = Domain(reg.chain.w3.eth.chain_id, to_canonical_address(reg.address))
    split = keccak(b"split")
    for version, expiry in ((2, 0), (7, 123_456), (2**32 - 1, 2**256 - 1)):
        got = reg.f.splitConsentDigest(ASSET, split, version, expiry).call()
        assert got == split_consent_digest(domain, ASSET, split, version, expiry)
    assert reg.f.SPLIT_CONSENT_TYPEHASH().call() == keccak(
        b"SplitConsent(bytes32 assetId,bytes32 splitHash,uint256 version,uint256 expiry)"
    )
    assert PPM_TOTAL == 1_000_000


def test_the_digest_is_eth_accounts_typed_data(reg: Registry) -> None:
    # The third implementation: eth_account's generic EIP-712 encoder over the type of docs/protocol.md.
    chain_id, split = reg.chain.w3.eth.chain_id, keccak(b"another split")
    signable = encode_typed_data(
        full_message={
            "types": {
                "EIP712Domain": [
                    {"name": "name", "type": "string"},
                    {"name": "version", "type": "string"},
                    {"name": "chainId", "type": "uint256"},
                    {"name": "verifyingContract", "type": "address"},
                ],
                "SplitConsent": [
                    {"name": "assetId", "type": "bytes32"},
                    {"name": "splitHash", "type": "bytes32"},
                    {"name": "version", "type": "uint256"},
                    {"name": "expiry", "type": "uint256"},
                ],
            },
            "primaryType": "SplitConsent",
            "domain": {
                "name": "CISE",
                "version": "1",
                "chainId": chain_id,
                "verifyingContract": reg.address,
            },
            "message": {"assetId": ASSET, "splitHash": split, "version": 5, "expiry": 99},
        }
    )
    expected = keccak(b"\x19" + signable.version + signable.header + signable.body)
    assert reg.f.splitConsentDigest(ASSET, split, 5, 99).call() == expected


def test_gas_of_consented_changes(reg: Registry, people, registered) -> None:
    """Gas of a change of the 3-way split: lowering nobody, one beneficiary, two (-s shows it)."""
    operator, servicer, supplier, _ = people
    gas: dict[str, int] = {}
    raised = _moved(registered, operator.address, servicer.address, 10_000)
    gas["at the operator's expense"] = reg.tx(reg.change(ASSET, *_split(raised)), operator).gasUsed
    one = _split(_moved(raised, servicer.address, operator.address, 20_000))
    consent = reg.consent(servicer, ASSET, *one, version=3, expiry=_expiry(reg))
    gas["one consent"] = reg.tx(reg.change(ASSET, *one, consents=[consent]), operator).gasUsed
    parts = _moved(_moved(dict(zip(*one, strict=True)), servicer.address, operator.address, 1),
                   supplier.address, operator.address, 1)  # fmt: skip
    two = _split(parts)
    expiry = _expiry(reg)
    consents = sorted((reg.consent(p, ASSET, *two, version=4, expiry=expiry)
                       for p in (servicer, supplier)), key=lambda c: int(c[0], 16))  # fmt: skip
    gas["two consents"] = reg.tx(reg.change(ASSET, *two, consents=consents), operator).gasUsed
    print("\nchangeSplit gas, 3 beneficiaries (tx gasUsed):")
    for name, used in gas.items():
        print(f"  {name:28} {used:>8,}")
    assert gas["one consent"] - gas["at the operator's expense"] < 15_000
    assert gas["two consents"] <= CONSENTED_CHANGE_MAX + 15_000

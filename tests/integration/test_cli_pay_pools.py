"""`cise asset pay-pools` on a `cise chain` network (anvil), through the CLI: the operator opens a
pool for its asset and puts it in the split, members fund it; the asset's ledger (written here as
its agent writes it: the pool's shares kept with payment id 0) is paid out from the agent's internal
balance once, the pool syncs; the wrong account or a ledger that does not check out is refused
and nothing is paid."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from eth_account import Account
from msgspec.structs import replace

from assets.ledger import GENESIS_PREV_HASH, SignedEntry, make_use_entry, use_body
from assets.ledger_store import LedgerStore
from assets.payment_ids import charge_payment_id, share_payment_id
from assets.pool_payments import kept_totals
from channels.chain.assets import AssetRegistryClient, canonical_split
from channels.chain.client import Web3ChainClient
from channels.chain.connection import Connection
from channels.codec.eip712 import Domain
from channels.core.splits import Split
from channels.core.types import Address, to_checksum
from channels.signer import LocalSigner
from cise.main import main
from cise.network import load_network
from tests.integration.test_cli_channel import running_chain
from tests.integration.test_cli_hub import _cli

pytestmark = pytest.mark.node

OPERATOR, ALICE, AGENT, BOB, SERVICER = 0, 1, 2, 3, 7
EURO = 1_000_000
FEES = (2_500_003, 1_234_567, 999_999)


def ledger_of(
    signer: LocalSigner, domain: Domain, asset_id: bytes, split: Split
) -> list[SignedEntry]:
    """Uses as the asset agent records them with `split`: the pool's share kept (payment id 0),
    the servicer's routed."""
    pool = split.beneficiaries[split.ppm.index(300_000)]
    entries: list[SignedEntry] = []
    for n, fee in enumerate(FEES, start=1):
        ids = [0 if b == pool else share_payment_id(1, n) for b in split.beneficiaries]
        body = use_body(event_id=f"cycle-{n}", user=b"\x05" * 32, units=1, fee=fee, split=split,
                        payment_ids=ids, charge_payment_id=charge_payment_id(asset_id, f"c{n}"))  # fmt: skip
        entries.append(
            make_use_entry(
                signer.sign_digest,
                domain,
                asset_id=asset_id,
                seq=n,
                prev_hash=entries[-1].entry_hash if entries else GENESIS_PREV_HASH,
                time=1_767_225_600 + n,
                body=body,
            )
        )
    return entries


def write(path: Path, entries: list[SignedEntry]) -> Path:
    with LedgerStore(path) as store:
        for entry in entries:
            store.append(entry)
    return path


def test_pay_pools_pays_the_kept_shares_once_through_the_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    with running_chain(tmp_path / "network.json", settle_timeout=20) as network_file:
        network = load_network(network_file)
        keys = network.dev_keys
        addr = {
            i: Address(LocalSigner(keys[i]).address)
            for i in (OPERATOR, ALICE, AGENT, BOB, SERVICER)
        }

        def cli(account: int, *argv: str) -> tuple[int, str, str]:
            capsys.readouterr()
            code = main(_cli(network_file, data, account, *argv))
            out, err = capsys.readouterr()
            return code, out, err

        agent_text, servicer_text = to_checksum(addr[AGENT]), to_checksum(addr[SERVICER])
        split_text = f"{servicer_text}=1000000"
        code, out, _ = cli(OPERATOR, "asset", "register", "washer-7", "--agent", agent_text,
                           "--split", split_text)  # fmt: skip
        assert code == 0
        asset_id = bytes.fromhex(json.loads(out)["asset"][2:])
        code, out, _ = cli(OPERATOR, "finance", "create", "washer-7", "--target", "10",
                           "--blocks", "200", "--return", "1080000")  # fmt: skip
        assert code == 0, out
        pool = Address(bytes.fromhex(json.loads(out)["pool"][2:]))
        assert cli(ALICE, "finance", "contribute", to_checksum(pool), "6")[0] == 0
        assert cli(BOB, "finance", "contribute", to_checksum(pool), "4")[0] == 0
        connection = Connection.from_url(network.rpc_url, keys)
        registry = AssetRegistryClient(
            connection, network.deployment, Account.from_key(keys[OPERATOR])
        )
        beneficiaries, ppm = canonical_split({addr[SERVICER]: 700_000, pool: 300_000})
        consent = registry.for_account(Account.from_key(keys[SERVICER])).sign_split_consent(
            asset_id, beneficiaries, ppm, expiry=connection.block_number() + 20
        )  # the servicer's share goes down: its consent (issue 19)
        version, _ = registry.change_split(asset_id, beneficiaries, ppm, [consent])
        split = Split(version, beneficiaries, ppm)
        assert network.deployment.asset_registry is not None
        domain = Domain(network.deployment.chain_id, network.deployment.asset_registry)
        entries = ledger_of(LocalSigner(keys[AGENT]), domain, asset_id, split)
        kept = kept_totals(entries, {pool})[pool]
        path = write(tmp_path / "ledger.sqlite", entries)
        agent = Web3ChainClient.from_key(connection, network.deployment, keys[AGENT])
        agent.approve(kept)
        agent.deposit_to_balance(kept)  # stands for the settled channel earnings

        # refused, nothing paid: another account; a ledger that does not check out
        code, _, err = cli(BOB, "asset", "pay-pools", "washer-7", "--ledger", str(path))
        assert code == 2 and "is not the asset's agent" in err
        forged = [*entries[:2], replace(entries[2], time=entries[2].time + 1)]
        bad = write(tmp_path / "forged.sqlite", forged)
        code, _, err = cli(AGENT, "asset", "pay-pools", "washer-7", "--ledger", str(bad))
        assert code == 2 and "the ledger does not check out" in err and "seq 3" in err
        assert agent.balance_of(agent.address) == kept and agent.token_balance(pool) == 0

        code, out, err = cli(
            AGENT, "asset", "pay-pools", "washer-7", "--ledger", str(path), "--json"
        )
        assert code == 0, err
        report = json.loads(out)
        (line,) = report["pools"]
        assert line["pool"] == to_checksum(pool)
        assert (line["kept"], line["paid_before"], line["paid_now"], line["still_owed"]) == (
            kept,
            0,
            kept,
            0,
        )
        assert line["synced"] == {"to_contributors": kept, "to_operator": 0}
        assert report["available_before"] == kept and report["available_after"] == 0

        code, out, _ = cli(AGENT, "asset", "pay-pools", "washer-7", "--ledger", str(path))
        assert code == 0 and "every pool is paid the shares kept for it" in out
        assert agent.balance_of(agent.address) == 0  # nothing more was paid
        assert agent.token_balance(pool) == kept  # synced: held for the contributors' claims
        code, out, _ = cli(ALICE, "finance", "claim", to_checksum(pool))
        assert code == 0 and json.loads(out) == {"claimed": kept * 6 // 10}
        assert agent.token_balance(pool) == kept - kept * 6 // 10

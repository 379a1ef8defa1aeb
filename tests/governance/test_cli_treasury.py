"""`cise gov treasury` and the treasury flags of `cise gov propose`, as `cise` processes against a
live anvil network: the treasury's address, balance, governed part and payouts, in text and JSON;
a proposal paying out of it and setting the part is ordinary."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from eth_account import Account

from channels.chain.client import Web3ChainClient
from channels.chain.governance import GovernanceClient, pass_proposal
from channels.chain.nodes import LocalNode
from channels.core.types import Address, to_checksum
from tests.governance.govfix import run_cise
from tests.governance.test_cli import _network_file

RECIPIENT = Address(bytes.fromhex("42" * 20))


@pytest.mark.node
def test_cise_gov_treasury_shows_balance_part_and_payouts(tmp_path: Path, anvil: LocalNode) -> None:
    network, connection, deployment = _network_file(tmp_path, anvil)
    treasury = deployment.treasury
    assert treasury is not None
    common = ("--network", str(network))
    empty = run_cise("gov", "treasury", *common, "--json")
    assert empty.returncode == 0, empty.stderr
    assert json.loads(empty.stdout) == {
        "address": to_checksum(treasury), "balance": 0, "fee_ppm": 0, "payouts": [],
    }  # fmt: skip
    founders = [Account.from_key(k) for k in anvil.private_keys[:3]]
    minter = Web3ChainClient(connection, deployment, founders[0])
    minter.mint(minter.address, 5_000_000)
    minter.transfer_token(treasury, 5_000_000)  # a deposit is a plain transfer
    proposed = run_cise(
        "gov", "propose", *common, "--treasury-fee-ppm", "50000",
        "--pay-out", f"{to_checksum(RECIPIENT)}=1.25", "--pay-out-reason", "meetup venue",
    )  # fmt: skip
    assert proposed.returncode == 0, proposed.stderr
    out = json.loads(proposed.stdout.strip().splitlines()[-1])
    assert out["class"] == "ordinary"
    assert out["calls"] == [
        "pay 5% of every hub's fee income to the treasury",
        f"pay €1.250000 from the treasury to {to_checksum(RECIPIENT)} (meetup venue)",
    ]
    gov = GovernanceClient(connection, deployment, None)
    calls = [
        gov.calls.set_treasury_fee_ppm(50_000),
        gov.calls.pay_out(RECIPIENT, 1_250_000, "meetup venue"),
    ]
    pass_proposal(connection, deployment, founders, calls, "Treasury by vote")
    shown = run_cise("gov", "treasury", *common, "--json")
    assert shown.returncode == 0, shown.stderr
    status = json.loads(shown.stdout)
    assert (status["balance"], status["fee_ppm"]) == (3_750_000, 50_000)
    [payout] = status["payouts"]
    assert (payout["to"], payout["amount"], payout["reason"]) == (
        to_checksum(RECIPIENT), 1_250_000, "meetup venue",
    )  # fmt: skip
    text = run_cise("gov", "treasury", *common)
    assert text.returncode == 0, text.stderr
    assert f"community treasury {to_checksum(treasury)}" in text.stdout
    assert "balance       €3.750000" in text.stdout
    assert "50,000 ppm" in text.stdout and "payouts (1)" in text.stdout
    assert f"€1.250000 to {to_checksum(RECIPIENT)}  meetup venue" in text.stdout


@pytest.mark.node
def test_a_bad_pay_out_flag_is_a_clear_error(tmp_path: Path, anvil: LocalNode) -> None:
    network, _, _ = _network_file(tmp_path, anvil)
    bad = run_cise("gov", "propose", "--network", str(network), "--pay-out", "0x42")
    assert bad.returncode == 2 and "--pay-out: '0x42' is not ADDRESS=EUR" in bad.stderr

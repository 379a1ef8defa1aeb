"""`cise finance` on a `cise chain` network (anvil): an operator opens a pool for its asset, two
members fund it, repayments arrive and are synced, the members claim pro rata; bad input is refused
and changes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from channels.chain.client import Web3ChainClient
from channels.chain.connection import Connection
from channels.core.types import Address, to_checksum
from channels.signer import LocalSigner
from cise.main import main
from cise.network import load_network
from tests.integration.test_cli_channel import running_chain
from tests.integration.test_cli_hub import _cli

pytestmark = pytest.mark.node

OPERATOR, ALICE, BOB, PAYER = 0, 1, 2, 3
EURO = 1_000_000


def test_a_pool_is_created_funded_repaid_and_claimed_through_the_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    with running_chain(tmp_path / "network.json", settle_timeout=20) as network_file:
        network = load_network(network_file)
        keys = network.dev_keys
        addr = {i: to_checksum(Address(LocalSigner(keys[i]).address)) for i in range(4)}

        def cli(account: int, *argv: str) -> tuple[int, dict[str, object]]:
            capsys.readouterr()
            code = main(_cli(network_file, data, account, *argv))
            out = capsys.readouterr().out.strip().splitlines()
            return code, json.loads(out[-1]) if out else {}

        code, _ = cli(OPERATOR, "asset", "register", "washer-9", "--agent", addr[OPERATOR],
                      "--split", f"{addr[ALICE]}=1000000")  # fmt: skip
        assert code == 0
        code, created = cli(OPERATOR, "finance", "create", "washer-9", "--target", "10",
                            "--blocks", "200", "--return", "1100000")  # fmt: skip
        assert code == 0, created
        pool = str(created["pool"])
        assert cli(BOB, "finance", "create", "washer-9", "--target", "10", "--blocks", "9")[0] == 1
        assert cli(ALICE, "finance", "contribute", pool, "6")[0] == 0
        code, refused = cli(BOB, "finance", "contribute", pool, "4.000001")  # not whole granules
        assert code == 1 and "FinancingPoolInexactAmount" in str(refused["error"])
        assert cli(BOB, "finance", "contribute", pool, "4")[0] == 0
        code, status = cli(BOB, "finance", "status", pool)
        assert status["status"] == "funded" and status["raised"] == "€10.000000"
        payer = Web3ChainClient.from_key(
            Connection.from_url(network.rpc_url, keys), network.deployment, keys[PAYER]
        )
        payer.transfer_token(Address(bytes.fromhex(pool[2:])), 5 * EURO)  # use fees arrive
        code, synced = cli(PAYER, "finance", "sync", pool)
        assert synced == {"to_contributors": 5 * EURO, "to_operator": 0}
        code, claimed = cli(ALICE, "finance", "claim", pool)
        assert claimed == {"claimed": 3 * EURO}  # 6/10 of 5
        code, status = cli(BOB, "finance", "status", pool)
        assert status["you"] == {"contributed": "€4.000000", "claimed": "€0.000000",
                                 "claimable": "€2.000000", "cap": "€4.400000"}  # fmt: skip
        assert cli(ALICE, "finance", "refund", pool)[0] == 1  # the pool did not fail
    assert main(["finance", "status", "0x12", "--network", str(network_file)]) == 2

"""`cise finance create --share`, `bind`, `refund` and `status` on a `cise chain` network (anvil), each
`cise` its own process: a pool for a registered asset whose operator's share makes room for it at
once; a pool taking its share from a servicer through the split-change file the servicer signs; a
pool for a planned asset that is never bound and refunds. Bad input is refused with the reason and
creates or moves nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from eth_account import Account

from channels.chain.assets import AssetRegistryClient
from channels.chain.connection import Connection
from channels.chain.financing import FinancingPoolClient
from channels.core.types import Address, to_checksum
from channels.signer import LocalSigner
from cise.ledger_cmd import parse_asset_id
from cise.network import load_network
from tests.integration.test_cli_channel import running_chain

pytestmark = pytest.mark.node

OPERATOR, ALICE, FINANCIER, AGENT, SERVICER = 0, 1, 3, 6, 7
CLI_TIMEOUT = 120


def test_pools_with_a_share_are_bound_or_refunded_through_the_cli(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with running_chain(tmp_path / "network.json", settle_timeout=20) as network_file:
        network = load_network(network_file)
        keys = network.dev_keys
        addr = {i: to_checksum(Address(LocalSigner(keys[i]).address)) for i in range(9)}
        connection = Connection.from_url(network.rpc_url, keys)
        assert network.deployment.financing_factory is not None
        pools = FinancingPoolClient(
            connection, network.deployment.financing_factory, Account.from_key(keys[0])
        )
        registry = AssetRegistryClient(connection, network.deployment, Account.from_key(keys[0]))

        def cise(account: int, *argv: str) -> tuple[int, dict[str, object], str]:
            where = ["--network", str(network_file), "--account", str(account)]
            done = subprocess.run(
                [sys.executable, "-m", "cise.main", *argv, *where, "--data-dir", str(data)],
                capture_output=True,
                text=True,
                timeout=CLI_TIMEOUT,
                check=False,
            )
            lines = done.stdout.strip().splitlines()
            out = json.loads(lines[-1]) if lines and lines[-1].startswith("{") else {}
            return done.returncode, out, done.stderr + done.stdout

        def fund(pool: str) -> None:
            assert cise(FINANCIER, "finance", "contribute", pool, "6")[0] == 0
            assert cise(ALICE, "finance", "contribute", pool, "4")[0] == 0

        split = f"{addr[OPERATOR]}=500000,{addr[SERVICER]}=500000"
        for name in ("washer-8", "washer-9"):
            code, _, err = cise(OPERATOR, "asset", "register", name, "--agent", addr[AGENT],
                                "--split", split)  # fmt: skip
            assert code == 0, err
        terms = ["--target", "10", "--blocks", "300", "--return", "1100000"]

        # 1. The operator's own share: the split change is applied with the pool's creation.
        code, created, err = cise(OPERATOR, "finance", "create", "washer-8", *terms,
                                  "--share", "200000")  # fmt: skip
        assert code == 0, err
        pool = str(created["pool"])
        assert created["split_version"] == 2 and created["operator"] == addr[OPERATOR]
        washer_8 = parse_asset_id("washer-8")
        assert registry.current_split(washer_8).parts()[Address(bytes.fromhex(pool[2:]))] == 200_000
        code, out, err = cise(OPERATOR, "finance", "bind", pool)
        assert code == 1 and "FinancingPoolNotRaised" in str(out["error"]), err
        fund(pool)
        code, status, _ = cise(ALICE, "finance", "status", pool)
        assert (status["status"], status["owed"], status["share_ppm"]) == (
            "raised",
            "€0.000000",
            200_000,
        )
        assert cise(ALICE, "finance", "bind", pool)[0] == 1  # not the operator
        code, bound, err = cise(OPERATOR, "finance", "bind", pool)
        assert code == 0, err
        assert bound == {"bound": "0x" + washer_8.hex(), "split_version": 2, "share_ppm": 200_000,
                         "paid": "€10.000000"}  # fmt: skip
        code, out, _ = cise(OPERATOR, "finance", "bind", pool)
        assert code == 1 and "FinancingPoolAlreadyBound" in str(out["error"])
        code, status, _ = cise(ALICE, "finance", "status", pool)
        assert (status["status"], status["owed"], status["cap"]) == (
            "funded",
            "€11.000000",
            "€11.000000",
        )
        code, out, _ = cise(ALICE, "finance", "refund", pool)
        assert code == 1 and "FinancingPoolNotFailed" in str(out["error"])

        # 2. A servicer's share: the financier writes the split change, the servicer signs it.
        proposal = tmp_path / "pool-split.json"
        code, created, err = cise(FINANCIER, "finance", "create", "washer-9", *terms, "--share",
                                  "100000", "--from", addr[SERVICER], "--proposal", str(proposal))  # fmt: skip
        assert code == 0, err
        pool = str(created["pool"])
        assert created["split_proposal"] == str(proposal) and "split_version" not in created
        code, _, err = cise(OPERATOR, "asset", "split", "apply", str(proposal))
        assert code == 2 and "without a valid consent" in err, err  # the servicer has not signed
        assert cise(SERVICER, "asset", "split", "sign", str(proposal))[0] == 0
        code, _, err = cise(OPERATOR, "asset", "split", "apply", str(proposal))
        assert code == 0, err
        fund(pool)
        code, bound, err = cise(OPERATOR, "finance", "bind", pool)
        assert code == 0 and bound["split_version"] == 2 and bound["share_ppm"] == 100_000, err

        # 3. A planned asset never bound: refunded after the deadline.
        before = pools.asset_pools(parse_asset_id("washer-10"))
        code, created, err = cise(FINANCIER, "finance", "create", "washer-10", "--target", "10",
                                  "--blocks", "60", "--share", "300000", "--operator",
                                  addr[OPERATOR])  # fmt: skip
        assert code == 0 and created["asset_registered"] is False, err
        pool = str(created["pool"])
        fund(pool)
        code, out, _ = cise(ALICE, "finance", "refund", pool)
        assert code == 1 and "FinancingPoolStillOpen" in str(out["error"])
        connection.w3.provider.make_request("anvil_mine", [70, 0])  # type: ignore[arg-type]
        code, out, _ = cise(OPERATOR, "finance", "bind", pool)
        assert code == 1 and "AssetRegistryUnknownAsset" in str(out["error"])
        code, refunded, err = cise(ALICE, "finance", "refund", pool)
        assert code == 0 and refunded == {"refunded": 4_000_000}, err
        code, refunded, err = cise(FINANCIER, "finance", "refund", pool)
        assert code == 0 and refunded == {"refunded": 6_000_000}, err
        code, status, _ = cise(ALICE, "finance", "status", pool)
        assert status["status"] == "failed" and status["you"]["claimed"] == "€4.000000"  # type: ignore[index]

        # Bad input: refused with the reason, no pool created.
        count = len(pools.asset_pools(parse_asset_id("washer-9")))
        bad = [
            ("washer-9", "--share", "1000001"),  # above 1e6 ppm
            ("washer-9", "--share", "600000", "--from", addr[SERVICER], "--proposal", "x.json"),
            ("washer-9", "--share", "1000", "--from", addr[SERVICER]),  # no --proposal
            ("washer-11", "--share", "1000", "--from", addr[SERVICER]),  # planned: no --from
            ("washer-9", "--operator", addr[OPERATOR]),  # --operator without --share
        ]
        for argv in bad:
            code, _, err = cise(FINANCIER, "finance", "create", argv[0], *terms, *argv[1:])
            assert code == 2, (argv, err)
        assert len(pools.asset_pools(parse_asset_id("washer-9"))) == count
        assert pools.asset_pools(parse_asset_id("washer-10")) == (
            *before,
            Address(bytes.fromhex(pool[2:])),
        )
        deadline = connection.block_number() + 50
        legacy, _ = pools.create_pool(parse_asset_id("washer-9"), 10_000_000, deadline, 1_100_000)
        code, _, err = cise(OPERATOR, "finance", "bind", to_checksum(legacy))
        assert code == 2 and "no agreed share" in err, err

"""`cise asset split propose|show|sign|apply`, `set-agent` and `transfer` as processes on a chain.

The operator registers a machine whose split has a servicer and a maker, proposes to lower the
servicer's share (to the operator's benefit) into a file, `show` names the servicer as the one who
must sign, `apply` is refused while it has not (nothing changes on chain), the maker (whose share
is kept) cannot sign, the servicer signs, `show` says so, `apply` lands split version 2, and the
stale file is refused afterwards. Then the operator moves the agent and hands the asset over.
Every `cise` runs as its own process (`python -m cise.main`).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from eth_account import Account

from channels.chain.assets import AssetRegistryClient
from channels.chain.connection import Connection
from channels.core.types import Address, to_checksum
from channels.signer import LocalSigner
from cise.network import load_network
from tests.integration.test_cli_channel import running_chain

pytestmark = pytest.mark.node

OPERATOR, AGENT, NEW_AGENT, NEXT_OPERATOR, MAKER, SERVICER = 0, 6, 5, 3, 7, 8
CLI_TIMEOUT = 120  # seconds for one cise process


def test_a_split_change_lowering_a_servicer_needs_its_consent(tmp_path: Path) -> None:
    data, proposal = tmp_path / "data", tmp_path / "proposal.json"
    with running_chain(tmp_path / "network.json", settle_timeout=20) as network_file:
        network = load_network(network_file)
        keys = network.dev_keys
        addr = {i: to_checksum(Address(LocalSigner(keys[i]).address)) for i in range(9)}

        def cise(account: int, *argv: str) -> tuple[int, str, str]:
            where = ["--network", str(network_file), "--account", str(account)]
            done = subprocess.run(
                [sys.executable, "-m", "cise.main", *argv, *where, "--data-dir", str(data)],
                capture_output=True,
                text=True,
                timeout=CLI_TIMEOUT,
                check=False,
            )
            return done.returncode, done.stdout, done.stderr

        split = f"{addr[OPERATOR]}=400000,{addr[SERVICER]}=300000,{addr[MAKER]}=300000"
        code, out, err = cise(OPERATOR, "asset", "register", "washer-9", "--agent", addr[AGENT],
                              "--split", split)  # fmt: skip
        assert code == 0, err
        asset_id = bytes.fromhex(json.loads(out)["asset"][2:])
        connection = Connection.from_url(network.rpc_url, keys)
        registry = AssetRegistryClient(connection, network.deployment, Account.from_key(keys[0]))

        lowered = f"{addr[OPERATOR]}=500000,{addr[SERVICER]}=200000,{addr[MAKER]}=300000"
        code, out, err = cise(OPERATOR, "asset", "split", "propose", "washer-9", "--split",
                              lowered, "--out", str(proposal))  # fmt: skip
        assert code == 0, err
        assert f"must sign: {addr[SERVICER]}" in out and "signed: nobody" in out, out

        code, out, err = cise(MAKER, "asset", "split", "show", str(proposal))
        assert code == 0, err
        assert f"{addr[SERVICER]}   300000 ->  200000 ppm" in out, out
        assert f"must sign: {addr[SERVICER]}" in out and "ready: no" in out, out

        # Without the servicer's signature: refused, named, nothing sent.
        code, out, err = cise(OPERATOR, "asset", "split", "apply", str(proposal))
        assert code == 2, out + err
        assert "not applied" in err and "without a valid consent" in err, err
        assert addr[SERVICER] in err and "300000 -> 200000 ppm" in err, err
        assert registry.asset_of(asset_id).split_version == 1

        # The maker keeps its share: it has nothing to sign.
        code, out, err = cise(MAKER, "asset", "split", "sign", str(proposal))
        assert code == 2 and "nothing for it to consent to" in err, out + err

        code, out, err = cise(SERVICER, "asset", "split", "sign", str(proposal))
        assert code == 0, err
        assert f"{addr[SERVICER]} consents: 300000 -> 200000 ppm in split version 2" in out, out
        code, out, err = cise(OPERATOR, "asset", "split", "show", str(proposal))
        assert f"signed: {addr[SERVICER]}" in out and "ready: yes" in out, out + err

        code, out, err = cise(OPERATOR, "asset", "split", "apply", str(proposal))
        assert code == 0, err
        applied = json.loads(out)
        assert applied["split_version"] == 2 and applied["consents"] == [addr[SERVICER]]
        current = registry.current_split(asset_id)
        assert current.version == 2
        assert {to_checksum(b): p for b, p in current.parts().items()} == {
            addr[OPERATOR]: 500_000,
            addr[SERVICER]: 200_000,
            addr[MAKER]: 300_000,
        }

        # The same file again: the split moved on, so the consent cannot be used twice.
        code, out, err = cise(OPERATOR, "asset", "split", "apply", str(proposal))
        assert code == 2 and "split changed since the proposal" in err, out + err
        assert registry.asset_of(asset_id).split_version == 2

        # The operator's other acts.
        code, out, err = cise(OPERATOR, "asset", "set-agent", "washer-9", "--agent",
                              addr[NEW_AGENT])  # fmt: skip
        assert code == 0, err
        assert registry.asset_of(asset_id).agent == bytes.fromhex(addr[NEW_AGENT][2:])
        code, out, err = cise(MAKER, "asset", "transfer", "washer-9", "--to", addr[MAKER])
        assert code == 2 and "AssetRegistryNotOperator" in err, out + err
        code, out, err = cise(OPERATOR, "asset", "transfer", "washer-9", "--to",
                              addr[NEXT_OPERATOR])  # fmt: skip
        assert code == 0, err
        assert registry.asset_of(asset_id).operator == bytes.fromhex(addr[NEXT_OPERATOR][2:])


def test_a_tampered_consent_is_not_counted(tmp_path: Path) -> None:
    data, proposal = tmp_path / "data", tmp_path / "proposal.json"
    with running_chain(tmp_path / "network.json", settle_timeout=20) as network_file:
        keys = load_network(network_file).dev_keys
        addr = {i: to_checksum(Address(LocalSigner(keys[i]).address)) for i in range(9)}

        def cise(account: int, *argv: str) -> tuple[int, str, str]:
            where = ["--network", str(network_file), "--account", str(account)]
            done = subprocess.run(
                [sys.executable, "-m", "cise.main", *argv, *where, "--data-dir", str(data)],
                capture_output=True,
                text=True,
                timeout=CLI_TIMEOUT,
                check=False,
            )
            return done.returncode, done.stdout, done.stderr

        split = f"{addr[OPERATOR]}=500000,{addr[SERVICER]}=500000"
        assert cise(OPERATOR, "asset", "register", "washer-10", "--agent", addr[AGENT],
                    "--split", split)[0] == 0  # fmt: skip
        removed = f"{addr[OPERATOR]}=1000000"
        assert cise(OPERATOR, "asset", "split", "propose", "washer-10", "--split", removed,
                    "--out", str(proposal))[0] == 0  # fmt: skip
        assert cise(SERVICER, "asset", "split", "sign", str(proposal))[0] == 0
        content = json.loads(proposal.read_text())
        content["split"] = {addr[OPERATOR]: 999_999, addr[MAKER]: 1}  # not what was signed
        proposal.write_text(json.dumps(content))
        code, out, err = cise(OPERATOR, "asset", "split", "apply", str(proposal))
        assert code == 2 and "without a valid consent" in err and addr[SERVICER] in err, out + err
        code, out, err = cise(OPERATOR, "asset", "split", "show", str(proposal))
        assert "signed: nobody" in out and "ready: no" in out, out + err

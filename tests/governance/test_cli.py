"""`cise member` and `cise gov` through the command line: against a live anvil network (apply,
propose, vote, queue, execute, status), and their clear errors without one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from eth_account import Account

from channels.chain.connection import Connection
from channels.chain.deploy import Deployment, deploy
from channels.chain.governance import GovernanceClient, advance_time
from channels.chain.nodes import LocalNode
from channels.codec.keccak import keccak
from channels.core.types import Address, BlockNumber
from cise.main import main
from cise.network import Network

APPLICANT = 10  # the network file's extra dev account: funded, not a founder


def _network_file(tmp_path: Path, node: LocalNode) -> tuple[Path, Connection, Deployment]:
    connection = Connection.from_url(node.url, node.private_keys)
    founder = Account.from_key(node.private_keys[0])
    deployment = deploy(connection, founder)
    applicant = keccak(b"cise gov cli test applicant")
    gas = GovernanceClient(connection, deployment, None).abi
    connection.transact(
        founder, Address(bytes.fromhex(Account.from_key(applicant).address[2:])), b"", gas,
        value=10**18,
    )  # fmt: skip
    path = tmp_path / "network.json"
    path.write_text(Network(node.url, deployment, (*node.private_keys, applicant)).to_json())
    return path, connection, deployment


def _json(capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    out = capsys.readouterr().out.strip().splitlines()
    return json.loads(out[-1])


@pytest.mark.node
def test_a_member_is_admitted_and_a_parameter_changed_from_the_command_line(
    tmp_path: Path, anvil: LocalNode, capsys: pytest.CaptureFixture[str]
) -> None:
    network, connection, deployment = _network_file(tmp_path, anvil)
    applicant = Account.from_key(keccak(b"cise gov cli test applicant")).address

    def cise(account: int, *argv: str) -> int:
        return main([*argv[:2], "--network", str(network), "--account", str(account), *argv[2:]])

    # Applying takes an explicit acceptance of the code of conduct.
    assert cise(APPLICANT, "member", "apply", "--roles", "user,hub") == 2
    err = capsys.readouterr().err
    assert "docs/code-of-conduct.md#keccak256=0x" in err and "--accept-code-of-conduct 0x" in err
    accept = err.rsplit("--accept-code-of-conduct ", 1)[1].strip()
    assert cise(APPLICANT, "member", "apply", "--roles", "user,hub",
                "--accept-code-of-conduct", accept) == 0  # fmt: skip
    assert _json(capsys)["roles"] == ["user", "hub"]
    assert cise(0, "member", "show", applicant, "--json") == 0
    assert _json(capsys)["status"] == "applied"

    assert cise(0, "gov", "propose", "--admit", applicant, "--settle-timeout", "30",
                "--title", "Welcome a hub; longer challenges") == 0  # fmt: skip
    proposed = _json(capsys)
    assert proposed["proposal"] == 1 and proposed["class"] == "ordinary"
    assert proposed["calls"] == [
        "set the challenge period to 30 blocks",
        f"admit {applicant}",
    ]
    connection.mine_until(int(proposed["vote_start_block"]) + 1)  # type: ignore[call-overload]
    assert cise(0, "gov", "vote", "1", "for") == 0
    assert cise(1, "gov", "vote", "#1", "for", "--reason", "we need hubs") == 0
    assert cise(2, "gov", "vote", str(proposed["id"]), "against") == 0
    assert _json(capsys)["weight"] == 1
    assert cise(APPLICANT, "gov", "vote", "1", "for") == 0  # a non-member's vote weighs nothing
    assert _json(capsys)["weight"] == 0
    assert cise(3, "gov", "queue", "1") == 2
    assert "the proposal is active: voting ends with block" in capsys.readouterr().err

    connection.mine_until(int(proposed["vote_end_block"]) + 1)  # type: ignore[call-overload]
    assert cise(3, "gov", "queue", "1") == 0
    assert _json(capsys)["state"] == "queued"
    assert cise(3, "gov", "execute", "1") == 2
    assert "not executable before" in capsys.readouterr().err
    advance_time(connection, 60)
    assert cise(4, "gov", "execute", "1") == 0
    assert _json(capsys)["state"] == "executed"

    # A constitutional proposal, still being voted on.
    code = tmp_path / "code-v2.md"
    code.write_text("CISE code of conduct, version 2\n")
    assert cise(1, "gov", "propose", "--code-of-conduct", str(code),
                "--code-of-conduct-uri", "ipfs://code-v2") == 0  # fmt: skip
    assert _json(capsys)["class"] == "constitutional"

    assert cise(0, "gov", "status") == 0
    out = capsys.readouterr().out
    assert "challenge period     30 blocks (hard bounds 5..1,000,000)" in out
    assert "members              11 active" in out
    assert "ordinary 20%, constitutional 50% of the 11 active members" in out
    assert "#1   executed  ordinary       Welcome a hub; longer challenges" in out
    assert "#2   pending   constitutional Replace the code of conduct with the document" in out
    assert cise(0, "gov", "status", "--json") == 0
    status = _json(capsys)
    assert status["parameters"]["challenge_period_blocks"] == 30  # type: ignore[index]
    assert status["members"] == {"applied": 0, "active": 11, "suspended": 0, "expelled": 0}
    first, second = status["proposals"]  # type: ignore[misc]
    assert (first["state"], first["votes"]) == ("executed", {"for": 2, "against": 1, "abstain": 0})
    assert second["class"] == "constitutional" and second["quorum"] is None  # snapshot to come
    assert cise(0, "gov", "status", "1") == 0
    detail = capsys.readouterr().out
    assert "class     ordinary" in detail and f"- admit {applicant}" in detail
    assert cise(0, "member", "list") == 0
    listing = capsys.readouterr().out
    assert applicant in listing and listing.count(" active ") == 11
    assert cise(APPLICANT, "member", "show") == 0
    assert "may open channels: yes" in capsys.readouterr().out
    assert deployment.block_number < BlockNumber(connection.block_number())


def test_commands_without_a_usable_network_are_clear_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = str(tmp_path / "none.json")
    assert main(["gov", "status", "--network", missing]) == 2
    assert "no network file" in capsys.readouterr().err
    old = tmp_path / "old.json"
    old.write_text(
        json.dumps(
            {
                "rpc_url": "http://127.0.0.1:9",
                "chain_id": 1,
                "token": "0x" + "11" * 20,
                "channel_manager": "0x" + "22" * 20,
                "deployment_block": 1,
                "settle_timeout": 20,
            }
        )
    )
    assert main(["member", "list", "--network", str(old)]) == 2
    assert "has no governance contracts" in capsys.readouterr().err
    assert main(["member", "apply", "--network", str(old), "--roles", "wizard"]) == 2
    assert "--roles: unknown role 'wizard'" in capsys.readouterr().err
    governed = tmp_path / "governed.json"
    raw = json.loads(old.read_text())
    raw |= {
        k: "0x" + "33" * 20 for k in ("membership", "governor", "timelock", "network_parameters")
    }
    governed.write_text(json.dumps(raw))
    assert main(["gov", "status", "--network", str(governed)]) == 2
    assert "cannot reach the node at http://127.0.0.1:9" in capsys.readouterr().err
    with pytest.raises(SystemExit) as bad:
        main(["gov", "vote", "1", "maybe"])
    assert bad.value.code == 2

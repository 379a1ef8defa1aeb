"""The code of conduct members accept is the repository's `docs/code-of-conduct.md`: a deployed
network records the keccak256 of its exact bytes and a URI naming it, an applicant accepts it by
that hash, and `cise gov code-of-conduct [--check FILE]` (a real process against a node) prints
what the chain records and says whether a copy is that text (0), another one (1, both hashes
named) or unreadable (2). Before, the network recorded a placeholder text behind
`urn:cise:dev:code-of-conduct:v1`, which nobody could fetch or check."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from eth_account import Account

from channels.chain.deploy import ORDINARY_CALLS, Document, GovernanceSettings
from channels.chain.documents import (
    CODE_OF_CONDUCT_HASH,
    CODE_OF_CONDUCT_PATH,
    CODE_OF_CONDUCT_URI,
    document_hash,
)
from channels.chain.governance import Role
from channels.chain.nodes import LocalNode
from channels.codec.keccak import keccak
from channels.core.types import Address
from cise.main import main
from tests.governance.govfix import GovEnv, run_cise
from tests.governance.test_cli import APPLICANT, _network_file

ROOT = Path(__file__).resolve().parents[2]
TEXT = (ROOT / CODE_OF_CONDUCT_PATH).read_bytes()


def test_the_repository_file_is_what_a_deployed_network_records(env: GovEnv) -> None:
    recorded = env.gov().parameters().code_of_conduct
    assert recorded == Document(keccak(TEXT), CODE_OF_CONDUCT_URI)
    # The URI names the file in the repository and the version meant.
    path, _, version = recorded.uri.partition("#keccak256=0x")
    assert (ROOT / path).read_bytes() == TEXT and bytes.fromhex(version) == keccak(TEXT)
    assert GovernanceSettings().code_of_conduct == recorded
    # An applicant accepts it by the file's hash.
    applicant = env.outsider("code of conduct")
    env.gov(applicant).apply_for_membership(Role.USER, keccak(TEXT))
    member = env.gov().member_of(Address(bytes.fromhex(applicant.address[2:])))
    assert member.status.name == "APPLIED"


def test_the_packaged_hash_is_the_files() -> None:
    # The constant `deploy()` uses is the file's hash: edit the file and this names the new hash.
    assert document_hash(TEXT) == CODE_OF_CONDUCT_HASH, (
        f"docs/code-of-conduct.md changed: set CODE_OF_CONDUCT_HASH to {keccak(TEXT).hex()}"
    )
    assert f"docs/code-of-conduct.md#keccak256=0x{keccak(TEXT).hex()}" == CODE_OF_CONDUCT_URI


def test_the_text_is_a_real_code_of_conduct() -> None:
    text = TEXT.decode()
    for heading in (
        "## 2. Membership",
        "## 3. Rights of members",
        "## 4. Obligations of members",
        "## 5. The platform's legal entity",
        "## 6. Decision-making",
        "## 7. Constitutional arrangements",
        "## 8. Suspension, expulsion and disputes",
        "## 9. Enforced and recorded-only rules",
        "## 10. Leaving the network",
    ):
        assert heading in text
    assert "urn:" not in text and b"\r" not in TEXT


def test_the_ordinary_list_in_the_text_is_the_one_deploy_gives_the_governor() -> None:
    text = TEXT.decode()
    listed = text.split("is on the ordinary list:", 1)[1].split("Every other proposal is", 1)[0]
    assert set(re.findall(r"`(\w+)`", listed)) == {function for _, function in ORDINARY_CALLS}


def test_check_of_an_unreadable_file_exits_2_before_any_chain(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    network = str(tmp_path / "no-network.json")
    missing = tmp_path / "missing.md"
    assert main(["gov", "code-of-conduct", "--network", network, "--check", str(missing)]) == 2
    assert f"--check {missing}: No such file or directory" in capsys.readouterr().err
    assert main(["gov", "code-of-conduct", "--network", network, "--check", str(tmp_path)]) == 2
    assert f"--check {tmp_path}: Is a directory" in capsys.readouterr().err


@pytest.mark.node
def test_cise_gov_code_of_conduct_against_a_node(tmp_path: Path, anvil: LocalNode) -> None:
    network, _, _ = _network_file(tmp_path, anvil)
    common = ("--network", str(network))
    chain_hash = "0x" + keccak(TEXT).hex()

    shown = run_cise("gov", "code-of-conduct", *common)
    assert shown.returncode == 0, shown.stderr
    assert f"hash  {chain_hash}" in shown.stdout
    assert f"uri   {CODE_OF_CONDUCT_URI}" in shown.stdout
    assert "this version of cise ships it" in shown.stdout

    same = run_cise("gov", "code-of-conduct", *common, "--check", str(ROOT / CODE_OF_CONDUCT_PATH))
    assert same.returncode == 0, same.stderr
    assert f"is the code of conduct on chain (keccak256 {chain_hash})" in same.stdout

    modified = tmp_path / "code-of-conduct.md"
    modified.write_bytes(TEXT.replace(b"one member, one vote", b"one member, two votes", 1))
    other_hash = "0x" + keccak(modified.read_bytes()).hex()
    assert other_hash != chain_hash
    changed = run_cise("gov", "code-of-conduct", *common, "--check", str(modified), "--json")
    assert changed.returncode == 1, changed.stderr
    assert (
        f"{modified} is not the code of conduct on chain: its keccak256 is {other_hash}, "
        f"the chain records {chain_hash}"
    ) in changed.stderr
    assert json.loads(changed.stdout) | {"block": 0} == {
        "block": 0,
        "hash": chain_hash,
        "uri": CODE_OF_CONDUCT_URI,
        "shipped_with_this_cise": True,
        "file": str(modified),
        "file_hash": other_hash,
        "matches": False,
    }

    missing = run_cise("gov", "code-of-conduct", *common, "--check", str(tmp_path / "none.md"))
    assert missing.returncode == 2
    assert "--check" in missing.stderr and "No such file or directory" in missing.stderr
    assert "Traceback" not in missing.stderr

    # An applicant accepts the repository file's hash.
    applied = run_cise(
        "member", "apply", *common, "--account", str(APPLICANT), "--roles", "servicer",
        "--accept-code-of-conduct", chain_hash,
    )  # fmt: skip
    assert applied.returncode == 0, applied.stderr
    assert json.loads(applied.stdout)["code_of_conduct"] == chain_hash
    applicant = Account.from_key(keccak(b"cise gov cli test applicant")).address
    shown_member = run_cise("member", "show", applicant, *common, "--json")
    assert json.loads(shown_member.stdout)["status"] == "applied"

    # A proposed new code is hashed from its exact bytes (CRLF line endings included).
    crlf = tmp_path / "code-v2.md"
    crlf.write_bytes(TEXT.replace(b"\n", b"\r\n"))
    proposed = run_cise(
        "gov", "propose", *common, "--code-of-conduct", str(crlf),
        "--code-of-conduct-uri", "docs/code-of-conduct.md#v2",
    )  # fmt: skip
    assert proposed.returncode == 0, proposed.stderr
    assert json.loads(proposed.stdout)["calls"] == [
        "replace the code of conduct with the document "
        f"0x{keccak(crlf.read_bytes()).hex()} at docs/code-of-conduct.md#v2"
    ]

"""The keystore directory and the `--account` resolver, without a node.

Real files in a temporary directory, real scrypt (n=1024 for speed) and the real network objects;
every refusal is a `CliError` (exit 2) whose message names the file or the account and never holds
the password.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import stat
from pathlib import Path

import pytest
from eth_account import Account

from channels.chain.deploy import Deployment
from channels.chain.nodes import dev_private_keys
from channels.core.types import Address, BlockNumber, parse_address
from cise.accounts import (
    account_address,
    account_key,
    add_account_arguments,
    read_password,
)
from cise.errors import CliError
from cise.keystore import Keystore, KeystoreError, check_name, check_scrypt_n, default_directory
from cise.main import build_parser
from cise.network import Network

N = 1024
PASSWORD = "correct horse battery staple"
KEY = bytes.fromhex("11" * 32)
DEV_KEYS = tuple(dev_private_keys()[:3])


def address(key: bytes) -> Address:
    return Address(parse_address(Account.from_key(key).address))


def network(dev: bool) -> Network:
    zero = Address(b"\x01" * 20)
    deployment = Deployment(31337, zero, zero, BlockNumber(1), 20)
    return Network("http://127.0.0.1:1", deployment, DEV_KEYS if dev else ())


def parsed(argv: list[str], default_index: int | None = 1) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--network", default="net.json")
    add_account_arguments(parser, default_index)
    return parser.parse_args(argv)


@pytest.fixture
def keystore(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Keystore:
    monkeypatch.setenv("CISE_KEYSTORE_DIR", str(tmp_path / "keystore"))
    monkeypatch.delenv("CISE_PASSWORD", raising=False)
    monkeypatch.setattr("sys.stdin", io.StringIO(""))  # not a terminal: no prompt
    return Keystore(tmp_path / "keystore")


# ----------------------------------------------------------------------------- the directory


def test_an_account_round_trips_by_name_and_by_address(keystore: Keystore) -> None:
    entry = keystore.create("alice", KEY, PASSWORD, N)
    assert entry.address == address(KEY)
    assert keystore.decrypt(keystore.get("alice"), PASSWORD) == KEY
    assert keystore.find(entry.checksum.lower()).name == "alice"
    assert json.loads(entry.path.read_text())["crypto"]["kdfparams"]["n"] == N
    assert KEY.hex() not in entry.path.read_text() and PASSWORD not in entry.path.read_text()


def test_the_directory_is_0700_and_each_file_0600_whatever_the_umask(keystore: Keystore) -> None:
    old = os.umask(0o000)
    try:
        entry = keystore.create("alice", KEY, PASSWORD, N)
    finally:
        os.umask(old)
    assert stat.S_IMODE(keystore.directory.stat().st_mode) == 0o700
    assert stat.S_IMODE(entry.path.stat().st_mode) == 0o600
    assert [p.name for p in keystore.directory.iterdir()] == ["alice.json"]  # no temporary left


def test_an_existing_account_is_never_overwritten(keystore: Keystore) -> None:
    entry = keystore.create("alice", KEY, PASSWORD, N)
    before = entry.path.read_bytes()
    with pytest.raises(CliError, match="account 'alice' already exists"):
        keystore.create("alice", bytes.fromhex("22" * 32), PASSWORD, N)
    with pytest.raises(CliError, match="already in the keystore as 'alice'"):
        keystore.create("bob", KEY, PASSWORD, N)  # one address, one name
    assert entry.path.read_bytes() == before
    assert sorted(p.name for p in keystore.directory.iterdir()) == ["alice.json"]


def test_a_wrong_password_names_the_account_and_not_the_password(keystore: Keystore) -> None:
    entry = keystore.create("alice", KEY, PASSWORD, N)
    with pytest.raises(KeystoreError) as refused:
        keystore.decrypt(entry, "a wrong one")
    assert isinstance(refused.value, CliError)
    assert f"wrong password for account 'alice' ({entry.path})" in str(refused.value)
    assert "a wrong one" not in str(refused.value)


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("{", "not JSON"),
        ("[]", "not a JSON object"),
        ('{"version": 1}', "version is 1, not 3"),
        ('{"version": 3, "address": "00"}', "no 'crypto' object"),
    ],
)
def test_a_corrupt_file_is_an_error_naming_it(
    keystore: Keystore, content: str, reason: str
) -> None:
    keystore.create("alice", KEY, PASSWORD, N)
    (keystore.directory / "broken.json").write_text(content)
    with pytest.raises(CliError, match=reason) as refused:
        keystore.get("broken")
    assert str(keystore.directory / "broken.json") in str(refused.value)
    entries, problems = keystore.scan()
    assert [e.name for e in entries] == ["alice"] and len(problems) == 1
    assert keystore.find(keystore.get("alice").checksum).name == "alice"  # the others still work


def test_a_damaged_ciphertext_and_a_missing_account_are_clear_errors(keystore: Keystore) -> None:
    entry = keystore.create("alice", KEY, PASSWORD, N)
    raw = json.loads(entry.path.read_text())
    raw["crypto"]["ciphertext"] = "00" * 32
    (keystore.directory / "damaged.json").write_text(json.dumps(raw))
    with pytest.raises(CliError, match="wrong password for account 'damaged'"):  # MAC fails
        keystore.decrypt(keystore.get("damaged"), PASSWORD)
    with pytest.raises(CliError, match="no account 'carol' in the keystore"):
        keystore.get("carol")
    with pytest.raises(CliError, match="no account 0x"):
        keystore.find("0x" + "ab" * 20)


def test_a_file_asking_for_unbounded_work_is_refused_before_decrypting(keystore: Keystore) -> None:
    raw = Account.encrypt(KEY, PASSWORD, kdf="scrypt", iterations=N)
    raw["crypto"]["kdfparams"]["n"] = 2**30
    keystore.directory.mkdir()
    (keystore.directory / "greedy.json").write_text(json.dumps(raw))
    with pytest.raises(CliError, match="scrypt n=1073741824"):
        keystore.get("greedy")


def test_names_and_scrypt_costs_are_checked() -> None:
    for bad in ("", "a/b", "../x", "..", "x" * 65, "a b", "7", "0x" + "ab" * 20):
        with pytest.raises(CliError, match="account name"):
            check_name(bad)
    assert check_name("hub-1.prod_A") == "hub-1.prod_A"
    for bad_n in (0, 1, 3, 1000, 2**21):
        with pytest.raises(CliError, match="power of two"):
            check_scrypt_n(bad_n)
    assert check_scrypt_n(262144) == 262144


def test_the_default_directory_follows_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CISE_KEYSTORE_DIR", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", "/somewhere")
    assert default_directory() == Path("/somewhere/cise/keystore")
    monkeypatch.setenv("CISE_KEYSTORE_DIR", "/elsewhere")
    assert default_directory() == Path("/elsewhere")


# ----------------------------------------------------------------------------- passwords


def test_the_password_file_gives_its_first_line(tmp_path: Path, keystore: Keystore) -> None:
    path = tmp_path / "pw"
    path.write_text(PASSWORD + "\nsecond line\n")
    assert read_password(parsed(["--password-file", str(path)]), "account 'x'") == PASSWORD
    path.write_text("\n")
    with pytest.raises(CliError, match=f"--password-file {path}: its first line is empty"):
        read_password(parsed(["--password-file", str(path)]), "account 'x'")
    with pytest.raises(CliError, match=r"--password-file .*none: No such file"):
        read_password(parsed(["--password-file", str(tmp_path / "none")]), "account 'x'")


def test_without_file_env_or_terminal_the_password_is_a_clear_error(keystore: Keystore) -> None:
    with pytest.raises(
        CliError,
        match="no password for account 'x': give --password-file or set CISE_PASSWORD",
    ):
        read_password(parsed([]), "account 'x'")


def _parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    found = [parser]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                found += _parsers(child)
    return found


def test_no_command_takes_a_password_on_the_command_line() -> None:
    parsers = _parsers(build_parser())
    options = {o for p in parsers for a in p._actions for o in a.option_strings}
    assert {o for o in options if "password" in o} == {"--password-file"}
    signing = [p for p in parsers if any("--account" in a.option_strings for a in p._actions)]
    assert len(signing) > 20  # every signing command: channel, hub, gov, member, asset, ...
    for parser in signing:
        assert any("--password-file" in a.option_strings for a in parser._actions), parser.prog


# ----------------------------------------------------------------------------- the resolver


def test_an_index_picks_a_dev_key_on_a_dev_network_only(keystore: Keystore) -> None:
    assert account_key(network(dev=True), parsed(["--account", "2"])) == DEV_KEYS[2]
    assert account_key(network(dev=True), parsed([])) == DEV_KEYS[1]  # the command's default
    with pytest.raises(CliError, match=r"--account 5: the network file has dev accounts 0\.\.2"):
        account_key(network(dev=True), parsed(["--account", "5"]))
    with pytest.raises(
        CliError,
        match=r"--account 2: net.json is not a dev network \(its file holds no dev keys\): "
        r"name a keystore account \(cise account list\)",
    ):
        account_key(network(dev=False), parsed(["--account", "2"]))
    with pytest.raises(CliError, match=r"--account is required: net\.json is not a dev network"):
        account_key(network(dev=False), parsed([]))
    with pytest.raises(CliError, match=r"--account 2: net\.json is not a dev network"):
        account_address(network(dev=False), parsed(["--account", "2"]))


def test_a_name_or_an_address_signs_on_any_network(
    keystore: Keystore, monkeypatch: pytest.MonkeyPatch
) -> None:
    entry = keystore.create("alice", KEY, PASSWORD, N)
    monkeypatch.setenv("CISE_PASSWORD", PASSWORD)
    for dev in (False, True):
        assert account_key(network(dev), parsed(["--account", "alice"])) == KEY
        assert account_key(network(dev), parsed(["--account", entry.checksum])) == KEY
    # a dev account's address on a dev network needs no keystore
    dev_address = Account.from_key(DEV_KEYS[2]).address
    assert account_key(network(True), parsed(["--account", dev_address])) == DEV_KEYS[2]
    monkeypatch.setenv("CISE_PASSWORD", "wrong")
    with pytest.raises(CliError, match="wrong password for account 'alice'"):
        account_key(network(False), parsed(["--account", "alice"]))


def test_an_address_is_resolved_without_any_password(keystore: Keystore) -> None:
    entry = keystore.create("alice", KEY, PASSWORD, N)  # no CISE_PASSWORD, no terminal
    assert account_address(network(False), parsed(["--account", "alice"])) == address(KEY)
    assert account_address(network(True), parsed(["--account", "1"])) == address(DEV_KEYS[1])
    other = "0x" + "ab" * 20  # an address alone needs no keystore (the API's --hub-account)
    assert account_address(network(False), parsed(["--account", other])) == parse_address(other)
    with pytest.raises(CliError, match="--account bob: no account 'bob'"):
        account_address(network(False), parsed(["--account", "bob"]))
    assert entry.path.exists()


def test_a_malformed_account_is_refused_by_the_parser(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parsed(["--account", "b@d"])
    assert "not an account name, 0x address or dev account index" in capsys.readouterr().err

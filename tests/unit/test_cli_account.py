"""`cise account`: new, import, list, show, export-address on a real keystore directory.

In-process through `cise.main.main` (no node needed), with scrypt n=1024 for speed; the prompt
(asked twice for a new account) through a real terminal: `cise account new` in a pseudo-terminal.
"""

from __future__ import annotations

import json
import os
import pty
import select
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from eth_account import Account

from cise.main import main

PASSWORD = "a good long password"
KEY = bytes.fromhex("42" * 32)
ADDRESS = Account.from_key(KEY).address


@pytest.fixture
def ks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in [k for k in os.environ if k.startswith("CISE_")]:
        monkeypatch.delenv(name)
    (tmp_path / "pw").write_text(PASSWORD + "\n")
    (tmp_path / "key").write_text("0x" + KEY.hex() + "\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path / "keystore"


def account(
    capsys: pytest.CaptureFixture[str], *argv: str, keystore: Path | None = None
) -> tuple[int, str, str]:
    capsys.readouterr()
    where = [] if keystore is None else ["--keystore-dir", str(keystore)]
    code = main(["account", *argv, *where])
    out, err = capsys.readouterr()
    return code, out, err


def test_import_list_show_and_export_address(ks: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = account(
        capsys, "import", "hub", "--key-file", "key", "--password-file", "pw", "--scrypt-n",
        "1024", keystore=ks,
    )  # fmt: skip
    assert (code, out) == (0, ADDRESS + "\n"), err
    assert stat.S_IMODE(ks.stat().st_mode) == 0o700
    assert stat.S_IMODE((ks / "hub.json").stat().st_mode) == 0o600
    assert bytes(Account.decrypt((ks / "hub.json").read_text(), PASSWORD)) == KEY

    code, out, _ = account(capsys, "list", "--json", keystore=ks)
    assert code == 0
    assert json.loads(out) == [
        {"name": "hub", "address": ADDRESS, "file": str(ks / "hub.json"), "kdf": "scrypt",
         "kdf_cost": 1024}
    ]  # fmt: skip
    assert account(capsys, "export-address", "hub", keystore=ks)[1] == ADDRESS + "\n"
    code, out, _ = account(capsys, "show", ADDRESS.lower(), "--json", keystore=ks)
    assert (code, json.loads(out)["name"]) == (0, "hub")
    for text in (out, (ks / "hub.json").read_text()):
        assert KEY.hex() not in text.lower() and PASSWORD not in text


def test_new_refuses_a_taken_name_and_keeps_the_file(
    ks: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CISE_KEYSTORE_DIR", str(ks))
    monkeypatch.setenv("CISE_SCRYPT_N", "1024")
    code, out, err = account(capsys, "new", "alice", "--password-file", "pw")
    assert code == 0, err
    first = Account.decrypt((ks / "alice.json").read_text(), PASSWORD)
    assert Account.from_key(first).address == out.strip()
    before = (ks / "alice.json").read_bytes()
    code, out, err = account(capsys, "new", "alice", "--password-file", "pw")
    assert (code, out) == (2, "")
    assert f"account 'alice' already exists ({ks / 'alice.json'})" in err
    assert (ks / "alice.json").read_bytes() == before
    assert sorted(p.name for p in ks.iterdir()) == ["alice.json"]


def test_import_of_a_v3_file_checks_its_password(
    ks: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    geth = tmp_path / "UTC--geth-style.json"  # pbkdf2, as some tools write
    geth.write_text(json.dumps(Account.encrypt(KEY, PASSWORD, kdf="pbkdf2", iterations=1000)))
    (tmp_path / "wrong").write_text("not it\n")
    code, out, err = account(
        capsys, "import", "ops", "--keystore-file", str(geth), "--password-file", "wrong",
        keystore=ks,
    )  # fmt: skip
    assert (code, out) == (2, "")
    assert f"wrong password for --keystore-file {geth}" in err and "not it" not in err
    assert not ks.exists()
    code, out, err = account(
        capsys, "import", "ops", "--keystore-file", str(geth), "--password-file", "pw",
        keystore=ks,
    )  # fmt: skip
    assert (code, out) == (0, ADDRESS + "\n"), err
    assert json.loads((ks / "ops.json").read_text()) == json.loads(geth.read_text())  # as it was


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["new", "a/b"], "account name 'a/b'"),
        (["new", "12"], "must not be a number or an address"),
        (["new", "x"], "no password for the new account 'x': give --password-file or set"),
        (["import", "x", "--key-file", "pw", "--password-file", "pw"], "--key-file pw: want a"),
        (["show", "nobody"], "no account 'nobody' in the keystore"),
        (["export-address", "0x" + "ab" * 20], "no account 0x"),
    ],
)
def test_bad_input_is_a_clear_error_that_writes_nothing(
    ks: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, out, err = account(capsys, *argv, keystore=ks)
    assert (code, out) == (2, "")
    assert err.startswith("cise: error: ") and message in err, err
    assert not ks.exists()


def test_a_scrypt_cost_must_be_a_power_of_two(ks: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["account", "new", "x", "--scrypt-n", "1000", "--keystore-dir", str(ks)])
    assert "power of two" in capsys.readouterr().err
    assert not ks.exists()


def test_list_names_a_corrupt_file_and_still_lists_the_others(
    ks: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    account(capsys, "import", "hub", "--key-file", "key", "--password-file", "pw", "--scrypt-n",
            "1024", keystore=ks)  # fmt: skip
    (ks / "broken.json").write_text("{")
    code, out, err = account(capsys, "list", keystore=ks)
    assert code == 1
    assert out.split()[:2] == ["hub", ADDRESS]
    assert f"keystore file {ks / 'broken.json'} is not a Web3 Secret Storage v3" in err


def _talk(fd: int, process: subprocess.Popen[bytes], answers: list[bytes]) -> bytes:
    """Answer each password prompt the process writes to its terminal, once it waits (the prompt
    is the last thing written); everything it wrote."""
    seen, given, deadline = b"", 0, time.monotonic() + 30
    while process.poll() is None or select.select([fd], [], [], 0)[0]:
        assert time.monotonic() < deadline, seen
        if not select.select([fd], [], [], 0.2)[0]:
            continue
        try:
            chunk = os.read(fd, 1024)
        except OSError:  # the terminal closed with the process
            break
        seen += chunk
        if given < len(answers) and seen.count(b"password for") > given and seen.endswith(b": "):
            os.write(fd, answers[given])
            given += 1
    return seen


def test_new_on_a_terminal_asks_twice_without_echo(ks: Path) -> None:
    main_fd, terminal = pty.openpty()
    name = os.ttyname(terminal)

    def controlling_terminal() -> None:  # the prompt reads /dev/tty, as for a person
        os.setsid()
        os.close(os.open(name, os.O_RDWR))

    env = {k: v for k, v in os.environ.items() if not k.startswith("CISE_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "cise.main", "account", "new", "pty", "--scrypt-n", "1024",
         "--keystore-dir", str(ks)],
        stdin=terminal, stdout=terminal, stderr=terminal, env=env,
        preexec_fn=controlling_terminal,
    )  # fmt: skip
    os.close(terminal)
    try:
        seen = _talk(main_fd, process, [PASSWORD.encode() + b"\n"] * 2)
        assert process.wait(timeout=60) == 0, seen
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
        os.close(main_fd)
    assert seen.count(b"password for the new account 'pty'") == 2, seen
    assert PASSWORD.encode() not in seen  # not echoed
    stored = Account.decrypt((ks / "pty.json").read_text(), PASSWORD)
    assert Account.from_key(stored).address.encode() in seen

"""Keystore accounts sign real transactions on a dev `cise chain`; a wrong or missing password and a
dev index on a non-dev network file are clear errors that send nothing.

One `cise chain` for the module (in a thread, stopped at the end). The dev account 1's key is
imported into a fresh keystore as `user` (scrypt n=1024 for speed); the commands run through
`cise.main.main` as on a terminal, and those about the process itself (exit code, stdin not a
terminal, the environment) as real `python -m cise.main` processes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from channels.chain.connection import Connection
from channels.chain.nodes import dev_private_keys
from channels.core.types import to_checksum
from channels.signer import LocalSigner
from cise.main import main
from tests.integration.test_cli_channel import running_chain

pytestmark = pytest.mark.node

USER, MACHINE = 1, 2
USER_ADDRESS = to_checksum(LocalSigner(dev_private_keys()[USER]).address)
MACHINE_ADDRESS = to_checksum(LocalSigner(dev_private_keys()[MACHINE]).address)
PASSWORD = "keystore test password"
COMMAND_BOUND = 120  # seconds for one cise process


@dataclass(frozen=True)
class Setup:
    network: Path
    keystore: Path
    password: Path
    wrong: Path
    folder: Path

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CISE_")}
        return env | {"CISE_KEYSTORE_DIR": str(self.keystore), **extra}


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    folder = tmp_path_factory.mktemp("accounts")
    password, wrong, key = folder / "password", folder / "wrong", folder / "user.key"
    password.write_text(PASSWORD + "\n")
    wrong.write_text(PASSWORD + " but wrong\n")
    key.write_text("0x" + dev_private_keys()[USER].hex() + "\n")
    with running_chain(folder / "network.json", settle_timeout=20) as network:
        setup = Setup(network, folder / "keystore", password, wrong, folder)
        with pytest.MonkeyPatch.context() as patch:
            for name in [k for k in os.environ if k.startswith("CISE_")]:
                patch.delenv(name)
            patch.setenv("CISE_KEYSTORE_DIR", str(setup.keystore))
            code = main(
                ["account", "import", "user", "--key-file", str(key), "--password-file",
                 str(password), "--scrypt-n", "1024"]
            )  # fmt: skip
            assert code == 0
            yield setup


def channel(
    setup: Setup, capsys: pytest.CaptureFixture[str], *argv: str, network: Path | None = None
) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(
        ["channel", "--network", str(network or setup.network), "--data-dir",
         str(setup.folder / "data"), *argv]
    )  # fmt: skip
    out, err = capsys.readouterr()
    return code, out, err


def cise(setup: Setup, env: dict[str, str], *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cise.main", *argv],
        env=env,
        stdin=subprocess.DEVNULL,  # not a terminal: never a prompt
        capture_output=True,
        text=True,
        timeout=COMMAND_BOUND,
        cwd=setup.folder,
    )


def nonce(setup: Setup, address: str) -> int:
    rpc_url = json.loads(setup.network.read_text())["rpc_url"]
    return Connection.from_url(rpc_url).account_nonce(address)


def test_a_keystore_account_signs_by_name_and_by_address(
    setup: Setup, capsys: pytest.CaptureFixture[str]
) -> None:
    before = nonce(setup, USER_ADDRESS)
    code, out, err = channel(
        setup, capsys, "--account", "user", "--password-file", str(setup.password),
        "open", MACHINE_ADDRESS, "--deposit", "1",
    )  # fmt: skip
    assert (code, out.strip()) == (0, "opened channel 1"), err
    assert nonce(setup, USER_ADDRESS) > before  # the keystore's key signed on chain
    code, out, err = channel(
        setup, capsys, "--account", USER_ADDRESS.lower(), "--password-file",
        str(setup.password), "status",
    )  # fmt: skip
    assert code == 0, err
    assert "channel 1" in out and "1.000000 €" in out, out
    assert PASSWORD not in out + err


def test_a_wrong_password_is_exit_2_naming_the_account_and_sends_nothing(setup: Setup) -> None:
    before = nonce(setup, USER_ADDRESS)
    done = cise(
        setup, setup.env(), "channel", "--network", str(setup.network), "--data-dir",
        str(setup.folder / "data"), "--account", "user", "--password-file", str(setup.wrong),
        "open", MACHINE_ADDRESS, "--deposit", "1",
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    keyfile = setup.keystore / "user.json"
    assert done.stderr == f"cise: error: wrong password for account 'user' ({keyfile})\n"
    assert done.stdout == "" and PASSWORD not in done.stderr
    assert nonce(setup, USER_ADDRESS) == before


def test_the_password_comes_from_the_environment_and_never_from_nowhere(setup: Setup) -> None:
    argv = ["channel", "--network", str(setup.network), "--data-dir", str(setup.folder / "data"),
            "--account", "user", "status"]  # fmt: skip
    done = cise(setup, setup.env(CISE_PASSWORD=PASSWORD), *argv)
    assert done.returncode == 0, done.stderr
    assert f"account {USER_ADDRESS}" in done.stdout  # the keystore account's key was used
    done = cise(setup, setup.env(), *argv)
    assert done.returncode == 2
    assert done.stderr == (
        "cise: error: no password for account 'user': give --password-file or set CISE_PASSWORD\n"
    )


def test_a_dev_index_works_only_on_a_dev_network_file(
    setup: Setup, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = json.loads(setup.network.read_text())
    raw.pop("dev_private_keys")
    raw["dev"] = False
    real = setup.folder / "real-network.json"
    real.write_text(json.dumps(raw))
    before = nonce(setup, USER_ADDRESS)

    code, _, err = channel(setup, capsys, "--account", "1", "status", network=real)
    assert code == 2
    assert err == (
        f"cise: error: --account 1: {real} is not a dev network (its file holds no dev keys): "
        "name a keystore account (cise account list)\n"
    )
    code, _, err = channel(
        setup, capsys, "open", MACHINE_ADDRESS, "--deposit", "1", network=real
    )  # no --account: the dev default does not apply
    assert code == 2 and "--account is required" in err, err
    assert nonce(setup, USER_ADDRESS) == before

    # the same account from the keystore works on it, and the dev index on the dev file
    code, out, err = channel(
        setup, capsys, "--account", "user", "--password-file", str(setup.password), "status",
        network=real,
    )  # fmt: skip
    assert code == 0 and f"account {USER_ADDRESS}" in out, err
    code, out, err = channel(setup, capsys, "--account", "1", "status")
    assert code == 0 and f"account {USER_ADDRESS}" in out, err

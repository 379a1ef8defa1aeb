"""Which key a command signs with: `--account NAME|ADDRESS|INDEX` and where its password comes from.

One resolver for every command that signs (`account_key`) and one for those that only need the
address (`account_address`, which never decrypts). A NAME or an ADDRESS is a keystore account
(`cise/keystore.py`); an INDEX is one of the public dev keys of a dev network file, and is refused
on any other network, so a real network never signs with a published key by accident.

The password of a keystore account comes from `--password-file FILE` (its first line), else
`$CISE_PASSWORD`, else a prompt when stdin is a terminal; never from the command line. This module
must never print or log a password or a key, nor put one into an error message.
"""

from __future__ import annotations

import argparse
import getpass
import os
import re
import sys
from pathlib import Path
from typing import Any, Final

from eth_account import Account

from channels.core.types import Address, parse_address, to_checksum
from cise.errors import CliError
from cise.keystore import NAME_PATTERN, Keystore, KeystoreError, default_directory, is_address
from cise.network import Network

PASSWORD_ENV: Final = "CISE_PASSWORD"
MAX_PASSWORD_FILE_BYTES: Final = 64 * 1024
_INDEX: Final = re.compile(r"[0-9]+")

ACCOUNT_HELP: Final = (
    "a keystore account's name or address (cise account list), or on a dev network the index "
    "of a dev account"
)


def add_account_arguments(
    parser: argparse.ArgumentParser,
    default_index: int | None,
    *,
    group: Any = None,
    help: str = ACCOUNT_HELP,
) -> None:
    """`--account NAME|ADDRESS|INDEX` (default: dev account `default_index`, on a dev network
    only) and `--password-file FILE`. `group`: a mutually exclusive group of `parser` to put
    `--account` in (the password file stays on `parser`)."""
    target = parser if group is None else group
    default = "" if default_index is None else f" (default on a dev network: {default_index})"
    target.add_argument(
        "--account",
        type=account_argument,
        default=None,
        metavar="NAME|ADDRESS|INDEX",
        help=help + default,
    )
    add_password_argument(parser)
    parser.set_defaults(account_default_index=default_index)


def account_argument(text: str) -> str:
    """An `--account` value as written: a dev index, a 0x address or an account name (whether
    it names anything is looked up later, against the network and the keystore)."""
    text = text.strip()
    if _INDEX.fullmatch(text) or is_address(text) or NAME_PATTERN.fullmatch(text):
        return text
    raise argparse.ArgumentTypeError(
        f"not an account name, 0x address or dev account index: {text!r}"
    )


def add_password_argument(parser: argparse.ArgumentParser, what: str = "the account's") -> None:
    """`--password-file FILE`: the password is its first line (never a password on argv)."""
    parser.add_argument(
        "--password-file",
        type=Path,
        default=None,
        metavar="FILE",
        help=f"a file whose first line is {what} keystore password "
        f"(else ${PASSWORD_ENV}, else a prompt on a terminal)",
    )


# ------------------------------------------------------------------------------------ passwords


def read_password_file(path: Path) -> str:
    """The first line of `path`, its line end stripped; `CliError` naming the file otherwise."""
    try:
        with path.open("rb") as file:
            data = file.read(MAX_PASSWORD_FILE_BYTES + 1)
    except OSError as exc:
        raise CliError(f"--password-file {path}: {exc.strerror or exc}") from None
    if len(data) > MAX_PASSWORD_FILE_BYTES:
        raise CliError(f"--password-file {path}: larger than {MAX_PASSWORD_FILE_BYTES} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise CliError(f"--password-file {path}: not UTF-8 text") from None
    line = text.splitlines()[0] if text else ""
    if not line:
        raise CliError(f"--password-file {path}: its first line is empty")
    return line


def read_password(args: argparse.Namespace, what: str, *, confirm: bool = False) -> str:
    """The password for `what` (e.g. "account 'alice'"): `--password-file`, else `$CISE_PASSWORD`,
    else a prompt (twice when `confirm`) when stdin is a terminal, else `CliError`."""
    path = getattr(args, "password_file", None)
    if path is not None:
        return read_password_file(Path(path))
    from_env = os.environ.get(PASSWORD_ENV)
    if from_env:
        return from_env
    if not sys.stdin.isatty():
        raise CliError(f"no password for {what}: give --password-file or set {PASSWORD_ENV}")
    try:
        password = getpass.getpass(f"password for {what}: ")
        if confirm and getpass.getpass(f"password for {what} again: ") != password:
            raise CliError(f"the two passwords for {what} differ; nothing was changed")
    except (EOFError, KeyboardInterrupt):
        raise CliError(f"no password for {what}: the prompt was closed") from None
    if not password:
        raise CliError(f"empty password for {what}")
    return password


# ------------------------------------------------------------------------------------ resolving


def keystore_of(args: argparse.Namespace) -> Keystore:
    """`--keystore-dir` when the command has it, else `$CISE_KEYSTORE_DIR` or the default."""
    directory = getattr(args, "keystore_dir", None)
    return Keystore(Path(directory) if directory else default_directory())


def account_key(network: Network, args: argparse.Namespace) -> bytes:
    """The private key of `--account` on `network` (a keystore account's password read as
    `read_password` says); `CliError` naming the problem, before anything is sent."""
    option, text = _chosen(network, args, "--account", "account")
    index = _dev_index(network, args, option, text)
    if index is not None:
        return network.dev_keys[index]
    if network.dev and is_address(text):
        dev = _dev_key_of(network, text)
        if dev is not None:
            return dev
    return keystore_key(args, text)


def keystore_key(args: argparse.Namespace, text: str) -> bytes:
    """The private key of the keystore account named `text` (NAME or ADDRESS), decrypted with the
    password `read_password` finds; `KeystoreError`/`CliError` naming the account otherwise."""
    keystore = keystore_of(args)
    entry = keystore.find(text)
    return keystore.decrypt(entry, read_password(args, f"account {entry.name!r}"))


def account_address(
    network: Network, args: argparse.Namespace, *, option: str = "--account", dest: str = "account"
) -> Address:
    """The address of the account named by `option`: an ADDRESS as given, a NAME's from the
    keystore, an INDEX's from the dev keys (no password: nothing is decrypted)."""
    option, text = _chosen(network, args, option, dest)
    index = _dev_index(network, args, option, text)
    if index is not None:
        return Address(parse_address(Account.from_key(network.dev_keys[index]).address))
    if is_address(text):  # an address is all this needs: the keystore may be elsewhere
        return Address(parse_address(text))
    try:
        return keystore_of(args).find(text).address
    except KeystoreError as exc:
        raise CliError(f"{option} {text}: {exc}") from None


def _chosen(network: Network, args: argparse.Namespace, option: str, dest: str) -> tuple[str, str]:
    """(option, value) as given, or the command's default dev index on a dev network."""
    text = getattr(args, dest, None)
    if text is not None:
        return option, str(text).strip()
    default = getattr(args, f"{dest}_default_index", None)
    where = _file_of(network, args)
    if not network.dev:
        raise CliError(
            f"{option} is required: {where} is not a dev network (its file holds no dev keys): "
            "name a keystore account (cise account list)"
        )
    if default is None:
        raise CliError(f"{option} is required (NAME|ADDRESS|INDEX)")
    return option, str(default)


def _dev_index(network: Network, args: argparse.Namespace, option: str, text: str) -> int | None:
    """The dev key index `text` names, None when it is not an index; `CliError` when it is one
    that this network cannot take."""
    if not _INDEX.fullmatch(text):
        return None
    where = _file_of(network, args)
    if not network.dev:
        raise CliError(
            f"{option} {text}: {where} is not a dev network (its file holds no dev keys): "
            "name a keystore account (cise account list)"
        )
    index = int(text)
    if not 0 <= index < len(network.dev_keys):
        raise CliError(
            f"{option} {text}: the network file has dev accounts 0..{len(network.dev_keys) - 1}"
        )
    return index


def _file_of(network: Network, args: argparse.Namespace) -> str:
    """The network file as the user named it (else as it was read)."""
    return str(getattr(args, "network", None) or network.path or "the network file")


def _dev_key_of(network: Network, address_text: str) -> bytes | None:
    wanted = to_checksum(parse_address(address_text)).lower()
    for key in network.dev_keys:
        if Account.from_key(key).address.lower() == wanted:
            return key
    return None

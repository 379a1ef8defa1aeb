"""`cise account`: the keystore accounts every signing command can name with `--account NAME`.

`new` makes a key and stores it encrypted, `import` stores an existing key (a hex key file, or a
v3 keystore file from geth or Besu, its password checked), `list`, `show` and `export-address` read
the keystore without a password. It must never print a key or a password; nothing is written
unless the whole account is.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from eth_account import Account

from cise.accounts import add_password_argument, keystore_of, read_password
from cise.errors import CliError
from cise.keystore import (
    DEFAULT_SCRYPT_N,
    Entry,
    Keystore,
    KeystoreError,
    check_name,
    check_scrypt_n,
    decrypt_keyfile,
    read_keyfile,
)

SCRYPT_N_ENV = "CISE_SCRYPT_N"


def _scrypt_n(text: str) -> int:
    try:
        return check_scrypt_n(int(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    except KeystoreError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _keystore_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--keystore-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="the keystore (default $CISE_KEYSTORE_DIR, else $XDG_CONFIG_HOME/cise/keystore)",
    )


def _new_key_options(parser: argparse.ArgumentParser) -> None:
    _keystore_dir(parser)
    add_password_argument(parser, "the new account's")
    parser.add_argument(
        "--scrypt-n",
        type=_scrypt_n,
        default=None,
        metavar="N",
        help=f"scrypt cost, a power of two (default ${SCRYPT_N_ENV}, else {DEFAULT_SCRYPT_N} "
        "as geth)",
    )


def add_parsers(sub: Any) -> None:
    """Register `cise account ...`."""
    parser = sub.add_parser("account", help="keystore accounts: new, import, list, show")
    ops = parser.add_subparsers(dest="account_command", required=True, metavar="COMMAND")

    new = ops.add_parser("new", help="make a new key, stored encrypted; prints its address")
    new.add_argument("name", help="the account's name: 1-64 of A-Z a-z 0-9 _ . -")
    _new_key_options(new)

    imp = ops.add_parser("import", help="store an existing key (hex key file or v3 keystore)")
    imp.add_argument("name", help="the account's name: 1-64 of A-Z a-z 0-9 _ . -")
    source = imp.add_mutually_exclusive_group(required=True)
    source.add_argument("--key-file", type=Path, metavar="FILE", help="a file with a 0x-hex key")
    source.add_argument(
        "--keystore-file",
        type=Path,
        metavar="FILE",
        help="a Web3 Secret Storage v3 file (geth, Besu); stored as it is, its password checked",
    )
    _new_key_options(imp)

    listing = ops.add_parser("list", help="the keystore's accounts")
    _keystore_dir(listing)
    listing.add_argument("--json", action="store_true", help="a JSON array")

    show = ops.add_parser("show", help="one account: name, address, file, key derivation")
    show.add_argument("account", metavar="NAME|ADDRESS")
    _keystore_dir(show)
    show.add_argument("--json", action="store_true", help="one JSON object")

    export = ops.add_parser("export-address", help="print only the account's checksum address")
    export.add_argument("account", metavar="NAME|ADDRESS")
    _keystore_dir(export)


def run(args: argparse.Namespace) -> int:
    """Run a `cise account` subcommand; its exit code."""
    keystore = keystore_of(args)
    command = args.account_command
    if command == "new":
        return _new(keystore, args)
    if command == "import":
        return _import(keystore, args)
    if command == "list":
        return _list(keystore, args.json)
    if command == "show":
        return _show(keystore.find(args.account), args.json)
    if command == "export-address":
        print(keystore.find(args.account).checksum)
        return 0
    raise AssertionError(f"unhandled account command {command}")


def _scrypt_n_of(args: argparse.Namespace) -> int:
    if args.scrypt_n is not None:
        return int(args.scrypt_n)
    text = os.environ.get(SCRYPT_N_ENV)
    if not text:
        return DEFAULT_SCRYPT_N
    try:
        return check_scrypt_n(int(text))
    except ValueError:
        raise CliError(f"${SCRYPT_N_ENV}={text!r} is not an integer") from None


def _free_name(keystore: Keystore, name: str) -> None:
    """Refuse before asking for a password when the name is bad or taken."""
    if keystore.path(check_name(name)).exists():
        raise KeystoreError(
            f"account {name!r} already exists ({keystore.path(name)}); choose another name"
        )


def _new(keystore: Keystore, args: argparse.Namespace) -> int:
    _free_name(keystore, args.name)
    scrypt_n = _scrypt_n_of(args)
    password = read_password(args, f"the new account {args.name!r}", confirm=True)
    entry = keystore.create(args.name, bytes(Account.create().key), password, scrypt_n)
    print(entry.checksum)
    return 0


def _import(keystore: Keystore, args: argparse.Namespace) -> int:
    _free_name(keystore, args.name)
    if args.key_file is not None:
        from cise.ledger_cmd import read_key_file  # the one reader of hex key files

        key = read_key_file(args.key_file)
        try:
            Account.from_key(key)
        except ValueError:
            raise CliError(f"--key-file {args.key_file}: not a valid secp256k1 key") from None
        scrypt_n = _scrypt_n_of(args)
        password = read_password(args, f"the new account {args.name!r}", confirm=True)
        entry = keystore.create(args.name, key, password, scrypt_n)
    else:
        what = f"--keystore-file {args.keystore_file}"
        keyfile, address = read_keyfile(args.keystore_file, what)
        password = read_password(args, f"the keystore file {args.keystore_file}")
        key = decrypt_keyfile(keyfile, password, what)
        if Account.from_key(key).address.lower() != "0x" + address.hex():
            raise KeystoreError(f"{what}: the key does not match the file's address")
        entry = keystore.add(args.name, keyfile)
    print(entry.checksum)
    return 0


def _describe(entry: Entry) -> dict[str, Any]:
    crypto = entry.keyfile.get("crypto", entry.keyfile.get("Crypto", {}))
    params = crypto.get("kdfparams", {})
    kdf = crypto.get("kdf")
    return {
        "name": entry.name,
        "address": entry.checksum,
        "file": str(entry.path),
        "kdf": kdf,
        "kdf_cost": params.get("n") if kdf == "scrypt" else params.get("c"),
    }


def _list(keystore: Keystore, as_json: bool) -> int:
    entries, problems = keystore.scan()
    if as_json:
        print(json.dumps([_describe(e) for e in entries], indent=2))
    elif not entries:
        print(f"no accounts in {keystore.directory} (cise account new NAME)")
    else:
        width = max(len(e.name) for e in entries)
        for entry in entries:
            print(f"{entry.name:<{width}}  {entry.checksum}  {entry.path}")
    for problem in problems:
        print(f"cise: error: {problem}", file=sys.stderr)
    return 1 if problems else 0


def _show(entry: Entry, as_json: bool) -> int:
    described = _describe(entry)
    if as_json:
        print(json.dumps(described, indent=2))
    else:
        for field, value in described.items():
            print(f"{field:<8} {value}")
    return 0

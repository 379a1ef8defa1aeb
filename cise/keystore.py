"""The keystore directory: one Web3 Secret Storage v3 file per named account (`<NAME>.json`).

The files are the ones geth and Besu write (eth_account `Account.encrypt`, scrypt), so an
account can move between them and CISE. The directory is created 0700 and every file 0600, written
to a temporary file first and linked into place, so a crash leaves either no account or a whole one,
and an existing account is never overwritten. Every bad file, missing account or wrong password is
a `KeystoreError` naming the file or the account.

It must never log, print or put into an error message a private key or a password, and never
write a key unencrypted.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from eth_account import Account

from channels.core.types import Address, parse_address, to_checksum
from channels.input_limits import InputError, read_json_file
from cise.errors import CliError

NAME_PATTERN: Final = re.compile(r"[A-Za-z0-9_.-]{1,64}")
DEFAULT_SCRYPT_N: Final = 262144  # geth's "standard" scrypt cost (2**18)
# A keystore file comes from elsewhere (geth, Besu, a colleague): bound the work it can ask for,
# or a crafted file makes decryption run for hours or take all memory.
MAX_SCRYPT_N: Final = 2**20
MAX_SCRYPT_RP: Final = 16
MAX_PBKDF2_C: Final = 10_000_000
MAX_KEYSTORE_BYTES: Final = 64 * 1024


class KeystoreError(CliError):
    """A keystore directory, file, account or password is not usable; the message names which."""


def default_directory() -> Path:
    """`$CISE_KEYSTORE_DIR`, else `$XDG_CONFIG_HOME/cise/keystore`, else `~/.config/cise/keystore`."""
    explicit = os.environ.get("CISE_KEYSTORE_DIR")
    if explicit:
        return Path(explicit)
    config = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config) / "cise" / "keystore"


def check_name(name: str) -> str:
    """An account name (`[A-Za-z0-9_.-]{1,64}`, not `.` or `..`); `KeystoreError` otherwise."""
    if not NAME_PATTERN.fullmatch(name) or name in (".", ".."):
        raise KeystoreError(
            f"account name {name!r}: use 1 to 64 of the characters A-Z a-z 0-9 _ . -"
        )
    if name.isdigit() or is_address(name):  # `--account` reads those as an index or an address
        raise KeystoreError(f"account name {name!r}: a name must not be a number or an address")
    return name


def check_scrypt_n(n: int) -> int:
    """A scrypt cost: a power of two from 2 up to 2**20."""
    if n < 2 or n & (n - 1) or n > MAX_SCRYPT_N:
        raise KeystoreError(f"scrypt n must be a power of two from 2 to {MAX_SCRYPT_N}, got {n}")
    return n


def is_address(text: str) -> bool:
    """`text` is written as an address (0x + 40 hex digits), not as a name."""
    return re.fullmatch(r"0x[0-9a-fA-F]{40}", text) is not None


@dataclass(frozen=True, slots=True)
class Entry:
    """One account of the keystore: its name, its address and its (still encrypted) file."""

    name: str
    address: Address
    path: Path
    keyfile: dict[str, Any]

    @property
    def checksum(self) -> str:
        return to_checksum(self.address)


def parse_keyfile(text: str, where: str) -> tuple[dict[str, Any], Address]:
    """A v3 keystore JSON object and its address; `KeystoreError` naming `where` otherwise."""
    bad = f"{where} is not a Web3 Secret Storage v3 keystore file"
    try:
        raw = json.loads(text)
    except ValueError:
        raise KeystoreError(f"{bad}: not JSON") from None
    if not isinstance(raw, dict):
        raise KeystoreError(f"{bad}: not a JSON object")
    if raw.get("version") != 3:
        raise KeystoreError(f"{bad}: version is {raw.get('version')!r}, not 3")
    crypto = raw.get("crypto", raw.get("Crypto"))
    if not isinstance(crypto, dict):
        raise KeystoreError(f"{bad}: no 'crypto' object")
    _check_kdf(crypto, bad)
    address_text = raw.get("address")
    if not isinstance(address_text, str):
        raise KeystoreError(f"{bad}: no 'address'")
    if not address_text.startswith("0x"):
        address_text = "0x" + address_text
    try:
        address = Address(parse_address(address_text))
    except ValueError:
        raise KeystoreError(f"{bad}: 'address' is not an address") from None
    return raw, address


def _check_kdf(crypto: dict[str, Any], bad: str) -> None:
    kdf, params = crypto.get("kdf"), crypto.get("kdfparams")
    if not isinstance(params, dict):
        raise KeystoreError(f"{bad}: no 'kdfparams'")
    try:
        if kdf == "scrypt":
            n, r, p = int(params["n"]), int(params["r"]), int(params["p"])
            if not (2 <= n <= MAX_SCRYPT_N and 1 <= r <= MAX_SCRYPT_RP and 1 <= p <= MAX_SCRYPT_RP):
                raise KeystoreError(
                    f"{bad}: scrypt n={n} r={r} p={p} is outside what CISE accepts "
                    f"(n <= {MAX_SCRYPT_N}, r and p <= {MAX_SCRYPT_RP})"
                )
        elif kdf == "pbkdf2":
            c = int(params["c"])
            if not 1 <= c <= MAX_PBKDF2_C:
                raise KeystoreError(f"{bad}: pbkdf2 c={c} is outside 1..{MAX_PBKDF2_C}")
        else:
            raise KeystoreError(f"{bad}: unknown kdf {kdf!r}")
    except (KeyError, TypeError, ValueError):
        raise KeystoreError(f"{bad}: bad 'kdfparams'") from None


def read_keyfile(path: Path, where: str | None = None) -> tuple[dict[str, Any], Address]:
    """Read and check a v3 keystore file (size-bounded); `KeystoreError` naming it otherwise."""
    name = where or f"keystore file {path}"
    try:
        text = read_json_file(path, max_bytes=MAX_KEYSTORE_BYTES, what=name)
    except FileNotFoundError:
        raise KeystoreError(f"{name}: no such file") from None
    except OSError as exc:
        raise KeystoreError(f"{name}: {exc.strerror or exc}") from None
    except InputError as exc:
        raise KeystoreError(
            f"{name} is not a Web3 Secret Storage v3 keystore file: {exc}"
        ) from None
    return parse_keyfile(text, name)


def decrypt_keyfile(keyfile: dict[str, Any], password: str, what: str) -> bytes:
    """The private key of a checked v3 keystore object; `KeystoreError` on a wrong password."""
    try:
        key = bytes(Account.decrypt(keyfile, password))
    except ValueError as exc:
        if "MAC mismatch" in str(exc):
            raise KeystoreError(f"wrong password for {what}") from None
        raise KeystoreError(f"cannot decrypt {what}: the file is damaged") from None
    except (KeyError, TypeError, AttributeError):
        raise KeystoreError(f"cannot decrypt {what}: the file is damaged") from None
    if len(key) != 32:
        raise KeystoreError(f"cannot decrypt {what}: it does not hold a 32-byte key")
    return key


@dataclass(frozen=True, slots=True)
class Keystore:
    """A keystore directory (it need not exist until an account is added)."""

    directory: Path

    def path(self, name: str) -> Path:
        return self.directory / f"{check_name(name)}.json"

    def scan(self) -> tuple[list[Entry], list[str]]:
        """The readable accounts sorted by name, and a message for each file that is not one."""
        entries: list[Entry] = []
        problems: list[str] = []
        for path in self._files():
            try:
                entries.append(self._entry(path))
            except KeystoreError as exc:
                problems.append(str(exc))
        return entries, problems

    def get(self, name: str) -> Entry:
        """The account `name`; `KeystoreError` when missing or its file is bad."""
        path = self.path(name)
        if not path.is_file():
            raise KeystoreError(
                f"no account {name!r} in the keystore {self.directory} (cise account list)"
            )
        return self._entry(path)

    def find(self, name_or_address: str) -> Entry:
        """The account named, or holding the address given as 0x + 40 hex digits."""
        if not is_address(name_or_address):
            return self.get(name_or_address)
        wanted = parse_address(name_or_address)
        found = [e for e in self.scan()[0] if e.address == wanted]
        if not found:
            raise KeystoreError(
                f"no account {to_checksum(Address(wanted))} in the keystore {self.directory} "
                "(cise account list)"
            )
        return found[0]

    def decrypt(self, entry: Entry, password: str) -> bytes:
        """The private key of `entry`; `KeystoreError` naming the account on a wrong password."""
        key = decrypt_keyfile(entry.keyfile, password, f"account {entry.name!r} ({entry.path})")
        if Account.from_key(key).address.lower() != entry.checksum.lower():
            raise KeystoreError(
                f"account {entry.name!r} ({entry.path}): the key does not match its address"
            )
        return key

    def add(self, name: str, keyfile: dict[str, Any]) -> Entry:
        """Store a checked v3 keystore object as account `name`; never overwrites an account,
        never stores a second name for an address already there."""
        path = self.path(name)
        _, address = parse_keyfile(json.dumps(keyfile), f"the new account {name!r}")
        if path.exists():
            raise KeystoreError(f"account {name!r} already exists ({path}); choose another name")
        for entry in self.scan()[0]:
            if entry.address == address:
                raise KeystoreError(
                    f"{entry.checksum} is already in the keystore as {entry.name!r} ({entry.path})"
                )
        self._ensure_directory()
        _write_new(path, json.dumps(keyfile, indent=2).encode() + b"\n")
        return Entry(name, address, path, keyfile)

    def create(self, name: str, key: bytes, password: str, scrypt_n: int) -> Entry:
        """Encrypt `key` with `password` (scrypt cost `scrypt_n`) as the new account `name`."""
        check_name(name)
        check_scrypt_n(scrypt_n)
        keyfile = Account.encrypt(key, password, kdf="scrypt", iterations=scrypt_n)
        return self.add(name, keyfile)

    # -------------------------------------------------------------------------------- plumbing

    def _files(self) -> Iterator[Path]:
        try:
            paths = sorted(self.directory.glob("*.json"))
        except OSError as exc:
            raise KeystoreError(f"keystore {self.directory}: {exc.strerror or exc}") from None
        for path in paths:
            if NAME_PATTERN.fullmatch(path.stem) and path.is_file():
                yield path

    def _entry(self, path: Path) -> Entry:
        keyfile, address = read_keyfile(path, f"keystore file {path}")
        return Entry(path.stem, address, path, keyfile)

    def _ensure_directory(self) -> None:
        try:
            if not self.directory.exists():
                self.directory.mkdir(mode=0o700, parents=True)
                os.chmod(self.directory, 0o700)  # mkdir's mode is cut by the umask
        except OSError as exc:
            raise KeystoreError(f"keystore {self.directory}: {exc.strerror or exc}") from None
        if not self.directory.is_dir():
            raise KeystoreError(f"keystore {self.directory} is not a directory")


def _write_new(path: Path, data: bytes) -> None:
    """Write `path` 0600 all at once: a temporary file, synced, then linked to its name (which
    fails, and keeps the other file, when the name was taken meanwhile)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)
        except FileExistsError:
            raise KeystoreError(
                f"account file {path} appeared meanwhile; nothing written"
            ) from None
        except OSError:  # a file system without hard links: check, then rename
            if path.exists():
                raise KeystoreError(f"account file {path} exists; nothing written") from None
            os.replace(tmp, path)
        _sync_directory(path.parent)
    except OSError as exc:
        raise KeystoreError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        tmp.unlink(missing_ok=True)


def _sync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

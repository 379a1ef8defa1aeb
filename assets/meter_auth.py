"""Who may post meter events: per-machine bearer tokens, and how many connections one address holds.

A token file has one line `NAME TOKEN` per machine (blank lines and `#` comments are skipped):
NAME is 1..64 characters of letters, digits, `.`, `_`, `-`; TOKEN is at least 32 random bytes
written as lower-case hex (`new_token_line` makes one with `secrets.token_hex(32)`). A file
readable by group or others is refused: a token is a password.

`identify` names the machine whose token an `Authorization: Bearer TOKEN` header carries,
comparing with `hmac.compare_digest` against every token (no early exit). `AddressSlots` counts the
connections of each remote address so that one address cannot take every slot, and says when a
refusal may be logged again (once per address per minute).

This module must never log, print or put a token into an error message, and never accept a
token shorter than `MIN_TOKEN_BYTES`; apart from reading the token file it does no I/O.
"""

from __future__ import annotations

import hmac
import os
import re
import secrets
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Final

__all__ = [
    "MIN_TOKEN_BYTES",
    "AddressSlots",
    "MeterAuthError",
    "identify",
    "load_tokens",
    "new_token_line",
    "parse_tokens",
]

MIN_TOKEN_BYTES: Final = 32
MAX_TOKEN_FILE_BYTES: Final = 1024 * 1024
MAX_HEADER_TOKEN_CHARS: Final = 1024
_NAME: Final = re.compile(r"[A-Za-z0-9._-]{1,64}")
_HEX: Final = re.compile(r"(?:[0-9a-f]{2})+")


class MeterAuthError(ValueError):
    """A token file (or a token name) that cannot be used; the message names what is wrong."""


def check_name(name: str) -> str:
    """`name` when it is a valid machine name, else `MeterAuthError`."""
    if not _NAME.fullmatch(name):
        raise MeterAuthError(
            f"machine name must be 1..64 letters, digits, '.', '_' or '-', got {name[:80]!r}"
        )
    return name


def parse_tokens(text: str, *, where: str = "the token file") -> dict[str, bytes]:
    """Machine name → token (its ASCII hex) from the text of a token file; `MeterAuthError`
    naming the line when a line is malformed, a name or a token is used twice, or there is none."""
    tokens: dict[str, bytes] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) != 2:
            raise MeterAuthError(f"{where}, line {number}: expected 'NAME TOKEN'")
        name, token = parts
        try:
            check_name(name)
        except MeterAuthError as exc:
            raise MeterAuthError(f"{where}, line {number}: {exc}") from None
        if not _HEX.fullmatch(token) or len(token) < 2 * MIN_TOKEN_BYTES:
            raise MeterAuthError(
                f"{where}, line {number}: the token of {name!r} must be at least"
                f" {MIN_TOKEN_BYTES} bytes as lower-case hex ({2 * MIN_TOKEN_BYTES}+ characters)"
            )
        if name in tokens:
            raise MeterAuthError(f"{where}, line {number}: machine {name!r} is listed twice")
        encoded = token.encode("ascii")
        if any(hmac.compare_digest(encoded, other) for other in tokens.values()):
            raise MeterAuthError(f"{where}, line {number}: the token of {name!r} is used twice")
        tokens[name] = encoded
    if not tokens:
        raise MeterAuthError(f"{where} lists no token")
    return tokens


def load_tokens(path: Path) -> dict[str, bytes]:
    """The tokens of the file at `path` (see `parse_tokens`); `MeterAuthError` when it cannot be
    read, is not a regular file, is readable or writable by group or others, or is too large."""
    try:
        with path.open("rb") as file:
            info = os.fstat(file.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise MeterAuthError(f"token file {path}: not a regular file")
            if info.st_mode & 0o077:
                raise MeterAuthError(
                    f"token file {path}: group or others may access it"
                    f" (mode {stat.S_IMODE(info.st_mode):04o}); run: chmod 600 {path}"
                )
            data = file.read(MAX_TOKEN_FILE_BYTES + 1)
    except OSError as exc:
        raise MeterAuthError(f"token file {path}: {exc.strerror or exc}") from None
    if len(data) > MAX_TOKEN_FILE_BYTES:
        raise MeterAuthError(f"token file {path}: larger than {MAX_TOKEN_FILE_BYTES} bytes")
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise MeterAuthError(f"token file {path}: not ASCII text") from None
    return parse_tokens(text, where=f"token file {path}")


def new_token_line(name: str) -> str:
    """A new line `NAME TOKEN` (a fresh `secrets.token_hex(32)`), newline included."""
    return f"{check_name(name)} {secrets.token_hex(MIN_TOKEN_BYTES)}\n"


def identify(tokens: Mapping[str, bytes], authorization: bytes | None) -> str | None:
    """The name of the machine whose token `authorization` ("Bearer TOKEN") carries, else None.

    Every token is compared (constant time each, no early exit), so the time taken does not tell
    which name or how much of a token matched."""
    if authorization is None:
        return None
    scheme, _, presented = authorization.strip().partition(b" ")
    presented = presented.strip()
    if scheme.lower() != b"bearer" or not presented or len(presented) > MAX_HEADER_TOKEN_CHARS:
        return None
    found: str | None = None
    for name, token in tokens.items():
        if hmac.compare_digest(presented, token) and found is None:
            found = name
    return found


class AddressSlots:
    """Open connections per remote address, at most `per_address` each; refusals logged at most
    once per address per `log_every_s` (the caller passes the clock, so this stays pure)."""

    def __init__(self, per_address: int, *, log_every_s: float = 60.0) -> None:
        if per_address < 1:
            raise ValueError(f"per_address must be at least 1, got {per_address}")
        self.per_address = per_address
        self.log_every_s = log_every_s
        self.open: dict[str, int] = {}
        self._logged: dict[str, float] = {}

    def take(self, address: str) -> bool:
        """Take a slot for `address`; False (nothing taken) when it holds `per_address` already."""
        held = self.open.get(address, 0)
        if held >= self.per_address:
            return False
        self.open[address] = held + 1
        return True

    def give_back(self, address: str) -> None:
        """Free a slot `take` gave to `address`."""
        held = self.open.get(address, 0) - 1
        if held > 0:
            self.open[address] = held
        else:
            self.open.pop(address, None)

    def should_log(self, address: str, now: float) -> bool:
        """Whether a refusal of `address` at `now` is to be logged (not logged in the last
        `log_every_s`); remembers at most a few thousand addresses (the oldest are forgotten)."""
        last = self._logged.get(address)
        if last is not None and now - last < self.log_every_s:
            return False
        if len(self._logged) >= 4096:
            for old in [a for a, t in self._logged.items() if now - t >= self.log_every_s]:
                del self._logged[old]
            if len(self._logged) >= 4096:
                self._logged.pop(next(iter(self._logged)))
        self._logged[address] = now
        return True

"""One process owns a store file: it is the file's only writer, for as long as it runs.

A process that writes a store (an account's channel log, a hub's settlement file, a watchtower's
file, an asset's revenue ledger) first `claim`s it: an exclusive, non-blocking `flock` on a lock
file beside it (`<store>.lock`), held until `release` or the end of the process. The OS drops the
lock when the process dies, however it dies (SIGKILL included), so a restart after a crash claims
it again with nothing stale to clean up. The lock file records the owner's pid and command line,
so a second process that wants to write is refused (`StoreInUseError`) with a message naming the
running owner, before it has changed anything.

Why: a store's writer keeps part of the store in memory (the log's next id, its open commit
group); a second writer makes the two disagree, and the running service dies on its next commit
(a UNIQUE constraint on the log's ids). sqlite's own locking serialises transactions, not owners.

Why `flock` and not POSIX record locks (`fcntl.lockf`): a record lock belongs to the process, so a
second open of the same file in the same process is not refused, and closing ANY descriptor of
the file drops it; a `flock` belongs to the open file description, so even a second opener in the
same process is refused and the lock lives exactly as long as the claim.

Processes that only read open the file with `connect_read_only`: they take no lock and cannot
write, so they work while the owner runs.

This module must never wait for a lock (a second writer is a mistake to report, not to queue),
never delete a lock file (unlinking a locked file lets two processes lock two different files),
and never look inside the store it guards.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shlex
import sqlite3
import sys
from dataclasses import dataclass
from pathlib import Path

LOCK_SUFFIX = ".lock"
_RECORD_LIMIT = 4096  # bytes of the owner record read back (a command line is shorter)


class OwnershipError(Exception):
    """A store cannot be claimed for writing; the message names the store and why."""


@dataclass(frozen=True, slots=True)
class Owner:
    """The process holding a store, as it recorded itself."""

    pid: int
    command: str


class StoreInUseError(OwnershipError):
    """Another process owns the store; nothing was changed."""

    def __init__(self, store: Path, owner: Owner | None) -> None:
        self.store = store
        self.owner = owner
        who = (
            f"pid {owner.pid}: {owner.command}"
            if owner is not None
            else "another process (starting: it has not recorded its pid yet)"
        )
        super().__init__(
            f"{store} is in use by {who}; stop it first, or use a command that only reads it "
            "(only one process may write an account's files; status commands read while it runs)"
        )


def lock_path(store: str | Path) -> Path:
    """The lock file beside `store`."""
    return Path(f"{store}{LOCK_SUFFIX}")


def current_command() -> str:
    """This process's command line, as recorded for a second process to read."""
    argv = [Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python", *sys.argv[1:]]
    return shlex.join(argv).replace("\n", " ")


class Ownership:
    """A held claim on a store; `release` (or the end of the process) gives it up."""

    def __init__(self, store: Path, fd: int) -> None:
        self.store = store
        self._fd: int | None = fd

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        """Give the store up (idempotent). The record is cleared while still locked."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        with contextlib.suppress(OSError):  # the lock goes with the descriptor all the same
            os.ftruncate(fd, 0)
        os.close(fd)


def claim(store: str | Path, *, command: str | None = None) -> Ownership:
    """Become the one writer of `store`, or raise `StoreInUseError` naming its owner.

    Never blocks. Creates the lock file (and nothing else) when it is missing; `OwnershipError`
    when it cannot be created (e.g. the folder does not exist).
    """
    store = Path(store)
    path = lock_path(store)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise OwnershipError(
            f"{store}: cannot create its lock file {path}: {exc.strerror}"
        ) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        owner = _read_owner(fd)
        os.close(fd)
        raise StoreInUseError(store, owner) from None
    except BaseException:
        os.close(fd)
        raise
    record = f"{os.getpid()}\n{command or current_command()}\n".encode()
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, record, 0)
    except BaseException:
        os.close(fd)
        raise
    return Ownership(store, fd)


def owner_of(store: str | Path) -> Owner | None:
    """The process that owns `store` now, or None when none does (its lock is free).

    Takes the lock for an instant to find out, so call it only where no owner may start at the
    same moment and be refused (tests, diagnostics)."""
    path = lock_path(store)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_owner(fd) or Owner(0, "")
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def _read_owner(fd: int) -> Owner | None:
    """The record the owner wrote (None while it has not written it yet)."""
    try:
        text = os.pread(fd, _RECORD_LIMIT, 0).decode("utf-8", "replace")
    except OSError:
        return None
    pid_text, _, rest = text.partition("\n")
    if not pid_text.isdigit():
        return None
    return Owner(int(pid_text), rest.strip())


def connect_read_only(path: str | Path, *, timeout: float = 5.0) -> sqlite3.Connection:
    """A connection to the sqlite file `path` that cannot write it (`mode=ro`); takes no lock and
    leaves no file behind.

    The file must exist (sqlite would not create it in this mode). While a writer has the (WAL
    mode) file open, its -wal and -shm files exist and the reader shares them. Without a -wal file
    no writer is active, and `mode=ro` would create the -wal and -shm files and leave them:
    `immutable=1` reads the file alone instead. `timeout` is how long a read waits on a busy file.
    """
    uri = Path(path).resolve().as_uri() + "?mode=ro"
    if not Path(f"{path}-wal").exists():
        uri += "&immutable=1"
    return sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False,
                           timeout=timeout)  # fmt: skip


__all__ = [
    "LOCK_SUFFIX",
    "Owner",
    "Ownership",
    "OwnershipError",
    "StoreInUseError",
    "claim",
    "connect_read_only",
    "current_command",
    "lock_path",
    "owner_of",
]

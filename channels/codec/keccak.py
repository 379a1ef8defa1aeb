"""keccak256 with the fast backend chosen explicitly.

eth_hash picks pycryptodome (3.6 µs a hash) over safe-pysha3 (0.9 µs) when both are installed,
so the backend is named here once and everything in CISE hashes through `keccak`. It calls
safe-pysha3's `keccak_256` directly (the module eth_hash's pysha3 backend wraps), which saves
eth_hash's two extra Python calls on every hash of the payment hot path.
This module must never pick a backend implicitly.

`keccak_256` is that backend's constructor (`keccak_256(data).digest()` == `keccak(data)`), for
loops hot enough that the one Python call of `keccak` shows (the locks tree binds it to a local).
"""

from collections.abc import Callable
from typing import Protocol

from sha3 import keccak_256 as _keccak_256  # type: ignore[import-untyped]  # safe-pysha3, untyped


class KeccakHash(Protocol):
    """A running keccak256 (safe-pysha3's hash object)."""

    def update(self, data: bytes, /) -> None: ...

    def digest(self) -> bytes: ...


keccak_256: Callable[[bytes], KeccakHash] = _keccak_256


def keccak(data: bytes) -> bytes:
    """Return keccak256(data), 32 bytes."""
    digest: bytes = _keccak_256(data).digest()
    return digest

"""The founding documents a CISE network records on chain: which text, its hash, and where it is.

What this module is for: the network records the keccak256 of the exact bytes of its code of
conduct (`NetworkParameters.codeOfConductHash`) and a URI naming the text; an applicant accepts the
code by that hash (`Membership.applyForMembership`). The text members read is the repository file
`docs/code-of-conduct.md`. This module holds that file's hash as a constant, so that `deploy()`
records it from an installed package that has no `docs/` beside it, and a test keeps the constant
equal to the file's hash (edit the file and the test names the new hash to put here: changing the
code of conduct of an existing network is the members' constitutional decision, never an edit).

`document_hash` is the one way a text's hash is computed (the exact bytes: no newline or encoding
conversion), and `read_document` the one way a document file is read (bounded).

It must never decide which code of conduct is in force: that is what the chain says.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from channels.codec.keccak import keccak
from channels.input_limits import check_size

__all__ = [
    "CODE_OF_CONDUCT_HASH",
    "CODE_OF_CONDUCT_PATH",
    "CODE_OF_CONDUCT_URI",
    "MAX_DOCUMENT_BYTES",
    "document_hash",
    "read_document",
]

CODE_OF_CONDUCT_PATH: Final = "docs/code-of-conduct.md"
"""Where the text is, relative to the root of the CISE source repository."""

CODE_OF_CONDUCT_HASH: Final = bytes.fromhex(
    "754c7d057a3d1e61284ccd0cf094d0e1f7be39cbaa31420eda46e703d7667dd0"
)
"""keccak256 of the exact bytes of `CODE_OF_CONDUCT_PATH` (kept equal by a test)."""

CODE_OF_CONDUCT_URI: Final = f"{CODE_OF_CONDUCT_PATH}#keccak256=0x{CODE_OF_CONDUCT_HASH.hex()}"
"""The URI a network records: the file in the repository, and the hash of the version meant (the
file may change in later versions of the repository; the version with this hash is the one)."""

MAX_DOCUMENT_BYTES: Final = 1024 * 1024  # a code of conduct is a few kB; a bound, not a format rule


def document_hash(text: bytes) -> bytes:
    """keccak256 of a document's exact bytes: what `NetworkParameters` records for it."""
    return keccak(text)


def read_document(path: Path) -> bytes:
    """The bytes of the document file at `path` (at most `MAX_DOCUMENT_BYTES`).

    Raises `OSError` when it cannot be read, `channels.input_limits.InputTooLargeError` when it is
    larger than the bound.
    """
    with path.open("rb") as file:
        data = file.read(MAX_DOCUMENT_BYTES + 1)
    check_size(len(data), MAX_DOCUMENT_BYTES, str(path))
    return data

"""The channel settlement arithmetic of docs/protocol.md, the one Python copy of the contract's.

Used for cooperative-close balances and to predict what a settle credits. It must match
`ChannelManager.settleChannel` exactly (tests compare both); never re-derive it elsewhere.
Pure integer arithmetic, no I/O.
"""

from __future__ import annotations

from typing import NamedTuple


class Settlement(NamedTuple):
    """What a settle credits each participant (address order) and leaves locked for `unlock`."""

    balance1: int
    balance2: int
    locked1: int  # participant1's outgoing locks, held for unlock
    locked2: int


EMPTY_ROOT = b"\x00" * 32


def effective_locked(locked: int, locks_root: bytes) -> int:
    """What of a proof's `locked` the contract holds back at settle: nothing under an empty root.

    No lock can be unlocked against an empty locks root, so the contract treats such a proof's
    locked amount as 0 and the money stays with its sender (docs/protocol.md, "On-chain rules").
    """
    return 0 if locks_root == EMPTY_ROOT else locked


def settle_amounts(
    deposit1: int,
    withdrawn1: int,
    transferred1: int,
    locked1: int,
    deposit2: int,
    withdrawn2: int,
    transferred2: int,
    locked2: int,
) -> Settlement:
    """Split a channel's total at settle.

    `transferred1`/`locked1` come from the latest proof SENT BY participant1 (likewise for 2);
    pass locked amounts through `effective_locked` first, as the contract does.
    b1 = clamp(D1 - W1 + T2 - T1, 0, total); b2 = total - b1; each side's outgoing locks are then
    taken out of its own share (capped by it) and wait for `unlock`.
    """
    total = deposit1 + deposit2 - withdrawn1 - withdrawn2
    b1 = deposit1 - withdrawn1 + transferred2 - transferred1
    b1 = min(max(b1, 0), total)
    b2 = total - b1
    held1 = min(locked1, b1)
    held2 = min(locked2, b2)
    return Settlement(b1 - held1, b2 - held2, held1, held2)

"""Frozen state records of the channel core: locks, balance proofs, channel ends, channels, node.

Records only: every record is an immutable value (a frozen `msgspec.Struct`: it builds several
times faster than a frozen dataclass, and the store encodes it natively), updated by building a
new one that shares the unchanged parts (no deep copies). The mappings held inside records
(pending locks, secrets) are plain dicts that are NEVER mutated after the record is built; a
transition that changes one builds a new dict. Transitions live in `channels.core.channel` and
`channels.core.node`; this module must never do I/O, sign, or decide anything.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

import msgspec

from channels.codec.eip712 import Domain, balance_proof_digest, balance_proof_struct_hash, lock_hash
from channels.core.lockhistory import LockLog, unknown_log
from channels.core.locktree import LockTree
from channels.core.types import (
    EMPTY_LOCKS_ROOT,
    ZERO_AMOUNT,
    Address,
    BlockNumber,
    ChannelId,
    LocksRoot,
    Nonce,
    Secret,
    SecretHash,
    Signature,
    TokenAmount,
)

NO_SIGNATURE = Signature(b"")
EMPTY_TREE = LockTree()
EMPTY_MAPPING: Mapping[int, Lock] = {}


class Lock(msgspec.Struct, frozen=True):
    """A hashlock `Lock(uint256 amount,uint256 expiration,bytes32 secrethash)`; `leaf` is its struct hash.

    Never pass `leaf`: it is computed at construction (or read back from the store), so it is a
    function of the other three fields and comparing it in `==` changes nothing.
    """

    amount: TokenAmount
    expiration: BlockNumber
    secrethash: SecretHash
    leaf: bytes = b""

    def __post_init__(self) -> None:
        if not self.leaf:
            msgspec.structs.force_setattr(
                self, "leaf", lock_hash(self.amount, self.expiration, self.secrethash)
            )


class BalanceProof(msgspec.Struct, frozen=True):
    """A cumulative balance proof of one direction; `signature` is the sender's (empty for our own).

    The core never holds a signature of ours: our proofs are signed by the shell from the digest
    carried in the `Send*` event. Proofs received from the partner keep the partner's signature,
    which is what a unilateral close or a balance-proof update submits on chain.
    """

    channel_id: ChannelId
    nonce: Nonce
    transferred: TokenAmount
    locked: TokenAmount
    locks_root: LocksRoot
    signature: Signature = NO_SIGNATURE

    def digest(self, domain: Domain) -> bytes:
        """The EIP-712 digest the sender signs."""
        return balance_proof_digest(
            domain, self.channel_id, self.nonce, self.transferred, self.locked, self.locks_root
        )

    def struct_hash(self) -> bytes:
        """hashStruct(BalanceProof): what a MonitorRequest's `balanceProofHash` names."""
        return balance_proof_struct_hash(
            self.channel_id, self.nonce, self.transferred, self.locked, self.locks_root
        )


def empty_balance_proof(channel_id: ChannelId) -> BalanceProof:
    """The proof before any transfer: nonce 0 (the contract reads nonce 0 as "no proof")."""
    return BalanceProof(channel_id, Nonce(0), TokenAmount(0), TokenAmount(0), EMPTY_LOCKS_ROOT)


class BatchedBy(enum.Enum):
    """Who puts a co-signed `Withdraw` on chain.

    A settlement batch (issue 5) is submitted by the hub: the hub's own withdraws are confirmed by
    the partner as usual but not sent alone (US, in the hub's view), and a partner's withdraw for
    the batch is signed by the partner and never confirmed (PARTNER in the partner's view, US in
    the hub's), so nobody but the batch can apply it.
    """

    NOBODY = "nobody"  # not batched: the requester sends `withdraw` itself
    US = "us"  # our settlement batch applies it
    PARTNER = "partner"  # the partner's settlement batch applies it


class PendingWithdraw(msgspec.Struct, frozen=True):
    """A co-signed (or being co-signed) `Withdraw` not yet seen on chain."""

    total_withdraw: TokenAmount
    expiry: BlockNumber
    confirmed: bool = False  # our request: the partner's signature arrived; theirs: we confirmed
    batched_by: BatchedBy = BatchedBy.NOBODY


class EndState(msgspec.Struct, frozen=True):
    """One participant's side: its deposits and withdrawals, and the direction it sends in.

    `balance_proof` is the latest proof SENT BY this participant; `locks` maps each occupied slot
    of its locks tree to the lock in it, and `tree` is that tree (its root is the proof's root).
    `history` logs every lock operation of this direction by nonce, so the tree of ANY proof it
    signed can be rebuilt after a close (`channels.core.lockhistory`); `onchain_nonce` is the
    nonce of this direction's proof stored on chain once the channel is closed (None before, 0
    when none was submitted). After settle, `locks`/`tree` are those of the proof on chain.
    """

    address: Address
    deposit: TokenAmount = ZERO_AMOUNT
    withdrawn: TokenAmount = ZERO_AMOUNT
    balance_proof: BalanceProof = msgspec.field(
        default_factory=lambda: empty_balance_proof(ChannelId(0))
    )
    locks: Mapping[int, Lock] = msgspec.field(default_factory=lambda: EMPTY_MAPPING)
    slot_of: Mapping[SecretHash, int] = msgspec.field(
        default_factory=dict
    )  # index of `locks` by secrethash
    tree: LockTree = EMPTY_TREE
    pending_withdraw: PendingWithdraw | None = None
    history: LockLog = msgspec.field(default_factory=unknown_log)
    onchain_nonce: Nonce | None = None

    @property
    def effective_withdrawn(self) -> TokenAmount:
        """Withdrawn on chain, or the pending withdraw total when larger (it may land any time)."""
        pending = self.pending_withdraw
        if pending is not None and pending.total_withdraw > self.withdrawn:
            return pending.total_withdraw
        return self.withdrawn


class UnlockAttempt(msgspec.Struct, frozen=True):
    """Our on-chain `unlock` of the lock in `slot` of `sender`'s direction, not yet seen mined.

    Sent `attempts` times; the next try is due at `retry_at` (0 until the first head seen after
    sending; the backoff doubles each time);
    `reason` is the last failure the shell reported (empty: none reported, the unlock was just not
    seen on chain). After the last allowed attempt it `gave_up` (reported once) but stays here,
    with the lock in `unlocks_pending`: never forgotten.
    """

    sender: Address
    slot: int
    attempts: int
    retry_at: BlockNumber
    reason: str = ""
    gave_up: bool = False


class ChannelStatus(enum.Enum):
    """Where a channel is in its lifecycle."""

    OPENED = "opened"
    CLOSING = "closing"  # we sent a close transaction, not mined yet
    CLOSED = "closed"  # closed on chain, challenge period running
    SETTLING = "settling"  # we sent the settle transaction
    SETTLED = "settled"  # settled or cooperatively closed: only unlocks remain


class CooperativeCloseProposal(msgspec.Struct, frozen=True):
    """Balances (in participant-address order) of a cooperative close being co-signed."""

    balance1: TokenAmount
    balance2: TokenAmount
    partner_signature: Signature = NO_SIGNATURE


class ChannelState(msgspec.Struct, frozen=True):
    """One channel seen from our side. `our` and `partner` are the two ends."""

    channel_id: ChannelId
    our: EndState
    partner: EndState
    settle_timeout: int
    status: ChannelStatus = ChannelStatus.OPENED
    closer: Address | None = None
    closed_block: BlockNumber | None = None
    settle_block: BlockNumber | None = None
    cooperative_close: CooperativeCloseProposal | None = None
    # secrets learned for locks of either direction, and the block each was registered on chain
    secrets: Mapping[SecretHash, Secret] = msgspec.field(default_factory=dict)
    registered_secrets: Mapping[SecretHash, BlockNumber] = msgspec.field(default_factory=dict)
    # secrethashes whose on-chain registration we already asked for (ContractSendSecretRegister)
    register_requested: frozenset[SecretHash] = frozenset()
    # after settle: (sender, slot) of the locks still to resolve on chain with `unlock`
    unlocks_pending: frozenset[tuple[Address, int]] = frozenset()
    # our unlock transactions sent for some of `unlocks_pending`, until each is seen on chain
    unlock_attempts: tuple[UnlockAttempt, ...] = ()
    # secrethashes of partner locks we refused (LockRefused sent): we never claim them, and we
    # accept their removal (LockExpired) before expiry; each leaves when its lock leaves or at settle
    refused_locks: frozenset[SecretHash] = frozenset()

    @property
    def our_address(self) -> Address:
        return self.our.address

    @property
    def partner_address(self) -> Address:
        return self.partner.address

    @property
    def participant1(self) -> Address:
        """The participant with the lower numeric address (docs/protocol.md)."""
        return min(self.our.address, self.partner.address)

    @property
    def participant2(self) -> Address:
        return max(self.our.address, self.partner.address)

    @property
    def we_are_participant1(self) -> bool:
        return self.our.address < self.partner.address

    @property
    def is_open(self) -> bool:
        """Open for payments: opened on chain and no cooperative close signed or being signed."""
        return self.status is ChannelStatus.OPENED and self.cooperative_close is None


class NodeState(msgspec.Struct, frozen=True):
    """A node: our address, the EIP-712 domain, the chain head and our channels by id."""

    our_address: Address
    domain: Domain
    block_number: BlockNumber
    channels: Mapping[ChannelId, ChannelState] = msgspec.field(default_factory=dict)
    reveal_timeout: int = 10

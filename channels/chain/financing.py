"""The financing pool binding: `FinancingPoolClient`, its records and event decoding.

One typed method per function of `contracts_solidity/FinancingPool.sol` (a pool) and its
`FinancingPoolFactory` (one per network; `create_planned_pool` opens a pool with an agreed share of
the split, for an asset registered or not yet, which pays out only when `bind` proves the asset's
current split pays it), built like `AssetRegistryClient`: transactions are signed
locally with this client's account and sent through the `Connection` pipeline; a revert raises
`ChainError` naming the contract's custom error (`FinancingPoolClaimAboveEntitlement`, ...). Events
decode into frozen records; `pool_events` reads one pool's events back from the chain's logs, and
`asset_pools` lists an asset's pools from the factory's `FinancingPoolCreated`.

The arithmetic (what a claim or a sync will pay) is mirrored in `settlement.financing`; this module
never decides anything about it and never checks an amount in place of the contract.
Synchronous (the trio shell calls it via `trio.to_thread.run_sync`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from eth_account.signers.local import LocalAccount

from channels.chain.abi import ContractAbi, DecodedEvent
from channels.chain.artifacts import load_artifact
from channels.chain.connection import Connection, Receipt
from channels.chain.deploy import deploy_contract
from channels.core.types import Address, BlockNumber

POOL = "FinancingPool"
FACTORY = "FinancingPoolFactory"
ZERO_ADDRESS = Address(b"\0" * 20)
OPEN, FUNDED, FAILED, RAISED = 0, 1, 2, 3  # FinancingPool.Status


def _bytes32(value: bytes, what: str) -> bytes:
    if len(value) != 32:
        raise ValueError(f"{what} must be 32 bytes, got {len(value)}")
    return bytes(value)


# --------------------------------------------------------------------------- records


@dataclass(frozen=True, slots=True)
class PoolTerms:
    """A pool's immutable terms."""

    pool: Address
    asset_id: bytes
    supplier: Address  # zero: the asset's operator receives the funds
    target: int
    deadline: int  # the last block a contribution is accepted in
    return_ppm: int
    cap: int
    granule: int
    share_ppm: int = 0  # the agreed share of the split; 0: paid out at the target, no binding
    planned_operator: Address = ZERO_ADDRESS  # who must operate the asset and bind it (share > 0)


@dataclass(frozen=True, slots=True)
class PoolState:
    """`poolState()`."""

    status: int  # OPEN, FUNDED or FAILED
    raised: int
    repaid: int
    to_operator: int
    contributors: int
    pending: int  # arrived, not yet synced


@dataclass(frozen=True, slots=True)
class PoolPosition:
    """`positionOf(account)`."""

    contributed: int
    claimed: int  # claimed repayment (funded) or refunded (failed)
    entitled: int  # total repayment so far (funded) or refundable contribution (failed)
    cap: int


# --------------------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class FinancingEvent:
    """What every financing event carries: the asset, the emitting contract, where the log is."""

    asset_id: bytes
    contract: Address
    block_number: BlockNumber
    transaction_hash: bytes
    log_index: int


@dataclass(frozen=True, slots=True)
class FinancingPoolCreated(FinancingEvent):
    """The factory created `pool` (emitted by the factory: `contract` is the factory)."""

    pool: Address
    creator: Address
    supplier: Address
    target: int
    deadline: int
    return_ppm: int


@dataclass(frozen=True, slots=True)
class PlannedPoolCreated(FinancingEvent):
    """The pool just created pays out only once `operator` binds the asset with `share_ppm` for it."""

    pool: Address
    operator: Address
    share_ppm: int


@dataclass(frozen=True, slots=True)
class PoolBound(FinancingEvent):
    """`operator` bound the asset: its split `version` pays the pool `share_ppm`."""

    operator: Address
    version: int
    share_ppm: int


@dataclass(frozen=True, slots=True)
class PoolContributed(FinancingEvent):
    """`contributor` put in `amount`; the pool has raised `raised`."""

    contributor: Address
    amount: int
    raised: int


@dataclass(frozen=True, slots=True)
class PoolFunded(FinancingEvent):
    """The target was reached: `amount` went to `recipient`."""

    recipient: Address
    amount: int


@dataclass(frozen=True, slots=True)
class PoolRefunded(FinancingEvent):
    """`contributor` took back `amount` from the failed pool."""

    contributor: Address
    amount: int


@dataclass(frozen=True, slots=True)
class PoolSynced(FinancingEvent):
    """Arrived tokens accounted: `to_contributors` claimable, `to_operator` paid to `operator`."""

    to_contributors: int
    to_operator: int
    operator: Address
    repaid: int


@dataclass(frozen=True, slots=True)
class PoolRepaid(FinancingEvent):
    """The contributors' cap is reached."""

    cap: int


@dataclass(frozen=True, slots=True)
class PoolClaimed(FinancingEvent):
    """`contributor` claimed `amount` (its total: `claimed`)."""

    contributor: Address
    amount: int
    claimed: int


PoolEvent = (
    FinancingPoolCreated
    | PlannedPoolCreated
    | PoolBound
    | PoolContributed
    | PoolFunded
    | PoolRefunded
    | PoolSynced
    | PoolRepaid
    | PoolClaimed
)


def _where(e: DecodedEvent) -> dict[str, Any]:
    return {
        "asset_id": bytes(e.args["assetId"]),
        "contract": Address(e.address),
        "block_number": BlockNumber(e.block_number),
        "transaction_hash": e.transaction_hash,
        "log_index": e.log_index,
    }


def _created(e: DecodedEvent) -> FinancingPoolCreated:
    a = e.args
    return FinancingPoolCreated(
        **_where(e),
        pool=Address(a["pool"]),
        creator=Address(a["creator"]),
        supplier=Address(a["supplier"]),
        target=int(a["target"]),
        deadline=int(a["deadline"]),
        return_ppm=int(a["returnPpm"]),
    )


def _planned(e: DecodedEvent) -> PlannedPoolCreated:
    a = e.args
    return PlannedPoolCreated(
        **_where(e),
        pool=Address(a["pool"]),
        operator=Address(a["operator"]),
        share_ppm=int(a["sharePpm"]),
    )


def _bound(e: DecodedEvent) -> PoolBound:
    a = e.args
    return PoolBound(
        **_where(e),
        operator=Address(a["operator"]),
        version=int(a["version"]),
        share_ppm=int(a["sharePpm"]),
    )


def _contributed(e: DecodedEvent) -> PoolContributed:
    a = e.args
    return PoolContributed(
        **_where(e),
        contributor=Address(a["contributor"]),
        amount=int(a["amount"]),
        raised=int(a["raised"]),
    )


def _funded(e: DecodedEvent) -> PoolFunded:
    return PoolFunded(
        **_where(e), recipient=Address(e.args["recipient"]), amount=int(e.args["amount"])
    )


def _refunded(e: DecodedEvent) -> PoolRefunded:
    return PoolRefunded(
        **_where(e), contributor=Address(e.args["contributor"]), amount=int(e.args["amount"])
    )


def _synced(e: DecodedEvent) -> PoolSynced:
    a = e.args
    return PoolSynced(
        **_where(e),
        to_contributors=int(a["toContributors"]),
        to_operator=int(a["toOperator"]),
        operator=Address(a["operator"]),
        repaid=int(a["repaid"]),
    )


def _repaid(e: DecodedEvent) -> PoolRepaid:
    return PoolRepaid(**_where(e), cap=int(e.args["cap"]))


def _claimed(e: DecodedEvent) -> PoolClaimed:
    a = e.args
    return PoolClaimed(
        **_where(e),
        contributor=Address(a["contributor"]),
        amount=int(a["amount"]),
        claimed=int(a["claimed"]),
    )


DECODERS: Mapping[str, Callable[[DecodedEvent], PoolEvent]] = {
    "FinancingPoolCreated": _created,
    "PlannedPoolCreated": _planned,
    "PoolBound": _bound,
    "PoolContributed": _contributed,
    "PoolFunded": _funded,
    "PoolRefunded": _refunded,
    "PoolSynced": _synced,
    "PoolRepaid": _repaid,
    "PoolClaimed": _claimed,
}
"""Event name -> decoder, for every event of a pool and of the factory."""


def to_pool_event(event: DecodedEvent) -> PoolEvent | None:
    """The record of one decoded financing event; None for an event of another contract."""
    decoder = DECODERS.get(event.name)
    return None if decoder is None else decoder(event)


# --------------------------------------------------------------------------- the client


class FinancingPoolClient:
    """Acts as `account` on the network's pool factory (`factory`) and on any of its pools."""

    def __init__(self, connection: Connection, factory: Address, account: LocalAccount) -> None:
        self.connection = connection
        self.factory = factory
        self._account = account
        pool, factory_artifact = load_artifact(POOL), load_artifact(FACTORY)
        self.pool_abi: ContractAbi = pool.abi
        # A pool's constructor errors (and the registry's) bubble up through createPool.
        self.factory_abi: ContractAbi = ContractAbi(
            _merged(factory_artifact.abi, pool.abi, load_artifact("GovernedAssetRegistry").abi)
        )
        self.token_abi: ContractAbi = load_artifact("Token").abi

    @classmethod
    def deploy_factory(
        cls,
        connection: Connection,
        deployer: LocalAccount,
        token: Address,
        registry: Address,
        membership: Address | None,
    ) -> FinancingPoolClient:
        """Deploy a factory (membership None: pools open to anyone); a client on it as `deployer`."""
        receipt = deploy_contract(
            connection,
            deployer,
            load_artifact(FACTORY),
            token,
            registry,
            membership or ZERO_ADDRESS,
        )
        assert receipt.contract_address is not None
        return cls(connection, Address(receipt.contract_address), deployer)

    def for_account(self, account: LocalAccount) -> FinancingPoolClient:
        """A client on the same connection and factory acting as another account."""
        return FinancingPoolClient(self.connection, self.factory, account)

    @property
    def address(self) -> Address:
        """The account this client sends transactions as."""
        return Address(bytes.fromhex(self._account.address[2:]))

    # ------------------------------------------------------------------ plumbing

    def _send(self, to: Address, abi: ContractAbi, name: str, function: str, *args: Any) -> Receipt:
        data = abi.function(function).encode_call(args)
        return self.connection.transact(self._account, to, data, abi, f"{name}.{function}")

    def _pool(self, pool: Address, function: str, *args: Any) -> Receipt:
        return self._send(pool, self.pool_abi, POOL, function, *args)

    def _view(
        self, to: Address, abi: ContractAbi, name: str, function: str, *args: Any
    ) -> tuple[Any, ...]:
        spec = abi.function(function)
        raw = self.connection.call(to, spec.encode_call(args), abi, f"{name}.{function}")
        return spec.decode_result(raw)

    def _pool_view(self, pool: Address, function: str, *args: Any) -> tuple[Any, ...]:
        return self._view(pool, self.pool_abi, POOL, function, *args)

    # ------------------------------------------------------------------ transactions

    def create_pool(
        self,
        asset_id: bytes,
        target: int,
        deadline: int,
        return_ppm: int,
        supplier: Address | None = None,
    ) -> tuple[Address, Receipt]:
        """createPool(...) as the asset's operator: the new pool's address (make it a beneficiary)."""
        receipt = self._send(
            self.factory,
            self.factory_abi,
            FACTORY,
            "createPool",
            _bytes32(asset_id, "asset_id"),
            supplier or ZERO_ADDRESS,
            target,
            deadline,
            return_ppm,
        )
        return Address(receipt.event("FinancingPoolCreated").args["pool"]), receipt

    def create_planned_pool(
        self,
        asset_id: bytes,
        operator: Address,
        target: int,
        deadline: int,
        return_ppm: int,
        share_ppm: int,
        supplier: Address | None = None,
    ) -> tuple[Address, Receipt]:
        """createPlannedPool(...) as a financier: a pool for `asset_id` (registered or planned) that
        pays the supplier (or `operator`) only when `operator` binds the asset with `share_ppm`."""
        receipt = self._send(
            self.factory,
            self.factory_abi,
            FACTORY,
            "createPlannedPool",
            _bytes32(asset_id, "asset_id"),
            operator,
            supplier or ZERO_ADDRESS,
            target,
            deadline,
            return_ppm,
            share_ppm,
        )
        return Address(receipt.event("FinancingPoolCreated").args["pool"]), receipt

    def bind(
        self, pool: Address, asset_id: bytes, beneficiaries: Sequence[Address], ppm: Sequence[int]
    ) -> Receipt:
        """bind(assetId, split) as the asset's operator: the asset's current split, in full."""
        key = _bytes32(asset_id, "asset_id")
        # The registry's errors (an unknown asset) bubble up through the pool.
        return self._send(pool, self.factory_abi, POOL, "bind", key, list(beneficiaries), list(ppm))

    def approve(self, pool: Address, amount: int, token: Address) -> Receipt:
        """The token's approve(pool, amount): a pool takes contributions by transferFrom."""
        return self._send(token, self.token_abi, "Token", "approve", pool, amount)

    def contribute(self, pool: Address, amount: int) -> tuple[int, Receipt]:
        """contribute(amount): (units taken, receipt); approve the pool first."""
        receipt = self._pool(pool, "contribute", amount)
        return int(receipt.event("PoolContributed").args["amount"]), receipt

    def refund(self, pool: Address) -> tuple[int, Receipt]:
        """refund() from a failed pool: (units paid back, receipt)."""
        receipt = self._pool(pool, "refund")
        return int(receipt.event("PoolRefunded").args["amount"]), receipt

    def sync(self, pool: Address) -> tuple[int, int, Receipt]:
        """sync(): (to contributors, to operator, receipt); (0, 0) when nothing had arrived."""
        receipt = self._pool(pool, "sync")
        try:
            args = receipt.event("PoolSynced").args
        except LookupError:
            return 0, 0, receipt
        return int(args["toContributors"]), int(args["toOperator"]), receipt

    def claim(self, pool: Address, amount: int | None = None) -> tuple[int, Receipt | None]:
        """claim(amount); `None` claims everything claimable (nothing sent when that is 0)."""
        if amount is None:
            amount = self.claimable(pool, self.address)
            if amount == 0:
                return 0, None
        return amount, self._pool(pool, "claim", amount)

    # ------------------------------------------------------------------ views

    def terms(self, pool: Address) -> PoolTerms:
        """The pool's immutable terms (one call each)."""

        def one(name: str) -> Any:
            return self._pool_view(pool, name)[0]

        return PoolTerms(
            pool=pool,
            asset_id=bytes(one("assetId")),
            supplier=Address(one("supplier")),
            target=int(one("target")),
            deadline=int(one("deadline")),
            return_ppm=int(one("returnPpm")),
            cap=int(one("cap")),
            granule=int(one("granule")),
            share_ppm=int(one("sharePpm")),
            planned_operator=Address(one("plannedOperator")),
        )

    def state(self, pool: Address) -> PoolState:
        """poolState()."""
        return PoolState(*(int(v) for v in self._pool_view(pool, "poolState")))

    def position(self, pool: Address, account: Address) -> PoolPosition:
        """positionOf(account)."""
        return PoolPosition(*(int(v) for v in self._pool_view(pool, "positionOf", account)))

    def outstanding(self, pool: Address) -> int:
        """outstanding(): what the asset still owes the contributors (0 unless funded)."""
        return int(self._pool_view(pool, "outstanding")[0])

    def claimable(self, pool: Address, account: Address) -> int:
        """claimable(account)."""
        return int(self._pool_view(pool, "claimable", account)[0])

    def asset_pools(self, asset_id: bytes) -> tuple[Address, ...]:
        """The asset's pools in creation order (from the factory's storage)."""
        key = _bytes32(asset_id, "asset_id")
        count = int(self._view(self.factory, self.factory_abi, FACTORY, "poolCount", key)[0])
        return tuple(
            Address(self._view(self.factory, self.factory_abi, FACTORY, "poolOf", key, i)[0])
            for i in range(count)
        )

    def is_pool(self, pool: Address) -> bool:
        """Whether this network's factory created `pool` (trust no other pool's events)."""
        return bool(self._view(self.factory, self.factory_abi, FACTORY, "isPool", pool)[0])

    # ------------------------------------------------------------------ events

    def pool_events(
        self, pool: Address, from_block: int = 0, to_block: int | None = None
    ) -> tuple[PoolEvent, ...]:
        """The pool's events in chain order (what `cise asset history` shows for it)."""
        end = self.connection.block_number() if to_block is None else to_block
        decoded = self.connection.get_logs(pool, from_block, end, self.pool_abi)
        found = (to_pool_event(e) for e in decoded)
        return tuple(e for e in found if e is not None)

    def created_events(
        self, from_block: int = 0, to_block: int | None = None
    ) -> tuple[FinancingPoolCreated, ...]:
        """Every `FinancingPoolCreated` of the factory."""
        end = self.connection.block_number() if to_block is None else to_block
        decoded = self.connection.get_logs(self.factory, from_block, end, self.factory_abi)
        return tuple(e for e in map(to_pool_event, decoded) if isinstance(e, FinancingPoolCreated))


def _merged(*abis: ContractAbi) -> list[Mapping[str, Any]]:
    seen: dict[tuple[str, str], Mapping[str, Any]] = {}
    for abi in abis:
        for entry in abi.entries:
            seen.setdefault((str(entry["type"]), str(entry.get("name", ""))), entry)
    return list(seen.values())


__all__ = [
    "DECODERS",
    "FAILED",
    "FUNDED",
    "OPEN",
    "RAISED",
    "FinancingEvent",
    "FinancingPoolClient",
    "FinancingPoolCreated",
    "PlannedPoolCreated",
    "PoolBound",
    "PoolClaimed",
    "PoolContributed",
    "PoolEvent",
    "PoolFunded",
    "PoolPosition",
    "PoolRefunded",
    "PoolRepaid",
    "PoolState",
    "PoolSynced",
    "PoolTerms",
    "to_pool_event",
]

"""Support for the financing pool contract tests: the governed set, an asset, two factories, reverts.

On the session chain of conftest.py (after its snapshot, so it takes its own): `deploy_governed`
(membership with actors 0..3 as founders, a `GovernedAssetRegistry`), the asset `ASSET` registered by
actor 0, a factory whose pools admit members only and one whose pools are open to anyone.
`Financing.assert_reverts` checks the exact custom error and that a mined attempt changes no storage
(of the token, the registry, the factories, the pools given) and no token balance.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from cm_support import Actor, Chain, error_data, load_artifact, revert_data
from eth_tester.exceptions import TransactionFailed
from eth_utils import keccak
from governance_support import Governed, contract_at, deploy, deploy_governed

ASSET = keccak(b"asset financed washing machine")
ZERO_ADDRESS = "0x" + "00" * 20
RETURN_PPM = 1_080_000  # 1.08x: granule 25
TARGET = 1_000_000_000  # EUR 1,000


@dataclass
class Financing:
    chain: Chain
    gov: Governed
    member_factory: Any  # pools admit active members only
    open_factory: Any  # pools admit anyone

    @property
    def operator(self) -> Actor:
        return self.gov.founders[0]

    def tx(self, fn: Any, sender: Actor | str) -> Any:
        return self.chain.tx(fn, sender)

    def pool_at(self, address: str) -> Any:
        return contract_at(self.chain, "FinancingPool", address)

    def create(
        self,
        factory: Any | None = None,
        target: int = TARGET,
        deadline_in: int = 50,
        return_ppm: int = RETURN_PPM,
        supplier: str = ZERO_ADDRESS,
        sender: Actor | None = None,
    ) -> tuple[Any, Any]:
        """(pool, receipt): a pool for ASSET created by the operator."""
        factory = factory or self.member_factory
        deadline = self.chain.block + deadline_in
        receipt = self.tx(
            factory.functions.createPool(ASSET, supplier, target, deadline, return_ppm),
            sender or self.operator,
        )
        created = self.chain.events(receipt, "FinancingPoolCreated", factory)[0]
        return self.pool_at(created["pool"]), receipt

    def approve(self, pool: Any, actor: Actor, amount: int = 10**12) -> None:
        self.tx(self.chain.token.functions.approve(pool.address, amount), actor)

    def contribute(self, pool: Any, actor: Actor, amount: int) -> Any:
        self.approve(pool, actor)
        return self.tx(pool.functions.contribute(amount), actor)

    def pay(self, pool: Any, amount: int, payer: Actor | None = None) -> Any:
        """A share of the asset's fees arriving: a plain token transfer to the pool."""
        return self.tx(
            self.chain.token.functions.transfer(pool.address, amount), payer or self.chain.actors[8]
        )

    def state_of(self, pool: Any) -> dict[str, Any]:
        names = ["status", "raised", "repaid", "toOperator", "contributors", "pending"]
        return dict(zip(names, pool.functions.poolState().call(), strict=True))

    def storage(self, *contracts: Any) -> dict[str, bytes]:
        every = (self.chain.token, self.gov.registry, self.member_factory, self.open_factory)
        return {c.address: self.chain.storage_root(c.address) for c in (*every, *contracts)}

    def assert_reverts(
        self, fn: Any, sender: Actor | str, error: str, *args: Any, pools: tuple[Any, ...] = ()
    ) -> None:
        """`fn` from `sender` reverts with exactly `error(args)`; a mined attempt changes nothing."""
        address = sender.address if isinstance(sender, Actor) else sender
        abi = [
            *load_artifact("FinancingPool")["abi"],
            *load_artifact("FinancingPoolFactory")["abi"],
            *load_artifact("GovernedAssetRegistry")["abi"],
        ]
        abi = list({(e["type"], e.get("name")): e for e in abi}.values())
        before = self.storage(*pools)
        with pytest.raises(TransactionFailed) as info:
            fn.call({"from": address}, block_identifier="pending")
        got, expected = revert_data(info.value), error_data(abi, error, *args)
        assert got == expected, f"reverted with {got.hex()}, expected {error}{args}"
        tx_hash = fn.transact({"from": address, "gas": 3_000_000})
        assert self.chain.w3.eth.wait_for_transaction_receipt(tx_hash).status == 0
        assert self.storage(*pools) == before


def deploy_financing(chain: Chain) -> Financing:
    gov = deploy_governed(chain)
    operator = gov.founders[0]
    beneficiaries = sorted([operator.address, gov.founders[1].address], key=lambda a: int(a, 16))
    chain.tx(
        gov.registry.functions.registerAsset(
            ASSET, operator.address, keccak(b"meta"), "urn:meta", beneficiaries, [500_000, 500_000]
        ),
        operator,
    )
    token, registry = chain.token.address, gov.registry.address
    member_factory = deploy(chain, "FinancingPoolFactory", token, registry, gov.membership.address)
    open_factory = deploy(chain, "FinancingPoolFactory", token, registry, ZERO_ADDRESS)
    return Financing(chain, gov, member_factory, open_factory)

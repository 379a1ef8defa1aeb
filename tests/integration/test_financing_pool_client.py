"""`FinancingPoolClient` on a governed embedded network: a pool for a registered asset is funded by
members, paid out to the operator, repaid through plain transfers, synced and claimed pro rata up
to its cap; then the operator gets the rest. Every token is accounted for."""

from __future__ import annotations

from eth_account import Account

from channels.chain.assets import AssetRegistryClient
from channels.chain.client import Web3ChainClient
from channels.chain.connection import Connection
from channels.chain.deploy import deploy
from channels.chain.errors import ChainError
from channels.chain.financing import FinancingPoolClient
from channels.chain.nodes import dev_private_keys
from channels.codec.keccak import keccak
from channels.core.types import Address
from cise.ledger_cmd import ChainView, chain_facts

ASSET = keccak(b"washer for the pool test")
EURO = 1_000_000


def test_a_pool_is_funded_repaid_claimed_and_then_pays_the_operator() -> None:
    connection = Connection.embedded()
    keys = dev_private_keys()
    operator, alice, bob = (Account.from_key(k) for k in keys[:3])
    deployment = deploy(connection, operator, settle_timeout=20)
    assert deployment.asset_registry is not None and deployment.membership is not None
    address = {a: Address(bytes.fromhex(a.address[2:])) for a in (operator, alice, bob)}
    registry = AssetRegistryClient(connection, deployment, operator)
    registry.register_asset(ASSET, address[operator], keccak(b"m"), "", [address[alice]], [10**6])
    assert deployment.financing_factory is not None  # deploy() makes the network's factory
    factory = FinancingPoolClient(connection, deployment.financing_factory, operator)
    deadline = connection.block_number() + 100
    pool, _ = factory.create_pool(ASSET, 100 * EURO, deadline, 1_080_000)
    assert factory.asset_pools(ASSET) == (pool,) and factory.is_pool(pool)
    token = Web3ChainClient(connection, deployment, operator)
    for who, amount in ((alice, 60 * EURO), (bob, 40 * EURO)):
        token.mint(address[who], amount)
        member = factory.for_account(who)
        member.approve(pool, amount, deployment.token)
        taken, _ = member.contribute(pool, amount)
        assert taken == amount
    operator_before = token.token_balance(address[operator])
    assert factory.state(pool).raised == 100 * EURO
    assert operator_before == 100 * EURO  # the target went to the operator on funding
    # repayments: the asset's shares arrive as transfers; the cap is 108
    token.mint(address[operator], 200 * EURO)
    token.transfer_token(pool, 50 * EURO)
    to_contributors, to_operator = factory.sync(pool)[:2]
    assert (to_contributors, to_operator) == (50 * EURO, 0)
    assert factory.claimable(pool, address[alice]) == 30 * EURO
    claimed, _ = factory.for_account(alice).claim(pool)
    assert claimed == 30 * EURO
    try:
        factory.for_account(alice).claim(pool, 1)
        raise AssertionError("a claim above entitlement went through")
    except ChainError as exc:
        assert "FinancingPoolClaimAboveEntitlement" in str(exc)
    token.transfer_token(pool, 100 * EURO)  # 58 more reach the cap, 42 go to the operator
    to_contributors, to_operator = factory.sync(pool)[:2]
    assert (to_contributors, to_operator) == (58 * EURO, 42 * EURO)
    factory.for_account(alice).claim(pool)
    factory.for_account(bob).claim(pool)
    assert factory.position(pool, address[alice]).claimed == 60 * EURO * 108 // 100
    assert factory.position(pool, address[bob]).claimed == 40 * EURO * 108 // 100
    assert token.token_balance(pool) == 0  # every token accounted for, no dust at the cap
    # the asset's history shows the pool next to the registry's facts (issue 9)
    view = ChainView.of(connection, deployment)
    facts = [fact.what for fact in chain_facts(view, registry.asset_history(ASSET))]
    assert any("opened: target €100.000000, repaid up to 1.08x" in f for f in facts)
    assert any("funded: €100.000000 paid to" in f for f in facts)
    assert any("repaid in full (€108.000000)" in f for f in facts)

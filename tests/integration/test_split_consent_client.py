"""Split changes with consent through `AssetRegistryClient` and real proposals (issue 19).

On a network deployed by `deploy` (embedded chain): the governor counts `changeSplitByGovernance` as
ordinary and `changeSplitByConstitution` as constitutional; the registry knows the network's pool
factory; `split_change_plan` names who must sign; a lowering without the consent is refused and one
with it lands; `put_pool_in_split` takes the pool's share from the operator alone; an ordinary
proposal lowers a beneficiary without its consent but not a financing pool not yet repaid, which a
constitutional proposal does.
"""

from __future__ import annotations

import pytest
from eth_account import Account

from channels.chain.assets import AssetRegistryClient, LoweredBy, LoweredShare, canonical_split
from channels.chain.errors import ChainError
from channels.chain.financing import FinancingPoolClient
from channels.chain.governance import GovernanceClient, ProposalState, pass_proposal
from channels.codec.keccak import keccak
from tests.integration.chain_env import ChainEnv

ASSET = keccak(b"asset consent client washer")


def test_consents_pools_and_proposals(embedded_chain: ChainEnv) -> None:
    env = embedded_chain
    keys = env.connection.dev_keys
    accounts = [Account.from_key(k) for k in keys]
    operator = AssetRegistryClient(env.connection, env.deployment, accounts[1])
    servicer = operator.for_account(accounts[2])
    deployment = env.deployment
    assert deployment.financing_factory is not None and deployment.asset_registry is not None

    # The deployment: the registry knows the factory; the governor classes the two paths.
    assert operator.pool_factory() == deployment.financing_factory
    governance = GovernanceClient(env.connection, deployment, accounts[0])
    operator.register_asset(
        ASSET, operator.address, keccak(b"m"), "", *canonical_split(
            {operator.address: 600_000, servicer.address: 400_000}
        )
    )  # fmt: skip
    unchanged = canonical_split(operator.current_split(ASSET).parts())
    ordinary_call = operator.split_change_call(ASSET, *unchanged)
    constitutional_call = operator.split_change_call(ASSET, *unchanged, constitutional=True)
    assert governance.classify([ordinary_call]) is False
    assert governance.classify([constitutional_call]) is True

    # Lowering the servicer: the plan names it; refused without its consent, applied with it.
    lowered = canonical_split({operator.address: 700_000, servicer.address: 300_000})
    assert operator.split_change_plan(ASSET, *lowered) == (
        LoweredShare(servicer.address, 400_000, 300_000, LoweredBy.CONSENT),
    )
    with pytest.raises(ChainError) as refused:
        operator.change_split(ASSET, *lowered)
    assert (refused.value.name, refused.value.error_args) == (
        "AssetRegistrySplitConsentMissing",
        (servicer.address,),
    )
    assert operator.asset_of(ASSET).split_version == 1
    consent = servicer.sign_split_consent(ASSET, *lowered, env.connection.block_number() + 10)
    version, _ = operator.change_split(ASSET, *lowered, [consent])
    assert version == 2
    with pytest.raises(ChainError) as again:  # the same change again lowers nobody
        operator.change_split(ASSET, *lowered, [consent])
    assert again.value.name == "AssetRegistrySplitConsentUnneeded"

    # A pool, put in the split at the operator's expense: the operator alone.
    factory = FinancingPoolClient(env.connection, deployment.financing_factory, accounts[1])
    pool, _ = factory.create_pool(ASSET, 1_000_000, env.connection.block_number() + 500, 1_100_000)
    assert operator.pool_standing(pool) is LoweredBy.UNREPAID_POOL
    assert operator.pool_standing(servicer.address) is None
    with pytest.raises(ValueError, match="fewer than"):
        operator.pool_split(ASSET, pool, 300_001, servicer.address)
    version, _ = operator.put_pool_in_split(ASSET, pool, 100_000)
    assert version == 3
    assert operator.current_split(ASSET).parts() == {
        operator.address: 600_000,
        servicer.address: 300_000,
        pool: 100_000,
    }

    # Removing the unrepaid pool: the operator may not, nor an ordinary proposal; a
    # constitutional one may.
    without_pool = canonical_split({operator.address: 700_000, servicer.address: 300_000})
    assert operator.split_change_plan(ASSET, *without_pool) == (
        LoweredShare(pool, 100_000, 0, LoweredBy.UNREPAID_POOL),
    )
    with pytest.raises(ChainError) as refused:
        operator.change_split(ASSET, *without_pool)
    assert refused.value.name == "AssetRegistrySplitLowersUnrepaidPool"
    voters = accounts
    with pytest.raises(ChainError, match="AssetRegistrySplitLowersUnrepaidPool"):
        pass_proposal(env.connection, deployment, voters,
                      [operator.split_change_call(ASSET, *without_pool)], "Remove the pool")  # fmt: skip
    assert operator.asset_of(ASSET).split_version == 3
    status = pass_proposal(
        env.connection,
        deployment,
        voters,
        [operator.split_change_call(ASSET, *without_pool, constitutional=True)],
        "Remove the pool (constitutional)",
    )
    assert status.constitutional and status.state is ProposalState.EXECUTED
    assert operator.current_split(ASSET).parts() == dict(zip(*without_pool, strict=True))

    # An ordinary proposal lowers the servicer without its signature (it does not answer).
    silent = canonical_split({operator.address: 800_000, servicer.address: 200_000})
    status = pass_proposal(env.connection, deployment, voters,
                           [operator.split_change_call(ASSET, *silent)], "Lower a silent servicer")  # fmt: skip
    assert not status.constitutional and status.state is ProposalState.EXECUTED
    assert operator.asset_of(ASSET).split_version == 5

"""Deploy the CISE contracts (Token, ChannelManager, AssetRegistry) from the packaged artifacts.

For dev and test chains, and for bootstrapping a new network. It must never mint on a network
whose token is issued elsewhere: `mint` needs the deployer's MINTER_ROLE and fails otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

from eth_account.signers.local import LocalAccount

from channels.chain.artifacts import Artifact, load_artifact
from channels.chain.connection import Connection, Receipt
from channels.core.types import Address, BlockNumber

DEFAULT_SETTLE_TIMEOUT = 20  # blocks; contract range [5, 1_000_000]
TOKEN_NAME = "CISE Euro"
TOKEN_SYMBOL = "cEUR"


@dataclass(frozen=True, slots=True)
class Deployment:
    """Where the contracts of one network live."""

    chain_id: int
    token: Address
    manager: Address
    block_number: BlockNumber  # the manager's deployment block: where log following starts
    settle_timeout: int
    # None for a network deployed before the registry existed (and for its stored network files).
    # Deployed after the manager, so `block_number` is also a safe start for its logs.
    asset_registry: Address | None = None


def deploy_contract(
    connection: Connection, deployer: LocalAccount, artifact: Artifact, *args: object
) -> Receipt:
    """Send one contract creation; the receipt's `contract_address` is the new contract."""
    data = artifact.bytecode + artifact.abi.encode_constructor(args)
    receipt = connection.transact(
        deployer, None, data, artifact.abi, f"{artifact.name}.constructor"
    )
    if receipt.contract_address is None:
        raise RuntimeError(f"{artifact.name} creation mined without a contract address")
    return receipt


def deploy(
    connection: Connection,
    deployer: LocalAccount,
    settle_timeout: int = DEFAULT_SETTLE_TIMEOUT,
    token: Address | None = None,
) -> Deployment:
    """Deploy a Token (unless `token` is given; the deployer becomes its minter), manager, registry.

    The asset registry comes last, so the token's and the manager's addresses do not depend on it.
    """
    if token is None:
        token_receipt = deploy_contract(
            connection, deployer, load_artifact("Token"), TOKEN_NAME, TOKEN_SYMBOL, deployer.address
        )
        assert token_receipt.contract_address is not None
        token = Address(token_receipt.contract_address)
    manager_receipt = deploy_contract(
        connection, deployer, load_artifact("ChannelManager"), token, settle_timeout
    )
    assert manager_receipt.contract_address is not None
    registry_receipt = deploy_contract(connection, deployer, load_artifact("AssetRegistry"))
    assert registry_receipt.contract_address is not None
    return Deployment(
        connection.chain_id,
        token,
        Address(manager_receipt.contract_address),
        manager_receipt.block_number,
        settle_timeout,
        Address(registry_receipt.contract_address),
    )

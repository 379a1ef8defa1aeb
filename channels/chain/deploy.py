"""Deploy the CISE contracts of one network from the packaged artifacts.

A network is: the Token (unless one is given), and the governed set (DESIGN §4) — the channel
manager (`GovernedChannelManager`), its `CiseTimelock`, the `NetworkParameters`, the `Membership`
token with the founding members admitted, the `CiseGovernor`, and the asset registry
(`GovernedAssetRegistry`), the financing pools' factory and the community `Treasury` (owned by the
timelock). Each contract learns the others' addresses in its constructor: the manager
and the timelock name contracts deployed after them, whose addresses are computed from the
deployer's nonce (and checked once deployed), so no set-up transaction and no set-up power remains.
The code of conduct a network starts with is the repository's `docs/code-of-conduct.md`, recorded by
the keccak256 of its bytes (`channels.chain.documents`).

For dev and test chains, and for bootstrapping a new network. `deploy` without `founding_members`
admits the public dev accounts: a production network must name its founders. It must never mint on
a network whose token is issued elsewhere: `mint` needs the deployer's MINTER_ROLE and fails
otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from eth_account import Account
from eth_account.signers.local import LocalAccount

from channels.chain.artifacts import Artifact, load_artifact
from channels.chain.connection import Connection, Receipt
from channels.chain.documents import CODE_OF_CONDUCT_HASH, CODE_OF_CONDUCT_URI
from channels.chain.nodes import dev_private_keys
from channels.codec.keccak import keccak
from channels.core.types import Address, BlockNumber

DEFAULT_SETTLE_TIMEOUT = 20  # blocks; contract range [5, 1_000_000]
TOKEN_NAME = "CISE Euro"
TOKEN_SYMBOL = "cEUR"
ALL_ROLES = 63  # Membership.ALL_ROLES: user, asset operator, servicer, hub, watchtower, financier

DEV_ADMISSION_RULES = (
    "CISE admission rules (development network): an applicant names its roles and accepts the "
    "code of conduct on chain; the members admit or reject it by an ordinary proposal.\n"
)


@dataclass(frozen=True, slots=True)
class Document:
    """A governed document: the keccak256 of its text, and where the text is."""

    hash: bytes
    uri: str

    @classmethod
    def of_text(cls, text: str, uri: str) -> Document:
        """The document whose text is `text`."""
        return cls(keccak(text.encode()), uri)


@dataclass(frozen=True, slots=True)
class GovernanceSettings:
    """The founding values of the governed parameters (all changeable later by proposals).

    The defaults suit dev chains: short votes and delays, so that a demo or a test reaches execution
    with a few mined blocks and a little time travel.
    """

    voting_delay: int = 1  # blocks between proposal and vote
    voting_period: int = 30  # blocks the vote lasts
    quorum_percent: int = 20  # ordinary quorum, % of the active members
    constitutional_quorum_percent: int = 50
    timelock_delay: int = 60  # seconds between queue and execution (ordinary)
    constitutional_delay: int = 300  # seconds (constitutional)
    hub_fee_cap: int = 10_000  # token units per routed payment (€0.01)
    settlement_period: int = 86_400  # seconds
    code_of_conduct: Document = field(
        default_factory=lambda: Document(CODE_OF_CONDUCT_HASH, CODE_OF_CONDUCT_URI)
    )  # docs/code-of-conduct.md (channels.chain.documents)
    admission_rules: Document = field(
        default_factory=lambda: Document.of_text(
            DEV_ADMISSION_RULES, "urn:cise:dev:admission-rules:v1"
        )
    )


@dataclass(frozen=True, slots=True)
class Deployment:
    """Where the contracts of one network live."""

    chain_id: int
    token: Address
    manager: Address
    block_number: BlockNumber  # the manager's deployment block: where log following starts
    settle_timeout: int  # at deployment; governance may change it (the manager's SettleTimeoutSet)
    # None for a network deployed before the registry existed (and for its stored network files).
    # Deployed after the manager, so `block_number` is also a safe start for its logs.
    asset_registry: Address | None = None
    # The governed set, deployed right after the manager; None for a network deployed before
    # governance existed (whose manager admits anyone).
    membership: Address | None = None
    governor: Address | None = None
    timelock: Address | None = None
    parameters: Address | None = None
    # the financing pools' factory (issue 5); None for a network deployed before it existed
    financing_factory: Address | None = None
    # the community treasury (issue 19.5), owned by the timelock; None for a network deployed
    # before it existed
    treasury: Address | None = None

    @property
    def governed(self) -> bool:
        """Whether this network has membership and governance on chain."""
        return None not in (self.membership, self.governor, self.timelock, self.parameters)


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


def create_address(sender: bytes, nonce: int) -> Address:
    """The address of the contract `sender` creates with `nonce` (CREATE: keccak(rlp([sender, nonce])))."""
    if len(sender) != 20 or nonce < 0:
        raise ValueError("sender must be 20 bytes and nonce >= 0")
    if nonce == 0:
        encoded_nonce = b"\x80"
    elif nonce < 0x80:
        encoded_nonce = bytes([nonce])
    else:
        raw = nonce.to_bytes((nonce.bit_length() + 7) // 8, "big")
        encoded_nonce = bytes([0x80 + len(raw)]) + raw
    payload = b"\x94" + bytes(sender) + encoded_nonce
    return Address(keccak(bytes([0xC0 + len(payload)]) + payload)[12:])


def dev_founders(connection: Connection, deployer: LocalAccount) -> dict[Address, int]:
    """The founding members of a dev network: the deployer and the dev accounts, every role."""
    keys = connection.dev_keys or dev_private_keys()
    founders = {_address(deployer): ALL_ROLES}
    for key in keys:
        founders.setdefault(_address(Account.from_key(key)), ALL_ROLES)
    return founders


def deploy(
    connection: Connection,
    deployer: LocalAccount,
    settle_timeout: int = DEFAULT_SETTLE_TIMEOUT,
    token: Address | None = None,
    founding_members: Mapping[Address, int] | None = None,
    settings: GovernanceSettings | None = None,
    token_name: str = TOKEN_NAME,
) -> Deployment:
    """Deploy a network: a Token called `token_name` (unless `token` is given; the deployer becomes
    its minter) and the governed set, with `founding_members` (address -> roles; default:
    `dev_founders`) admitted.

    Order (one creation each, nothing else): manager, timelock, parameters, membership, governor,
    registry, pool factory (the registry is told the factory's address), treasury. The manager keeps the
    nonce it had before governance existed, so its address (the
    EIP-712 verifying contract) does not change.
    """
    settings = settings or GovernanceSettings()
    founders = dict(
        dev_founders(connection, deployer) if founding_members is None else founding_members
    )
    if token is None:
        token_receipt = deploy_contract(
            connection, deployer, load_artifact("Token"), token_name, TOKEN_SYMBOL, deployer.address
        )
        assert token_receipt.contract_address is not None
        token = Address(token_receipt.contract_address)
    sender = _address(deployer)
    nonce = connection.w3.eth.get_transaction_count(deployer.address)
    manager, timelock, parameters, membership, governor, registry, factory, treasury = (
        create_address(sender, nonce + i) for i in range(8)
    )
    manager_receipt = _deploy_at(
        connection,
        deployer,
        manager,
        "GovernedChannelManager",
        token,
        settle_timeout,
        membership,
        timelock,
    )
    _deploy_at(
        connection,
        deployer,
        timelock,
        "CiseTimelock",
        settings.timelock_delay,
        [governor],
        [governor],
        _ZERO,
    )
    _deploy_at(
        connection,
        deployer,
        parameters,
        "NetworkParameters",
        timelock,
        settings.hub_fee_cap,
        settings.settlement_period,
        settings.code_of_conduct.hash,
        settings.code_of_conduct.uri,
        settings.admission_rules.hash,
        settings.admission_rules.uri,
    )
    _deploy_at(
        connection,
        deployer,
        membership,
        "Membership",
        timelock,
        manager,
        parameters,
        list(founders),
        list(founders.values()),
    )
    targets, selectors = _ordinary_calls(manager, parameters, membership, registry, treasury)
    _deploy_at(
        connection,
        deployer,
        governor,
        "CiseGovernor",
        membership,
        timelock,
        settings.voting_delay,
        settings.voting_period,
        settings.quorum_percent,
        settings.constitutional_quorum_percent,
        settings.constitutional_delay,
        targets,
        selectors,
    )
    _deploy_at(
        connection, deployer, registry, "GovernedAssetRegistry", membership, timelock, factory
    )
    _deploy_at(connection, deployer, factory, "FinancingPoolFactory", token, registry, membership)
    _deploy_at(connection, deployer, treasury, "Treasury", token, timelock)
    return Deployment(
        connection.chain_id,
        token,
        manager,
        manager_receipt.block_number,
        settle_timeout,
        registry,
        membership,
        governor,
        timelock,
        parameters,
        factory,
        treasury,
    )


ORDINARY_CALLS: tuple[tuple[str, str], ...] = (
    ("GovernedChannelManager", "setSettleTimeout"),
    ("NetworkParameters", "setHubFeeCap"),
    ("NetworkParameters", "setSettlementPeriod"),
    ("NetworkParameters", "setTreasuryFeePpm"),
    ("Treasury", "payOut"),
    ("Membership", "admit"),
    ("Membership", "rejectApplication"),
    ("Membership", "suspend"),
    ("Membership", "reinstate"),
    ("Membership", "setRoles"),
    ("GovernedAssetRegistry", "changeSplitByGovernance"),
)
"""The calls an ordinary proposal may make: everything else (expulsions, the code of conduct, the
admission rules, the rules of governance) is constitutional."""

_ZERO = Address(b"\x00" * 20)


def _ordinary_calls(
    manager: Address,
    parameters: Address,
    membership: Address,
    registry: Address,
    treasury: Address,
) -> tuple[list[Address], list[bytes]]:
    where = {
        "Treasury": treasury,
        "GovernedChannelManager": manager,
        "NetworkParameters": parameters,
        "Membership": membership,
        "GovernedAssetRegistry": registry,
    }
    targets = [where[contract] for contract, _ in ORDINARY_CALLS]
    selectors = [
        load_artifact(contract).abi.function(function).selector
        for contract, function in ORDINARY_CALLS
    ]
    return targets, selectors


def _deploy_at(
    connection: Connection,
    deployer: LocalAccount,
    expected: Address,
    name: str,
    *args: object,
) -> Receipt:
    artifact = load_artifact(name)
    data = artifact.bytecode + artifact.abi.encode_constructor(args)
    receipt = connection.transact(
        deployer, None, data, artifact.abi, f"{name}.constructor", gas=embedded_gas(connection)
    )
    if receipt.contract_address != expected:
        raise RuntimeError(
            f"{name} was deployed at 0x{(receipt.contract_address or b'').hex()}, not at the "
            f"precomputed 0x{expected.hex()}: the deployer's nonce moved during the deployment"
        )
    return receipt


def embedded_gas(connection: Connection) -> int | None:
    """The gas limit to send a heavy transaction with: the block's on the embedded chain, None
    (estimate) elsewhere.

    The embedded chain estimates gas by a binary search of executions (0.3 s for the membership
    with ten founders, 5x its execution; 0.8 s for a proposal admitting 13 members). A transaction
    sent without the estimate and reverting is still replayed and named by the connection.
    """
    if connection.kind != "embedded":
        return None
    return int(connection.w3.eth.get_block("latest")["gasLimit"])


def _address(account: LocalAccount) -> Address:
    return Address(bytes.fromhex(account.address[2:]))

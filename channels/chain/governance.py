"""Membership and governance bindings: `GovernanceClient`, its records, and readable proposals.

One typed method per function the members use of `Membership.sol`, `CiseGovernor.sol`
(OpenZeppelin's Governor with ordinary and constitutional proposals), `NetworkParameters.sol`,
`CiseTimelock.sol` and `GovernedChannelManager.setSettleTimeout`, built like `Web3ChainClient`:
each transaction is signed locally with this client's account and sent through the `Connection`
pipeline, and a revert raises `ChainError` naming the custom error (`MembershipUnexpectedStatus`,
`GovernorUnexpectedProposalState`, `CiseGovernorProposalNotReady`, ...; a target's error bubbling
up through the timelock is decoded too). A proposal is a tuple of `Call`s plus a description;
`ProposalCalls` builds the calls of the governed parameters, and `describe_call` reads any call back
as a sentence ("set the challenge period to 40 blocks") from the ABIs alone. Members and proposals
are listed from the chain's logs, their state read from the contracts.

`advance_time` (eth-tester's time travel, anvil's and ganache's `evm_increaseTime`) and
`pass_proposal` / `admit_by_vote` take a proposal through its vote and timelock on a dev chain, for
tests and demos.

It must never decide for the members (a proposal's class and state are the governor's to say),
never hold more than one account's key, and never move time on a chain that is not a dev chain.
"""

from __future__ import annotations

import contextlib
import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, cast

from eth_abi.abi import decode
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_typing import ChecksumAddress, HexAddress, HexStr
from web3 import EthereumTesterProvider
from web3.types import FilterParams

from channels.chain.abi import ContractAbi, DecodedEvent, normalise
from channels.chain.artifacts import load_artifact
from channels.chain.connection import Connection, Receipt
from channels.chain.deploy import Deployment, Document, embedded_gas
from channels.chain.events import DEFAULT_MAX_RANGE
from channels.codec.keccak import keccak
from channels.core.types import Address, BlockNumber, to_checksum

# --------------------------------------------------------------------------- mirrored constants


class Role(enum.IntFlag):
    """Membership roles (`Membership.ROLE_*`)."""

    USER = 1
    ASSET_OPERATOR = 2
    SERVICER = 4
    HUB = 8
    WATCHTOWER = 16
    FINANCIER = 32


ALL_ROLES = Role(63)  # Membership.ALL_ROLES
ROLE_NAMES: Mapping[str, Role] = {
    "user": Role.USER,
    "asset-operator": Role.ASSET_OPERATOR,
    "servicer": Role.SERVICER,
    "hub": Role.HUB,
    "watchtower": Role.WATCHTOWER,
    "financier": Role.FINANCIER,
}


def parse_roles(text: str) -> Role:
    """'hub,user' (or 'all') -> the role bits; ValueError naming an unknown role."""
    if text.strip() == "all":
        return ALL_ROLES
    roles = Role(0)
    for name in (part.strip() for part in text.split(",")):
        if name not in ROLE_NAMES:
            raise ValueError(f"unknown role {name!r} (roles: {', '.join(ROLE_NAMES)} or all)")
        roles |= ROLE_NAMES[name]
    if not roles:
        raise ValueError("no role given")
    return roles


def roles_text(roles: int) -> str:
    """Role bits as names: 'user, hub'."""
    names = [name for name, bit in ROLE_NAMES.items() if roles & bit]
    return ", ".join(names) if names else "none"


class MemberStatus(enum.IntEnum):
    """`Membership.Status`."""

    NONE = 0
    APPLIED = 1
    ACTIVE = 2
    SUSPENDED = 3
    EXPELLED = 4


class ProposalState(enum.IntEnum):
    """OpenZeppelin's `IGovernor.ProposalState`."""

    PENDING = 0
    ACTIVE = 1
    CANCELED = 2
    DEFEATED = 3
    SUCCEEDED = 4
    QUEUED = 5
    EXPIRED = 6
    EXECUTED = 7


class Support(enum.IntEnum):
    """A vote (`GovernorCountingSimple`)."""

    AGAINST = 0
    FOR = 1
    ABSTAIN = 2


# --------------------------------------------------------------------------- records


@dataclass(frozen=True, slots=True)
class MemberInfo:
    """`memberOf(account)`: where an account stands."""

    address: Address
    status: MemberStatus
    roles: Role
    token_id: int  # 0 unless admitted (kept after an expulsion, for the record)
    since: int  # timestamp of the last status change

    @property
    def active(self) -> bool:
        """Admitted, neither suspended nor expelled: may open channels, register assets, vote."""
        return self.status is MemberStatus.ACTIVE


@dataclass(frozen=True, slots=True)
class Call:
    """One call a proposal makes through the timelock."""

    target: Address
    value: int
    data: bytes


@dataclass(frozen=True, slots=True)
class ProposalRecord:
    """A proposal as created (its `ProposalCreated` event): what it does and when it is voted on."""

    proposal_id: int
    proposer: Address
    calls: tuple[Call, ...]
    description: str
    vote_start: BlockNumber  # the snapshot: votes count as of this block
    vote_end: BlockNumber  # the vote is open until this block, included
    block_number: BlockNumber

    @property
    def title(self) -> str:
        """The description's first line (without a leading '# ')."""
        first = self.description.strip().splitlines()[0] if self.description.strip() else ""
        return first.lstrip("#").strip()

    @property
    def description_hash(self) -> bytes:
        """keccak256 of the description: what `queue` and `execute` take."""
        return keccak(self.description.encode())


@dataclass(frozen=True, slots=True)
class ProposalStatus:
    """A proposal and where it stands now."""

    record: ProposalRecord
    state: ProposalState
    constitutional: bool
    against: int
    for_: int
    abstain: int
    # for + abstain votes needed (the ordinary or constitutional quorum at the snapshot); None while
    # the proposal is pending: the snapshot block (`record.vote_start`) is not mined yet
    quorum: int | None
    eta: int  # timestamp from which it can be executed; 0 until queued

    @property
    def proposal_id(self) -> int:
        """The proposal's id."""
        return self.record.proposal_id


@dataclass(frozen=True, slots=True)
class NetworkParams:
    """Every governed parameter of a network, read from its contracts at `block_number`."""

    block_number: BlockNumber
    settle_timeout: int  # blocks (the challenge period of a close started now)
    settle_timeout_bounds: tuple[int, int]
    hub_fee_cap: int  # token units per routed payment
    max_hub_fee_cap: int
    settlement_period: int  # seconds
    settlement_period_bounds: tuple[int, int]
    code_of_conduct: Document
    admission_rules: Document
    voting_delay: int  # blocks
    voting_period: int  # blocks
    proposal_threshold: int  # votes
    quorum_percent: int
    constitutional_quorum_percent: int
    timelock_delay: int  # seconds, ordinary proposals
    constitutional_delay: int  # seconds
    active_members: int


@dataclass(frozen=True, slots=True)
class Payout:
    """One payout of the community treasury (its `PaidOut` event)."""

    block_number: int
    to: Address
    amount: int  # token units
    reason: str


@dataclass(frozen=True, slots=True)
class TreasuryStatus:
    """The community treasury of a network, read now."""

    address: Address
    balance: int  # token units
    fee_ppm: int  # the governed part of hub fee income (NetworkParameters.treasuryFeePpm)
    payouts: tuple[Payout, ...]


# --------------------------------------------------------------------------- calls and sentences


class ProposalCalls:
    """Builds the calls of the governed parameters and decisions of one deployment."""

    def __init__(self, deployment: Deployment) -> None:
        _require_governed(deployment)
        self.deployment = deployment
        self._targets: dict[str, Address] = {
            "GovernedChannelManager": deployment.manager,
            "NetworkParameters": _some(deployment.parameters),
            "Membership": _some(deployment.membership),
            "CiseGovernor": _some(deployment.governor),
            "CiseTimelock": _some(deployment.timelock),
        }
        if deployment.treasury is not None:
            self._targets["Treasury"] = deployment.treasury

    def _call(self, contract: str, function: str, *args: Any) -> Call:
        data = load_artifact(contract).abi.function(function).encode_call(args)
        return Call(self._targets[contract], 0, data)

    # channel manager and parameters (ordinary)
    def set_settle_timeout(self, blocks: int) -> Call:
        """The challenge period of future closes, in blocks (hard bounds 5..1,000,000)."""
        return self._call("GovernedChannelManager", "setSettleTimeout", blocks)

    def set_hub_fee_cap(self, units: int) -> Call:
        """The most a hub may charge for routing one payment, in token units."""
        return self._call("NetworkParameters", "setHubFeeCap", units)

    def set_settlement_period(self, seconds: int) -> Call:
        """Seconds between periodic net settlements."""
        return self._call("NetworkParameters", "setSettlementPeriod", seconds)

    def set_treasury_fee_ppm(self, ppm: int) -> Call:
        """Millionths of every hub's fee income paid to the treasury each settlement round."""
        return self._call("NetworkParameters", "setTreasuryFeePpm", ppm)

    def pay_out(self, to: Address, amount: int, reason: str) -> Call:
        """Pay `amount` token units out of the community treasury to `to`."""
        if "Treasury" not in self._targets:
            raise ValueError("this network has no treasury (deployed before it existed)")
        return self._call("Treasury", "payOut", to, amount, reason)

    # documents (constitutional)
    def set_code_of_conduct(self, document: Document) -> Call:
        """Replace the code of conduct."""
        return self._call("NetworkParameters", "setCodeOfConduct", document.hash, document.uri)

    def set_admission_rules(self, document: Document) -> Call:
        """Replace the admission rules."""
        return self._call("NetworkParameters", "setAdmissionRules", document.hash, document.uri)

    # membership decisions (ordinary but for expulsion)
    def admit(self, account: Address) -> Call:
        """Admit an applicant with the roles it applied for."""
        return self._call("Membership", "admit", account)

    def reject_application(self, account: Address) -> Call:
        """Reject an application."""
        return self._call("Membership", "rejectApplication", account)

    def suspend(self, account: Address) -> Call:
        """Suspend an active member."""
        return self._call("Membership", "suspend", account)

    def reinstate(self, account: Address) -> Call:
        """Lift a suspension."""
        return self._call("Membership", "reinstate", account)

    def expel(self, account: Address) -> Call:
        """Expel a member for good (constitutional)."""
        return self._call("Membership", "expel", account)

    def set_roles(self, account: Address, roles: int) -> Call:
        """Change a member's roles."""
        return self._call("Membership", "setRoles", account, int(roles))

    # rules of governance (constitutional)
    def set_quorum(self, percent: int) -> Call:
        """The ordinary quorum, % of the active members."""
        return self._call("CiseGovernor", "updateQuorumNumerator", percent)

    def set_constitutional_quorum(self, percent: int) -> Call:
        """The constitutional quorum, % of the active members."""
        return self._call("CiseGovernor", "setConstitutionalQuorumNumerator", percent)

    def set_voting_delay(self, blocks: int) -> Call:
        """Blocks between a proposal and the start of its vote."""
        return self._call("CiseGovernor", "setVotingDelay", blocks)

    def set_voting_period(self, blocks: int) -> Call:
        """Blocks a vote lasts."""
        return self._call("CiseGovernor", "setVotingPeriod", blocks)

    def set_timelock_delay(self, seconds: int) -> Call:
        """Seconds between queue and execution of an ordinary proposal."""
        return self._call("CiseTimelock", "updateDelay", seconds)

    def set_constitutional_delay(self, seconds: int) -> Call:
        """Seconds between queue and execution of a constitutional proposal."""
        return self._call("CiseGovernor", "setConstitutionalDelay", seconds)

    def set_ordinary_call(self, contract: str, function: str, ordinary: bool) -> Call:
        """Make calls of `contract.function` ordinary (or constitutional)."""
        selector = load_artifact(contract).abi.function(function).selector
        return self._call(
            "CiseGovernor", "setOrdinaryCall", self._targets[contract], selector, ordinary
        )

    # reading calls back
    def contract_at(self, target: Address) -> str | None:
        """The name of the deployment's contract at `target`, if it is one."""
        for name, address in self._targets.items():
            if address == target:
                return name
        return None

    def decode(self, call: Call) -> tuple[str, str, tuple[Any, ...]] | None:
        """(contract, function, args) of a call to one of the deployment's contracts, if known."""
        contract = self.contract_at(call.target)
        if contract is None or len(call.data) < 4:
            return None
        for function in load_artifact(contract).abi.functions.values():
            if function.selector == call.data[:4]:
                try:
                    values = decode(list(function.input_types), call.data[4:])
                except Exception:  # eth_abi raises several unrelated types on malformed data
                    return None
                args = tuple(
                    normalise(t, v) for t, v in zip(function.input_types, values, strict=True)
                )
                return contract, function.name, args
        return None

    def describe(self, call: Call) -> str:
        """The call as a sentence: 'set the challenge period to 40 blocks'."""
        decoded = self.decode(call)
        if decoded is None:
            text = f"call 0x{call.data[:4].hex()} on {to_checksum(call.target)}"
        else:
            text = self._sentence(*decoded)
        if call.value:
            text += f" and send {call.value} wei"
        return text

    def _sentence(self, contract: str, function: str, args: tuple[Any, ...]) -> str:
        match (contract, function, args):
            case ("GovernedChannelManager", "setSettleTimeout", (int(blocks),)):
                return f"set the challenge period to {blocks} blocks"
            case ("NetworkParameters", "setHubFeeCap", (int(units),)):
                return f"set the hub fee cap to {_euro(units)} per routed payment"
            case ("NetworkParameters", "setSettlementPeriod", (int(seconds),)):
                return f"set the settlement period to {duration_text(seconds)}"
            case ("NetworkParameters", "setTreasuryFeePpm", (int(ppm),)):
                return f"pay {ppm / 10_000:g}% of every hub's fee income to the treasury"
            case ("Treasury", "payOut", (bytes(to), int(units), str(why))):
                return f"pay {_euro(units)} from the treasury to {to_checksum(to)} ({why})"
            case ("NetworkParameters", "setCodeOfConduct", (bytes(digest), str(uri))):
                return f"replace the code of conduct with the document 0x{digest.hex()} at {uri}"
            case ("NetworkParameters", "setAdmissionRules", (bytes(digest), str(uri))):
                return f"replace the admission rules with the document 0x{digest.hex()} at {uri}"
            case ("Membership", "admit", (bytes(account),)):
                return f"admit {to_checksum(account)}"
            case ("Membership", "rejectApplication", (bytes(account),)):
                return f"reject the application of {to_checksum(account)}"
            case ("Membership", "suspend", (bytes(account),)):
                return f"suspend {to_checksum(account)}"
            case ("Membership", "reinstate", (bytes(account),)):
                return f"reinstate {to_checksum(account)}"
            case ("Membership", "expel", (bytes(account),)):
                return f"expel {to_checksum(account)}"
            case ("Membership", "setRoles", (bytes(account), int(roles))):
                return f"give {to_checksum(account)} the roles {roles_text(roles)}"
            case ("CiseGovernor", "updateQuorumNumerator", (int(percent),)):
                return f"set the ordinary quorum to {percent}% of the active members"
            case ("CiseGovernor", "setConstitutionalQuorumNumerator", (int(percent),)):
                return f"set the constitutional quorum to {percent}% of the active members"
            case ("CiseGovernor", "setVotingDelay", (int(blocks),)):
                return f"set the voting delay to {blocks} blocks"
            case ("CiseGovernor", "setVotingPeriod", (int(blocks),)):
                return f"set the voting period to {blocks} blocks"
            case ("CiseGovernor", "setProposalThreshold", (int(votes),)):
                return f"set the votes needed to propose to {votes}"
            case ("CiseGovernor", "setConstitutionalDelay", (int(seconds),)):
                return f"set the constitutional delay to {duration_text(seconds)}"
            case ("CiseTimelock", "updateDelay", (int(seconds),)):
                return f"set the timelock delay to {duration_text(seconds)}"
            case (
                "CiseGovernor",
                "setOrdinaryCall",
                (bytes(target), bytes(selector), bool(ordinary)),
            ):
                name = self.contract_at(Address(target)) or to_checksum(target)
                what = "ordinary" if ordinary else "constitutional"
                return f"make {name}.{_function_named(name, selector)} {what}"
        shown = ", ".join(_show(a) for a in args)
        return f"call {contract}.{function}({shown})"


def describe_proposal(calls: Sequence[str], title: str, body: str = "") -> str:
    """A proposal description: the title, a blank line, one '- ' line per call, then `body`."""
    lines = [title.strip(), "", *(f"- {sentence}" for sentence in calls)]
    if body.strip():
        lines += ["", body.strip()]
    return "\n".join(lines)


def duration_text(seconds: int) -> str:
    """Seconds as the largest whole unit: '5 min', '1 d', '90 s'."""
    for unit, size in (("d", 86_400), ("h", 3_600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"


def _euro(units: int) -> str:
    return f"€{Decimal(units) / 1_000_000:,.6f}"


def _show(value: Any) -> str:
    if isinstance(value, bytes):
        return to_checksum(value) if len(value) == 20 else "0x" + value.hex()
    return repr(value)


def _function_named(contract: str, selector: bytes) -> str:
    with contextlib.suppress(FileNotFoundError):
        for function in load_artifact(contract).abi.functions.values():
            if function.selector == selector:
                return function.name
    return "0x" + selector.hex()


# --------------------------------------------------------------------------- the client


class GovernanceClient:
    """Membership and governance of `deployment`, acting as `account` (None: read only)."""

    def __init__(
        self,
        connection: Connection,
        deployment: Deployment,
        account: LocalAccount | None,
        max_range: int = DEFAULT_MAX_RANGE,
    ) -> None:
        _require_governed(deployment)
        if max_range < 1:
            raise ValueError("max_range must be >= 1")
        self.connection = connection
        self._deployment = deployment
        self._account = account
        self.max_range = max_range
        self.calls = ProposalCalls(deployment)
        self.membership_abi = load_artifact("Membership").abi
        self.governor_abi = load_artifact("CiseGovernor").abi
        self.parameters_abi = load_artifact("NetworkParameters").abi
        self.timelock_abi = load_artifact("CiseTimelock").abi
        self.manager_abi = load_artifact("GovernedChannelManager").abi
        # A target's revert bubbles up through the timelock and the governor: decode them all.
        self.abi: ContractAbi = (
            self.governor_abi.merged(self.membership_abi)
            .merged(self.parameters_abi)
            .merged(self.timelock_abi)
            .merged(self.manager_abi)
            .merged(load_artifact("GovernedAssetRegistry").abi)  # split changes by proposal
            .merged(load_artifact("Treasury").abi)  # payouts by proposal
        )

    @classmethod
    def from_key(
        cls, connection: Connection, deployment: Deployment, private_key: bytes
    ) -> GovernanceClient:
        """A client acting as the account of `private_key`."""
        return cls(connection, deployment, Account.from_key(private_key))

    def for_account(self, account: LocalAccount | None) -> GovernanceClient:
        """A client on the same connection and deployment acting as another account."""
        return GovernanceClient(self.connection, self._deployment, account, self.max_range)

    @property
    def address(self) -> Address:
        """The account this client sends transactions as."""
        if self._account is None:
            raise ValueError("this governance client is read-only (no account)")
        return Address(bytes.fromhex(self._account.address[2:]))

    @property
    def deployment(self) -> Deployment:
        """The contracts this client talks to."""
        return self._deployment

    @property
    def membership(self) -> Address:
        """The membership contract."""
        return _some(self._deployment.membership)

    @property
    def governor(self) -> Address:
        """The governor."""
        return _some(self._deployment.governor)

    @property
    def timelock(self) -> Address:
        """The timelock (executes passed proposals; owns the parameters)."""
        return _some(self._deployment.timelock)

    @property
    def parameters_contract(self) -> Address:
        """The network parameters contract."""
        return _some(self._deployment.parameters)

    # ------------------------------------------------------------------ plumbing

    def _send(
        self, to: Address, abi: ContractAbi, contract: str, function: str, *args: Any
    ) -> Receipt:
        if self._account is None:
            raise ValueError("this governance client is read-only (no account)")
        data = abi.function(function).encode_call(args)
        return self.connection.transact(
            self._account,
            to,
            data,
            self.abi,
            f"{contract}.{function}",
            gas=embedded_gas(self.connection),
        )

    def _view(
        self, to: Address, abi: ContractAbi, contract: str, function: str, *args: Any
    ) -> tuple[Any, ...]:
        spec = abi.function(function)
        raw = self.connection.call(to, spec.encode_call(args), self.abi, f"{contract}.{function}")
        return spec.decode_result(raw)

    def _governor_view(self, function: str, *args: Any) -> Any:
        return self._view(self.governor, self.governor_abi, "CiseGovernor", function, *args)[0]

    def _membership_view(self, function: str, *args: Any) -> tuple[Any, ...]:
        return self._view(self.membership, self.membership_abi, "Membership", function, *args)

    def _parameters_view(self, function: str) -> Any:
        return self._view(
            self.parameters_contract, self.parameters_abi, "NetworkParameters", function
        )[0]

    def _manager_view(self, function: str, *args: Any) -> Any:
        return self._view(
            self._deployment.manager, self.manager_abi, "GovernedChannelManager", function, *args
        )[0]

    # ------------------------------------------------------------------ membership

    def apply_for_membership(self, roles: int, code_of_conduct_hash: bytes) -> Receipt:
        """applyForMembership(roles, codeOfConductHash): the hash of the code of conduct accepted
        must be the network's current one (`parameters().code_of_conduct.hash`)."""
        return self._send(
            self.membership,
            self.membership_abi,
            "Membership",
            "applyForMembership",
            int(roles),
            _bytes32(code_of_conduct_hash, "code_of_conduct_hash"),
        )

    def member_of(self, account: Address) -> MemberInfo:
        """memberOf(account)."""
        status, roles, token_id, since = self._membership_view("memberOf", account)
        return MemberInfo(
            Address(account), MemberStatus(status), Role(roles), int(token_id), int(since)
        )

    def is_active_member(self, account: Address) -> bool:
        """isActiveMember(account), as the membership contract says."""
        return bool(self._membership_view("isActiveMember", account)[0])

    def may_open_channels(self, account: Address) -> bool:
        """The channel manager's mirror of the same (`isMember`): what an open checks."""
        return bool(self._manager_view("isMember", account))

    def active_members(self) -> int:
        """How many members are active (= the votes there are)."""
        return int(self._membership_view("activeMembers")[0])

    def votes(self, account: Address, block: int | None = None) -> int:
        """The votes of `account` now, or as of a past `block`."""
        if block is None:
            return int(
                self._view(self.membership, self.membership_abi, "Membership", "getVotes", account)[
                    0
                ]
            )
        return int(
            self._view(
                self.membership, self.membership_abi, "Membership", "getPastVotes", account, block
            )[0]
        )

    def members(self) -> tuple[MemberInfo, ...]:
        """Every account the membership contract ever heard of (applicants, members, expelled),
        in order of first appearance in its logs, as it stands now."""
        seen: dict[Address, None] = {}
        for event in self._logs(self.membership, self.membership_abi, None):
            account = event.args.get("account")
            if isinstance(account, bytes):
                seen.setdefault(Address(account), None)
        return tuple(self.member_of(account) for account in seen)

    # ------------------------------------------------------------------ parameters

    def hub_fee_cap(self) -> int:
        """`hubFeeCap` now: the most a hub may charge for routing one payment (token units)."""
        return int(self._parameters_view("hubFeeCap"))

    def parameters(self) -> NetworkParams:
        """Every governed parameter, read now."""
        block = self.connection.block_number()
        timelock_delay = self._view(
            self.timelock, self.timelock_abi, "CiseTimelock", "getMinDelay"
        )[0]
        return NetworkParams(
            block_number=block,
            settle_timeout=int(self._manager_view("settleTimeout")),
            settle_timeout_bounds=(
                int(self._manager_view("MIN_SETTLE_TIMEOUT")),
                int(self._manager_view("MAX_SETTLE_TIMEOUT")),
            ),
            hub_fee_cap=int(self._parameters_view("hubFeeCap")),
            max_hub_fee_cap=int(self._parameters_view("MAX_HUB_FEE_CAP")),
            settlement_period=int(self._parameters_view("settlementPeriod")),
            settlement_period_bounds=(
                int(self._parameters_view("MIN_SETTLEMENT_PERIOD")),
                int(self._parameters_view("MAX_SETTLEMENT_PERIOD")),
            ),
            code_of_conduct=Document(
                bytes(self._parameters_view("codeOfConductHash")),
                str(self._parameters_view("codeOfConductURI")),
            ),
            admission_rules=Document(
                bytes(self._parameters_view("admissionRulesHash")),
                str(self._parameters_view("admissionRulesURI")),
            ),
            voting_delay=int(self._governor_view("votingDelay")),
            voting_period=int(self._governor_view("votingPeriod")),
            proposal_threshold=int(self._governor_view("proposalThreshold")),
            quorum_percent=int(self._governor_view("quorumNumerator")),
            constitutional_quorum_percent=int(self._governor_view("constitutionalQuorumNumerator")),
            timelock_delay=int(timelock_delay),
            constitutional_delay=int(self._governor_view("constitutionalDelay")),
            active_members=self.active_members(),
        )

    def treasury_fee_ppm(self) -> int:
        """`treasuryFeePpm` now: millionths of its fee income a hub pays the treasury per round."""
        return int(self._parameters_view("treasuryFeePpm"))

    def treasury_balance(self) -> int:
        """What the community treasury holds now (token units)."""
        address = self._deployment.treasury
        if address is None:
            raise ValueError("this network has no treasury (deployed before it existed)")
        abi = load_artifact("Treasury").abi
        return int(self._view(address, abi, "Treasury", "balance")[0])

    def treasury(self) -> TreasuryStatus:
        """The community treasury now: its balance, the governed part and every payout."""
        address = self._deployment.treasury
        if address is None:
            raise ValueError("this network has no treasury (deployed before it existed)")
        abi = load_artifact("Treasury").abi
        balance = self.treasury_balance()
        payouts = tuple(
            Payout(
                int(event.block_number),
                Address(bytes(event.args["to"])),
                int(event.args["amount"]),
                str(event.args["reason"]),
            )
            for event in self._logs(address, abi, None)
            if event.name == "PaidOut"
        )
        return TreasuryStatus(address, balance, self.treasury_fee_ppm(), payouts)

    # ------------------------------------------------------------------ proposals

    def classify(self, calls: Sequence[Call]) -> bool:
        """Whether a proposal of these calls would be constitutional (the governor says)."""
        targets, values, datas = _columns(calls)
        return bool(self._governor_view("classify", targets, values, datas))

    def proposal_id(self, calls: Sequence[Call], description: str) -> int:
        """The id a proposal of these calls and this description has (or would have)."""
        targets, values, datas = _columns(calls)
        return int(
            self._governor_view(
                "getProposalId", targets, values, datas, keccak(description.encode())
            )
        )

    def propose(self, calls: Sequence[Call], description: str) -> tuple[ProposalRecord, Receipt]:
        """propose(...): returns the proposal as created (from ProposalCreated)."""
        if not calls:
            raise ValueError("a proposal needs at least one call")
        targets, values, datas = _columns(calls)
        receipt = self._send(
            self.governor,
            self.governor_abi,
            "CiseGovernor",
            "propose",
            targets,
            values,
            datas,
            description,
        )
        return _record(receipt.event("ProposalCreated")), receipt

    def cast_vote(self, proposal_id: int, support: Support, reason: str = "") -> Receipt:
        """castVote / castVoteWithReason: this account's one vote."""
        if reason:
            return self._send(
                self.governor,
                self.governor_abi,
                "CiseGovernor",
                "castVoteWithReason",
                proposal_id,
                int(support),
                reason,
            )
        return self._send(
            self.governor, self.governor_abi, "CiseGovernor", "castVote", proposal_id, int(support)
        )

    def queue(self, proposal_id: int) -> Receipt:
        """queue(...) a succeeded proposal on the timelock (anyone may)."""
        return self._lifecycle("queue", self.proposal_record(proposal_id))

    def execute(self, proposal_id: int) -> Receipt:
        """execute(...) a queued proposal once its eta passed (anyone may)."""
        return self._lifecycle("execute", self.proposal_record(proposal_id))

    def _lifecycle(self, function: str, record: ProposalRecord) -> Receipt:
        targets, values, datas = _columns(record.calls)
        return self._send(
            self.governor,
            self.governor_abi,
            "CiseGovernor",
            function,
            targets,
            values,
            datas,
            record.description_hash,
        )

    def has_voted(self, proposal_id: int, account: Address) -> bool:
        """Whether `account` voted on the proposal."""
        return bool(self._governor_view("hasVoted", proposal_id, account))

    def state(self, proposal_id: int) -> ProposalState:
        """state(proposalId); ChainError GovernorNonexistentProposal for an unknown id."""
        return ProposalState(int(self._governor_view("state", proposal_id)))

    def status(self, record: ProposalRecord) -> ProposalStatus:
        """Where a proposal stands now: state, class, votes, quorum and eta."""
        proposal_id = record.proposal_id
        against, for_, abstain = self._view(
            self.governor, self.governor_abi, "CiseGovernor", "proposalVotes", proposal_id
        )
        state = self.state(proposal_id)
        quorum = None
        if state is not ProposalState.PENDING:
            quorum = int(self._governor_view("proposalQuorum", proposal_id))
        return ProposalStatus(
            record,
            state,
            bool(self._governor_view("isConstitutional", proposal_id)),
            int(against),
            int(for_),
            int(abstain),
            quorum,
            int(self._governor_view("proposalEta", proposal_id)),
        )

    def proposals(self) -> tuple[ProposalRecord, ...]:
        """Every proposal of the network, in order of creation (from the logs)."""
        topic = self.governor_abi.events_by_name["ProposalCreated"].topic
        return tuple(_record(e) for e in self._logs(self.governor, self.governor_abi, topic))

    def proposal_record(self, proposal_id: int) -> ProposalRecord:
        """The proposal `proposal_id` as created; LookupError when the logs hold none."""
        for record in self.proposals():
            if record.proposal_id == proposal_id:
                return record
        raise LookupError(f"no proposal {proposal_id} on this network")

    def describe_call(self, call: Call) -> str:
        """`ProposalCalls.describe`."""
        return self.calls.describe(call)

    # ------------------------------------------------------------------ logs

    def _logs(
        self, address: Address, abi: ContractAbi, topic: bytes | None
    ) -> tuple[DecodedEvent, ...]:
        start: int = self._deployment.block_number
        end: int = self.connection.block_number()
        found: list[DecodedEvent] = []
        while start <= end:
            stop = min(end, start + self.max_range - 1)
            params: FilterParams = {
                "address": ChecksumAddress(HexAddress(HexStr(to_checksum(address)))),
                "fromBlock": start,
                "toBlock": stop,
            }
            if topic is not None:
                params["topics"] = ["0x" + topic.hex()]
            logs = self.connection.w3.eth.get_logs(params)
            ordered = sorted(logs, key=lambda log: (int(log["blockNumber"]), int(log["logIndex"])))
            found.extend(self.connection.decode_logs(ordered, abi))
            start = stop + 1
        return tuple(found)


def _record(event: DecodedEvent) -> ProposalRecord:
    args = event.args
    calls = tuple(
        Call(Address(target), int(value), bytes(data))
        for target, value, data in zip(
            args["targets"], args["values"], args["calldatas"], strict=True
        )
    )
    return ProposalRecord(
        int(args["proposalId"]),
        Address(args["proposer"]),
        calls,
        str(args["description"]),
        BlockNumber(int(args["voteStart"])),
        BlockNumber(int(args["voteEnd"])),
        BlockNumber(event.block_number),
    )


def _columns(calls: Iterable[Call]) -> tuple[list[Address], list[int], list[bytes]]:
    listed = list(calls)
    return [c.target for c in listed], [c.value for c in listed], [c.data for c in listed]


def _require_governed(deployment: Deployment) -> None:
    if not deployment.governed:
        raise ValueError("this network has no governance contracts (deployed before they existed)")


def _some(address: Address | None) -> Address:
    if address is None:
        raise ValueError("this network has no governance contracts (deployed before they existed)")
    return address


def _bytes32(value: bytes, what: str) -> bytes:
    # eth_abi right-pads a short bytes32 silently: a truncated hash would name another document.
    if len(value) != 32:
        raise ValueError(f"{what} must be 32 bytes, got {len(value)}")
    return bytes(value)


# --------------------------------------------------------------------------- dev chains


def advance_time(connection: Connection, seconds: int) -> int:
    """Dev chains only: move the chain's clock `seconds` forward and mine a block at the new time;
    returns that block's timestamp. ValueError on a chain that is not a dev chain."""
    if seconds < 0:
        raise ValueError("time only moves forward")
    provider = connection.w3.provider
    if isinstance(provider, EthereumTesterProvider):
        lock = getattr(provider, "lock", None)
        with lock if lock is not None else contextlib.nullcontext():
            tester = provider.ethereum_tester
            assert tester is not None
            now = int(tester.get_block_by_number("pending")["timestamp"])
            tester.time_travel(now + seconds)
    elif connection.kind in ("anvil", "ganache"):
        provider.make_request(cast(Any, "evm_increaseTime"), [seconds])
        provider.make_request(cast(Any, "evm_mine"), [])
    else:
        raise ValueError(f"time cannot be moved on a {connection.kind} chain")
    return int(connection.w3.eth.get_block("latest")["timestamp"])


def latest_timestamp(connection: Connection) -> int:
    """The latest block's timestamp."""
    return int(connection.w3.eth.get_block("latest")["timestamp"])


def pass_proposal(
    connection: Connection,
    deployment: Deployment,
    voters: Sequence[LocalAccount],
    calls: Sequence[Call],
    description: str,
) -> ProposalStatus:
    """Dev chains only: `voters[0]` proposes, every voter votes for, and the proposal is queued and
    executed, mining blocks and moving time as needed; returns its final status. Raises ChainError
    when the governor refuses a step (e.g. too few voters for the quorum: the queue is refused)."""
    if not voters:
        raise ValueError("at least one voter")
    proposer = GovernanceClient(connection, deployment, voters[0])
    record, _ = proposer.propose(calls, description)
    connection.mine_until(record.vote_start + 1)
    for voter in voters:
        proposer.for_account(voter).cast_vote(record.proposal_id, Support.FOR)
    connection.mine_until(record.vote_end + 1)
    proposer.queue(record.proposal_id)
    eta = proposer.status(record).eta
    wait = eta - latest_timestamp(connection)
    if wait > 0:
        advance_time(connection, wait)
    proposer.execute(record.proposal_id)
    return proposer.status(record)


def admit_by_vote(
    connection: Connection,
    deployment: Deployment,
    applicants: Mapping[LocalAccount, int],
    voters: Sequence[LocalAccount],
    title: str = "Admit new members",
) -> ProposalStatus:
    """Dev chains only: each applicant (an account with gas) applies with its roles, accepting the
    current code of conduct, and one ordinary proposal admits them all, voted by `voters`."""
    reader = GovernanceClient(connection, deployment, None)
    code_of_conduct = reader.parameters().code_of_conduct.hash
    calls = []
    for applicant, roles in applicants.items():
        reader.for_account(applicant).apply_for_membership(roles, code_of_conduct)
        calls.append(reader.calls.admit(Address(bytes.fromhex(applicant.address[2:]))))
    description = describe_proposal([reader.describe_call(c) for c in calls], title)
    return pass_proposal(connection, deployment, voters, calls, description)


__all__ = [
    "ALL_ROLES",
    "ROLE_NAMES",
    "Call",
    "GovernanceClient",
    "MemberInfo",
    "MemberStatus",
    "NetworkParams",
    "ProposalCalls",
    "ProposalRecord",
    "ProposalState",
    "ProposalStatus",
    "Role",
    "Support",
    "admit_by_vote",
    "advance_time",
    "describe_proposal",
    "duration_text",
    "latest_timestamp",
    "parse_roles",
    "pass_proposal",
    "roles_text",
]

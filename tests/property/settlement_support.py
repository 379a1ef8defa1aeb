"""A hub and 2-4 counterparties on a fresh embedded chain, each party a core node: the test shell of
the settlement conservation property (tests/property/test_settlement_conservation.py).

It generalises tests/unit/core_pair.py from one channel to a hub's star of channels and from a
pretend chain to the real one: every party is a `NodeState` driven by `node_transition`; `Send*`
events are signed with the sender's `LocalSigner` and carried through the real wire encoding to
the recipient's node; `ContractSend*` events become transactions through `channels.chain.executor`
with the party's own `Web3ChainClient`; the chain's logs come back through `ChainFollower` as
`ContractReceive*` state changes fed to every node. Nothing is mocked: py-evm via eth-tester runs
the governed `ChannelManager` that `channels.chain.deploy.deploy` builds.

A settlement batch is planned by `settlement.planner.plan_settlement` over the hub's node, encoded
by `settlement.batch`, countersigned by each counterparty (after checking the item against its own
view, as its agent would), signed once by the hub and sent with `settle_hub_batch`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import eth  # noqa: F401  (py-evm raises the recursion limit on import: at collection, not mid-example)
from eth_account import Account
from eth_tester import EthereumTester
from web3 import Web3
from web3.providers.eth_tester import EthereumTesterProvider

from channels import wire
from channels.chain.client import ChannelInfo, Web3ChainClient
from channels.chain.connection import Connection, Receipt
from channels.chain.deploy import Deployment, deploy, embedded_gas
from channels.chain.events import ChainFollower
from channels.chain.executor import execute
from channels.codec.eip712 import Domain
from channels.core import events as ev
from channels.core import state_changes as sc
from channels.core.channel import get_balance, get_capacity
from channels.core.node import node_transition
from channels.core.state import ChannelState, ChannelStatus, NodeState
from channels.core.types import Address, ChannelId, PaymentId, TokenAmount
from channels.signer import LocalSigner
from settlement.batch import (
    DepositItem,
    WithdrawItem,
    batch_digest,
    by_recipient,
    counterparty,
    pack_deposits,
    pack_hub_withdraws,
)
from settlement.planner import SettlementPlan, SettlementPolicy, plan_settlement

SETTLE_TIMEOUT = 5  # the contract's minimum: closing by close + settle mines only a few blocks

SETUP_GAS = 1_000_000
MAX_COUNTERPARTIES = 4
ACCOUNTS = MAX_COUNTERPARTIES + 2  # the deployer, the hub, the counterparties
FAILURES = (ev.EventPaymentSendFailed, ev.EventActionFailed)


# (chain, its dev keys, the network, the snapshot right after deploying it)
_deployed: list[tuple[Web3, tuple[bytes, ...], Deployment, int]] = []


def fresh_chain() -> tuple[Connection, Deployment]:
    """The embedded chain as it was right after `deploy` (deployed once per process, then reverted
    to that snapshot: deploying the governed set takes longer than a whole example otherwise), with
    a new `Connection` so that no nonce of an earlier example is remembered."""
    if not _deployed:
        connection = Connection.embedded(accounts=ACCOUNTS)
        deployer = Account.from_key(connection.dev_keys[0])
        deployment = deploy(connection, deployer, settle_timeout=SETTLE_TIMEOUT)
        snapshot = _tester(connection.w3).take_snapshot()
        _deployed.append((connection.w3, connection.dev_keys, deployment, snapshot))
    w3, keys, deployment, snapshot = _deployed[0]
    _tester(w3).revert_to_snapshot(snapshot)
    return Connection(w3, "embedded", keys), deployment


def _tester(w3: Web3) -> EthereumTester:
    provider = w3.provider
    assert isinstance(provider, EthereumTesterProvider)
    return provider.ethereum_tester


@dataclass(frozen=True)
class ChannelSpec:
    """One counterparty and its channel with the hub, as set up before any payment."""

    hub_deposit: int  # the hub's deposit when it opens the channel (from its wallet)
    deposit: int  # the counterparty's deposit (from its wallet)
    internal: int  # the counterparty's internal balance on the manager before anything
    spare: int  # tokens the counterparty keeps in its wallet throughout


@dataclass(frozen=True)
class NetworkSpec:
    """The hub's starting funds and its channels."""

    hub_internal: int  # the hub's internal balance: re-deposits may spend it
    hub_spare: int  # tokens the hub keeps in its wallet
    channels: tuple[ChannelSpec, ...]


@dataclass
class Party:
    """A participant: its key (messages and batch items) and its chain client (same key)."""

    signer: LocalSigner
    client: Web3ChainClient
    minted: int = 0  # tokens minted to its wallet at set-up
    net_paid_in: int = 0  # payments received minus payments sent, off chain

    @property
    def address(self) -> Address:
        return Address(self.signer.address)


@dataclass(frozen=True)
class Snapshot:
    """Everything the chain says about the network's money (for "a revert changed nothing")."""

    manager_tokens: int
    wallets: tuple[int, ...]
    internal: tuple[int, ...]
    channels: tuple[ChannelInfo, ...]


@dataclass
class HubNetwork:
    """The embedded chain, the deployed network, the hub and its counterparties, and their nodes."""

    connection: Connection
    deployment: Deployment
    admin: Web3ChainClient
    hub: Party
    counterparties: list[Party]
    follower: ChainFollower
    nodes: dict[Address, NodeState] = field(default_factory=dict)
    outbox: list[tuple[Address, ev.ContractSendEvent]] = field(default_factory=list)
    settle_sent: set[ChannelId] = field(default_factory=set)
    message_id: int = 0
    payment_id: int = 0
    batches: int = 0
    keys: dict[Address, bytes] = field(default_factory=dict)  # every dev account's key

    # ------------------------------------------------------------------ set-up

    @classmethod
    def create(cls, spec: NetworkSpec) -> HubNetwork:
        """A fresh chain and network: mint each party exactly what the spec puts in its wallet,
        internal balance and channel, then open and fund every channel and let the nodes see it."""
        n = len(spec.channels)
        assert 1 <= n <= MAX_COUNTERPARTIES
        connection, deployment = fresh_chain()
        keys = connection.dev_keys
        deployer = Account.from_key(keys[0])
        admin = Web3ChainClient(connection, deployment, deployer)

        def party(key: bytes) -> Party:
            return Party(LocalSigner(key), Web3ChainClient.from_key(connection, deployment, key))

        hub = party(keys[1])
        counterparties = [party(key) for key in keys[2 : n + 2]]
        domain = admin.domain()
        follower = ChainFollower(connection, deployment)
        net = cls(connection, deployment, admin, hub, counterparties, follower)
        net.keys = {address_of(key): key for key in keys}
        for p in net.parties:
            net.nodes[p.address] = NodeState(p.address, domain, connection.block_number())
        hub_total = spec.hub_internal + spec.hub_spare + sum(c.hub_deposit for c in spec.channels)
        net._fund(hub, hub_total, spec.hub_internal)
        for cp, channel in zip(counterparties, spec.channels, strict=True):
            net._fund(cp, channel.deposit + channel.internal + channel.spare, channel.internal)
            opened = net._send(hub, "openChannel", cp.address, channel.hub_deposit)
            channel_id = ChannelId(int(opened.event("ChannelOpened").args["channelId"]))
            if channel.deposit:
                net._send(cp, "setTotalDeposit", channel_id, hub.address, channel.deposit)
        net.sync()
        assert len(net.nodes[hub.address].channels) == n
        return net

    def _fund(self, p: Party, minted: int, internal: int) -> None:
        p.minted = minted
        if minted:
            self._send(self.admin, "mint", p.address, minted, token=True)
            self._send(p, "approve", self.deployment.manager, minted, token=True)
        if internal:
            self._send(p, "depositToBalance", internal)

    def _send(
        self, sender: Party | Web3ChainClient, function: str, *args: object, token: bool = False
    ) -> Receipt:
        """What `Web3ChainClient`'s method of the same name sends, with a fixed gas limit instead
        of eth-tester's estimate (a binary search of executions: most of a set-up's time). For the
        set-up and the final withdrawals to wallets only; the payments, batches and closes go
        through the client and the executor unchanged."""
        client = sender.client if isinstance(sender, Party) else sender
        key = self.keys[client.address]
        abi = client.token_abi if token else client.manager_abi
        to = self.deployment.token if token else self.deployment.manager
        data = abi.function(function).encode_call(args)
        return self.connection.transact(
            Account.from_key(key), to, data, abi, function, gas=SETUP_GAS
        )

    # ------------------------------------------------------------------ lookups

    @property
    def parties(self) -> list[Party]:
        return [self.hub, *self.counterparties]

    @property
    def domain(self) -> Domain:
        return self.admin.domain()

    def party(self, address: bytes) -> Party:
        return next(p for p in self.parties if p.address == address)

    def channel_id(self, cp: Party) -> ChannelId:
        """The id of the hub's channel with `cp` (from the counterparty's node: it has only one)."""
        (channel_id,) = self.nodes[cp.address].channels
        return channel_id

    def view(self, who: Party, cp: Party) -> ChannelState:
        """`who`'s view of the hub's channel with `cp` (`who` is the hub or `cp`)."""
        return self.nodes[who.address].channels[self.channel_id(cp)]

    def hub_views(self) -> list[ChannelState]:
        return list(self.nodes[self.hub.address].channels.values())

    def chain_channel(self, cp: Party) -> ChannelInfo:
        return self.hub.client.get_channel(self.channel_id(cp), self.hub.address, cp.address)

    def snapshot(self) -> Snapshot:
        client = self.admin
        return Snapshot(
            client.token_balance(self.deployment.manager),
            tuple(client.token_balance(p.address) for p in self.parties),
            tuple(client.balance_of(p.address) for p in self.parties),
            tuple(self.chain_channel(cp) for cp in self.counterparties),
        )

    def internal_balances(self) -> dict[Address, int]:
        """`balanceOf` of every account of the chain (the deployer's and any unused one too)."""
        return {
            address: self.admin.balance_of(address)
            for address in map(address_of, self.connection.dev_keys)
        }

    # ------------------------------------------------------------------ the shell

    def apply(self, who: Address, change: sc.StateChange) -> list[ev.Event]:
        """Apply `change` at `who`'s node, then carry every `Send*` it causes (signed, through the
        wire) to its recipient until none is left. `ContractSend*` events wait in the outbox for
        `sync`. A failure or an invalid-input event anywhere is a test failure."""
        queue: list[tuple[Address, sc.StateChange]] = [(who, change)]
        out: list[ev.Event] = []
        while queue:
            at, state_change = queue.pop(0)
            result = node_transition(self.nodes[at], state_change)
            self.nodes[at] = result.new_state
            for event in result.events:
                out.append(event)
                name = type(event).__name__
                assert not isinstance(event, FAILURES) and not name.startswith("EventInvalid"), (
                    f"{name} at 0x{at.hex()} after {type(state_change).__name__}: {event}"
                )
                if isinstance(event, ev.SendEvent):
                    queue.append((Address(event.recipient), self._carry(at, event)))
                elif isinstance(event, ev.ContractSendEvent):
                    self.outbox.append((at, event))
        return out

    def _carry(self, sender: Address, event: ev.SendEvent) -> sc.StateChange:
        """The recipient's state change for `event`: signed by the sender, encoded and decoded."""
        self.message_id += 1
        digest: bytes | None = getattr(event, "digest", None)
        signature = self.party(sender).signer.sign_digest(digest) if digest else b""
        message = wire.decode(wire.encode(wire.from_event(event, self.message_id, signature)))
        assert wire.is_peer_message(message)
        return wire.to_state_change(message, sender)

    def sync(self) -> None:
        """Send every queued transaction, then feed the chain's new logs (and the new head) to
        every node, until neither produces anything more. Both ends of a closed channel ask to
        settle it once the challenge period is over; the first one's transaction settles it, the
        second is dropped (a real shell would see the revert and move on)."""
        while True:
            outbox, self.outbox = self.outbox, []
            for who, event in outbox:
                if isinstance(event, ev.ContractSendChannelSettle):
                    if event.channel_id in self.settle_sent:
                        continue
                    self.settle_sent.add(event.channel_id)
                p = self.party(who)
                execute(p.client, p.signer, event)
            changes = [c for batch in self.follower.poll_until_head() for c in batch.state_changes]
            for change in changes:
                for p in self.parties:
                    self.apply(p.address, change)
            if not self.outbox:
                return

    def mine(self, blocks: int) -> None:
        self.connection.mine(blocks)
        self.sync()

    # ------------------------------------------------------------------ payments

    def pay(self, payer: Party, payee: Party, amount: int) -> None:
        """A direct transfer of `amount` in the hub's channel between `payer` and `payee`."""
        cp = payee if payer is self.hub else payer
        self.payment_id += 1
        action = sc.ActionTransfer(
            self.channel_id(cp), TokenAmount(amount), PaymentId(self.payment_id)
        )
        events = self.apply(payer.address, action)
        assert any(isinstance(e, ev.EventPaymentReceived) for e in events), events
        payer.net_paid_in -= amount
        payee.net_paid_in += amount

    def capacity(self, payer: Party, cp: Party) -> int:
        """What `payer` can send in the hub's channel with `cp`, by its own view."""
        channel = self.view(payer, cp)
        return get_capacity(channel.our, channel.partner)

    def channel_balance(self, who: Party, cp: Party) -> int:
        """`who`'s balance in the hub's channel with `cp` by its own view:
        deposit - withdrawn + received - sent."""
        channel = self.view(who, cp)
        return get_balance(channel.our, channel.partner)

    # ------------------------------------------------------------------ settlement

    def plan(self, policy: SettlementPolicy, hub_budget: int) -> SettlementPlan:
        """The planner's batch for the hub's channels now, spending at most `hub_budget` of the
        hub's internal balance on re-deposits."""
        internal = self.hub.client.balance_of(self.hub.address)
        return plan_settlement(
            self.hub_views(),
            self.hub.address,
            policy,
            block_number=self.connection.block_number(),
            hub_internal_balance=min(internal, hub_budget),
        )

    def batch_items(self, plan: SettlementPlan) -> tuple[list[WithdrawItem], list[DepositItem]]:
        """The plan in `settlement.batch`'s terms, withdraws grouped by recipient (signed order)."""
        hub_channels = self.nodes[self.hub.address].channels
        items = by_recipient(
            WithdrawItem(
                w.channel_id,
                w.participant,
                _other(hub_channels[ChannelId(w.channel_id)], w.participant),
                w.total_withdraw,
            )
            for w in plan.withdraws
        )
        deposits = [
            DepositItem(
                r.channel_id,
                hub_channels[ChannelId(r.channel_id)].partner.address,
                r.total_deposit,
            )
            for r in plan.redeposits
        ]
        return items, deposits

    def countersign(self, items: Sequence[WithdrawItem], expiry: int) -> list[bytes]:
        """Each counterparty's signature of its item, given only after checking the item against
        its own view: the channel is its channel with the hub, the total is what is withdrawn
        already plus an amount within the participant's capacity."""
        signatures = []
        hub = self.hub.address
        for item in items:
            cp = self.party(counterparty(hub, item))
            channel = self.view(cp, cp)  # the counterparty's own view of its channel
            assert item.channel_id == channel.channel_id
            end, other = (
                (channel.our, channel.partner)
                if item.participant == cp.address
                else (channel.partner, channel.our)
            )
            amount = item.total_withdraw - end.withdrawn
            assert 0 < amount <= get_capacity(end, other), (
                f"channel {item.channel_id}: the plan withdraws {amount} for 0x"
                f"{item.participant.hex()}, whose capacity is {get_capacity(end, other)}"
            )
            signatures.append(cp.signer.sign_digest(item.digest(self.domain, expiry)))
        return signatures

    def hub_batch_call(
        self,
        items: Sequence[WithdrawItem],
        deposits: Sequence[DepositItem],
        expiry: int,
        signatures: Sequence[bytes] | None = None,
    ) -> tuple[int, bytes, bytes, bytes]:
        """(expiry, hubSig, withdraws, deposits) of `settleHubBatch`, signed by the hub."""
        if signatures is None:
            signatures = self.countersign(items, expiry)
        hub_signature = self.hub.signer.sign_digest(batch_digest(self.domain, items, expiry))
        withdraws = pack_hub_withdraws(self.hub.address, items, signatures)
        return expiry, hub_signature, withdraws, pack_deposits(deposits)

    def send_batch(self, call: tuple[int, bytes, bytes, bytes]) -> Receipt:
        """`settleHubBatch` from the hub (the re-deposits are its own), gas not estimated."""
        expiry, hub_signature, withdraws, deposits = call
        return self.hub.client.settle_hub_batch(
            self.hub.address,
            expiry,
            hub_signature,
            withdraws,
            deposits,
            gas=embedded_gas(self.connection),
        )

    def settle(self, policy: SettlementPolicy, hub_budget: int) -> SettlementPlan:
        """Plan, sign and send one batch (nothing when the plan is empty), then let every node see
        its withdraws and re-deposits."""
        plan = self.plan(policy, hub_budget)
        if plan.empty:
            return plan
        expiries = {w.expiry for w in plan.withdraws}
        assert len(expiries) <= 1, f"one batch, one expiry: {expiries}"
        expiry = (
            expiries.pop() if expiries else self.connection.block_number() + policy.expiry_blocks
        )
        items, deposits = self.batch_items(plan)
        self.send_batch(self.hub_batch_call(items, deposits, expiry))
        self.batches += 1
        self.sync()
        return plan

    # ------------------------------------------------------------------ the end

    def close_all(self, modes: Iterable[str]) -> None:
        """Close every channel: "cooperative" (the hub proposes, the core co-signs), or "hub" /
        "counterparty" closes unilaterally with the other's latest proof, the other updates with
        the closer's, and either settles after the challenge period."""
        for cp, mode in zip(self.counterparties, modes, strict=True):
            channel_id = self.channel_id(cp)
            if mode == "cooperative":
                self.apply(self.hub.address, sc.ActionCooperativeClose(channel_id))
            else:
                closer = self.hub if mode == "hub" else cp
                self.apply(closer.address, sc.ActionClose(channel_id))
        self.sync()
        self.mine(SETTLE_TIMEOUT + 1)
        for cp in self.counterparties:
            for who in (self.hub, cp):
                assert self.view(who, cp).status is ChannelStatus.SETTLED

    def withdraw_everything(self) -> None:
        """Every party takes its whole internal balance to its wallet (`withdrawFromBalance`)."""
        for p in self.parties:
            internal = p.client.balance_of(p.address)
            if internal:
                self._send(p, "withdrawFromBalance", internal, p.address)


def _other(channel: ChannelState, participant: bytes) -> Address:
    return channel.partner.address if participant == channel.our.address else channel.our.address


def address_of(key: bytes) -> Address:
    return Address(bytes.fromhex(Account.from_key(key).address[2:]))

"""One synchronous connection to an EVM chain: send signed transactions, call, read logs, mine.

Two backends behind one class: the embedded in-process py-evm chain (web3's
`EthereumTesterProvider`, the default for tests and demos) and any JSON-RPC node by URL (anvil,
ganache, a permissioned Besu/GoQuorum network). Transactions are built here, signed locally with
an eth_account key and sent raw, so any node works; a revert becomes a `ChainError` with the
custom error decoded. Synchronous on purpose: the trio shell calls it via
`trio.to_thread.run_sync` (AsyncWeb3 does not run under trio).

It knows nothing about channels; it must never hold keys beyond the call that signs with them,
and every wait in it is bounded.
"""

from __future__ import annotations

import collections
import contextlib
import os
import re
import threading
import time
from dataclasses import dataclass
from typing import Any, cast

from eth_account.signers.local import LocalAccount
from eth_typing import ChecksumAddress, HexAddress, HexStr
from hexbytes import HexBytes
from web3 import EthereumTesterProvider, Web3
from web3.exceptions import TransactionNotFound
from web3.types import BlockIdentifier, FilterParams, Nonce, RPCEndpoint, RPCResponse, TxParams, Wei

from channels.chain.abi import ContractAbi, DecodedEvent
from channels.chain.errors import ChainError, chain_error_from, is_revert
from channels.chain.nodes import DEV_ACCOUNTS, DEV_MNEMONIC, dev_private_keys
from channels.core.types import BlockNumber, to_checksum

RECEIPT_TIMEOUT = 60.0
RECEIPT_POLL = 0.01  # first wait between receipt polls: automining dev nodes answer at once
RECEIPT_POLL_MAX = 0.25  # the wait grows to this: a real node's block takes 1-5 s
GAS_MARGIN_NUM, GAS_MARGIN_DEN = 5, 4  # send with estimate x 1.25: the state may move a little
DEFAULT_PRIORITY_FEE = 10**9  # 1 gwei tip on EIP-1559 chains (less when the node asks less)
SEND_ATTEMPTS = 3  # `send` signs again on a nonce another sender of the key took meanwhile
# how nodes say a raw transaction's nonce is already used (geth, anvil, besu, nethermind)
_NONCE_TAKEN = ("nonce too low", "nonce is too low", "nonce has already been used", "oldnonce")
_PY_EVM_NONCE = re.compile(r"invalid transaction nonce: expected (\d+), but got (\d+)")
_UNDERPRICED = ("underpriced", "less than block base fee", "fee too low", "feetoolow")


@dataclass(frozen=True, slots=True)
class Receipt:
    """A mined, successful transaction: its gas and the events it emitted (decoded when known)."""

    transaction_hash: bytes
    block_number: BlockNumber
    gas_used: int
    events: tuple[DecodedEvent, ...]
    contract_address: bytes | None = None

    def event(self, name: str) -> DecodedEvent:
        """The first emitted event called `name`; LookupError when there is none."""
        for event in self.events:
            if event.name == name:
                return event
        raise LookupError(f"transaction 0x{self.transaction_hash.hex()} emitted no {name}")


@dataclass(frozen=True, slots=True)
class Fees:
    """What a transaction pays per gas: `price` is maxFeePerGas on EIP-1559 chains (with
    `priority_fee` the tip), gasPrice on legacy ones (`priority_fee` None)."""

    price: int
    priority_fee: int | None = None


def pick_fees(base_fee: int | None, gas_price: int, priority_fee: int) -> Fees:
    """The fees to send with, from the latest block's base fee (None: a legacy chain) and the
    node's eth_gasPrice: legacy pays the gas price; EIP-1559 pays up to 2 x base fee + tip. On a
    chain with a zero base fee the tip is at most what the node asks (eth_gasPrice), so a
    free-gas chain (Besu QBFT / GoQuorum: base fee 0, gas price 0) gets zero fees and an account
    holding no ether can send."""
    if base_fee is None:
        return Fees(gas_price, None)
    tip = min(priority_fee, gas_price) if base_fee == 0 else priority_fee
    return Fees(2 * base_fee + tip, tip)


class NonceTakenError(Exception):
    """The node already holds (or mined) another transaction of the account at this nonce."""


class UnderpricedError(Exception):
    """The node refused a transaction's fees: below the next block's base fee, or a replacement
    that does not pay enough more than the transaction it replaces."""


def send_failure(exc: Exception, abi: ContractAbi, function: str = "") -> Exception | None:
    """What a node's answer `exc` to eth_sendRawTransaction means (as `Connection.broadcast`
    raises it): None for a copy it already has; `NonceTakenError`, `UnderpricedError`, the
    `ChainError` of a revert; else `exc` itself (the node did not take it, for another reason)."""
    text = str(exc).lower()
    if "already known" in text or "known transaction" in text or "already imported" in text:
        return None
    if any(words in text for words in _NONCE_TAKEN) or _py_evm_nonce_taken(text):
        return NonceTakenError(str(exc))
    if any(words in text for words in _UNDERPRICED):
        return UnderpricedError(str(exc))
    if is_revert(exc):
        return chain_error_from(exc, abi, function)
    return exc


def _py_evm_nonce_taken(text: str) -> bool:
    """py-evm (the embedded chain) says "invalid transaction nonce: expected N, but got M" for a
    nonce above the account's too: only M below N means the nonce is used."""
    found = _PY_EVM_NONCE.search(text)
    return found is not None and int(found.group(2)) < int(found.group(1))


@dataclass(frozen=True, slots=True)
class SentTransaction:
    """A transaction the node accepted, not yet known to be mined: `Connection.wait` for it.

    A sender with many independent transactions (a watchtower answering a block full of closes)
    sends them all, then waits, instead of waiting a block for each.
    """

    transaction_hash: bytes
    params: Any  # the TxParams it was built from: a revert is replayed with them to name the error
    abi: ContractAbi
    function: str


class Connection:
    """A web3 connection plus the transaction pipeline (nonces, fees, revert decoding, receipts)."""

    def __init__(
        self,
        w3: Web3,
        kind: str,
        dev_keys: tuple[bytes, ...] = (),
        receipt_timeout: float = RECEIPT_TIMEOUT,
        priority_fee: int = DEFAULT_PRIORITY_FEE,
        estimate_block: BlockIdentifier | None = None,
    ) -> None:
        self.w3 = w3
        self.kind = kind  # "embedded", "anvil", "ganache" or "rpc"
        self.dev_keys = dev_keys
        self.receipt_timeout = receipt_timeout
        self.priority_fee = priority_fee
        self.chain_id: int = w3.eth.chain_id
        self._nonce_lock = threading.Lock()
        self._next_nonce: dict[str, int] = {}
        self._tester: Any = None
        if isinstance(w3.provider, EthereumTesterProvider):
            self._tester = w3.provider.ethereum_tester
        # Estimate against the block the transaction will land in: anvil runs "latest" with
        # block.number = head, which rejects a call valid from the next block on (settle right
        # after the challenge period). eth-tester has no "pending" but already uses head + 1.
        if estimate_block is None:
            estimate_block = "latest" if self._tester is not None else "pending"
        self._estimate_block: BlockIdentifier = estimate_block

    # ------------------------------------------------------------------ constructors

    @classmethod
    def embedded(cls, accounts: int = DEV_ACCOUNTS) -> Connection:
        """A fresh in-process py-evm chain whose dev accounts come from `DEV_MNEMONIC`."""
        from eth_tester import EthereumTester, PyEVMBackend

        backend = PyEVMBackend.from_mnemonic(
            DEV_MNEMONIC, num_accounts=accounts, hd_path="m/44'/60'/0'/0"
        )
        w3 = Web3(_SerialTesterProvider(EthereumTester(backend)))
        return cls(w3, "embedded", dev_private_keys(accounts))

    @classmethod
    def from_url(
        cls, url: str, dev_keys: tuple[bytes, ...] = (), request_timeout: float = 10.0
    ) -> Connection:
        """A JSON-RPC node; `kind` is read from `web3_clientVersion` (anvil, ganache or rpc)."""
        w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": request_timeout}))
        version = ""
        with contextlib.suppress(Exception):  # a node without web3_clientVersion is just "rpc"
            version = str(w3.client_version).lower()
        kind = "anvil" if "anvil" in version else "ganache" if "ganache" in version else "rpc"
        return cls(w3, kind, dev_keys)

    # ------------------------------------------------------------------ chain

    def block_number(self) -> BlockNumber:
        """The latest block number."""
        return BlockNumber(self.w3.eth.block_number)

    def block_gas_limit(self) -> int:
        """The latest block's gas limit (what one transaction can use at most)."""
        return int(self.w3.eth.get_block("latest")["gasLimit"])

    def mine(self, blocks: int = 1) -> BlockNumber:
        """Mine `blocks` empty blocks (dev chains only); returns the new head."""
        if blocks <= 0:
            return self.block_number()
        if self._tester is not None:
            with _tester_lock(self.w3):
                provider = self.w3.provider
                if isinstance(provider, _SerialTesterProvider) and provider.mine_held():
                    blocks -= 1
                if blocks:
                    self._tester.mine_blocks(blocks)
        elif self.kind == "anvil":
            self.w3.provider.make_request(cast(Any, "anvil_mine"), [hex(blocks)])
        elif self.kind == "ganache":
            self.w3.provider.make_request(cast(Any, "evm_mine"), [{"blocks": blocks}])
        else:
            for _ in range(blocks):
                self.w3.provider.make_request(cast(Any, "evm_mine"), [])
        return self.block_number()

    def mine_until(self, block_number: int) -> BlockNumber:
        """Mine until the head is at least `block_number`."""
        return self.mine(block_number - self.block_number())

    def set_automine(self, enabled: bool) -> None:
        """Dev chains only: with automine off, sent transactions wait for the next `mine`, which
        puts them all in one block (as a real chain does between two blocks); on is the default
        (a block per transaction; on the embedded chain, turning it on mines what was held).
        Embedded and anvil only."""
        if self._tester is not None:
            provider = self.w3.provider
            assert isinstance(provider, _SerialTesterProvider)
            with provider.lock:
                provider.hold_transactions = not enabled
                if enabled:
                    provider.mine_held()
        elif self.kind == "anvil":
            self.w3.provider.make_request(cast(Any, "evm_setAutomine"), [enabled])
        else:
            raise ValueError(f"set_automine is for the embedded chain and anvil, not {self.kind}")

    def eth_balance(self, address: bytes) -> int:
        """The ether (gas money) balance of `address`, in wei."""
        return int(self.w3.eth.get_balance(_checksum(address)))

    # ------------------------------------------------------------------ calls

    def call(
        self,
        to: bytes,
        data: bytes,
        abi: ContractAbi,
        function: str = "",
        block: BlockIdentifier = "latest",
        sender: bytes | None = None,
    ) -> bytes:
        """eth_call; a revert becomes a `ChainError`.

        anvil with `--prune-history` and interval mining can drop the state of the block "latest"
        named between resolving it and running the call ("BlockOutOfRangeError"): such a call is
        tried again (at most 3 times) on the new latest block.
        """
        params: TxParams = {"to": _checksum(to), "data": data}
        if sender is not None:
            params["from"] = _checksum(sender)
        for attempt in range(3):
            try:
                return bytes(self.w3.eth.call(params, block))
            except Exception as exc:
                if is_revert(exc):
                    raise chain_error_from(exc, abi, function) from exc
                pruned = block == "latest" and "BlockOutOfRangeError" in str(exc)
                if not pruned or attempt == 2:
                    raise
        raise AssertionError("unreachable")

    # ------------------------------------------------------------------ transactions

    def transact(
        self,
        account: LocalAccount,
        to: bytes | None,
        data: bytes,
        abi: ContractAbi,
        function: str = "",
        value: int = 0,
        gas: int | None = None,
    ) -> Receipt:
        """Build, estimate, sign, send and wait for one transaction; raise `ChainError` on revert.

        The estimate runs the transaction first, so a doomed call fails here with its custom error
        and costs no gas; one that reverts on chain anyway (the state moved) is replayed with
        eth_call to name the error.
        """
        return self.wait(self.send(account, to, data, abi, function, value, gas))

    def estimate(
        self, sender: bytes, to: bytes, data: bytes, abi: ContractAbi, function: str, cap: int
    ) -> int | None:
        """eth_estimateGas of a call from `sender`, searched up to `cap` gas: None when it needs
        more than `cap` (or than a block holds), `ChainError` naming the custom error when it
        reverts. No margin is added: the caller decides how much more to send with."""
        params: TxParams = {"from": _checksum(sender), "to": _checksum(to), "data": data}
        params["gas"] = cap
        try:
            return int(self.w3.eth.estimate_gas(params, self._estimate_block))
        except Exception as exc:
            if is_revert(exc):
                raise chain_error_from(exc, abi, function) from exc
            if _needs_more_gas(exc):
                return None
            raise

    def send(
        self,
        account: LocalAccount,
        to: bytes | None,
        data: bytes,
        abi: ContractAbi,
        function: str = "",
        value: int = 0,
        gas: int | None = None,
    ) -> SentTransaction:
        """`transact` up to the node accepting the transaction, without waiting for it to be
        mined; `wait` finishes it. A doomed call still fails here (at the estimate), costing no gas.
        """
        sender = account.address
        params: TxParams = {
            "from": sender,
            "data": data,
            "value": Wei(value),
            "chainId": self.chain_id,
        }
        if to is not None:
            params["to"] = _checksum(to)
        if gas is None:
            gas = self.estimate_with_margin(sender, to, data, abi, function, value)
        params["gas"] = gas
        for attempt in range(1, SEND_ATTEMPTS + 1):
            params.update(self._fees())
            with self._nonce_lock:
                nonce = max(
                    self._next_nonce.get(sender, 0),
                    self.w3.eth.get_transaction_count(sender, "pending"),
                )
                params["nonce"] = Nonce(nonce)
                raw = account.sign_transaction(cast(Any, params)).raw_transaction
                try:
                    tx_hash = bytes(self.w3.eth.send_raw_transaction(raw))
                except Exception as exc:
                    self._next_nonce.pop(sender, None)
                    if is_revert(exc):
                        raise chain_error_from(exc, abi, function) from exc
                    failure = send_failure(exc, abi, function)
                    # Another sender of this key (another tool, another process) took the nonce
                    # between our read and our send: this one was refused, so nothing of ours is
                    # out; sign again on the node's new pending count (and fees).
                    if isinstance(failure, NonceTakenError | UnderpricedError):
                        if attempt < SEND_ATTEMPTS:
                            continue
                        raise failure from exc
                    raise
                self._next_nonce[sender] = nonce + 1
            return SentTransaction(tx_hash, params, abi, function)
        raise AssertionError("unreachable")

    # -------------------------------------------- the parts a transaction manager drives itself

    def estimate_with_margin(
        self,
        sender: str,
        to: bytes | None,
        data: bytes,
        abi: ContractAbi,
        function: str = "",
        value: int = 0,
        block: BlockIdentifier | None = None,
    ) -> int:
        """The gas to send a call with: the estimate x 1.25 + 10,000 (the state may move a
        little before it is mined); `ChainError` naming the custom error when it reverts now.
        `block`: the state to estimate on (default: the block the transaction will land in)."""
        params: TxParams = {"from": sender, "data": data, "value": Wei(value)}
        if to is not None:
            params["to"] = _checksum(to)
        try:
            estimate = self.w3.eth.estimate_gas(params, block or self._estimate_block)
        except Exception as exc:
            if is_revert(exc):
                raise chain_error_from(exc, abi, function) from exc
            raise
        return estimate * GAS_MARGIN_NUM // GAS_MARGIN_DEN + 10_000

    def current_fees(self) -> Fees:
        """The fees a transaction sent now pays (EIP-1559 when the chain has a base fee)."""
        fees = self._fees()
        if "gasPrice" in fees:
            return Fees(int(fees["gasPrice"]), None)
        return Fees(int(fees["maxFeePerGas"]), int(fees["maxPriorityFeePerGas"]))

    def reserve_nonce(self, sender: str, at_least: int = 0) -> int:
        """The next nonce of `sender`, reserved for one transaction: above every nonce this
        connection handed out (the node's pending count the first time) and `at_least`. Shared
        with `send`, so a manager and direct senders of one account in one process never
        collide."""
        with self._nonce_lock:
            known = self._next_nonce.get(sender)
            if known is None:  # the first one (or after `forget_nonces`): ask the node
                known = int(self.w3.eth.get_transaction_count(_as_checksum(sender), "pending"))
            nonce = max(known, at_least)
            self._next_nonce[sender] = nonce + 1
            return nonce

    def forget_nonces(self, sender: str) -> None:
        """Ask the node again for `sender`'s next nonce (another sender used the account)."""
        with self._nonce_lock:
            self._next_nonce.pop(sender, None)

    def release_nonce(self, sender: str, nonce: int) -> bool:
        """Give back `nonce` if it is the last one reserved (its transaction never left): True
        then; False when a later nonce is out, so the gap must be filled by another transaction."""
        with self._nonce_lock:
            if self._next_nonce.get(sender) == nonce + 1:
                self._next_nonce[sender] = nonce
                return True
            return False

    def account_nonce(self, sender: str) -> int:
        """How many transactions of `sender` are mined (the next nonce the chain expects)."""
        return int(self.w3.eth.get_transaction_count(_as_checksum(sender), "latest"))

    def sign_call(
        self,
        account: LocalAccount,
        to: bytes | None,
        data: bytes,
        value: int,
        gas: int,
        nonce: int,
        fees: Fees,
    ) -> tuple[bytes, bytes]:
        """(raw transaction, its hash) signed with `nonce` and `fees`; nothing is sent."""
        params: TxParams = {
            "from": account.address,
            "data": data,
            "value": Wei(value),
            "chainId": self.chain_id,
            "gas": gas,
            "nonce": Nonce(nonce),
        }
        if to is not None:
            params["to"] = _checksum(to)
        if fees.priority_fee is None:
            params["gasPrice"] = Wei(fees.price)
        else:
            params["maxFeePerGas"] = Wei(fees.price)
            params["maxPriorityFeePerGas"] = Wei(fees.priority_fee)
        signed = account.sign_transaction(cast(Any, params))
        return bytes(signed.raw_transaction), bytes(signed.hash)

    def broadcast(self, raw: bytes, abi: ContractAbi, function: str = "") -> None:
        """Hand a signed transaction to the node. A copy it already has is fine; `NonceTakenError`
        when another transaction of the account holds the nonce; `UnderpricedError` when its
        fees are too low; `ChainError` when the node refuses it as reverting (the embedded chain
        runs it at once)."""
        try:
            self.w3.eth.send_raw_transaction(raw)
        except Exception as exc:
            failure = send_failure(exc, abi, function)
            if failure is None:
                return
            if failure is exc:
                raise
            raise failure from exc

    def receipt(self, tx_hash: bytes) -> Any | None:
        """The receipt of a mined transaction, None when it is not (or no longer) mined."""
        try:
            receipt = self.w3.eth.get_transaction_receipt(HexBytes(tx_hash))
        except TransactionNotFound:
            return None
        if receipt is None or receipt.get("blockNumber") is None:
            return None
        return receipt

    def receipt_of(self, receipt: Any, abi: ContractAbi) -> Receipt:
        """`Receipt` of a successful raw receipt (events decoded by `abi`)."""
        return Receipt(
            bytes(receipt["transactionHash"]),
            BlockNumber(int(receipt["blockNumber"])),
            int(receipt["gasUsed"]),
            self.decode_logs(receipt["logs"], abi),
            _address_or_none(receipt.get("contractAddress")),
        )

    def failure_of(
        self,
        sender: str,
        to: bytes | None,
        data: bytes,
        value: int,
        receipt: Any,
        abi: ContractAbi,
        function: str = "",
    ) -> ChainError:
        """The `ChainError` of a transaction mined with status 0 (replayed to name the error)."""
        params: TxParams = {"from": sender, "data": data, "value": Wei(value)}
        if to is not None:
            params["to"] = _checksum(to)
        return self._replay_failure(
            params, abi, function, bytes(receipt["transactionHash"]), int(receipt["gasUsed"])
        )

    def wait(self, sent: SentTransaction) -> Receipt:
        """The receipt of a sent transaction once mined (bounded); `ChainError` if it reverted."""
        tx_hash = sent.transaction_hash
        receipt = self.wait_for_receipt(tx_hash)
        if receipt["status"] != 1:
            raise self._replay_failure(
                sent.params, sent.abi, sent.function, tx_hash, int(receipt["gasUsed"])
            )
        return Receipt(
            tx_hash,
            BlockNumber(int(receipt["blockNumber"])),
            int(receipt["gasUsed"]),
            self.decode_logs(receipt["logs"], sent.abi),
            _address_or_none(receipt.get("contractAddress")),
        )

    def wait_for_receipt(self, tx_hash: bytes) -> Any:
        """Poll for the receipt (anvil answers with the hash before mining); bounded."""
        deadline = time.monotonic() + self.receipt_timeout
        pause = RECEIPT_POLL
        while True:
            try:
                receipt = self.w3.eth.get_transaction_receipt(HexBytes(tx_hash))
            except TransactionNotFound:
                receipt = None
            if receipt is not None and receipt.get("blockNumber") is not None:
                return receipt
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"no receipt for 0x{tx_hash.hex()} within {self.receipt_timeout:.0f} s"
                )
            time.sleep(pause)
            pause = min(pause * 1.5, RECEIPT_POLL_MAX)  # ~12 polls a 2-second block, not 200

    def _fees(self) -> TxParams:
        """The fee fields of a transaction sent now: EIP-1559 when the latest block has a base
        fee, legacy otherwise (`pick_fees`; eth_gasPrice is read only when it matters)."""
        base_fee = self.w3.eth.get_block("latest").get("baseFeePerGas")
        gas_price = 0
        if base_fee is None or int(base_fee) == 0:
            gas_price = int(self.w3.eth.gas_price)
        fees = pick_fees(None if base_fee is None else int(base_fee), gas_price, self.priority_fee)
        if fees.priority_fee is None:
            return {"gasPrice": Wei(fees.price)}
        return {"maxFeePerGas": Wei(fees.price), "maxPriorityFeePerGas": Wei(fees.priority_fee)}

    def _replay_failure(
        self, params: TxParams, abi: ContractAbi, function: str, tx_hash: bytes, gas_used: int
    ) -> ChainError:
        replay: TxParams = {k: v for k, v in params.items() if k in ("from", "to", "data", "value")}  # type: ignore[assignment]
        try:
            self.w3.eth.call(replay, "latest")
        except Exception as exc:
            return chain_error_from(exc, abi, function, tx_hash, gas_used)
        return ChainError(
            "Reverted",
            function=function,
            transaction_hash=tx_hash,
            gas_used=gas_used,
            detail="mined with status 0 but the replay on the new state did not revert",
        )

    # ------------------------------------------------------------------ logs

    def decode_logs(self, logs: Any, abi: ContractAbi) -> tuple[DecodedEvent, ...]:
        """Decode the logs `abi` knows; others are skipped."""
        decoded: list[DecodedEvent] = []
        for log in logs:
            event = abi.decode_log(
                [bytes(t) for t in log["topics"]],
                bytes(log["data"]),
                bytes.fromhex(str(log["address"])[2:]),
                int(log["blockNumber"]),
                bytes(log["transactionHash"]),
                int(log["logIndex"]),
            )
            if event is not None:
                decoded.append(event)
        return tuple(decoded)

    def get_logs(
        self, address: bytes, from_block: int, to_block: int, abi: ContractAbi
    ) -> tuple[DecodedEvent, ...]:
        """The decoded events of `address` in blocks [from_block, to_block], in chain order."""
        if to_block < from_block:
            return ()
        params: FilterParams = {
            "address": _checksum(address),
            "fromBlock": from_block,
            "toBlock": to_block,
        }
        logs = self.w3.eth.get_logs(params)
        ordered = sorted(logs, key=lambda log: (int(log["blockNumber"]), int(log["logIndex"])))
        return self.decode_logs(ordered, abi)


class _SerialTesterProvider(EthereumTesterProvider):
    """py-evm is not thread-safe: one request at a time, whatever thread the shell calls from.

    With `hold_transactions` (automine off) a raw transaction is kept, unvalidated, until the next
    `mine`, which builds one block of all of them at once (`mine_held`). Not eth-tester's own
    automine-off mode: that re-validates each pending transaction alone (a sender's second one fails
    its nonce check), and py-evm rebuilds a block's tries for every transaction applied to it
    (a block of 200 took ~15 s; built at once, 0.5 s). An invalid held transaction makes the whole
    block fail to mine: dev chains only.
    """

    def __init__(self, ethereum_tester: Any) -> None:
        super().__init__(ethereum_tester)
        self.lock = threading.RLock()
        self.hold_transactions = False
        self._chain: Any = ethereum_tester.backend.chain
        self._held: list[Any] = []
        _memoize_receipts(self._chain.chaindb)

    def make_request(self, method: RPCEndpoint, params: Any) -> RPCResponse:
        with self.lock:
            if self.hold_transactions and method == "eth_sendRawTransaction":
                raw = bytes(HexBytes(params[0]))
                transaction = self._chain.get_vm().get_transaction_builder().decode(raw)
                self._held.append(transaction)
                request_id = repr(self._current_request_id)
                self._current_request_id += 1
                result = "0x" + bytes(transaction.hash).hex()
                return cast(RPCResponse, {"id": request_id, "jsonrpc": "2.0", "result": result})
            return super().make_request(method, params)

    def mine_held(self) -> bool:
        """Mine the held transactions in one new block; False when none are held."""
        with self.lock:
            if not self._held:
                return False
            transactions, self._held = self._held, []
            # a post-merge header wants a random mix hash, as eth-tester's own mining gives it
            self._chain.mine_all(transactions, mix_hash=os.urandom(32))
            return True


def _memoize_receipts(chaindb: Any, size: int = 256) -> None:
    """Remember the decoded receipts of recent blocks: eth-tester decodes a block's every receipt
    for each receipt or log it returns, which is quadratic in a block of many transactions (200
    closes in one block: ~10 s to read their logs). Receipts are keyed by the receipt root, which
    determines them."""
    decode_all = chaindb.get_receipts
    cache: collections.OrderedDict[tuple[bytes, Any], Any] = collections.OrderedDict()

    def get_receipts(header: Any, receipt_decoder: Any) -> Any:
        key = (bytes(header.receipt_root), receipt_decoder)
        receipts = cache.get(key)
        if receipts is None:
            receipts = cache[key] = decode_all(header, receipt_decoder)
            if len(cache) > size:
                cache.popitem(last=False)
        return receipts

    chaindb.get_receipts = get_receipts


def _tester_lock(w3: Web3) -> contextlib.AbstractContextManager[Any]:
    provider = w3.provider
    return (
        provider.lock if isinstance(provider, _SerialTesterProvider) else contextlib.nullcontext()
    )


def _needs_more_gas(exc: BaseException) -> bool:
    """Whether an estimate failed for want of gas (py-evm's OutOfGas, a node's "gas required
    exceeds allowance"), not because the call reverts or the node is unreachable."""
    text = f"{type(exc).__name__} {exc}".lower()
    return "outofgas" in text or "out of gas" in text or ("exceeds" in text and "gas" in text)


def _address_or_none(value: object) -> bytes | None:
    if value is None:
        return None
    return bytes.fromhex(str(value)[2:])


def _as_checksum(address: str) -> ChecksumAddress:
    return Web3.to_checksum_address(address)


def _checksum(address: bytes) -> ChecksumAddress:
    return ChecksumAddress(HexAddress(HexStr(to_checksum(address))))

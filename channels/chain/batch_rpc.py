"""Many JSON-RPC requests in one round trip: checks (eth_call), raw sends and receipts in bulk.

A sender with many independent transactions (a watchtower answering a block full of closes) pays,
through web3, one HTTP round trip and web3's formatting for every call, fee read, nonce read and
send: ~5 round trips an update, each of which also waits for the GIL behind the process's other
threads. `ChainBatch.for_connection` gives one object with four bulk operations:

- `prepare(sender, to, datas)`: the sender's next nonce (pending included), the fees (as
  `Connection` picks them, `pick_fees`) and an eth_call of each `datas`
  on the latest block, in one request: each result is the returned bytes or the exception
  (`is_revert` and `chain_error_from` read it as they read web3's);
- `send_raw(raws)`: eth_sendRawTransaction of each, in order, in one request: each a hash or the
  node's error;
- `receipts(hashes)`: eth_getTransactionReceipt of each, in one request (None: not mined yet).

Against a JSON-RPC node over HTTP (`HttpBatch`) each operation is one POST of a JSON array on a
kept-alive connection (one per thread); on the embedded py-evm chain (`Web3Batch`) the same
operations go one by one through web3 (there is no round trip to save).

It must never retry a send by itself (a send whose answer is lost may have been taken: the caller
decides), never pick a nonce for the caller, and every wait in it is bounded.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import urlsplit

from eth_typing import ChecksumAddress, HexAddress, HexStr
from hexbytes import HexBytes
from web3 import Web3
from web3.exceptions import TransactionNotFound
from web3.types import TxParams

from channels.chain.connection import Connection, pick_fees
from channels.chain.raw_tx import Fees
from channels.core.types import to_checksum

DEFAULT_TIMEOUT = 10.0


class RpcError(Exception):
    """An error object a node answered one request of a batch with (`rpc_response` holds it, as
    web3's exceptions do, so `channels.chain.errors` decodes a revert from it)."""

    def __init__(self, method: str, error: object) -> None:
        self.rpc_response: dict[str, object] = {"error": error}
        message = error.get("message", error) if isinstance(error, dict) else error
        super().__init__(f"{method}: {message}")


class BatchTransportError(RuntimeError):
    """The batch as a whole went unanswered or came back unreadable: nothing is known of any of
    its requests (a send in it may or may not have been taken)."""


@dataclass(frozen=True, slots=True)
class Prepared:
    """What `prepare` read: the next nonce (pending transactions counted) and the fees."""

    nonce: int
    fees: Fees


@dataclass(frozen=True, slots=True)
class MinedReceipt:
    """The part of a receipt a bulk sender needs (`logs` as `Connection.decode_logs` reads them:
    topics, data and the transaction hash as bytes, numbers as ints, the address as 0x text)."""

    status: int
    block_number: int
    gas_used: int
    transaction_hash: bytes = b""
    logs: tuple[dict[str, Any], ...] = ()

    def as_web3(self) -> dict[str, Any]:
        """The receipt as `Connection.receipt_of` and `Connection.failure_of` read a web3 one."""
        return {
            "status": self.status,
            "blockNumber": self.block_number,
            "gasUsed": self.gas_used,
            "transactionHash": self.transaction_hash,
            "logs": list(self.logs),
            "contractAddress": None,
        }


def _hex_bytes(text: object) -> bytes:
    return bytes.fromhex(str(text)[2:])


def _json_log(entry: dict[str, Any]) -> dict[str, Any]:
    """A JSON-RPC log entry as `Connection.decode_logs` reads it."""
    return {
        "topics": [_hex_bytes(t) for t in entry.get("topics", [])],
        "data": _hex_bytes(entry.get("data", "0x")),
        "address": str(entry.get("address", "0x")),
        "blockNumber": int(entry["blockNumber"], 16),
        "transactionHash": _hex_bytes(entry["transactionHash"]),
        "logIndex": int(entry["logIndex"], 16),
    }


class ChainBatch:
    """Bulk reads and sends on one chain (see the module docstring)."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    @staticmethod
    def for_connection(connection: Connection) -> ChainBatch:
        """`HttpBatch` for a node reached over HTTP, `Web3Batch` otherwise."""
        provider = connection.w3.provider
        if isinstance(provider, Web3.HTTPProvider):
            return HttpBatch(connection, str(provider.endpoint_uri))
        return Web3Batch(connection)

    def _fees(self, base_fee: int | None, gas_price: int) -> Fees:
        fees = pick_fees(base_fee, gas_price, self.connection.priority_fee)  # Connection's rule
        if fees.priority_fee is None:
            return Fees(gas_price=fees.price)
        return Fees(max_fee=fees.price, max_priority_fee=fees.priority_fee)

    def prepare(
        self, sender: bytes, to: bytes, datas: Sequence[bytes]
    ) -> tuple[Prepared, list[bytes | Exception]]:
        raise NotImplementedError

    def send_raw(self, raws: Sequence[bytes]) -> list[bytes | Exception]:
        raise NotImplementedError

    def receipts(self, hashes: Sequence[bytes]) -> list[MinedReceipt | None]:
        raise NotImplementedError


class HttpBatch(ChainBatch):
    """JSON-RPC batches over HTTP, one kept-alive connection a thread."""

    def __init__(self, connection: Connection, url: str, timeout: float = DEFAULT_TIMEOUT) -> None:
        super().__init__(connection)
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an HTTP JSON-RPC URL: {url}")
        self._scheme = parts.scheme
        self._host = parts.hostname
        self._port = parts.port
        self._path = parts.path or "/"
        self._timeout = timeout
        self._local = threading.local()

    def _http(self) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        if conn is None:
            kind = (
                http.client.HTTPSConnection
                if self._scheme == "https"
                else http.client.HTTPConnection
            )
            conn = kind(self._host, self._port, timeout=self._timeout)
            conn.connect()
            if conn.sock is not None:
                conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._local.conn = conn
        return conn

    def request(self, calls: Sequence[tuple[str, list[Any]]]) -> list[Any]:
        """Send `calls` as one batch; each answer's result, or an `RpcError` for its error.
        `BatchTransportError` when the batch as a whole failed."""
        if not calls:
            return []
        body = json.dumps(
            [
                {"jsonrpc": "2.0", "id": i, "method": m, "params": p}
                for i, (m, p) in enumerate(calls)
            ]
        ).encode()
        try:
            conn = self._http()
            conn.request("POST", self._path, body, {"Content-Type": "application/json"})
            response = conn.getresponse()
            payload = response.read()
            if response.status != 200:
                raise BatchTransportError(f"HTTP {response.status}: {payload[:200]!r}")
            answers = json.loads(payload)
        except Exception as exc:
            self._drop()
            if isinstance(exc, BatchTransportError):
                raise
            raise BatchTransportError(f"{type(exc).__name__}: {exc}") from exc
        if not isinstance(answers, list):
            raise BatchTransportError(f"the node answered a batch with {str(answers)[:200]}")
        by_id: dict[int, Any] = {}
        for answer in answers:
            if isinstance(answer, dict) and isinstance(answer.get("id"), int):
                by_id[answer["id"]] = answer
        results: list[Any] = []
        for i, (method, _) in enumerate(calls):
            answer = by_id.get(i)
            if answer is None:
                results.append(RpcError(method, {"message": "no answer in the batch"}))
            elif "error" in answer:
                results.append(RpcError(method, answer["error"]))
            else:
                results.append(answer.get("result"))
        return results

    def _drop(self) -> None:
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            conn.close()

    def prepare(
        self, sender: bytes, to: bytes, datas: Sequence[bytes]
    ) -> tuple[Prepared, list[bytes | Exception]]:
        frm, target = "0x" + sender.hex(), "0x" + to.hex()
        calls: list[tuple[str, list[Any]]] = [
            ("eth_getTransactionCount", [frm, "pending"]),
            ("eth_getBlockByNumber", ["latest", False]),
            ("eth_gasPrice", []),
        ]
        calls += [
            ("eth_call", [{"from": frm, "to": target, "data": "0x" + d.hex()}, "latest"])
            for d in datas
        ]
        answers = self.request(calls)
        count, block, gas_price = answers[:3]
        for head in (count, block, gas_price):
            if isinstance(head, Exception):
                raise BatchTransportError(f"could not read the account or the fees: {head}")
        base_fee = block.get("baseFeePerGas") if isinstance(block, dict) else None
        fees = self._fees(None if base_fee is None else int(base_fee, 16), int(gas_price, 16))
        results: list[bytes | Exception] = [
            a if isinstance(a, Exception) else bytes.fromhex(str(a)[2:]) for a in answers[3:]
        ]
        return Prepared(int(count, 16), fees), results

    def send_raw(self, raws: Sequence[bytes]) -> list[bytes | Exception]:
        answers = self.request([("eth_sendRawTransaction", ["0x" + raw.hex()]) for raw in raws])
        return [a if isinstance(a, Exception) else bytes.fromhex(str(a)[2:]) for a in answers]

    def receipts(self, hashes: Sequence[bytes]) -> list[MinedReceipt | None]:
        answers = self.request([("eth_getTransactionReceipt", ["0x" + h.hex()]) for h in hashes])
        found: list[MinedReceipt | None] = []
        for answer in answers:
            if isinstance(answer, Exception):
                raise BatchTransportError(f"could not read a receipt: {answer}")
            if not isinstance(answer, dict) or answer.get("blockNumber") is None:
                found.append(None)
                continue
            found.append(
                MinedReceipt(
                    int(answer["status"], 16),
                    int(answer["blockNumber"], 16),
                    int(answer["gasUsed"], 16),
                    _hex_bytes(answer["transactionHash"]),
                    tuple(_json_log(entry) for entry in answer.get("logs") or ()),
                )
            )
        return found


class Web3Batch(ChainBatch):
    """The same operations one by one through web3 (the embedded chain: nothing to batch)."""

    def prepare(
        self, sender: bytes, to: bytes, datas: Sequence[bytes]
    ) -> tuple[Prepared, list[bytes | Exception]]:
        eth = self.connection.w3.eth
        frm = ChecksumAddress(HexAddress(HexStr(to_checksum(sender))))
        nonce = int(eth.get_transaction_count(frm, "pending"))
        base_fee = eth.get_block("latest").get("baseFeePerGas")
        fees = self._fees(None if base_fee is None else int(base_fee), int(eth.gas_price))
        results: list[bytes | Exception] = []
        for data in datas:
            params: TxParams = {"from": frm, "to": to_checksum(to), "data": data}
            try:
                results.append(bytes(eth.call(params, "latest")))
            except Exception as exc:
                results.append(exc)
        return Prepared(nonce, fees), results

    def send_raw(self, raws: Sequence[bytes]) -> list[bytes | Exception]:
        eth = self.connection.w3.eth
        results: list[bytes | Exception] = []
        for raw in raws:
            try:
                results.append(bytes(eth.send_raw_transaction(raw)))
            except Exception as exc:
                results.append(exc)
        return results

    def receipts(self, hashes: Sequence[bytes]) -> list[MinedReceipt | None]:
        eth = self.connection.w3.eth
        found: list[MinedReceipt | None] = []
        for tx_hash in hashes:
            try:
                receipt = cast(Any, eth.get_transaction_receipt(HexBytes(tx_hash)))
            except TransactionNotFound:
                receipt = None
            if receipt is None or receipt.get("blockNumber") is None:
                found.append(None)
            else:
                found.append(
                    MinedReceipt(
                        int(receipt["status"]),
                        int(receipt["blockNumber"]),
                        int(receipt["gasUsed"]),
                        bytes(receipt["transactionHash"]),
                        tuple(receipt.get("logs") or ()),
                    )
                )
        return found


__all__ = [
    "BatchTransportError",
    "ChainBatch",
    "HttpBatch",
    "MinedReceipt",
    "Prepared",
    "RpcError",
    "Web3Batch",
]

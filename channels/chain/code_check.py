"""Check that a deployment's addresses hold CISE's contracts on the chain a network file names.

Every command that uses the chain runs this first, so it costs one JSON-RPC batch: eth_chainId,
eth_getCode of each contract and the token's decimals()/totalSupply(). A contract matches when its
runtime code equals the artifact's `deployedBytecode` outside the artifact's immutable ranges
(the constructor fills those), and, when the network file records code hashes, when the keccak256
of its code equals the recorded one. The token is the CISE `Token` when the network deployed it;
otherwise an external ERC20, which must have code, answer decimals() with 6 (money is in
millionths of a euro) and totalSupply(), and match its recorded code hash.

The comparison (`mismatches`) is pure; `read_node` and `check_deployment` do the one round trip.
It must never send a transaction, never wait without a bound, and never accept code it could not
read as a match.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from web3 import Web3
from web3.types import RPCEndpoint

from channels.chain.artifacts import Artifact, load_artifact
from channels.chain.connection import Connection
from channels.chain.deploy import Deployment
from channels.codec.keccak import keccak
from channels.core.types import Address, to_checksum

MONEY_DECIMALS = 6
DEFAULT_TIMEOUT = 5.0
_DECIMALS = "0x313ce567"  # decimals()
_TOTAL_SUPPLY = "0x18160ddd"  # totalSupply()


class NodeError(Exception):
    """The node did not answer, or answered something that is not a JSON-RPC answer."""


@dataclass(frozen=True, slots=True)
class Contract:
    """One contract of a deployment: its network-file field, address and possible artifacts."""

    field: str
    address: Address
    artifacts: tuple[str, ...]  # any of these; the first is the one named in errors


@dataclass(frozen=True, slots=True)
class Mismatch:
    """One thing on the chain that is not what the network file says."""

    field: str  # the network-file field ("channel_manager", ...) or "chain_id"
    address: Address | None
    problem: str

    def __str__(self) -> str:
        where = "" if self.address is None else f" at {to_checksum(self.address)}"
        return f"{self.field}{where}: {self.problem}"


def contracts(deployment: Deployment) -> tuple[Contract, ...]:
    """The contracts of `deployment` to check (those it names), by network-file field.

    The token is listed with the `Token` artifact; an external token is accepted by its answers
    instead (see `mismatches`). A network deployed before governance has the ungoverned manager and
    registry.
    """
    governed = deployment.governed
    manager = ("GovernedChannelManager",) if governed else ("ChannelManager",)
    registry = ("GovernedAssetRegistry",) if governed else ("AssetRegistry",)
    named: list[tuple[str, Address | None, tuple[str, ...]]] = [
        ("token", deployment.token, ("Token",)),
        ("channel_manager", deployment.manager, manager),
        ("asset_registry", deployment.asset_registry, registry),
        ("membership", deployment.membership, ("Membership",)),
        ("governor", deployment.governor, ("CiseGovernor",)),
        ("timelock", deployment.timelock, ("CiseTimelock",)),
        ("network_parameters", deployment.parameters, ("NetworkParameters",)),
        ("financing_factory", deployment.financing_factory, ("FinancingPoolFactory",)),
        ("treasury", deployment.treasury, ("Treasury",)),
    ]
    return tuple(Contract(f, a, names) for f, a, names in named if a is not None)


def same_code(artifact: Artifact, code: bytes) -> bool:
    """Whether runtime `code` is `artifact`'s, the immutable ranges not compared."""
    expected = artifact.deployed_bytecode
    if len(code) != len(expected) or not expected:
        return False
    masked_code, masked_expected = bytearray(code), bytearray(expected)
    for start, length in artifact.immutable_ranges:
        masked_code[start : start + length] = bytes(length)
        masked_expected[start : start + length] = bytes(length)
    return masked_code == masked_expected


def code_hash(code: bytes) -> bytes:
    """The keccak256 of a contract's runtime code (what a network file's `code_hashes` hold)."""
    return keccak(code)


def requests_for(deployment: Deployment) -> list[tuple[str, list[Any]]]:
    """The JSON-RPC calls of the check, in the order `mismatches` reads their answers."""
    calls: list[tuple[str, list[Any]]] = [("eth_chainId", [])]
    calls += [("eth_getCode", [to_checksum(c.address), "latest"]) for c in contracts(deployment)]
    token = to_checksum(deployment.token)
    calls += [
        ("eth_call", [{"to": token, "data": _DECIMALS}, "latest"]),
        ("eth_call", [{"to": token, "data": _TOTAL_SUPPLY}, "latest"]),
    ]
    return calls


@dataclass(frozen=True, slots=True)
class ChainAnswers:
    """What the node said: its chain id, each contract's code (by field), the token's answers."""

    chain_id: int
    codes: Mapping[str, bytes]
    decimals: int | None  # None: no answer (reverted, or not a uint)
    total_supply: int | None


def parse_answers(deployment: Deployment, answers: Sequence[object]) -> ChainAnswers:
    """The answers to `requests_for(deployment)` (each a result or an Exception); `NodeError`
    when the chain id or a code is not what a JSON-RPC node answers."""
    listed = contracts(deployment)
    if len(answers) != 1 + len(listed) + 2:
        raise NodeError(f"answered {len(answers)} requests of {1 + len(listed) + 2}")
    chain_id = answers[0]
    if isinstance(chain_id, Exception):
        raise NodeError(f"eth_chainId failed: {chain_id}")
    parsed_id = _quantity(chain_id)
    if parsed_id is None:
        raise NodeError(f"its chain id is {str(chain_id)[:80]!r}, not a number")
    codes: dict[str, bytes] = {}
    for contract, code in zip(listed, answers[1 : 1 + len(listed)], strict=True):
        if isinstance(code, Exception):
            raise NodeError(f"eth_getCode of {contract.field} failed: {code}")
        data = _data(code)
        if data is None:
            raise NodeError(f"eth_getCode of {contract.field} answered {str(code)[:80]!r}")
        codes[contract.field] = data
    decimals, supply = (_uint(a) for a in answers[-2:])
    return ChainAnswers(parsed_id, codes, decimals, supply)


def mismatches(
    deployment: Deployment,
    found: ChainAnswers,
    code_hashes: Mapping[str, bytes] | None = None,
) -> list[Mismatch]:
    """Every way the chain differs from `deployment` (empty: it is CISE's network). With
    `code_hashes` (field -> keccak of runtime code, from the network file) each code is also held
    to its recorded hash; without them, to the artifacts only."""
    if found.chain_id != deployment.chain_id:
        return [
            Mismatch(
                "chain_id",
                None,
                f"the node runs chain {found.chain_id}, the network file says "
                f"{deployment.chain_id}",
            )
        ]
    hashes = code_hashes or {}
    out: list[Mismatch] = []
    for contract in contracts(deployment):
        code = found.codes.get(contract.field, b"")
        problem = _code_problem(contract, code, found)
        recorded = hashes.get(contract.field)
        if problem is None and recorded is not None and code_hash(code) != recorded:
            problem = (
                f"code hash 0x{code_hash(code).hex()} is not the network file's 0x{recorded.hex()}"
            )
        if problem is not None:
            out.append(Mismatch(contract.field, contract.address, problem))
    return out


def _code_problem(contract: Contract, code: bytes, found: ChainAnswers) -> str | None:
    name = contract.artifacts[0]
    if not code:
        expected = "a 6-decimal ERC20 token" if contract.field == "token" else name
        return f"no code at the address (expected {expected})"
    if any(same_code(load_artifact(a), code) for a in contract.artifacts):
        return None
    if contract.field != "token":
        return f"wrong code (not {name}: another contract, or another version of it)"
    # an external ERC20: judged by its answers (and by its recorded code hash, if any)
    if found.decimals is None or found.total_supply is None:
        return "not an ERC20 token (no answer to decimals() or totalSupply())"
    if found.decimals != MONEY_DECIMALS:
        return f"token has {found.decimals} decimals, CISE money needs {MONEY_DECIMALS}"
    return None


def _quantity(value: object) -> int | None:
    if not isinstance(value, str) or not value.startswith("0x") or len(value) < 3:
        return None
    try:
        return int(value, 16)
    except ValueError:
        return None


def _data(value: object) -> bytes | None:
    if not isinstance(value, str) or not value.startswith("0x"):
        return None
    try:
        return bytes.fromhex(value[2:])
    except ValueError:
        return None


def _uint(value: object) -> int | None:
    data = None if isinstance(value, Exception) else _data(value)
    if data is None or len(data) != 32:
        return None
    return int.from_bytes(data, "big")


# ------------------------------------------------------------------------------------ the node


def post_batch(
    url: str, calls: Sequence[tuple[str, list[Any]]], timeout: float = DEFAULT_TIMEOUT
) -> list[object]:
    """One JSON-RPC batch POST: each call's result, or an Exception for its error object.
    `NodeError` naming what went wrong when the node does not answer within `timeout` seconds or
    answers something that is not a JSON-RPC batch answer."""
    body = json.dumps(
        [{"jsonrpc": "2.0", "id": i, "method": m, "params": p} for i, (m, p) in enumerate(calls)]
    ).encode()
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            payload = response.read(1 << 24)
    except urllib.error.HTTPError as exc:
        raise NodeError(f"it answered HTTP {exc.code} {exc.reason}") from None
    except (TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        if isinstance(reason, TimeoutError) or isinstance(exc, TimeoutError):
            raise NodeError(f"no answer within {timeout:g} s") from None
        raise NodeError(f"cannot connect ({reason})") from None
    except Exception as exc:  # a malformed HTTP answer (http.client raises several kinds)
        raise NodeError(f"not an HTTP answer ({type(exc).__name__}: {exc})") from None
    try:
        answers = json.loads(payload)
    except ValueError:
        raise NodeError(f"it answered something that is not JSON: {payload[:80]!r}") from None
    if not isinstance(answers, list):
        raise NodeError(f"it answered {str(answers)[:120]!r}, not a JSON-RPC batch")
    by_id: dict[int, dict[str, Any]] = {}
    for answer in answers:
        if isinstance(answer, dict) and isinstance(answer.get("id"), int):
            by_id[answer["id"]] = answer
    results: list[object] = []
    for i, (method, _) in enumerate(calls):
        answer = by_id.get(i)
        if answer is None or ("result" not in answer and "error" not in answer):
            raise NodeError(f"its answer to {method} is missing or not JSON-RPC")
        if "error" in answer:
            results.append(RuntimeError(f"{method}: {answer['error']}"))
        else:
            results.append(answer["result"])
    return results


def read_node(url: str, deployment: Deployment, timeout: float = DEFAULT_TIMEOUT) -> ChainAnswers:
    """What the node at `url` holds for `deployment`, in one round trip (`NodeError` when it does
    not answer or answers garbage)."""
    return parse_answers(deployment, post_batch(url, requests_for(deployment), timeout))


def check_deployment(
    connection: Connection,
    deployment: Deployment,
    code_hashes: Mapping[str, bytes] | None = None,
) -> list[Mismatch]:
    """The mismatches between `deployment` and the chain `connection` reaches (one batch over
    HTTP; call by call on the embedded chain). `NodeError` when the node answers garbage."""
    provider = connection.w3.provider
    calls = requests_for(deployment)
    if isinstance(provider, Web3.HTTPProvider):
        answers = post_batch(str(provider.endpoint_uri), calls)
    else:
        answers = [_one(connection, method, params) for method, params in calls]
    return mismatches(deployment, parse_answers(deployment, answers), code_hashes)


def _one(connection: Connection, method: str, params: list[Any]) -> object:
    try:
        response: Any = connection.w3.provider.make_request(RPCEndpoint(method), params)
    except Exception as exc:  # eth-tester raises a revert where a node answers an error
        return exc
    if "error" in response:
        return RuntimeError(f"{method}: {response['error']}")
    result = response.get("result")
    if isinstance(result, bytes):  # eth-tester answers bytes where a node answers 0x-hex
        return "0x" + result.hex()
    if isinstance(result, int):
        return hex(result)
    return result

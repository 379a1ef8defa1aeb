"""A small table-driven ABI codec over compiled contract ABIs: calls, results, errors, events.

Built once per contract from its ABI JSON: functions by name, custom errors by 4-byte selector,
events by topic0. Addresses come out as 20 raw bytes (the CISE convention), never as hex text.
Pure: no I/O, no web3 objects; it must never guess a type that the ABI does not state.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from eth_abi.abi import decode, encode
from eth_utils.abi import collapse_if_tuple

from channels.codec.keccak import keccak

ERROR_STRING_SELECTOR = bytes.fromhex("08c379a0")  # Error(string)
PANIC_SELECTOR = bytes.fromhex("4e487b71")  # Panic(uint256)

AbiEntry = Mapping[str, Any]


def canonical_type(param: AbiEntry) -> str:
    """The canonical ABI type of one input/output entry, tuples expanded: `(uint256,bytes32)[2]`."""
    return str(collapse_if_tuple(dict(param)))


def _signature(entry: AbiEntry) -> str:
    return f"{entry['name']}({','.join(canonical_type(p) for p in entry['inputs'])})"


def _split_tuple(typ: str) -> list[str]:
    """The component types of `(t1,t2,...)`, split at top-level commas."""
    inner, parts, depth, start = typ[1:-1], [], 0, 0
    for i, char in enumerate(inner):
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(inner[start:i])
            start = i + 1
    if inner:
        parts.append(inner[start:])
    return parts


def normalise(typ: str, value: Any) -> Any:
    """A decoded ABI value in CISE form, directed by its type: addresses become 20 raw bytes."""
    if typ.endswith("]"):
        element = typ[: typ.rindex("[")]
        return tuple(normalise(element, v) for v in value)
    if typ.startswith("("):
        return tuple(normalise(t, v) for t, v in zip(_split_tuple(typ), value, strict=True))
    if typ == "address":
        return bytes.fromhex(str(value)[2:])
    return value


@dataclass(frozen=True, slots=True)
class Function:
    """One contract function: selector and the types to encode its call and decode its result."""

    name: str
    selector: bytes
    input_types: tuple[str, ...]
    output_types: tuple[str, ...]

    def encode_call(self, args: Sequence[Any]) -> bytes:
        """Calldata: selector ‖ abi.encode(args)."""
        if len(args) != len(self.input_types):
            raise TypeError(f"{self.name} takes {len(self.input_types)} arguments, got {len(args)}")
        return self.selector + encode(list(self.input_types), list(args))

    def decode_result(self, data: bytes) -> tuple[Any, ...]:
        """The decoded return values (addresses as bytes)."""
        values = decode(list(self.output_types), data)
        return tuple(normalise(t, v) for t, v in zip(self.output_types, values, strict=True))


@dataclass(frozen=True, slots=True)
class ErrorSpec:
    """One custom error: its name, argument names and types."""

    name: str
    arg_names: tuple[str, ...]
    arg_types: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class EventSpec:
    """One event: topic0 and which inputs are indexed."""

    name: str
    topic: bytes
    inputs: tuple[tuple[str, str, bool], ...]  # (name, type, indexed)
    anonymous: bool


@dataclass(frozen=True, slots=True)
class DecodedEvent:
    """An event log decoded with the ABI; `args` maps input names to CISE-form values."""

    name: str
    args: Mapping[str, Any]
    address: bytes
    block_number: int
    transaction_hash: bytes
    log_index: int


class ContractAbi:
    """The codec of one contract (or of several merged: errors and events are looked up by hash)."""

    def __init__(self, abi: Iterable[AbiEntry]) -> None:
        self.entries: tuple[AbiEntry, ...] = tuple(abi)
        self.functions: dict[str, Function] = {}
        self.errors: dict[bytes, ErrorSpec] = {}
        self.events: dict[bytes, EventSpec] = {}
        self.events_by_name: dict[str, EventSpec] = {}
        self.constructor_types: tuple[str, ...] = ()
        for entry in self.entries:
            kind = entry.get("type")
            if kind == "function":
                self.functions[entry["name"]] = Function(
                    entry["name"],
                    keccak(_signature(entry).encode())[:4],
                    tuple(canonical_type(p) for p in entry["inputs"]),
                    tuple(canonical_type(p) for p in entry.get("outputs", ())),
                )
            elif kind == "error":
                self.errors[keccak(_signature(entry).encode())[:4]] = ErrorSpec(
                    entry["name"],
                    tuple(p["name"] for p in entry["inputs"]),
                    tuple(canonical_type(p) for p in entry["inputs"]),
                )
            elif kind == "event":
                spec = EventSpec(
                    entry["name"],
                    keccak(_signature(entry).encode()),
                    tuple(
                        (p["name"], canonical_type(p), bool(p.get("indexed")))
                        for p in entry["inputs"]
                    ),
                    bool(entry.get("anonymous", False)),
                )
                self.events[spec.topic] = spec
                self.events_by_name[spec.name] = spec
            elif kind == "constructor":
                self.constructor_types = tuple(canonical_type(p) for p in entry["inputs"])

    def merged(self, other: ContractAbi) -> ContractAbi:
        """A codec knowing the entries of both (e.g. to decode a token error bubbling through)."""
        return ContractAbi((*self.entries, *other.entries))

    def function(self, name: str) -> Function:
        """The function `name`; KeyError naming it when the ABI has none."""
        try:
            return self.functions[name]
        except KeyError:
            raise KeyError(f"the ABI has no function {name!r}") from None

    def encode_constructor(self, args: Sequence[Any]) -> bytes:
        """abi.encode of the constructor arguments (appended to the creation bytecode)."""
        if len(args) != len(self.constructor_types):
            raise TypeError(
                f"constructor takes {len(self.constructor_types)} arguments, got {len(args)}"
            )
        return encode(list(self.constructor_types), list(args)) if args else b""

    def decode_error(self, data: bytes) -> tuple[str, tuple[Any, ...]] | None:
        """(name, args) of revert data: a custom error, `Error(string)` or `Panic(uint256)`."""
        if len(data) < 4:
            return None
        selector, payload = data[:4], data[4:]
        try:
            if selector == ERROR_STRING_SELECTOR:
                return "Error", tuple(decode(["string"], payload))
            if selector == PANIC_SELECTOR:
                return "Panic", tuple(decode(["uint256"], payload))
            spec = self.errors.get(selector)
            if spec is None:
                return None
            values = decode(list(spec.arg_types), payload)
            return spec.name, tuple(
                normalise(t, v) for t, v in zip(spec.arg_types, values, strict=True)
            )
        except Exception:  # eth_abi raises several unrelated types on malformed data
            return None

    def decode_log(
        self,
        topics: Sequence[bytes],
        data: bytes,
        address: bytes,
        block_number: int,
        transaction_hash: bytes,
        log_index: int,
    ) -> DecodedEvent | None:
        """Decode one log; None when its topic0 is not an event of this ABI."""
        if not topics:
            return None
        spec = self.events.get(bytes(topics[0]))
        if spec is None:
            return None
        indexed = [(n, t) for n, t, i in spec.inputs if i]
        plain = [(n, t) for n, t, i in spec.inputs if not i]
        if len(topics) != 1 + len(indexed):
            return None  # same signature, different indexing: not our event
        args: dict[str, Any] = {}
        for (name, typ), topic in zip(indexed, topics[1:], strict=True):
            # Dynamic indexed values are stored hashed; keep the hash.
            if typ in ("string", "bytes") or typ.endswith("]") or typ.startswith("("):
                args[name] = bytes(topic)
            else:
                args[name] = normalise(typ, decode([typ], bytes(topic))[0])
        values = decode([t for _, t in plain], data)
        for (name, typ), value in zip(plain, values, strict=True):
            args[name] = normalise(typ, value)
        return DecodedEvent(spec.name, args, address, block_number, transaction_hash, log_index)

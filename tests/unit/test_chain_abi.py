"""The ABI codec: calls, results, custom errors and events, against hand-made encodings."""

from __future__ import annotations

from typing import Any

from eth_abi.abi import encode

from channels.chain.abi import ContractAbi
from channels.codec.keccak import keccak

ABI: list[dict[str, Any]] = [
    {
        "type": "function",
        "name": "f",
        "inputs": [
            {"name": "who", "type": "address"},
            {
                "name": "lock",
                "type": "tuple",
                "components": [
                    {"name": "amount", "type": "uint256"},
                    {"name": "secrethash", "type": "bytes32"},
                ],
            },
            {"name": "proof", "type": "bytes32[2]"},
        ],
        "outputs": [{"name": "", "type": "address"}, {"name": "", "type": "address[]"}],
    },
    {
        "type": "error",
        "name": "Bad",
        "inputs": [{"name": "x", "type": "uint256"}, {"name": "who", "type": "address"}],
    },
    {
        "type": "event",
        "name": "Did",
        "anonymous": False,
        "inputs": [
            {"name": "id", "type": "uint256", "indexed": True},
            {"name": "who", "type": "address", "indexed": True},
            {"name": "amount", "type": "uint256", "indexed": False},
        ],
    },
    {"type": "constructor", "inputs": [{"name": "t", "type": "address"}]},
]
WHO = bytes(range(1, 21))


def test_call_encoding_uses_the_canonical_signature() -> None:
    codec = ContractAbi(ABI)
    spec = codec.function("f")
    assert spec.selector == keccak(b"f(address,(uint256,bytes32),bytes32[2])")[:4]
    data = spec.encode_call([WHO, (5, b"\x07" * 32), [b"\x01" * 32, b"\x02" * 32]])
    assert data[4:] == encode(
        ["address", "(uint256,bytes32)", "bytes32[2]"],
        [WHO, (5, b"\x07" * 32), [b"\x01" * 32, b"\x02" * 32]],
    )
    result = spec.decode_result(encode(["address", "address[]"], [WHO, [WHO, WHO]]))
    assert result == (WHO, (WHO, WHO))  # addresses come back as raw bytes


def test_errors_are_decoded_by_selector() -> None:
    codec = ContractAbi(ABI)
    data = keccak(b"Bad(uint256,address)")[:4] + encode(["uint256", "address"], [9, WHO])
    assert codec.decode_error(data) == ("Bad", (9, WHO))
    string = bytes.fromhex("08c379a0") + encode(["string"], ["plain"])
    assert codec.decode_error(string) == ("Error", ("plain",))
    panic = bytes.fromhex("4e487b71") + encode(["uint256"], [0x11])
    assert codec.decode_error(panic) == ("Panic", (0x11,))
    assert codec.decode_error(b"\xde\xad\xbe\xef") is None
    assert codec.decode_error(data[:10]) is None  # truncated payload


def test_events_decode_indexed_and_plain_inputs() -> None:
    codec = ContractAbi(ABI)
    topic0 = keccak(b"Did(uint256,address,uint256)")
    topics = [topic0, (3).to_bytes(32, "big"), b"\x00" * 12 + WHO]
    event = codec.decode_log(topics, encode(["uint256"], [77]), WHO, 10, b"\xaa" * 32, 2)
    assert event is not None
    assert event.name == "Did" and dict(event.args) == {"id": 3, "who": WHO, "amount": 77}
    assert codec.decode_log([b"\x00" * 32], b"", WHO, 10, b"\xaa" * 32, 2) is None
    assert codec.decode_log(topics[:2], b"", WHO, 10, b"\xaa" * 32, 2) is None


def test_constructor_and_merge() -> None:
    codec = ContractAbi(ABI)
    assert codec.encode_constructor([WHO]) == encode(["address"], [WHO])
    other = ContractAbi([{"type": "error", "name": "Other", "inputs": []}])
    merged = codec.merged(other)
    assert merged.decode_error(keccak(b"Other()")[:4]) == ("Other", ())
    assert "f" in merged.functions

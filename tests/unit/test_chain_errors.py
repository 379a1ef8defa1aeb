"""Revert data is found in each backend's exception shape (eth-tester, anvil, ganache)."""

from __future__ import annotations

from typing import Any

from eth_abi.abi import encode
from web3.exceptions import ContractCustomError, ContractLogicError, Web3RPCError

from channels.chain.abi import ContractAbi
from channels.chain.connection import NonceTakenError, send_failure
from channels.chain.errors import ChainError, chain_error_from, is_revert, revert_data

ABI = ContractAbi([{"type": "error", "name": "Bad", "inputs": [{"name": "x", "type": "uint256"}]}])
SELECTOR = next(iter(ABI.errors))
DATA = SELECTOR + encode(["uint256"], [4])


class EthTesterFailureError(Exception):
    """The shape of eth-tester's TransactionFailed as web3 re-raises it."""


def test_anvil_shape_hex_data() -> None:
    exc = ContractCustomError("0x" + DATA.hex(), data="0x" + DATA.hex())
    assert revert_data(exc) == DATA
    error = chain_error_from(exc, ABI, "C.f")
    assert (error.name, error.error_args, error.function) == ("Bad", (4,), "C.f")
    assert str(error) == "C.f: Bad(4)"


def test_ganache_shape_dict_data() -> None:
    exc = ContractLogicError("execution reverted", data={"result": "0x" + DATA.hex()})
    assert revert_data(exc) == DATA


def test_rpc_error_shape() -> None:
    response: Any = {"error": {"data": {"result": "0x" + DATA.hex()}}}
    exc = Web3RPCError("boom", rpc_response=response)
    assert revert_data(exc) == DATA


def test_eth_tester_shapes() -> None:
    exc = EthTesterFailureError(f"execution reverted: {DATA!r}")
    assert revert_data(exc) == DATA
    assert chain_error_from(exc, ABI).name == "Bad"
    plain = EthTesterFailureError("execution reverted: not enough")
    assert revert_data(plain) is None and is_revert(plain)
    error = chain_error_from(plain, ABI)
    assert (error.name, error.error_args) == ("Error", ("not enough",))


def test_unknown_revert_keeps_the_message() -> None:
    exc = ContractLogicError("execution reverted", data="0x12345678")
    error = chain_error_from(exc, ABI)
    assert isinstance(error, ChainError) and error.name == "Reverted"
    assert error.data == bytes.fromhex("12345678")
    assert not is_revert(ConnectionError("refused"))


def test_a_used_nonce_is_recognised_in_each_nodes_words_and_a_high_one_is_not() -> None:
    """A signed transaction already mined before a stop is re-sent at start: the node's answer
    must read as "nonce taken" (the manager then looks for its receipt) on every backend,
    including the embedded chain's py-evm, which words a nonce above the account's the same way."""
    taken = [
        "nonce too low",  # geth, anvil
        "Nonce too low. Expected nonce to be 7 but got 5.",  # ganache
        "Invalid transaction nonce: Expected 7, but got 5",  # py-evm
    ]
    for text in taken:
        assert isinstance(send_failure(Exception(text), ABI), NonceTakenError), text
    ahead = Exception("Invalid transaction nonce: Expected 5, but got 7")
    assert not isinstance(send_failure(ahead, ABI), NonceTakenError)

"""`ChainError`: a rejected transaction or call, with the contract's custom error decoded.

Also digs the raw revert data out of the differently shaped exceptions that web3 raises for
each backend (py-evm via eth-tester, anvil, ganache). Must never swallow an error it cannot read:
it then still raises a `ChainError` named `"Reverted"` carrying the original message.
"""

from __future__ import annotations

import ast
from typing import Any

from channels.chain.abi import ContractAbi

_TESTER_PREFIX = "execution reverted: "


class ChainError(Exception):
    """A transaction or call the chain rejected.

    `name` is the decoded custom error (`"ChannelManagerNonceTooLow"`), `"Error"` for a
    `revert("...")` string, `"Panic"` for a Solidity panic, or `"Reverted"` when nothing decodable
    came back; `args` are its decoded arguments (addresses as 20 raw bytes).
    """

    def __init__(
        self,
        name: str,
        args: tuple[Any, ...] = (),
        data: bytes = b"",
        *,
        function: str = "",
        transaction_hash: bytes | None = None,
        gas_used: int | None = None,
        detail: str = "",
    ) -> None:
        self.name = name
        self.error_args = args
        self.data = data
        self.function = function
        self.transaction_hash = transaction_hash
        self.gas_used = gas_used
        self.detail = detail
        where = f"{function}: " if function else ""
        shown = ", ".join(_show(a) for a in args)
        extra = f" ({detail})" if detail and name == "Reverted" else ""
        super().__init__(f"{where}{name}({shown}){extra}")


def _show(value: object) -> str:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    return repr(value)


def _hex_bytes(text: str) -> bytes | None:
    try:
        return bytes.fromhex(text[2:] if text.startswith("0x") else text)
    except ValueError:
        return None


def revert_data(exc: BaseException) -> bytes | None:
    """The raw revert data carried by a web3 / eth-tester exception, if any."""
    data: object = getattr(exc, "data", None)
    if isinstance(data, dict):  # ganache: {"result": "0x…", "reason": …}
        data = data.get("result") or data.get("data")
    if isinstance(data, str) and data.startswith("0x"):
        return _hex_bytes(data)
    rpc = getattr(exc, "rpc_response", None)
    if isinstance(rpc, dict):
        error = rpc.get("error")
        if isinstance(error, dict):
            inner = error.get("data")
            if isinstance(inner, dict):
                inner = inner.get("result") or inner.get("data")
            if isinstance(inner, str) and inner.startswith("0x"):
                return _hex_bytes(inner)
    message = str(exc.args[0]) if exc.args else ""
    if message.startswith(_TESTER_PREFIX):
        # eth-tester renders the raw revert bytes as a Python bytes literal.
        rest = message[len(_TESTER_PREFIX) :]
        if rest.startswith(("b'", 'b"')):
            try:
                literal = ast.literal_eval(rest)
            except (ValueError, SyntaxError):
                return None
            return literal if isinstance(literal, bytes) else None
    return None


def revert_reason(exc: BaseException) -> str | None:
    """A plain `revert("reason")` text when the backend decoded it and dropped the data."""
    message = str(exc.args[0]) if exc.args else ""
    if message.startswith(_TESTER_PREFIX):
        rest = message[len(_TESTER_PREFIX) :]
        if not rest.startswith(("b'", 'b"')):
            return rest
    return None


def is_revert(exc: BaseException) -> bool:
    """Whether `exc` says the EVM reverted (rather than, e.g., a transport failure)."""
    if revert_data(exc) is not None or revert_reason(exc) is not None:
        return True
    text = str(exc).lower()
    return "revert" in text or "execution reverted" in text


def chain_error_from(
    exc: BaseException,
    abi: ContractAbi,
    function: str = "",
    transaction_hash: bytes | None = None,
    gas_used: int | None = None,
) -> ChainError:
    """The `ChainError` for a revert exception, with the custom error decoded by `abi`."""
    data = revert_data(exc)
    if data is not None:
        decoded = abi.decode_error(data)
        if decoded is not None:
            name, args = decoded
            return ChainError(
                name,
                args,
                data,
                function=function,
                transaction_hash=transaction_hash,
                gas_used=gas_used,
            )
    reason = revert_reason(exc)
    if reason is not None:
        return ChainError(
            "Error", (reason,), b"", function=function, transaction_hash=transaction_hash
        )
    return ChainError(
        "Reverted",
        (),
        data or b"",
        function=function,
        transaction_hash=transaction_hash,
        gas_used=gas_used,
        detail=str(exc)[:500],
    )

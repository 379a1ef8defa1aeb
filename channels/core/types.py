"""Domain types of the channel core (NewTypes over int and bytes, as raiden/utils/typing.py).

Money is always `int` in token units (1 unit = €0.000001, DESIGN §2); floats never touch it.
"""

from typing import NewType

Address = NewType("Address", bytes)  # 20 raw bytes
ChannelId = NewType("ChannelId", int)
Nonce = NewType("Nonce", int)
TokenAmount = NewType("TokenAmount", int)
BlockNumber = NewType("BlockNumber", int)
Secret = NewType("Secret", bytes)  # 32 bytes
SecretHash = NewType("SecretHash", bytes)  # keccak256(secret)
LocksRoot = NewType("LocksRoot", bytes)  # 32 bytes
Signature = NewType("Signature", bytes)  # 65 bytes r‖s‖v, low-s
PaymentId = NewType("PaymentId", int)  # uint64, chosen by the payer, makes requests idempotent

UINT256_MAX = 2**256 - 1
UINT96_MAX = 2**96 - 1  # what the channel manager stores an amount in
UINT64_MAX = 2**64 - 1
EMPTY_LOCKS_ROOT = LocksRoot(b"\x00" * 32)
ZERO_AMOUNT = TokenAmount(0)


def to_checksum(address: bytes) -> str:
    """EIP-55 checksummed hex of a 20-byte address, for display only."""
    from channels.codec.keccak import keccak

    hex_address = address.hex()
    digest = keccak(hex_address.encode()).hex()
    return "0x" + "".join(
        c.upper() if c.isalpha() and int(digest[i], 16) >= 8 else c
        for i, c in enumerate(hex_address)
    )


def parse_address(text: str) -> Address:
    """Parse a 0x-prefixed 40-hex-digit address; ValueError naming the input otherwise."""
    if not isinstance(text, str) or not text.startswith("0x") or len(text) != 42:
        raise ValueError(f"not an address (want 0x + 40 hex digits): {text!r}")
    try:
        raw = bytes.fromhex(text[2:])
    except ValueError:
        raise ValueError(f"not an address (bad hex): {text!r}") from None
    return Address(raw)

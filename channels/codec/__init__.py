"""Pure encoders: EIP-712 digests, keccak, signature recovery. No keys, no I/O."""

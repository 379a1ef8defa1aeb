"""The chain client: everything CISE does on and reads from an EVM chain.

- `connection`: one synchronous web3 connection (embedded py-evm or JSON-RPC) and the transaction
  pipeline (local signing, nonces, fees, receipts, revert decoding into `errors.ChainError`).
- `client`: the `ChainClient` port and `Web3ChainClient`, one typed method per contract function.
- `deploy` / `artifacts`: deploy Token + ChannelManager from the packaged compiled artifacts.
- `events`: chain logs -> `ContractReceive*` state changes, and the `ChainFollower` cursor.
- `executor`: the core's `ContractSend*` events -> transactions.
- `nodes`: anvil / ganache as local child processes for tests and demos.

Synchronous by design (AsyncWeb3 does not run under trio): trio code calls it through
`trio.to_thread.run_sync`. Nothing here decides channel logic; `channels.core` does.
"""

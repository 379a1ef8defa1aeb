"""The chain client: everything CISE does on and reads from an EVM chain.

- `connection`: one synchronous web3 connection (embedded py-evm or JSON-RPC) and the transaction
  pipeline (local signing, nonces, fees, receipts, revert decoding into `errors.ChainError`).
- `client`: the `ChainClient` port and `Web3ChainClient`, one typed method per contract function.
- `deploy` / `artifacts`: deploy a network (Token, the governed ChannelManager and AssetRegistry,
  Membership, NetworkParameters, CiseGovernor + timelock) from the packaged compiled artifacts.
- `assets`: the AssetRegistry client (assets, versioned splits, ledger anchors, history).
- `governance`: membership, proposals and votes, the governed network parameters.
- `events`: chain logs -> `ContractReceive*` state changes, and the `ChainFollower` cursor.
- `executor`: the core's `ContractSend*` events -> transactions.
- `nodes`: anvil / ganache as local child processes for tests and demos.

Synchronous by design (AsyncWeb3 does not run under trio): trio code calls it through
`trio.to_thread.run_sync`. Nothing here decides channel logic; `channels.core` does.
"""

"""The watchtower: guards offline parties' channels on chain (issue 6; DESIGN §3, §5).

A guarded party hands its tower the partner's latest signed balance proof with its own signed
`MonitorRequest`; when the partner closes with an older state and the guarded party is away, the
tower submits that proof (`updateBalanceProofFor`) within the challenge period, and the contract
pays it the reward named in the request at settle.

- `core`: the decisions, pure (which requests to hold, chain events, when to answer a close).
- `messages`: the local API's frames and the tower's EIP-712 receipt.
- `store`: the tower's sqlite file (O(1) per channel; nothing left of a settled channel).
- `service`: the trio shell (API on 127.0.0.1, chain follower, updates handed to the account's
  transaction manager, `channels.chain.txmanager`, on its batched path: its only sender).
- `sender`: an update's call and durable key; `outbox`: the manager's records in the tower file.
- `client`: the guarded party's side (`TowerGuard`, sessions, request building).
- `bench`, `bench_peer`: `cise bench watchtower`.

A shell around `channels`: it must never import hub, assets or settlement, never listen beyond
127.0.0.1, and never hold any key but its own chain account's.
"""

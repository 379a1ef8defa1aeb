"""Benchmarks of the real channel pieces (core, signer, wire, transport, store) end to end.

Each benchmark is importable without the `cise` package and returns a plain dict, which
`cise bench ... --json` prints. Benchmarks start their own peer processes and always stop them.
"""

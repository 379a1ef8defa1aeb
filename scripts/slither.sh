#!/usr/bin/env bash
# Static analysis of contracts_solidity/ with Slither, without a native solc (DESIGN §6).
#
#   SLITHER=/path/to/venv/bin/slither scripts/slither.sh [extra slither args]
#
# Slither (slither-analyzer 0.11.6) conflicts with web3 8, so it lives in its own venv, named by
# $SLITHER. The script writes the Hardhat build-info of the pinned solc-js compilation into a
# temporary folder (with links to contracts_solidity/ and node_modules/ so that Slither finds the
# sources), runs Slither there with contracts_solidity/slither.config.json, and fails on any
# Medium or High finding in our own contracts. Exclusions: contracts_solidity/slither.exclusions.md.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
: "${SLITHER:?set SLITHER to the slither executable of its own venv (it cannot share the venv of web3 8)}"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/cise-slither.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

node "$ROOT/scripts/slither_buildinfo.mjs" "$WORK" >/dev/null
ln -s "$ROOT/contracts_solidity" "$WORK/contracts_solidity"
ln -s "$ROOT/node_modules" "$WORK/node_modules"

cd "$WORK"
# Slither warns that it cannot run hardhat to read its config; with --hardhat-ignore-compile it does
# not need to, so that line is dropped. pipefail keeps Slither's exit status.
"$SLITHER" . --config-file "$ROOT/contracts_solidity/slither.config.json" "$@" 2>&1 \
  | { grep -v '^Problem executing hardhat' || true; }

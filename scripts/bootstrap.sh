#!/usr/bin/env bash
# Installs everything CISE needs on a fresh machine (Python 3.11, node 20): the Python package and
# its dev tools in .venv, the pinned Solidity toolchain and local nodes from package-lock.json, and
# Slither in its own venv (.venv-slither: slither-analyzer's pins conflict with web3 8).
# Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[dev]'
npm ci --no-audit --no-fund --loglevel=error
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  # the dashboard's browser test: Debian's Chromium and ChromeDriver (no browser download by a tool)
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    chromium chromium-driver >/dev/null
fi
if [ "${CISE_SKIP_SLITHER:-0}" != 1 ]; then
  [ -x .venv-slither/bin/python ] || "$PYTHON" -m venv .venv-slither
  .venv-slither/bin/python -m pip install -q --disable-pip-version-check -r scripts/slither-requirements.txt
fi

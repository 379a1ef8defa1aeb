#!/usr/bin/env bash
# README command 2: install what is needed, then run every check CI runs:
# ruff, mypy (strict on channels/, hub/, assets/), import-linter, artifact freshness, Slither, and the whole
# pytest suite (unit, contract, property, integration against anvil and ganache processes).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
export PATH="$PWD/.venv/bin:$PATH"
export PYTHONPATH="$PWD"  # import-linter finds packages on sys.path, not through the editable finder
echo "== ruff";          ruff check . && ruff format --check .
echo "== mypy";          mypy channels hub assets watchtower settlement api cise
echo "== import-linter"; lint-imports
echo "== artifacts";     node scripts/compile_contracts.mjs --check
echo "== slither";       SLITHER="$PWD/.venv-slither/bin/slither" bash scripts/slither.sh
# two xdist workers (the slow tests wait on nodes and processes, not the CPU); tests that need a
# fixed port share an xdist_group; the 30 slowest tests close every log
echo "== pytest";        python -m pytest -q -p no:cacheprovider -n 2 --dist loadgroup --durations=30 "$@"

#!/usr/bin/env bash
# Lint, type checks and the whole test suite, in the environment that is active (extra arguments go to pytest).
set -euo pipefail
cd "$(dirname "$0")/.."
ruff check .
ruff format --check .
mypy corrsteer_core
python -m pytest "$@"

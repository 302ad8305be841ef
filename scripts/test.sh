#!/usr/bin/env bash
# Set up (if needed), lint, and run the whole test suite on all cores.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
ruff check .
ruff format --check .
python -m pytest -n "${PYTEST_WORKERS:-auto}" --dist loadfile "$@"

#!/usr/bin/env bash
# Create .venv and install sdekit with its test, data and docs extras. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
. .venv/bin/activate
python -m pip install -q --upgrade pip
# The CPU build of torch first, so that resolving torch>=2.1 never pulls a multi-GB CUDA build.
if ! python -c "import torch" 2>/dev/null; then
    python -m pip install -q "torch==2.13.0" || python -m pip install -q "torch>=2.1"
fi
python -m pip install -q -e ".[test,data,docs]"

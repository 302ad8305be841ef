#!/usr/bin/env bash
# Set up (if needed), lint, run the whole test suite on all cores, and build the documentation.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
ruff check .
ruff format --check .
python -m pytest -n "${PYTEST_WORKERS:-auto}" --dist loadfile "$@"
# The documentation site: broken links, missing references and docstring errors fail the build.
site=$(mktemp -d)
trap 'rm -rf "$site"' EXIT
NO_MKDOCS_2_WARNING=1 mkdocs build --strict --site-dir "$site"

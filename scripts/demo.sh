#!/usr/bin/env bash
# Set up (if needed) and run the main job: train on the embedded digits data, sample with every
# sampler, and print the quality-vs-evaluations table. Extra arguments go to `sdekit-score demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
sdekit-score demo "$@"

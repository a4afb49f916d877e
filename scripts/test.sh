#!/usr/bin/env bash
# Install (once) and run the whole test suite: layer contracts, then pytest (unit, http, integration).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
export RSIM_CACHE_DIR=${RSIM_CACHE_DIR:-$PWD/.cache}
.venv/bin/lint-imports --no-cache pyproject.toml
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"

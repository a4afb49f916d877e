#!/usr/bin/env sh
# Planner container (and the CPU profile). RSIM_EMBEDDED=1 serves the embedded Gemma 3 270M (CPU profile).
set -eu
if [ "${RSIM_EMBEDDED:-0}" = "1" ] && [ -z "${RSIM_PLANNER_MODEL:-}" ]; then
  RSIM_PLANNER_MODEL=$(python3 -c 'from clients.embedded import ensure_embedded_model; print(ensure_embedded_model())')
  export RSIM_PLANNER_MODEL
fi
if [ -z "${RSIM_PLANNER_MODEL:-}" ] && [ -z "${RSIM_PLANNER_CHECKPOINT:-}" ]; then
  echo "set RSIM_PLANNER_MODEL (HF folder or hub id) or RSIM_PLANNER_CHECKPOINT" >&2
  exit 2
fi
exec rsim serve planner --host "${RSIM_HOST:-0.0.0.0}" --port "${RSIM_PORT:-8001}" --log-level "${RSIM_LOG_LEVEL:-info}"

#!/usr/bin/env sh
# Trainer container: `rsim train` with the mounted config; extra arguments are --key=value overrides.
# RSIM_TRAIN_RUN_DIR (compose: a folder in the checkpoints volume) replaces the config's run_dir, so the
# checkpoints land where the planner serves them from.
set -eu
: "${RSIM_TRAIN_CONFIG:?set RSIM_TRAIN_CONFIG to a training YAML (mounted into the container)}"
if [ -n "${RSIM_TRAIN_RUN_DIR:-}" ]; then
  exec rsim train --config "$RSIM_TRAIN_CONFIG" "--run_dir=$RSIM_TRAIN_RUN_DIR" "$@"
fi
exec rsim train --config "$RSIM_TRAIN_CONFIG" "$@"

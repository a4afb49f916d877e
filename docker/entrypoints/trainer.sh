#!/usr/bin/env sh
# Trainer container: `rsim train` with the mounted config; extra arguments are --key=value overrides.
set -eu
: "${RSIM_TRAIN_CONFIG:?set RSIM_TRAIN_CONFIG to a training YAML (mounted into the container)}"
exec rsim train --config "$RSIM_TRAIN_CONFIG" "$@"

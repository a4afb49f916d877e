#!/usr/bin/env bash
# Install the proxies rsim is compared with, each in its own venv under ${RSIM_PEERS_DIR:-.work/peers}:
#   optillm  (PyPI optillm; torch 2.13.0 first so pip takes the CPU build instead of GBs of CUDA wheels)
#   litellm  (PyPI litellm[proxy]; run with one worker and no database)
# Used by `python -m loadtests.bench_passthrough --peers optillm,litellm`. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
dir=${RSIM_PEERS_DIR:-.work/peers}
pip_q() { "$1/bin/pip" install -q --disable-pip-version-check "${@:2}" 2>&1 | { grep -v "^WARNING: Location" >&2 || true; }; }
for peer in "${@:-optillm litellm}"; do
  for p in $peer; do
    venv="$dir/$p"
    [ -f "$venv/.installed" ] && continue
    echo "installing $p into $venv ..." >&2
    "$PY" -m venv "$venv"
    pip_q "$venv" --upgrade pip
    case $p in
      optillm) pip_q "$venv" torch==2.13.0 && pip_q "$venv" optillm ;;
      litellm) pip_q "$venv" "litellm[proxy]" ;;
      *) echo "unknown peer: $p (known: optillm litellm)" >&2; exit 2 ;;
    esac
    touch "$venv/.installed"
  done
done

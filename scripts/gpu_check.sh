#!/usr/bin/env bash
# The GPU checks, in one run on a CUDA machine (e.g. a lent H100/H200 with torch, transformers and peft, but
# not this project's web dependencies, which travel as wheels in .whl/ when given):
#   1. scripts/gpu_smoke.sh: the planner's hf backend on CUDA (random Qwen2.5-0.5B architecture), decision
#      latency and decisions/s with micro-batching on and off;
#   2. the trainer on CUDA: the GRPO learning test and the joint-mode tests (λ, masking) with tiny models.
# Writes what it prints to $OUT (or ./gpu-check) as gpu-smoke.md and gpu-tests.log.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-gpu-check}
mkdir -p "$out"
if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || exit 1
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONUNBUFFERED=1
python3 -c 'import torch, transformers, peft; print("torch", torch.__version__, "cuda", torch.version.cuda,
  "transformers", transformers.__version__, "peft", peft.__version__, torch.cuda.get_device_name(0))'
rc=0
timeout 360 bash scripts/gpu_smoke.sh --seconds ${GPU_SMOKE_SECONDS:-5} --latency-n 50 --out "$out/gpu-smoke.md" \
  2>&1 | tee "$out/gpu-smoke.log" || rc=1
timeout 240 python3 -m pytest -q -p no:cacheprovider -o addopts="" \
  tests/unit/training/test_learning.py::test_grpo_learns_to_verify_then_terminate tests/unit/training/test_joint.py \
  2>&1 | tee "$out/gpu-tests.log" || rc=1
exit $rc

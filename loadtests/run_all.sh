#!/usr/bin/env bash
# The full benchmark and soak set behind docs/performance.md and docs/reliability.md, one after another
# (they must not share the machine). JSON and logs go to ${OUT:-.work/bench}; about 50 minutes on 2 cores.
#   MODEL: the HF folder of the model the real runs use (default: the embedded Gemma 3 270M conversion)
#   ONLY:  space-separated subset of the names below
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-.work/bench}
MODEL=${MODEL:-${RSIM_CACHE_DIR:-$HOME/.cache/rsim}/gemma-3-270m}
TINY=${TINY:-.work/tiny}
py=.venv/bin/python
mkdir -p "$OUT"
[ -d "$MODEL" ] || { echo "no model at $MODEL: run 'bash scripts/up.sh' once (it converts Gemma), or set MODEL" >&2; exit 2; }
[ -d "$TINY" ] || "$py" -c "from pathlib import Path; from tests.support.tiny_model import build_tiny_model; build_tiny_model(Path('$TINY'))"
bash loadtests/install_peers.sh optillm litellm

run() {
  local name=$1; shift
  if [ -n "${ONLY:-}" ] && [[ " $ONLY " != *" $name "* ]]; then return; fi
  echo "== $name: python -m $* ($(date -u +%H:%M:%S))" >&2
  "$py" -m "$@" --out "$OUT/$name.json" > "$OUT/$name.log" 2>&1 || { echo "$name failed: see $OUT/$name.log" >&2; return 1; }
  tail -n 25 "$OUT/$name.log" | grep -v "round .* runs" >&2 || true
}

run passthrough loadtests.bench_passthrough --peers optillm,litellm --concurrency 1,16,64,256 --rounds 3 --seconds 5
run step-cpu loadtests.bench_step_cpu --concurrency 1,16,64 --rounds 3 --seconds 5
run step-cpu-streamed loadtests.bench_step_cpu --concurrency 1,16,64 --rounds 3 --seconds 5 --tokens-per-s 2000
run planner-batching loadtests.bench_planner_batching --model "$MODEL" --concurrency 1,8,64 --rounds 2 --seconds 45
run stepwise loadtests.bench_stepwise --model "$MODEL" --rounds 3
run load-sim loadtests.load --users 64 --seconds 60
run load-sim-passthrough loadtests.load --users 64 --seconds 60 --passthrough --endpoints chat,chat_stream
run load-vllm loadtests.load --reasoner vllm --model "$MODEL" --planner "$MODEL" --users 8 --seconds 120
run soak loadtests.soak --minutes 10 --concurrency 256 --fault-rate 0.05 --planner-model "$TINY"

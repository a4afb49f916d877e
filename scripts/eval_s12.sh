#!/usr/bin/env bash
# The s12 evaluation (docs/eval-instruct.md, fifth run): 200 held-out problems, s11's loop and budgets, against the
# embedded reasoner served on :8002 as `rsim up` serves it. Resumable: each rsim eval skips the items its records
# already hold. Usage: scripts/eval_s12.sh METHOD...   (records in .work/eval/s12; then rsim eval report .work/eval/s12)
# A trained planner: CHECKPOINT=runs/gemma-values/checkpoints/latest LABEL=rsim:gated@values scripts/eval_s12.sh rsim:gated
set -euo pipefail
cd "$(dirname "$0")/.."
for m in "$@"; do
  echo "=== $m $(date -u +%H:%M:%S)"
  .venv/bin/rsim eval --dataset "synthetic:steps=4-6,scale=3,seed=20261207" --limit 200 --methods "$m" \
    --reasoner-url http://127.0.0.1:8002/v1 --reasoner-model qwen2.5-coder-1.5b-instruct \
    --planner-model "${RSIM_CACHE_DIR:-$HOME/.cache/rsim}/gemma-3-270m" ${CHECKPOINT:+--checkpoint "$CHECKPOINT"} \
    ${LABEL:+--label "$LABEL"} \
    --max-steps 5 --max-tokens-per-step 128 --final-max-tokens 32 --concurrency 12 \
    --first-step reasoner --unguided-tail --continue-cut --catalog configs/catalog-quiet-continuation.json \
    --out .work/eval/s12
done

#!/usr/bin/env bash
# The s13 step-value collection (issue 25 §1; docs/training.md "Step values"): 200 training questions at s12's
# difficulty (seed 11, disjoint from every evaluation seed), s12's loop and budgets, one decision point drawn per
# question, branched into quiet and four strategies, against the embedded reasoner on :8002 (prefix caching on).
# Resumable: finished questions are skipped. Usage: scripts/collect_s13.sh [more rsim train collect flags]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${RSIM_VALUES:-.work/values/s13-train.jsonl}
.venv/bin/rsim train collect --dataset "synthetic:steps=4-6,scale=3,seed=11" --limit "${LIMIT:-200}" \
  --reasoner-url http://127.0.0.1:8002/v1 --reasoner-model qwen2.5-coder-1.5b-instruct \
  --actions verification,decomposition,self_reflection,termination --decisions 1 --seed 13 \
  --max-steps 5 --max-tokens-per-step 128 --final-max-tokens 32 --first-step reasoner \
  --catalog configs/catalog-quiet-continuation.json --concurrency 3 --out "$out" "$@"

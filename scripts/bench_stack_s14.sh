#!/usr/bin/env bash
# Issue 26: /solve on `rsim up`'s default stack at 1, 4, 8, 12 concurrent episodes, one configuration per run of
# the stack (each starts `rsim up` fresh, so the reasoner and planner start cold and equal). Results:
# .work/bench-s14/<config>.json and .log. Usage: scripts/bench_stack_s14.sh CONFIG...   configs:
#   shipped      the default as rsim up starts it (shadow gate: the planner decides beside the step)
#   open-before  the planner on the critical path as the issue saw it: open gate, no prefix reuse, torch's threads
#   open-after   open gate with prefix reuse (the default) and RSIM_PLANNER_THREADS=1
#   open-t2      open gate with prefix reuse and 2 planner threads (the split's other side)
set -uo pipefail
cd "$(dirname "$0")/.."
out=.work/bench-s14
mkdir -p "$out"
for config in "$@"; do
  [ -s "$out/$config.json" ] && { echo "=== $config: done before, kept"; continue; }
  gate=shadow; env=()
  case "$config" in
    shipped) ;;
    open-before) gate=open; env=(RSIM_PLANNER_PREFIX_CACHE_ENTRIES=0) ;;
    open-after) gate=open; env=(RSIM_PLANNER_THREADS=1) ;;
    open-t2) gate=open; env=(RSIM_PLANNER_THREADS=2) ;;
    *) echo "unknown config $config"; exit 2 ;;
  esac
  echo "=== $config $(date -u +%H:%M:%S) gate=$gate ${env[*]:-}"
  env "${env[@]}" .venv/bin/rsim up --gate "$gate" > "$out/$config.up.log" 2>&1 &
  upid=$!
  for _ in $(seq 600); do curl -sf http://127.0.0.1:8000/ready >/dev/null && break; sleep 1; done
  .venv/bin/python -m loadtests.bench_embedded_stack --url http://127.0.0.1:8000 --levels 1,4,8,12 --rounds 1 \
    --out "$out/$config.json" 2>&1 | tee "$out/$config.log"
  curl -s http://127.0.0.1:8001/metrics | grep -E "^rsim_planner_(decision_seconds_(sum|count)|batch)" \
    > "$out/$config.planner-metrics.txt" || true
  kill -INT "$upid"; wait "$upid"
done
echo "=== bench done $(date -u +%H:%M:%S)"

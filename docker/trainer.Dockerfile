# rsim training worker: by default on CUDA, the pinned vLLM image (CUDA, torch, transformers) plus the
# training extras. BASE_IMAGE: any image with Python 3.11, torch and transformers (docker/smoke.sh trains
# on the CPU image, rsim/cpu).
ARG BASE_IMAGE=vllm/vllm-openai:v0.32.0
FROM ${BASE_IMAGE} AS build
# a base may end as a non-root user (rsim/cpu does); this stage only builds the wheel and is discarded
# hadolint ignore=DL3002
USER root
WORKDIR /src
COPY pyproject.toml README.md /src/
COPY service /src/service
COPY planner_server /src/planner_server
COPY clients /src/clients
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels /src

FROM ${BASE_IMAGE}
USER root
# bubblewrap: the sandbox code rewards run in (it needs user namespaces: on a host or runtime that
# forbids them, code scoring refuses to run rather than run unisolated)
RUN apt-get update && apt-get install -y --no-install-recommends bubblewrap && rm -rf /var/lib/apt/lists/*
COPY docker/requirements-planner.txt docker/requirements-train.txt /tmp/req/
# /checkpoints owned by rsim: the checkpoints volume starts writable, and runs land there by default
RUN pip install --no-cache-dir -r /tmp/req/requirements-planner.txt -r /tmp/req/requirements-train.txt \
 && rm -rf /tmp/req \
 && (id -u rsim >/dev/null 2>&1 || useradd --create-home --uid 10001 rsim) \
 && mkdir -p /models /checkpoints /cache /runs \
 && chown rsim:rsim /models /checkpoints /cache /runs
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-deps --force-reinstall /wheels/*.whl && rm -rf /wheels
COPY docker/entrypoints/trainer.sh /usr/local/bin/rsim-trainer
USER rsim
WORKDIR /home/rsim
ENV HF_HOME=/cache PYTHONUNBUFFERED=1
VOLUME ["/models", "/checkpoints", "/cache", "/runs"]
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python3", "-c", "import sys; sys.exit(0)"]
ENTRYPOINT ["rsim-trainer"]

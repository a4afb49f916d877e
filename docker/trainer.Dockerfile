# rsim training worker on CUDA: the pinned vLLM image (CUDA, torch, transformers) plus the training extras.
# syntax=docker/dockerfile:1.7
FROM vllm/vllm-openai:v0.32.0 AS build
WORKDIR /src
COPY pyproject.toml README.md /src/
COPY service /src/service
COPY planner_server /src/planner_server
COPY clients /src/clients
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels /src

FROM vllm/vllm-openai:v0.32.0
# bubblewrap: the sandbox code rewards run in (it needs user namespaces: on a host or runtime that
# forbids them, code scoring refuses to run rather than run unisolated)
RUN apt-get update && apt-get install -y --no-install-recommends bubblewrap && rm -rf /var/lib/apt/lists/*
COPY docker/requirements-planner.txt docker/requirements-train.txt /tmp/req/
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir -r /tmp/req/requirements-planner.txt -r /tmp/req/requirements-train.txt \
 && pip install --no-cache-dir --no-deps /wheels/*.whl \
 && rm -rf /wheels /tmp/req \
 && useradd --create-home --uid 10001 rsim \
 && mkdir -p /models /checkpoints /cache /runs \
 && chown rsim:rsim /models /checkpoints /cache /runs
COPY docker/entrypoints/trainer.sh /usr/local/bin/rsim-trainer
USER rsim
WORKDIR /home/rsim
ENV HF_HOME=/cache PYTHONUNBUFFERED=1
VOLUME ["/models", "/checkpoints", "/cache", "/runs"]
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python3", "-c", "import sys; sys.exit(0)"]
ENTRYPOINT ["rsim-trainer"]

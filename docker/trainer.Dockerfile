# rsim training worker on CUDA: the planner image's base plus the training extras.
# syntax=docker/dockerfile:1.7
FROM vllm/vllm-openai:v0.32.0
WORKDIR /src
COPY docker/requirements-planner.txt docker/requirements-train.txt /src/docker/
RUN pip install --no-cache-dir -r docker/requirements-planner.txt -r docker/requirements-train.txt
COPY pyproject.toml README.md /src/
COPY service /src/service
COPY planner_server /src/planner_server
COPY clients /src/clients
RUN pip install --no-cache-dir --no-deps /src \
 && useradd --create-home --uid 10001 rsim \
 && mkdir -p /models /checkpoints /cache /runs \
 && chown rsim:rsim /models /checkpoints /cache /runs
COPY docker/entrypoints/trainer.sh /usr/local/bin/rsim-trainer
USER rsim
ENV HF_HOME=/cache PYTHONUNBUFFERED=1
VOLUME ["/models", "/checkpoints", "/cache", "/runs"]
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python3", "-c", "import os,sys,time; p='/runs/current/metrics.jsonl'; sys.exit(0 if not os.path.exists(p) or time.time() - os.path.getmtime(p) < 3600 else 1)"]
ENTRYPOINT ["rsim-trainer"]

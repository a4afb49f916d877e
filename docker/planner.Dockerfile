# rsim planner server on a GPU: CUDA, torch, transformers and vLLM come from the pinned vLLM image;
# rsim and its planner extras are added on top. Models and checkpoints are volumes.
# BASE_IMAGE: the pinned vLLM image by default.
ARG BASE_IMAGE=vllm/vllm-openai:v0.32.0
FROM ${BASE_IMAGE} AS base
WORKDIR /src
COPY docker/requirements-planner.txt /src/docker/requirements-planner.txt
RUN pip install --no-cache-dir -r docker/requirements-planner.txt
COPY pyproject.toml README.md /src/
COPY service /src/service
COPY planner_server /src/planner_server
COPY clients /src/clients
RUN pip install --no-cache-dir --no-deps /src \
 && useradd --create-home --uid 10001 rsim \
 && mkdir -p /models /checkpoints /cache \
 && chown rsim:rsim /models /checkpoints /cache
COPY docker/entrypoints/planner.sh /usr/local/bin/rsim-planner
COPY docker/entrypoints/trainer.sh /usr/local/bin/rsim-trainer

FROM base AS planner
USER rsim
ENV HF_HOME=/cache RSIM_PLANNER_BACKEND=vllm PYTHONUNBUFFERED=1
VOLUME ["/models", "/checkpoints", "/cache"]
EXPOSE 8001
HEALTHCHECK --interval=10s --timeout=3s --start-period=300s --retries=3 \
  CMD ["python3", "-c", "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8001/ready', timeout=2).status != 200)"]
ENTRYPOINT ["rsim-planner"]

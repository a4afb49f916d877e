# rsim service: the orchestrator and OpenAI-compatible proxy. Slim, no torch, non-root.
# BASE_IMAGE: any Debian bookworm image with Python 3.11 and its venv module (the official one by default).
ARG BASE_IMAGE=python:3.11.11-slim-bookworm
FROM ${BASE_IMAGE} AS build
WORKDIR /src
COPY docker/requirements-service.txt /src/docker/requirements-service.txt
RUN python3 -m venv /opt/rsim && /opt/rsim/bin/pip install --no-cache-dir -r docker/requirements-service.txt
COPY pyproject.toml README.md /src/
COPY service /src/service
COPY planner_server /src/planner_server
COPY clients /src/clients
RUN /opt/rsim/bin/pip install --no-cache-dir --no-deps /src

FROM ${BASE_IMAGE}
# the traces volume mounts here: created and owned by rsim in the image, so a named volume starts writable
RUN useradd --create-home --uid 10001 rsim && install -d -o rsim -g rsim /home/rsim/traces
COPY --from=build /opt/rsim /opt/rsim
COPY docker/entrypoints/service.sh /usr/local/bin/rsim-service
USER rsim
WORKDIR /home/rsim
ENV PATH=/opt/rsim/bin:$PATH RSIM_TRACE_STORE=/home/rsim/traces/traces.db PYTHONUNBUFFERED=1
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["python", "-c", "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=2).status != 200)"]
ENTRYPOINT ["rsim-service"]

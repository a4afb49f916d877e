"""Off-policy decisions from served traces use only what is valid: sampled or explored decisions, divided
by μ(a) as recorded; argmax decisions are skipped and counted (issue 14 §5)."""

from __future__ import annotations

import math

from planner_server.training.from_traces import batch_decisions, trace_decisions
from service.catalog import load_catalog


class Encoder:
    def encode(self, question, prior):
        return [len(question), len(prior)]


def step(strategy: str, decision: str | None, mu: float | None, forced: bool = False) -> dict:
    ids = load_catalog().ids
    probs = {sid: (0.5 if sid == strategy else 0.5 / (len(ids) - 1)) for sid in ids}
    return {"strategy": strategy, "text": "t", "forced": forced, "probabilities": probs, "decision": decision,
            "behaviour_probability": mu}


def test_only_drawn_decisions_count_and_they_divide_by_mu():
    catalog = load_catalog()
    trace = {"question": "q", "steps": [step("decomposition", "argmax", 1.0), step("verification", "sampled", 0.25),
                                        step("self_reflection", "explored", 0.04), step("summarization", None, None),
                                        step("termination", None, None, forced=True)]}
    decisions, skipped = trace_decisions(trace, Encoder(), catalog)
    assert [catalog.ids[d.action] for d in decisions] == ["verification", "self_reflection"]
    assert [d.logp for d in decisions] == [math.log(0.25), math.log(0.04)]  # μ, not π's 0.5
    assert skipped == 2  # the argmax one and the one recorded before decisions said how they were made


def test_batch_reports_the_skipped_argmax_decisions():
    catalog = load_catalog()
    traces = [{"question": "a", "correct": True, "steps": [step("decomposition", "argmax", 1.0)]},
              {"question": "b", "correct": False, "steps": [step("verification", "sampled", 0.3)]}]
    decisions, stats = batch_decisions(traces, Encoder(), catalog)
    assert len(decisions) == 1 and stats["decisions_skipped_argmax"] == 1

"""The step-value collector (planner_server.training.collect): from each decision point of the quiet
episode, every action's branch is rolled to its answer on the shared prefix and scored; advantages are
against the quiet branch; a stopped collection resumes at the first unfinished question."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from planner_server.training.collect import CollectConfig, collect, summarize
from planner_server.training.data import Problem
from service.catalog import load_catalog
from service.orchestrator import EpisodeConfig, Orchestrator
from service.reasoner import StepDone

QUIET_CATALOG = load_catalog(Path(__file__).parents[3] / "configs" / "catalog-quiet-continuation.json")
VERIFY = QUIET_CATALOG.get("verification").instruction


class Reasoner:
    """Writes step k as "step k"; answers 76 (right) only when verification was injected at step 1 (after the
    reasoner's own first step), 70 otherwise. Keeps the prefixes it was sent."""

    def __init__(self):
        self.calls = []

    async def step(self, req):
        self.calls.append(req)
        if "final answer" in req.pending:
            right = len(req.steps) > 1 and req.steps[1].injected == VERIFY
            text = "76}" if right else "70}"
        else:
            text = f" step {len(req.steps)}: working on the numbers carefully."
        yield text
        yield StepDone(finish_reason="stop", prompt_tokens=5, completion_tokens=len(text.split()), eos=False)


def problems(n):
    return [Problem(id=f"q{i}", question=f"question {i}", answer="76", task="synthetic") for i in range(n)]


def quiet_cfg():
    return EpisodeConfig(model="m", max_steps=4, force="continuation", first_step="reasoner", min_step_tokens=0,
                         min_step_chars=0)


async def test_branches_share_the_prefix_and_advantages_are_against_quiet(tmp_path):
    reasoner = Reasoner()
    orch = Orchestrator(None, reasoner, QUIET_CATALOG)
    out = tmp_path / "values.jsonl"
    counts = await collect(orch, problems(2), quiet_cfg(), CollectConfig(actions=("verification", "self_reflection")),
                           out)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert counts == {"questions": 2, "decisions": 4, "failed": 0}
    q0 = [r for r in rows if r["question_id"] == "q0"]
    assert [r["decision"] for r in q0] == [0, 1] and [r["step_index"] for r in q0] == [1, 2]
    first = q0[0]
    assert first["value"] == {"continuation": 0.0, "verification": 1.0, "self_reflection": 0.0}
    assert first["advantage"]["verification"] == 1.0 and first["advantage"]["continuation"] == 0.0
    assert q0[1]["advantage"]["verification"] == 0.0  # verification one step later does not help here
    assert [s["strategy"] for s in first["planner_input"]["steps"]] == ["unguided"]
    # every branch of decision 0 was sent the quiet episode's first step as its prefix
    branch_calls = [c for c in reasoner.calls if c.pending == VERIFY]
    assert branch_calls and all(c.steps[0].text == " step 0: working on the numbers carefully." for c in branch_calls)
    s = summarize(out)
    assert s["decisions"] == 4 and s["some_action_beats_quiet"] == 2 and s["none_beats_quiet"] == 2


async def test_a_stopped_collection_resumes_at_the_first_unfinished_question(tmp_path):
    out = tmp_path / "values.jsonl"
    await collect(Orchestrator(None, Reasoner(), QUIET_CATALOG), problems(1), quiet_cfg(),
                  CollectConfig(actions=("verification",)), out)
    again = Reasoner()
    counts = await collect(Orchestrator(None, again, QUIET_CATALOG), problems(3), quiet_cfg(),
                           CollectConfig(actions=("verification",)), out)
    assert counts["questions"] == 2 and all(c.question != "question 0" for c in again.calls)
    assert sorted({json.loads(line)["question_id"] for line in out.read_text().splitlines()}) == ["q0", "q1", "q2"]


async def test_the_collector_refuses_a_loop_that_is_not_quiet(tmp_path):
    with pytest.raises(ValueError, match="quiet"):
        await collect(Orchestrator(None, Reasoner(), load_catalog()), problems(1), quiet_cfg(),
                      CollectConfig(actions=("verification",)), tmp_path / "v.jsonl")
    with pytest.raises(ValueError, match="quiet"):
        await collect(Orchestrator(None, Reasoner(), QUIET_CATALOG), problems(1), replace(quiet_cfg(), force=None),
                      CollectConfig(actions=("verification",)), tmp_path / "v.jsonl")


async def test_decisions_draws_that_many_decision_points_per_question_the_same_on_every_run(tmp_path):
    cfg = CollectConfig(actions=("verification",), decisions=1, seed=3)
    runs = []
    for name in ("a", "b"):
        out = tmp_path / f"{name}.jsonl"
        counts = await collect(Orchestrator(None, Reasoner(), QUIET_CATALOG), problems(4), quiet_cfg(), cfg, out)
        rows = [json.loads(line) for line in out.read_text().splitlines()]
        assert counts["decisions"] == 4 and all(r["decision_points"] == 2 for r in rows)
        runs.append({r["question_id"]: r["decision"] for r in rows})
    assert runs[0] == runs[1]  # a resumed collection draws the same points
    every = await collect(Orchestrator(None, Reasoner(), QUIET_CATALOG), problems(4), quiet_cfg(),
                          replace(cfg, decisions=5), tmp_path / "all.jsonl")
    assert every["decisions"] == 8  # more than a question has: all of them

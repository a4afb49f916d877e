"""`rsim eval --methods rsim:gated` (and rsim:shadow, rsim:open) runs the same planner through the gate: the
records say which steps fired, and an unknown gate is refused before anything runs."""

from __future__ import annotations

import json

import pytest

from clients.eval.runner import EvalConfig, Runner
from planner_server.training.data import Problem
from service.catalog import load_catalog
from service.orchestrator import Orchestrator
from tests.unit.test_gate import REPLIES, Planner
from tests.unit.test_loop_end import Scripted


async def test_the_gated_method_speaks_only_where_the_gain_clears_the_checkpoints_margin(tmp_path):
    catalog = load_catalog()
    cfg = EvalConfig(reasoner_url="http://127.0.0.1:9/v1", reasoner_model="m", out=tmp_path, max_steps=4,
                     first_step="planner", min_step_tokens=0, concurrency=1)
    problem = Problem(id="p0", question="q", answer="76", task="synthetic")
    seen = {}
    for method, gains, margin in (("rsim:gated", 0.2, 0.1), ("rsim:gated", 0.05, 0.1), ("rsim:shadow", 0.2, 0.1),
                                  ("rsim:open", 0.05, 0.1)):
        async with Runner(cfg, catalog=catalog) as runner:
            reasoner = Scripted(REPLIES)
            runner.orchestrators["rsim"] = Orchestrator(
                Planner(gains={"verification": gains, "continuation": 0.0}, margin=margin), reasoner, catalog)
            label = f"{method}-{gains}"
            path = await runner.run("synthetic", [problem], method, label=label)
        rec = json.loads(path.read_text().splitlines()[0])
        seen[label] = ([c.pending != "" for c in reasoner.calls[:3]], rec["strategies"][:3])
    assert seen["rsim:gated-0.2"] == ([True] * 3, ["verification"] * 3)
    assert seen["rsim:gated-0.05"] == ([False] * 3, ["continuation"] * 3)
    assert seen["rsim:shadow-0.2"] == ([False] * 3, ["continuation"] * 3)
    assert seen["rsim:open-0.05"] == ([True] * 3, ["verification"] * 3)


async def test_an_unknown_gate_is_refused(tmp_path):
    cfg = EvalConfig(reasoner_url="http://127.0.0.1:9/v1", reasoner_model="m", out=tmp_path)
    async with Runner(cfg) as runner:
        with pytest.raises(ValueError, match="rsim:gated"):
            await runner.solve("rsim:sometimes", Problem(id="p", question="q", answer="1", task="synthetic"))

"""A learning test: a tiny planner against a scripted environment in which the answer is right only
if the episode verified before it terminated. With a fixed seed, GRPO raises the mean planner
reward by a stated margin within a stated number of steps."""

from __future__ import annotations

import json
from statistics import fmean

import pytest

from planner_server.training.config import TrainConfig
from planner_server.training.data import Problem
from planner_server.training.train import train
from service.catalog import load_catalog
from service.reasoner import StepDone

STEPS = 25
MARGIN = 0.5


CATALOG = load_catalog()


class ScriptedReasoner:
    """The environment: writes "42" only if a verification instruction came before the answer."""

    async def step(self, req):
        if req.pending == CATALOG.get("termination").instruction:
            verified = any(s.injected == CATALOG.get("verification").instruction for s in req.steps)
            yield "42}" if verified else "41}"
        else:
            yield "some work on the problem"
        yield StepDone(finish_reason="stop", prompt_tokens=10, completion_tokens=2)

    async def list_models(self):
        return [{"id": "scripted"}]


async def test_grpo_learns_to_verify_then_terminate(tiny_model, tmp_path):
    cfg = TrainConfig(run_dir=tmp_path / "run", planner_model=str(tiny_model), reasoner={"url": "http://unused"},
                      lora={"enabled": False}, max_steps=STEPS, batch_size=4, group_size=8, lr=3e-3,
                      episode_max_steps=3, temperature=1.0, save_every=STEPS, seed=0, threads=1, context_tokens=128)
    problems = [Problem(question=f"Question {i}: what is six times seven?", answer="42", task="synthetic")
                for i in range(8)]
    await train(cfg, reasoner=ScriptedReasoner(), problems_list=problems)
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    rewards = [r["reward/planner_total_mean"] for r in rows]
    first, last = fmean(rewards[:5]), fmean(rewards[-5:])
    print(f"mean planner reward: first 5 steps {first:+.3f}, last 5 steps {last:+.3f}")
    assert last - first >= MARGIN
    assert rows[-1]["accuracy"] > rows[0]["accuracy"]
    episodes = [json.loads(line) for line in (tmp_path / "run" / "rollouts.jsonl").read_text().splitlines()]
    assert len(episodes) == STEPS * 4 * 8  # every episode of every step, to read (issue 11: traces, not totals)
    late = [e for e in episodes if e["step"] == STEPS]
    assert {e["correct"] for e in late} <= {True, False} and all(e["steps"][-1]["strategy"] for e in late)
    assert all(e["correct"] == (e["answer"] == "42") for e in episodes)
    # issue 14 §7: TensorBoard event files beside metrics.jsonl, with the same keys and values
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"), size_guidance={"scalars": 0}).Reload()
    numeric = {k for r in rows for k, v in r.items() if k != "step" and isinstance(v, (int, float))
               and not isinstance(v, bool)}
    assert set(events.Tags()["scalars"]) == numeric and "reward/planner_total_mean" in numeric
    logged = events.Scalars("reward/planner_total_mean")
    assert [e.step for e in logged] == list(range(1, STEPS + 1))
    assert [e.value for e in logged] == pytest.approx(rewards, abs=1e-5)


async def test_kl_term_is_measured_for_full_fine_tuning(tiny_model, tmp_path):
    """With kl_coef > 0 and no LoRA the policy keeps a frozen copy; the KL it reports grows from 0."""
    cfg = TrainConfig(run_dir=tmp_path / "run", planner_model=str(tiny_model), reasoner={"url": "http://unused"},
                      lora={"enabled": False}, max_steps=4, batch_size=2, group_size=4, lr=3e-3, kl_coef=0.1,
                      episode_max_steps=3, save_every=4, seed=0, threads=1, context_tokens=128)
    problems = [Problem(question=f"Q{i}: six times seven?", answer="42", task="synthetic") for i in range(4)]
    await train(cfg, reasoner=ScriptedReasoner(), problems_list=problems)
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert rows[0]["kl"] == pytest.approx(0.0, abs=1e-6)  # first step: the policy is the reference
    assert max(r["kl"] for r in rows[1:]) > 0

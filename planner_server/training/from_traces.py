"""Continual learning from served traces: every planner decision of a labelled trace that was drawn from
a distribution (sampled at a temperature, or explored: the server's ε, RSIM_PLANNER_EXPLORATION) becomes an
off-policy action, weighted by π_θ(a)/μ(a) with μ(a) the probability the server recorded for the action
under the distribution it was actually drawn from (PPO-clip bounds the ratio); the trace's reward,
normalised over the batch, is its advantage. An argmax decision is skipped and counted: its behaviour policy
is a point mass, which gives no valid weight (the temperature-1 probabilities the server also records are
π's, not μ's)."""

from __future__ import annotations

import math
import random
from pathlib import Path
from statistics import fmean, pstdev
from typing import Any

from planner_server.protocol import PlanStep
from planner_server.training.policy import PolicyPlanner, Recorded
from service.catalog import Catalog
from service.traces import read_labelled


def trace_reward(trace: dict[str, Any]) -> float:
    if trace.get("reward") is not None:
        return float(trace["reward"])
    return float(bool(trace.get("correct")))


def usable_decision(step: dict[str, Any]) -> bool:
    """A decision off-policy learning may use: the planner's own, drawn from a distribution (sampled or
    explored), with μ(action) > 0 recorded."""
    return (not step.get("forced") and bool(step.get("probabilities")) and step.get("decision") in ("sampled", "explored")
            and (step.get("behaviour_probability") or 0) > 0)


def trace_decisions(trace: dict[str, Any], policy: PolicyPlanner, catalog: Catalog) -> tuple[list[Recorded], int]:
    """The usable decisions of one trace, with the prompt each saw; and how many of the planner's own
    decisions were skipped (argmax, or recorded before the server said how it decided)."""
    out, skipped = [], 0
    steps = trace["steps"]
    for i, step in enumerate(steps):
        if step.get("forced") or not step.get("probabilities") or step["strategy"] not in catalog.ids:
            continue
        if not usable_decision(step):
            skipped += 1
            continue
        prior = [PlanStep(strategy=s["strategy"], text=s["text"]) for s in steps[:i]]
        probs = [float(step["probabilities"].get(sid, 0.0)) for sid in catalog.ids]
        out.append(Recorded(prompt_ids=policy.encode(trace["question"], prior), action=catalog.index(step["strategy"]),
                            forbidden=[j for j, p in enumerate(probs) if p == 0.0],
                            logp=math.log(float(step["behaviour_probability"])), probabilities=probs))
    return out, skipped


def load_trace_batches(path: Path, catalog: Catalog) -> tuple[list[dict[str, Any]], int]:
    """Labelled traces of this catalog; the second value counts those of another catalog (skipped)."""
    traces = read_labelled(path)
    usable = [t for t in traces if t["catalog_version"] == catalog.version]
    return usable, len(traces) - len(usable)


def batch_decisions(traces: list[dict[str, Any]], policy: PolicyPlanner, catalog: Catalog
                    ) -> tuple[list[tuple[Recorded, float]], dict[str, float]]:
    rewards = [trace_reward(t) for t in traces]
    mean, std = fmean(rewards), pstdev(rewards) if len(rewards) > 1 else 0.0
    decisions, skipped = [], 0
    for t, r in zip(traces, rewards, strict=True):
        adv = 0.0 if std < 1e-8 else (r - mean) / (std + 1e-4)
        if adv != 0.0:
            mine, n = trace_decisions(t, policy, catalog)
            decisions += [(d, adv) for d in mine]
            skipped += n
    return decisions, {"reward_mean": mean, "reward_std": std, "decisions_skipped_argmax": skipped}


def sample(traces: list[dict[str, Any]], k: int, rng: random.Random) -> list[dict[str, Any]]:
    return rng.sample(traces, min(k, len(traces)))

"""Continual learning from served traces: every planner decision of a labelled trace becomes an
off-policy action, weighted by π_θ(a)/μ(a) with μ the distribution the server recorded when it
decided (PPO-clip bounds the ratio); the trace's reward, normalised over the batch, is its advantage."""

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


def trace_decisions(trace: dict[str, Any], policy: PolicyPlanner, catalog: Catalog) -> list[Recorded]:
    """The planner's own (not forced) decisions of one trace, with the prompt it saw."""
    out = []
    steps = trace["steps"]
    for i, step in enumerate(steps):
        probs = step.get("probabilities")
        if step.get("forced") or not probs or step["strategy"] not in catalog.ids:
            continue
        prior = [PlanStep(strategy=s["strategy"], text=s["text"]) for s in steps[:i]]
        mu = [float(probs.get(sid, 0.0)) for sid in catalog.ids]
        action = catalog.index(step["strategy"])
        if mu[action] <= 0:
            continue
        out.append(Recorded(prompt_ids=policy.encode(trace["question"], prior), action=action,
                            forbidden=[j for j, p in enumerate(mu) if p == 0.0], logp=math.log(mu[action]),
                            probabilities=mu))
    return out


def load_trace_batches(path: Path, catalog: Catalog) -> tuple[list[dict[str, Any]], int]:
    """Labelled traces of this catalog; the second value counts those of another catalog (skipped)."""
    traces = read_labelled(path)
    usable = [t for t in traces if t["catalog_version"] == catalog.version]
    return usable, len(traces) - len(usable)


def batch_decisions(traces: list[dict[str, Any]], policy: PolicyPlanner, catalog: Catalog
                    ) -> tuple[list[tuple[Recorded, float]], dict[str, float]]:
    rewards = [trace_reward(t) for t in traces]
    mean, std = fmean(rewards), pstdev(rewards) if len(rewards) > 1 else 0.0
    decisions = []
    for t, r in zip(traces, rewards, strict=True):
        adv = 0.0 if std < 1e-8 else (r - mean) / (std + 1e-4)
        if adv != 0.0:
            decisions += [(d, adv) for d in trace_decisions(t, policy, catalog)]
    return decisions, {"reward_mean": mean, "reward_std": std}


def sample(traces: list[dict[str, Any]], k: int, rng: random.Random) -> list[dict[str, Any]]:
    return rng.sample(traces, min(k, len(traces)))

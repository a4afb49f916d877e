"""`rsim train eval`: held-out comparison of planners on the serving loop — a planner checkpoint, the
untrained base planner, and zero-shot chain of thought (no planner, no strategies) — against the same
reasoner, on the same problems. A small precursor of the evaluation harness, for training runs."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path
from statistics import fmean
from typing import Any

from planner_server.backends import build_backend
from planner_server.decision import decide
from planner_server.protocol import PlanRequest, PlanResponse
from planner_server.settings import PlannerSettings
from planner_server.training.data import Problem
from planner_server.training.rewards import planner_reward, termination_of
from planner_server.training.scoring import verdict
from service.baselines import prompt_baseline
from service.catalog import Catalog, load_catalog
from service.orchestrator import EpisodeConfig, Orchestrator
from service.reasoner import OpenAIReasoner, make_session


class BackendPlanner:
    """A serving backend used in-process as the orchestrator's planner (argmax decisions)."""

    def __init__(self, backend, catalog: Catalog):
        self.backend, self.catalog = backend, catalog

    async def plan(self, req: PlanRequest, *, request_id: str | None = None) -> PlanResponse:
        from planner_server.backends import PlanItem

        item = PlanItem(req.question, req.steps)
        logits = (await self.backend.label_logits([item]))[0]
        d = decide(logits, temperature=req.temperature, forbidden=[self.catalog.index(s) for s in req.forbid])
        return PlanResponse.of(d, self.catalog.ids, planner_version=self.backend.version,
                               catalog_version=self.catalog.version, latency_ms=0.0,
                               tokens=sum(item.tokens.values()) if item.tokens else None)


async def evaluate(method: str, problems: list[Problem], *, reasoner_url: str, reasoner_model: str,
                   planner_model: str | None = None, checkpoint: str | None = None, episode_max_steps: int = 4,
                   max_tokens_per_step: int = 40, final_max_tokens: int = 16, concurrency: int = 8,
                   out: Path | None = None) -> dict[str, Any]:
    catalog = load_catalog()
    cfg = EpisodeConfig(model=reasoner_model, max_steps=episode_max_steps, max_tokens_per_step=max_tokens_per_step,
                        final_max_tokens=final_max_tokens, reasoner_temperature=0.0)
    session = make_session(connect_timeout_s=10, read_timeout_s=300, request_timeout_s=900, max_connections=64)
    reasoner = OpenAIReasoner(session, reasoner_url)
    orchestrator = None
    if method != "zerocot":
        settings = PlannerSettings(model=planner_model, checkpoint=checkpoint, threads=1)
        backend = await asyncio.to_thread(build_backend, settings, catalog)
        orchestrator = Orchestrator(BackendPlanner(backend, catalog), reasoner, catalog)
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int, p: Problem) -> dict:
        async with gate:
            if orchestrator is None:
                r = await prompt_baseline(reasoner, p.question, cfg, catalog, "zerocot")
                rec = {"correct": verdict(r.answer, p)[0], "answer": r.answer, "strategies": [],
                       "tokens": r.usage.completion_tokens, "chose_termination": None}
            else:
                r = await orchestrator.solve(p.question, cfg, request_id=f"eval-{method}-{i}")
                strategies = [s.strategy for s in r.steps]
                rec = {"correct": verdict(r.answer, p)[0], "answer": r.answer, "strategies": strategies,
                       "tokens": r.usage.completion_tokens, **termination_of(r)}
                rec["planner_reward"] = planner_reward(strategies, correct=rec["correct"],
                                                       **termination_of(r)).total
        return {"i": i, "question": p.question, "truth": p.answer, **rec}

    try:
        records = await asyncio.gather(*(one(i, p) for i, p in enumerate(problems)))
    finally:
        await session.close()
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text("".join(json.dumps(r) + "\n" for r in records))
    planned = [r for r in records if r["chose_termination"] is not None]
    return {"method": method, "n": len(records), "accuracy": fmean(r["correct"] for r in records),
            "tokens_mean": fmean(r["tokens"] for r in records),
            "chose_termination": fmean(r["chose_termination"] for r in planned) if planned else None,
            "planner_reward": fmean(r["planner_reward"] for r in planned) if planned else None,
            "steps_mean": fmean(len(r["strategies"]) for r in planned) if planned else None,
            "distinct_strategies": fmean(len(set(r["strategies"])) for r in planned) if planned else None,
            "strategy_counts": dict(Counter(s for r in records for s in r["strategies"]))}

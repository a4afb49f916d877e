"""Step values from branch rollouts (DESIGN §4.10; issue 25 §1): the data a planner learns when to speak from.

For each question the quiet loop runs once, handing out its state before every decision point (`Deciding`).
From each such shared prefix the episode branches: every candidate action is taken there once, the loop then
goes on quiet as it would, and the branch is scored to its answer with the same scorer as evaluation. The
value of an action is its mean score; its advantage is that minus the quiet branch's. Branches of one
decision run together, so the reasoner's prefix cache serves their shared prefix.

One JSON line per decision (question id, decision index, the planner's input, per-action scores, tokens and
advantages); a question's lines are written together once all its branches are done, so a stopped collection
resumes at the first question it had not finished (L3)."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from tqdm import tqdm

from planner_server.training.data import Problem
from planner_server.training.scoring import verdict
from service.catalog import QUIET
from service.orchestrator import Deciding, EpisodeConfig, Finished, Orchestrator


@dataclass(frozen=True)
class CollectConfig:
    actions: tuple[str, ...]  # candidate strategies besides quiet (`continuation`)
    samples: int = 1  # rollouts per branch (> 1 only with a reasoner temperature > 0)
    concurrency: int = 4  # questions in flight
    decisions: int | None = None  # decision points branched per question, drawn at random (None: every one)
    seed: int = 0  # which decision points `decisions` draws


def finished_questions(path: Path) -> set[str]:
    if not path.is_file():
        return set()
    return {json.loads(line)["question_id"] for line in path.read_text().splitlines() if line.strip()}


async def branch_scores(orch: Orchestrator, problem: Problem, cfg: EpisodeConfig, state, action: str,
                        samples: int) -> tuple[list[float], list[int]]:
    results = await asyncio.gather(*(orch.solve(problem.question, replace(cfg, seed=None if cfg.seed is None
                                                                           else cfg.seed + s),
                                                state=state, action=action) for s in range(samples)))
    scores = [float(verdict(r.answer, problem)[0]) for r in results]
    return scores, [r.usage.completion_tokens for r in results]


async def collect_question(orch: Orchestrator, problem: Problem, quiet_cfg: EpisodeConfig,
                           cfg: CollectConfig) -> list[dict[str, Any]]:
    """Every decision of the question's quiet episode, with each action's branch scored."""
    t0 = time.perf_counter()
    states, result = [], None
    async for event in orch.run(problem.question, quiet_cfg, snapshots=True):
        if isinstance(event, Deciding):
            states.append(event.state)
        elif isinstance(event, Finished):
            result = event.result
    assert result is not None
    quiet_score = float(verdict(result.answer, problem)[0])
    chosen = range(len(states))
    if cfg.decisions is not None and cfg.decisions < len(states):  # a seeded draw per question: resumable
        chosen = sorted(random.Random(f"{cfg.seed}:{problem.id}").sample(range(len(states)), cfg.decisions))
    records = []
    for k in chosen:
        state = states[k]
        actions = [a for a in cfg.actions if a != QUIET]
        branches = await asyncio.gather(*(branch_scores(orch, problem, quiet_cfg, state, a, cfg.samples)
                                          for a in actions))
        # the quiet branch from decision k is the quiet episode itself at temperature 0; else sample it too
        if quiet_cfg.reasoner_temperature == 0 and cfg.samples == 1:
            quiet = ([quiet_score], [result.usage.completion_tokens])
        else:
            quiet = await branch_scores(orch, problem, quiet_cfg, state, QUIET, cfg.samples)
        scores = {QUIET: quiet[0], **{a: s for a, (s, _) in zip(actions, branches, strict=True)}}
        tokens = {QUIET: quiet[1], **{a: t for a, (_, t) in zip(actions, branches, strict=True)}}
        means = {a: sum(v) / len(v) for a, v in scores.items()}
        records.append({
            "question_id": problem.id, "decision": k, "step_index": state.index + 1, "truth": problem.answer,
            "planner_input": {"question": problem.question,
                              "steps": [{"strategy": t.strategy, "text": t.text} for t in state.traces]},
            "reasoning_tokens_so_far": state.usage.reasoning_tokens,
            "scores": scores, "tokens": tokens, "value": means,
            "advantage": {a: m - means[QUIET] for a, m in means.items()},
            "decision_points": len(states),
        })
    wall_s = time.perf_counter() - t0
    for r in records:
        r["question_wall_s"], r["question_decisions"] = wall_s, len(records)
    return records


async def collect(orch: Orchestrator, problems: Sequence[Problem], quiet_cfg: EpisodeConfig, cfg: CollectConfig,
                  out: Path) -> dict[str, int]:
    """Collect every question not in `out` yet; returns counts for the summary."""
    if quiet_cfg.force != QUIET or orch.catalog.get(QUIET).instruction:
        raise ValueError("branch rollouts go on quiet: force 'continuation' with a catalog where it injects nothing "
                         "(configs/catalog-quiet-continuation.json)")
    out.parent.mkdir(parents=True, exist_ok=True)
    done = finished_questions(out)
    todo = [p for p in problems if p.id not in done]
    bar = tqdm(total=len(problems), initial=len(problems) - len(todo), desc="collect step values", dynamic_ncols=True)
    gate = asyncio.Semaphore(cfg.concurrency)
    counts = {"questions": 0, "decisions": 0, "failed": 0}

    async def one(problem: Problem) -> None:
        async with gate:
            try:
                records = await collect_question(orch, problem, quiet_cfg, cfg)
            except Exception as e:  # noqa: BLE001 — one question's failure is reported, the rest go on
                counts["failed"] += 1
                tqdm.write(f"question {problem.id}: {type(e).__name__}: {e}")
                return
        with out.open("a") as f:  # a question's decisions together: resume never sees half a question
            f.write("".join(json.dumps(r) + "\n" for r in records) or json.dumps(
                {"question_id": problem.id, "decision": None}) + "\n")
        counts["questions"] += 1
        counts["decisions"] += len(records)
        bar.update(1)

    try:
        await asyncio.gather(*(one(p) for p in todo))
    finally:
        bar.close()
    return counts


def summarize(path: Path, margin: float = 0.0) -> dict[str, Any]:
    """How often speaking helps: decisions where some action beats quiet by more than `margin`, and where
    every action is ≤ quiet; the mean advantage of each action."""
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    rows = [r for r in rows if r.get("decision") is not None]
    some = sum(1 for r in rows if any(a > margin for k, a in r["advantage"].items() if k != QUIET))
    actions = sorted({k for r in rows for k in r["advantage"]})
    return {"decisions": len(rows), "questions": len({r["question_id"] for r in rows}),
            "some_action_beats_quiet": some, "none_beats_quiet": len(rows) - some,
            "mean_advantage": {a: sum(r["advantage"].get(a, 0.0) for r in rows) / max(1, len(rows)) for a in actions},
            "wall_s_per_question": (sum(r["question_wall_s"] / r["question_decisions"] for r in rows)
                                    / max(1, len({r["question_id"] for r in rows}))),
            "tokens_per_question": sum(sum(sum(t) for t in r["tokens"].values()) for r in rows)
            / max(1, len({r["question_id"] for r in rows}))}

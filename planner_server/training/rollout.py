"""Rollouts: G episodes per question through `service.Orchestrator` with the policy planner, run
concurrently; each comes back with its trace, its recorded decisions and its rewards."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field, replace

from planner_server.training.data import Problem
from planner_server.training.policy import PolicyPlanner, Recorded
from planner_server.training.rewards import (PlannerReward, PlannerWeights, ReasonerReward, planner_reward,
                                              reasoner_reward, termination_of)
from planner_server.training.scoring import verdict
from service.catalog import UNGUIDED
from service.errors import RsimError
from service.orchestrator import EpisodeConfig, Orchestrator
from service.protocol import SolveResponse

log = logging.getLogger("rsim.train.rollout")


@dataclass
class Rollout:
    problem: Problem
    result: SolveResponse
    decisions: list[Recorded]
    correct: bool
    planner: PlannerReward
    reasoner: ReasonerReward


@dataclass
class Group:
    problem: Problem
    rollouts: list[Rollout] = field(default_factory=list)
    failed: int = 0


def score(problem: Problem, result: SolveResponse, decisions: list[Recorded],
          weights: PlannerWeights = PlannerWeights()) -> Rollout:
    correct, error = verdict(result.answer, problem)
    if error:  # counted wrong, and logged: never a silent verdict
        log.warning("scoring error on %s: %s", problem.id, error)
    strategies = [s.strategy for s in result.steps if s.strategy != UNGUIDED]  # the planner's steps only
    return Rollout(problem, result, decisions, correct,
                   planner_reward(strategies, correct=correct, weights=weights, **termination_of(result)),
                   reasoner_reward([(s.strategy, s.text) for s in result.steps], problem.task, correct=correct))


async def rollout_groups(orchestrator: Orchestrator, policy: PolicyPlanner, problems: list[Problem],
                         cfg: EpisodeConfig, *, group_size: int, concurrency: int, tag: str,
                         weights: PlannerWeights = PlannerWeights()) -> list[Group]:
    groups = [Group(p) for p in problems]
    gate = asyncio.Semaphore(concurrency)

    async def one(qi: int, g: int) -> None:
        rid = f"{tag}-q{qi}-g{g}"
        async with gate:
            try:
                fmt = "code" if problems[qi].task in ("code", "runs") else "boxed"
                result = await orchestrator.solve(problems[qi].question, replace(cfg, answer_format=fmt),
                                                  request_id=rid)
            except RsimError as e:  # a failed episode is dropped from its group, and counted
                log.warning("rollout %s failed: %s", rid, e.message)
                policy.take(rid)
                groups[qi].failed += 1
                return
        groups[qi].rollouts.append(await asyncio.to_thread(score, problems[qi], result, policy.take(rid), weights))

    await asyncio.gather(*(one(qi, g) for qi in range(len(problems)) for g in range(group_size)))
    return groups

"""`mode: grpo` — GRPO on the reasoner alone, the paper's "w/ GRPO" baseline: no planner, no strategy, no
follow reward. Each rollout is a prompt-baseline episode of the one `Orchestrator` (`grpo_episode`, default
`plain`: the question alone, the reasoner's own reasoning in the whole budget, the answer step only when it
did not box its answer itself), written by the local reasoner token by token in the chat format it is served
with; reward R_acc + R_format on its own text. Same data, metrics (metrics.jsonl, TensorBoard), rollouts,
checkpoints and resume as the planner modes; the checkpoint holds the reasoner (an adapter on
`reasoner.local_model`, or full weights), which `rsim merge --reasoner` turns into a folder vLLM serves."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from dataclasses import replace
from pathlib import Path
from statistics import fmean, pstdev
from typing import Any

import torch
from tqdm import tqdm

from planner_server.training.checkpoints import latest_checkpoint, load_trainer_state, save_checkpoint
from planner_server.training.config import TrainConfig
from planner_server.training.data import Problem, cycle
from planner_server.training.grpo import UpdateNorms, clipped_surrogate, group_advantages
from planner_server.training.local_reasoner import LocalReasoner, ReasonerEpisode
from planner_server.training.metrics_log import MetricsLog
from planner_server.training.rewards import reasoner_reward
from planner_server.training.scoring import verdict
from service.catalog import load_catalog
from service.errors import RsimError
from service.orchestrator import EpisodeConfig, Orchestrator
from service.planner_client import NoPlanner
from service.protocol import SolveResponse

log = logging.getLogger("rsim.train.grpo")


def reward_of(problem: Problem, result: SolveResponse) -> dict[str, float]:
    """R_acc + R_format, on the reasoner's own text (the baseline's instruction never counts)."""
    correct, error = verdict(result.answer, problem)
    if error:
        log.warning("scoring error on %s: %s", problem.id, error)
    r = reasoner_reward([(s.strategy, s.text) for s in result.steps], problem.task, correct=correct)
    return {"acc": r.acc, "format": r.format, "total": r.acc + r.format}


def token_logp(local: LocalReasoner, ep: ReasonerEpisode, *, reference: bool = False) -> torch.Tensor:
    if not reference:
        return local.token_logp([ep])[0].cpu()
    with torch.no_grad(), local.model.disable_adapter():  # the base model under the LoRA adapter
        return local.token_logp([ep])[0].cpu()


def update(local: LocalReasoner, optimizer, items: list[tuple[ReasonerEpisode, float]], cfg: TrainConfig
           ) -> dict[str, float]:
    """`ppo_epochs` passes of the token-averaged clipped surrogate (+ β·KL to the base model) over every
    generated token of the batch; one episode per backward pass bounds the memory."""
    total = sum(sum(ep.mask) for ep, _ in items)
    if total == 0:
        return {"loss": 0.0, "clip_fraction": 0.0, "kl": 0.0, "ratio_mean": 1.0, "grad_norm": 0.0,
                "update_norm/reasoner": 0.0}
    params = [p for p in local.model.parameters() if p.requires_grad]
    refs = {id(ep): token_logp(local, ep, reference=True) for ep, _ in items} if cfg.kl_coef > 0 else {}
    stats, grad_norm = [], 0.0
    norms = UpdateNorms(optimizer, ["reasoner"])
    for _ in range(cfg.ppo_epochs):
        random.shuffle(items)
        optimizer.zero_grad(set_to_none=True)
        for ep, adv in items:
            logp = token_logp(local, ep)
            loss, s = clipped_surrogate(logp, torch.tensor(ep.logp), torch.full_like(logp, adv),
                                        clip_eps=cfg.clip_eps, ref_logp=refs.get(id(ep)), kl_coef=cfg.kl_coef)
            (loss * len(logp) / total).backward()
            stats.append({"loss": float(loss.detach()) * len(logp) / total, **s})
        grad_norm = float(torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm))
        optimizer.step()
    return {"loss": sum(s["loss"] for s in stats) / cfg.ppo_epochs,
            **{k: fmean(s[k] for s in stats) for k in ("clip_fraction", "kl", "ratio_mean")}, "grad_norm": grad_norm,
            **norms.measure()}


def rollout_record(step: int, problem: Problem, result: SolveResponse, reward: dict[str, float]) -> str:
    return json.dumps({"step": step, "question": problem.question, "truth": problem.answer, "answer": result.answer,
                       "correct": bool(reward["acc"]), "reasoner_reward": reward, "finish_reason": result.finish_reason,
                       "steps": [{"strategy": s.strategy, "injected": s.injected, "text": s.text, "tokens": s.tokens,
                                  "ends_reasoning": s.ends_reasoning} for s in result.steps]}) + "\n"


async def train_reasoner(cfg: TrainConfig, problems_list: list[Problem]) -> Path | None:
    from planner_server.training.train import build_policy, load_weights, truncate_logs

    catalog = load_catalog(cfg.catalog_path)
    model, tokenizer = build_policy(cfg, cfg.reasoner.local_model)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.lr,
                                  weight_decay=cfg.weight_decay)
    start_step = data_position = 0
    last = resume = latest_checkpoint(cfg.run_dir)
    if resume is not None:
        load_weights(cfg, model, resume)
        state = load_trainer_state(resume, optimizer)
        start_step, data_position = state["step"], state["data_position"]
        truncate_logs(cfg.run_dir, start_step)
        log.info("resumed from %s (step %d)", resume, start_step)
    name = Path(cfg.reasoner.local_model or "local").name
    local = LocalReasoner(model, tokenizer, temperature=cfg.reasoner.temperature, name=name, mode=cfg.reasoner.mode,
                          max_batch=cfg.concurrency)
    orchestrator = Orchestrator(NoPlanner(), local, catalog)
    episode = EpisodeConfig(model=name, baseline=cfg.grpo_episode, max_steps=cfg.episode_max_steps,
                            max_tokens_per_step=cfg.max_tokens_per_step, final_max_tokens=cfg.final_max_tokens,
                            reasoner_temperature=cfg.reasoner.temperature, delimiter=cfg.step_delimiter,
                            min_step_tokens=cfg.min_step_tokens)
    problems = cycle(problems_list, start=data_position)
    metrics_log = MetricsLog(cfg.run_dir, cfg.report_to, resume_step=start_step, config=cfg.model_dump(mode="json"))
    rollouts_file = (cfg.run_dir / "rollouts.jsonl").open("a")
    gate = asyncio.Semaphore(cfg.concurrency)
    try:
        for step in tqdm(range(start_step, cfg.max_steps), initial=start_step, total=cfg.max_steps,
                         desc="train (grpo)", dynamic_ncols=True):
            t0 = time.perf_counter()
            batch = [next(problems) for _ in range(cfg.batch_size)]
            data_position = batch[-1][0] + 1
            model.eval()

            async def one(qi: int, g: int, problem: Problem) -> tuple[int, Any] | None:
                rid = f"s{step}-q{qi}-g{g}"
                async with gate:
                    try:
                        fmt = "code" if problem.task in ("code", "runs") else "boxed"
                        result = await orchestrator.solve(problem.question, replace(episode, answer_format=fmt),
                                                          request_id=rid)
                    except RsimError as e:
                        log.warning("rollout %s failed: %s", rid, e.message)
                        local.take(rid)
                        return None
                return qi, (problem, result, local.take(rid), await asyncio.to_thread(reward_of, problem, result))

            done = await asyncio.gather(*(one(qi, g, p) for qi, (_, p) in enumerate(batch)
                                          for g in range(cfg.group_size)))
            groups: list[list[Any]] = [[] for _ in batch]
            for item in filter(None, done):
                groups[item[0]].append(item[1])
            usable = [g for g in groups if len(g) >= 2]
            advantages, zero_var = group_advantages([[r[3]["total"] for r in g] for g in usable])
            items = [(r[2], a) for g, adv in zip(usable, advantages, strict=True) for r, a in zip(g, adv, strict=True)
                     if a != 0 and r[2] is not None]
            t1 = time.perf_counter()
            model.train()
            stats = await asyncio.to_thread(update, local, optimizer, items, cfg)
            t2 = time.perf_counter()
            rollouts = [r for g in groups for r in g]
            tokens = sum(r[1].usage.completion_tokens for r in rollouts)
            comp = {k: [r[3][k] for r in rollouts] for k in ("acc", "format", "total")}
            row = {"step": step + 1, "mode": "grpo", "accuracy": fmean(comp["acc"]) if rollouts else 0.0,
                   **{f"reward/reasoner_{k}_mean": fmean(v) if v else 0.0 for k, v in comp.items()},
                   **{f"reward/reasoner_{k}_std": pstdev(v) if len(v) > 1 else 0.0 for k, v in comp.items()},
                   "zero_variance_groups": zero_var, "failed_rollouts": len(done) - len(rollouts),
                   "reasoner_tokens": float(sum(sum(ep.mask) for ep, _ in items)),
                   "steps_per_episode": fmean(len(r[1].steps) for r in rollouts) if rollouts else 0.0,
                   "tokens_per_s": tokens / max(t1 - t0, 1e-9), **stats,
                   "seconds/rollout": t1 - t0, "seconds/update": t2 - t1}
            metrics_log.write(row)
            rollouts_file.write("".join(rollout_record(step + 1, r[0], r[1], r[3]) for r in rollouts))
            rollouts_file.flush()
            tqdm.write(f"step {step + 1}: acc {row['accuracy']:.2f} reward {row['reward/reasoner_total_mean']:+.2f} "
                       f"loss {row['loss']:+.4f} ({t2 - t0:.0f} s)")
            if (step + 1) % cfg.save_every == 0 or step + 1 == cfg.max_steps:
                last = save_checkpoint(cfg.run_dir, step=step + 1, model=model, tokenizer=tokenizer,
                                       optimizer=optimizer, data_position=data_position,
                                       base_model=cfg.reasoner.local_model or "", catalog_version=catalog.version,
                                       config=cfg.model_dump(mode="json"), metrics=row,
                                       serving={"role": "reasoner", "episode": cfg.grpo_episode,
                                                "reasoner_mode": cfg.reasoner.mode})
    finally:
        metrics_log.close()
        rollouts_file.close()
    return last

"""`rsim train`: GRPO on the planner against any OpenAI-compatible reasoner (planner-only mode, λ = 1).

The loop reads top to bottom; the math lives in `grpo.py`, the rewards in `rewards.py`, the
episodes in `service.Orchestrator` (through `rollout.py`)."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections import Counter
from pathlib import Path
from statistics import fmean, pstdev
from typing import Any

import torch
from tqdm import tqdm

from planner_server.backends.hf import label_logits
from planner_server.decision import entropy
from planner_server.prompt import prompt_digest
from planner_server.training.checkpoints import latest_checkpoint, load_trainer_state, save_checkpoint
from planner_server.training.config import TrainConfig
from planner_server.training.data import Problem, cycle, load_problems
from planner_server.training.metrics_log import MetricsLog
from planner_server.training.distributed import Dist, params_digest
from planner_server.training.from_traces import batch_decisions, load_trace_batches, sample
from planner_server.training.grpo import UpdateNorms, clipped_surrogate, group_advantages, joint_surrogate
from planner_server.training.local_reasoner import LocalReasoner
from planner_server.training.policy import PolicyPlanner, Recorded
from planner_server.training.rewards import PlannerWeights
from planner_server.training.rollout import Group, rollout_groups
from planner_server.training.synthetic import synthetic_problems
from service.catalog import QUIET, load_catalog
from service.orchestrator import EpisodeConfig, Orchestrator
from service.reasoner import OpenAIReasoner, make_session

log = logging.getLogger("rsim.train")


def build_policy(cfg: TrainConfig, name_or_path: str | None = None, device: str | None = None):
    """The trainable model (LoRA-wrapped unless `lora.enabled` is false): the planner by default."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = device or (cfg.device if cfg.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu"))
    dtype = torch.bfloat16 if cfg.dtype == "bfloat16" else torch.float32
    tokenizer = AutoTokenizer.from_pretrained(name_or_path or cfg.planner_model)
    model = AutoModelForCausalLM.from_pretrained(name_or_path or cfg.planner_model, dtype=dtype).to(device)
    if cfg.lora.enabled:
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(r=cfg.lora.r, lora_alpha=cfg.lora.alpha, lora_dropout=cfg.lora.dropout,
                                                 target_modules=cfg.lora.target_modules, task_type="CAUSAL_LM"))
    return model, tokenizer


def load_data(cfg: TrainConfig) -> list[Problem]:
    if cfg.data.path is not None:
        return load_problems(cfg.data.path)
    return synthetic_problems(cfg.data.synthetic_size, seed=cfg.data.synthetic_seed, steps=cfg.data.synthetic_steps,
                              scale=cfg.data.synthetic_scale)


def reference_logp(policy: PolicyPlanner, records: list[Recorded]) -> torch.Tensor:
    """log π_ref of the recorded actions: the initial policy (the base model under a LoRA adapter,
    else the frozen copy the policy keeps for full fine-tuning)."""
    with torch.no_grad():
        if hasattr(policy.model, "disable_adapter"):
            with policy.model.disable_adapter():
                return policy.logp(records).cpu()
        return policy.logp(records, model=policy.reference).cpu()


def parse_row(line: str) -> dict[str, Any] | None:
    try:
        row = json.loads(line)
    except ValueError:
        return None
    return row if isinstance(row, dict) else None


def load_weights(cfg: TrainConfig, model, folder: Path) -> None:
    """A checkpoint's trained weights back into `model`: its LoRA adapter, or its full weights."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    if cfg.lora.enabled:
        set_peft_model_state_dict(model, load_file(folder / "adapter_model.safetensors"))
    else:
        model.load_state_dict(load_file(folder / "model.safetensors"), strict=False)


def truncate_logs(run_dir: Path, step: int) -> None:
    """On resume: drop the rows of steps lost with the kill (and a line it cut): they are redone."""
    for path in (run_dir / "metrics.jsonl", run_dir / "rollouts.jsonl"):
        if path.is_file():
            kept = [line for line in path.read_text().splitlines() if (row := parse_row(line)) is not None
                    and row.get("step", 0) <= step]
            path.write_text("".join(line + "\n" for line in kept))


def governed_tokens(result) -> list[int]:
    """Reasoner tokens each planner decision governs, in decision order: the step it chose, and the steps
    that only continued it (cut by their budget). [] when the steps and the decisions do not line up."""
    steps = result.steps
    out = []
    for i, s in enumerate(steps):
        if s.forced:
            continue
        n, j = s.tokens, i + 1
        while j < len(steps) and steps[j].continued:
            n, j = n + steps[j].tokens, j + 1
        out.append(max(1, n))
    return out


def weighted_decisions(groups: list[Group], advantages: list[list[float]], how: str
                       ) -> list[tuple[Recorded, float, float]]:
    """(decision, advantage, weight) of every rollout with a non-zero advantage. `decision`: each planner
    decision one term; `tokens`: each weighted by the reasoner tokens it governs (the paper's token-averaged
    objective over the interleaved sequence), the weights' mean 1 over the batch."""
    out = []
    for g, adv in zip(groups, advantages, strict=True):
        for r, a in zip(g.rollouts, adv, strict=True):
            if a == 0:
                continue
            tokens = governed_tokens(r.result) if how == "tokens" else []
            weights = tokens if len(tokens) == len(r.decisions) else [1.0] * len(r.decisions)
            out += [(d, a, float(w)) for d, w in zip(r.decisions, weights, strict=True)]
    if out and how == "tokens":
        mean = fmean(w for _, _, w in out)
        out = [(d, a, w / mean) for d, a, w in out]
    return out


def grpo_update(policy: PolicyPlanner, optimizer, decisions: list[tuple[Recorded, float] | tuple[Recorded, float, float]],
                cfg: TrainConfig, dist: Dist = Dist()) -> dict[str, float]:
    """PPO-clip epochs over every decision of the batch, token-averaged, micro-batched; a third element
    weights a decision's term (`planner_weighting: tokens`). With several ranks every rank takes part in
    each epoch's gradient average, even with no decision of its own."""
    if not decisions and dist.world == 1:
        return {"loss": 0.0, "clip_fraction": 0.0, "kl": 0.0, "grad_norm": 0.0, "update_norm/planner": 0.0}
    stats: list[dict[str, float]] = []
    params = [p for p in policy.model.parameters() if p.requires_grad]
    norms = UpdateNorms(optimizer, ["planner"])
    for _ in range(cfg.ppo_epochs):
        random.shuffle(decisions)
        optimizer.zero_grad(set_to_none=True)
        for i in range(0, len(decisions), cfg.micro_batch):
            chunk = decisions[i:i + cfg.micro_batch]
            records = [c[0] for c in chunk]
            old = torch.tensor([r.logp for r in records])
            adv = torch.tensor([c[1] for c in chunk])
            weights = torch.tensor([c[2] if len(c) > 2 else 1.0 for c in chunk])
            ref = reference_logp(policy, records) if cfg.kl_coef > 0 else None
            logp = policy.logp(records).cpu()
            loss, s = clipped_surrogate(logp, old, adv, clip_eps=cfg.clip_eps, ref_logp=ref, kl_coef=cfg.kl_coef,
                                        weights=weights)
            (loss * len(chunk) / len(decisions)).backward()
            stats.append({"loss": float(loss.detach()), **s})
        dist.average_gradients(params)
        grad_norm = float(torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm))
        optimizer.step()
    out = {k: fmean(s[k] for s in stats) for k in stats[0]} if stats else \
        {"loss": 0.0, "clip_fraction": 0.0, "kl": 0.0, "ratio_mean": 1.0}
    return {**out, "grad_norm": grad_norm, **norms.measure()}


def joint_update(policy: PolicyPlanner, local: LocalReasoner, optimizer, groups: list[Group], lam: float,
                 cfg: TrainConfig, dist: Dist = Dist()) -> dict[str, float]:
    """One step of the joint objective: λ·planner + (1 − λ)·reasoner, token-averaged over the batch;
    planner and reasoner advantages are normalised within each group from their own rewards. The stage's
    emphasis survives the optimiser: the planner's learning rate is `lr`·λ, the reasoner's `lr`·(1 − λ)."""
    usable = [g for g in groups if len(g.rollouts) >= 2]
    p_adv, _ = group_advantages([[r.planner.total for r in g.rollouts] for g in usable])
    r_adv, _ = group_advantages([[r.reasoner.total for r in g.rollouts] for g in usable])
    items = [(r, pa, ra, local.take(r.result.id)) for g, pas, ras in zip(usable, p_adv, r_adv, strict=True)
             for r, pa, ra in zip(g.rollouts, pas, ras, strict=True)]
    items = [it for it in items if it[3] is not None]
    total = sum(len(r.decisions) + sum(ep.mask) for r, _, _, ep in items)
    if total == 0 and dist.world == 1:
        return {"loss": 0.0, "clip_fraction": 0.0, "kl": 0.0, "grad_norm": 0.0, "lambda": lam,
                "update_norm/planner": 0.0, "update_norm/reasoner": 0.0}
    optimizer.zero_grad(set_to_none=True)
    losses, stats = [], []
    for r, pa, ra, ep in items:  # one rollout per backward pass bounds the memory
        n = len(r.decisions) + sum(ep.mask)
        p_logp = policy.logp(r.decisions).cpu() if r.decisions else torch.zeros(0)
        r_logp = local.token_logp([ep])[0].cpu()
        loss, s = joint_surrogate(p_logp, torch.tensor([d.logp for d in r.decisions]), torch.full_like(p_logp, pa),
                                  r_logp, torch.tensor(ep.logp), torch.full_like(r_logp, ra), lam=lam,
                                  clip_eps=cfg.clip_eps)
        (loss * n / total).backward()
        losses.append(float(loss.detach()) * n / total)
        stats.append(s)
    params = [p for group in optimizer.param_groups for p in group["params"]]
    dist.average_gradients(params)
    grad_norm = float(torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm))
    # Adam divides each parameter's step by its own gradient scale, so λ in the loss alone cancels out:
    # each agent's learning rate carries its weight too (group 0: planner, group 1: reasoner)
    optimizer.param_groups[0]["lr"], optimizer.param_groups[1]["lr"] = cfg.lr * lam, cfg.lr * (1 - lam)
    norms = UpdateNorms(optimizer, ["planner", "reasoner"])
    optimizer.step()
    return {"loss": sum(losses), "clip_fraction": fmean(s["clip_fraction"] for s in stats) if stats else 0.0,
            "kl": 0.0, "ratio_mean": fmean(s["ratio_mean"] for s in stats) if stats else 1.0,
            "grad_norm": grad_norm, "lambda": lam, **norms.measure(),
            "reasoner_tokens": float(sum(sum(ep.mask) for *_, ep in items))}


def rollout_record(step: int, r) -> dict[str, Any]:
    """One training episode as it ran: what the planner chose, what the reasoner wrote, how it scored."""
    return {"step": step, "question": r.problem.question, "truth": r.problem.answer, "answer": r.result.answer,
            "correct": r.correct, "planner_reward": r.planner.total, "finish_reason": r.result.finish_reason,
            "steps": [{"strategy": s.strategy, "forced": s.forced, "injected": s.injected, "text": s.text,
                       "tokens": s.tokens, "ends_reasoning": s.ends_reasoning, "continued": s.continued}
                      for s in r.result.steps]}


def step_metrics(step: int, groups: list[Group], zero_var: int, update: dict[str, float],
                 seconds: dict[str, float]) -> dict[str, Any]:
    rollouts = [r for g in groups for r in g.rollouts]
    comp = {"planner_acc": [r.planner.acc for r in rollouts], "planner_penalty": [r.planner.penalty for r in rollouts],
            "planner_terminal": [r.planner.terminal for r in rollouts],
            "planner_total": [r.planner.total for r in rollouts],
            "reasoner_format": [r.reasoner.format for r in rollouts],
            "reasoner_follow": [r.reasoner.follow for r in rollouts]}
    strategies = Counter(s.strategy for r in rollouts for s in r.result.steps)
    entropies = [entropy(d.probabilities) for r in rollouts for d in r.decisions]
    tokens = sum(r.result.usage.completion_tokens for r in rollouts)
    return {"step": step, "accuracy": fmean(r.correct for r in rollouts) if rollouts else 0.0,
            **{f"reward/{k}_mean": fmean(v) if v else 0.0 for k, v in comp.items()},
            **{f"reward/{k}_std": pstdev(v) if len(v) > 1 else 0.0 for k, v in comp.items()},
            "strategies": dict(strategies), "entropy": fmean(entropies) if entropies else 0.0,
            "zero_variance_groups": zero_var, "failed_rollouts": sum(g.failed for g in groups),
            "decisions": sum(len(r.decisions) for r in rollouts), "steps_per_episode":
                fmean(len(r.result.steps) for r in rollouts) if rollouts else 0.0,
            "tokens_per_s": tokens / max(seconds["rollout"], 1e-9), **update,
            **{f"seconds/{k}": v for k, v in seconds.items()}}


def setup(cfg: TrainConfig, device: str | None = None):
    """Models, optimizer and, when the run folder has a checkpoint, everything to resume from it:
    weights, optimizer, RNG and data position (a kill loses at most the step in progress). In joint
    mode a local reasoner is trained too; its weights live in the checkpoint's `reasoner/` folder."""
    model, tokenizer = build_policy(cfg, device=device)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.lr,
                                  weight_decay=cfg.weight_decay)
    local = None
    if cfg.mode == "joint":
        r_model, r_tok = build_policy(cfg, cfg.reasoner.local_model, device=device)
        optimizer.add_param_group({"params": [p for p in r_model.parameters() if p.requires_grad]})
        local = LocalReasoner(r_model, r_tok, temperature=cfg.reasoner.temperature,
                              name=Path(cfg.reasoner.local_model or "local").name, mode=cfg.reasoner.mode,
                              max_batch=cfg.concurrency)
    start_step, data_position = 0, 0
    resume = latest_checkpoint(cfg.run_dir)
    if resume is not None:
        for m, folder in ((model, resume), (local.model if local else None, resume / "reasoner")):
            if m is not None:
                load_weights(cfg, m, folder)
        state = load_trainer_state(resume, optimizer)
        start_step, data_position = state["step"], state["data_position"]
        log.info("resumed from %s (step %d)", resume, start_step)
        truncate_logs(cfg.run_dir, start_step)
    return model, tokenizer, optimizer, local, resume, start_step, data_position


def serving_manifest(cfg: TrainConfig, catalog) -> dict[str, Any]:
    """What the planner server reads back from a checkpoint to decide as the planner was trained: it serves
    with these context tokens unless told otherwise, and warns when its prompt template differs."""
    return {"context_tokens": cfg.context_tokens, "prompt_digest": prompt_digest(catalog),
            "catalog_version": catalog.version, "temperature": cfg.temperature}


def offline_loop(cfg: TrainConfig, model, tokenizer, optimizer, resume, start_step: int, catalog, *, desc: str,
                 step_fn, serving_fn=None):
    """The skeleton of the offline modes (traces, values): `step_fn(step)` makes one update and returns its
    metrics row; every `save_every` steps (and the last) a checkpoint with the serving manifest, which
    `serving_fn(row)` may extend (the values mode adds the gate's calibration). Resume is `setup`'s."""
    last = resume
    metrics_log = MetricsLog(cfg.run_dir, cfg.report_to, resume_step=start_step, config=cfg.model_dump(mode="json"))
    try:
        for step in tqdm(range(start_step, cfg.max_steps), initial=start_step, total=cfg.max_steps, desc=desc,
                         dynamic_ncols=True):
            t0 = time.perf_counter()
            row = step_fn(step)
            row["seconds/update"] = time.perf_counter() - t0
            saving = (step + 1) % cfg.save_every == 0 or step + 1 == cfg.max_steps
            serving = serving_manifest(cfg, catalog)
            if saving and serving_fn is not None:
                serving = serving_fn(row, serving)
            metrics_log.write(row)
            if saving:
                last = save_checkpoint(cfg.run_dir, step=step + 1, model=model, tokenizer=tokenizer,
                                       optimizer=optimizer, data_position=0, base_model=cfg.planner_model,
                                       catalog_version=catalog.version, config=cfg.model_dump(mode="json"),
                                       serving=serving, metrics=row)
    finally:
        metrics_log.close()
    return last


def train_from_traces(cfg: TrainConfig, model, tokenizer, optimizer, resume, start_step: int, catalog):
    """Continual learning: off-policy GRPO steps on labelled traces of the trace store."""
    traces, other_catalog = load_trace_batches(cfg.data.traces, catalog)
    if not traces:
        raise ValueError(f"no labelled traces of catalog {catalog.version} in {cfg.data.traces} "
                         f"({other_catalog} of other catalogs skipped)")
    policy = PolicyPlanner(model, tokenizer, catalog, temperature=1.0, context_tokens=cfg.context_tokens,
                           version=f"traces@{start_step}")  # served distributions are recorded at T = 1
    rng = random.Random(cfg.seed + start_step)

    def step_fn(step: int) -> dict[str, Any]:
        decisions, rstats = batch_decisions(sample(traces, cfg.batch_size * cfg.group_size, rng), policy, catalog)
        model.train()
        update = grpo_update(policy, optimizer, decisions, cfg)
        return {"step": step + 1, "source": "traces", "traces": len(traces), "other_catalog": other_catalog,
                "decisions": len(decisions), **{f"reward/{k}": v for k, v in rstats.items()},
                "reward/planner_total_mean": rstats["reward_mean"], "accuracy": 0.0, "entropy": 0.0, **update}

    return offline_loop(cfg, model, tokenizer, optimizer, resume, start_step, catalog, desc="train (traces)",
                        step_fn=step_fn)


def train_from_values(cfg: TrainConfig, model, tokenizer, optimizer, resume, start_step: int, catalog):
    """Offline: the planner's label distribution fitted to the collector's step values (values.py), the gate's
    margin calibrated on the validation questions at every checkpoint and stored in its serving manifest."""
    from planner_server.training import values as V

    decisions = V.load_values(cfg.data.values, catalog)
    train_set, validation = V.split(decisions, cfg.validation_fraction, cfg.seed)
    if not train_set or not validation:
        raise ValueError(f"{cfg.data.values}: {len(decisions)} decisions split into {len(train_set)} to train on and "
                         f"{len(validation)} to calibrate the gate on; both need some (collect more questions, or "
                         "change validation_fraction)")
    policy = PolicyPlanner(model, tokenizer, catalog, temperature=1.0, context_tokens=cfg.context_tokens,
                           version=f"values@{start_step}")
    ids, tau = catalog.ids, cfg.value_temperature
    encoded: dict[int, list[int]] = {}

    def batch_of(ds: list[V.ValueDecision]) -> tuple[list[list[int]], torch.Tensor]:
        prompts = [encoded.setdefault(id(d), policy.encode(d.question, d.steps)) for d in ds]
        return prompts, torch.tensor([V.target(d.advantage, ids, tau, cfg.speak_cost) for d in ds])

    def log_probs(prompts: list[list[int]]) -> torch.Tensor:
        logits = label_logits(policy.model, prompts, policy.label_ids, policy.pad_id)
        return torch.log_softmax(logits.float(), dim=-1).cpu()

    def predict(ds: list[V.ValueDecision]) -> list[list[float]]:
        model.eval()
        out = []
        with torch.inference_mode():
            for i in range(0, len(ds), cfg.micro_batch):
                out += log_probs(batch_of(ds[i:i + cfg.micro_batch])[0]).exp().tolist()
        return out

    rng = random.Random(cfg.seed + start_step)
    params = [p for p in model.parameters() if p.requires_grad]

    def step_fn(step: int) -> dict[str, Any]:
        batch = V.sample_batch(train_set, cfg.batch_size, rng)
        model.train()
        optimizer.zero_grad(set_to_none=True)
        loss_sum, quiet_p, quiet_t = 0.0, 0.0, 0.0
        q = ids.index(QUIET)
        for i in range(0, len(batch), cfg.micro_batch):
            prompts, targets = batch_of(batch[i:i + cfg.micro_batch])
            logp = log_probs(prompts)
            loss = -(targets * logp).sum(-1).sum() / len(batch)
            loss.backward()
            loss_sum += float(loss.detach())
            quiet_p += float(logp[:, q].detach().exp().sum()) / len(batch)
            quiet_t += float(targets[:, q].sum()) / len(batch)
        grad_norm = float(torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm))
        optimizer.step()
        return {"step": step + 1, "source": "values", "decisions": len(batch), "loss": loss_sum,
                "grad_norm": grad_norm, "quiet_probability": quiet_p, "quiet_target": quiet_t,
                "accuracy": 0.0, "entropy": 0.0, "reward/planner_total_mean": 0.0}

    def serving_fn(row: dict[str, Any], serving: dict[str, Any]) -> dict[str, Any]:
        probs = predict(validation)
        cal = V.calibrate([V.gains_of(p, ids, tau) for p in probs], [d.advantage for d in validation])
        targets = batch_of(validation)[1]
        row["validation/loss"] = float(-(targets * torch.log(torch.tensor(probs).clamp_min(1e-12))).sum(-1).mean())
        row["validation/gain"], row["validation/decisions"] = cal["validation_gain"], cal["decisions"]
        row["gate_margin"] = cal["margin"]  # None: no margin gains on validation, the gate never fires
        return {**serving, "gate": {"value_scale": tau, "margin": cal["margin"], "speak_cost": cfg.speak_cost,
                                    "calibration": cal, "dataset": str(cfg.data.values)}}

    return offline_loop(cfg, model, tokenizer, optimizer, resume, start_step, catalog, desc="train (values)",
                        step_fn=step_fn, serving_fn=serving_fn)


async def train(cfg: TrainConfig, *, reasoner=None, problems_list: list[Problem] | None = None) -> Path | None:
    """Run (or resume) training; returns the last checkpoint folder. `reasoner` replaces the HTTP
    reasoner of `cfg.reasoner.url` (tests script an environment with it). Under torchrun each rank
    takes its share of every batch (see `distributed.py`)."""
    dist = Dist.from_env()
    random.seed(cfg.seed + dist.rank)
    torch.manual_seed(cfg.seed)  # the same initial weights (LoRA included) on every rank
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    catalog = load_catalog(cfg.catalog_path)
    run = cfg.run_dir
    run.mkdir(parents=True, exist_ok=True)
    if dist.main:
        (run / "config.json").write_text(cfg.model_dump_json(indent=2))
    if cfg.mode == "grpo":  # the reasoner alone: its own loop module, the same data, logs and checkpoints
        if dist.world > 1:
            raise ValueError("mode grpo runs on one process (torchrun with several ranks is for the planner modes)")
        from planner_server.training.reasoner_grpo import train_reasoner

        return await train_reasoner(cfg, problems_list if problems_list is not None else load_data(cfg))
    model, tokenizer, optimizer, local, resume, start_step, data_position = setup(cfg, dist.device(cfg.device))
    reasoner = local or reasoner
    if cfg.data.traces is not None:
        return train_from_traces(cfg, model, tokenizer, optimizer, resume, start_step, catalog)
    if cfg.data.values is not None:
        return train_from_values(cfg, model, tokenizer, optimizer, resume, start_step, catalog)
    policy = PolicyPlanner(model, tokenizer, catalog, temperature=cfg.temperature, context_tokens=cfg.context_tokens,
                           max_batch=cfg.micro_batch, seed=cfg.seed + start_step + 1000 * dist.rank,
                           version=f"train@{start_step}")
    if cfg.kl_coef > 0 and not cfg.lora.enabled:  # full fine-tuning keeps a frozen initial copy for the KL
        policy.reference = build_policy(cfg, device=dist.device(cfg.device))[0].eval().requires_grad_(False)
    problems = cycle(problems_list if problems_list is not None else load_data(cfg), start=data_position)
    episode = EpisodeConfig(model=cfg.reasoner.model or "", max_steps=cfg.episode_max_steps,
                            max_tokens_per_step=cfg.max_tokens_per_step, final_max_tokens=cfg.final_max_tokens,
                            reasoner_temperature=cfg.reasoner.temperature, delimiter=cfg.step_delimiter,
                            min_step_tokens=cfg.min_step_tokens, first_step=cfg.first_step,
                            unguided_tail=cfg.unguided_tail, continue_cut=cfg.continue_cut)
    session = make_session(connect_timeout_s=10, read_timeout_s=300, request_timeout_s=900,
                           max_connections=cfg.concurrency * 2)
    reasoner = reasoner or OpenAIReasoner(session, cfg.reasoner.url or "", mode=cfg.reasoner.mode)
    orchestrator = Orchestrator(policy, reasoner, catalog)
    policy.batcher.start()
    last = resume
    metrics_log = MetricsLog(run, cfg.report_to, resume_step=start_step,
                             config=cfg.model_dump(mode="json")) if dist.main else None
    rollouts_file = (run / "rollouts.jsonl").open("a") if dist.main else None  # every episode, to read
    try:
        if not episode.model:
            episode.model = (await reasoner.list_models())[0]["id"]
        for step in tqdm(range(start_step, cfg.max_steps), initial=start_step, total=cfg.max_steps, desc="train",
                         dynamic_ncols=True, disable=not dist.main):
            t0 = time.perf_counter()
            batch = [next(problems) for _ in range(cfg.batch_size * dist.world)]
            data_position = batch[-1][0] + 1
            mine = [p for _, p in batch[dist.rank::dist.world]]
            model.eval()
            groups = await rollout_groups(orchestrator, policy, mine, episode, group_size=cfg.group_size,
                                          concurrency=cfg.concurrency, tag=f"s{step}r{dist.rank}",
                                          weights=PlannerWeights(**cfg.planner_reward_weights.model_dump()))
            t1 = time.perf_counter()
            usable = [g for g in groups if len(g.rollouts) >= 2]
            advantages, zero_var = group_advantages([[r.planner.total for r in g.rollouts] for g in usable])
            decisions = weighted_decisions(usable, advantages, cfg.planner_weighting)
            model.train()
            if local is not None:
                lam = cfg.joint_lambda_stage1 if step < cfg.joint_switch_step else cfg.joint_lambda_stage2
                local.model.train()
                update = await asyncio.to_thread(joint_update, policy, local, optimizer, groups, lam, cfg, dist)
                local.model.eval()
                local.episodes.clear()  # episodes of failed or unusable rollouts
            else:
                update = await asyncio.to_thread(grpo_update, policy, optimizer, decisions, cfg, dist)
            t2 = time.perf_counter()
            policy.version = f"train@{step + 1}"
            row = {**step_metrics(step + 1, groups, zero_var, update, {"rollout": t1 - t0, "update": t2 - t1}),
                   "world_size": dist.world}
            if metrics_log is not None:  # rank 0 logs its own share of the batch
                metrics_log.write(row)
                rollouts_file.write("".join(json.dumps(rollout_record(step + 1, r)) + "\n"
                                            for g in groups for r in g.rollouts))
                rollouts_file.flush()
                tqdm.write(f"step {step + 1}: acc {row['accuracy']:.2f} reward "
                           f"{row['reward/planner_total_mean']:+.2f} loss {row['loss']:+.4f} ({t2 - t0:.0f} s)")
            if dist.main and ((step + 1) % cfg.save_every == 0 or step + 1 == cfg.max_steps):
                last = save_checkpoint(run, step=step + 1, model=model, tokenizer=tokenizer, optimizer=optimizer,
                                       data_position=data_position, base_model=cfg.planner_model,
                                       catalog_version=catalog.version, config=cfg.model_dump(mode="json"),
                                       serving=serving_manifest(cfg, catalog),
                                       metrics=row, extra={"reasoner": local.model} if local else None)
        ranks = run / "ranks"
        ranks.mkdir(exist_ok=True)
        (ranks / f"rank-{dist.rank}.json").write_text(json.dumps({"rank": dist.rank, "world": dist.world,
                                                                  "params_digest": params_digest(model)}))
    finally:
        if metrics_log is not None:
            metrics_log.close()
        if rollouts_file is not None:
            rollouts_file.close()
        await policy.batcher.stop()
        await session.close()
        dist.close()
    return last

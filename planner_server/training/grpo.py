"""GRPO math (after TRL's): group-normalised advantages, the PPO-clip surrogate, the k3 KL estimator.
Pure functions over tensors or lists; tested against hand-computed values."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch


def group_advantages(rewards: Sequence[Sequence[float]], *, eps: float = 1e-4) -> tuple[list[list[float]], int]:
    """(r − mean) / (std + eps) within each group (population std). Groups whose rewards are all equal
    carry no signal: their advantages are 0 and they are counted (second return value)."""
    out, zero_var = [], 0
    for group in rewards:
        n = len(group)
        mean = sum(group) / n
        std = math.sqrt(sum((r - mean) ** 2 for r in group) / n)
        if std < 1e-8:
            zero_var += 1
            out.append([0.0] * n)
        else:
            out.append([(r - mean) / (std + eps) for r in group])
    return out, zero_var


def kl_k3(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Per-action KL(π‖π_ref) estimate exp(ref − logp) − (ref − logp) − 1 (≥ 0, unbiased)."""
    d = ref_logp - logp
    return torch.exp(d) - d - 1


def clipped_surrogate(logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor, *,
                      clip_eps: float = 0.2, weights: torch.Tensor | None = None,
                      ref_logp: torch.Tensor | None = None, kl_coef: float = 0.0
                      ) -> tuple[torch.Tensor, dict[str, float]]:
    """Token-averaged PPO-clip loss: −mean(min(ρA, clip(ρ, 1±ε)A)) + β·mean(KL), one "token" per action.

    `weights` (e.g. λ for planner actions, 1 − λ for reasoner tokens, 0 for masked tokens) scale each
    action's term; the mean is over actions with non-zero weight."""
    ratio = torch.exp(logp - old_logp)
    unclipped = ratio * advantages
    clipped = torch.clamp(ratio, 1 - clip_eps, 1 + clip_eps) * advantages
    per_action = -torch.minimum(unclipped, clipped)
    kl = kl_k3(logp, ref_logp) if ref_logp is not None else torch.zeros_like(logp)
    per_action = per_action + kl_coef * kl
    w = torch.ones_like(logp) if weights is None else weights
    count = (w != 0).sum().clamp(min=1)
    loss = (per_action * w).sum() / count
    with torch.no_grad():
        is_clipped = ((ratio < 1 - clip_eps) & (advantages < 0)) | ((ratio > 1 + clip_eps) & (advantages > 0))
        mask = w != 0
        stats = {"clip_fraction": float(is_clipped[mask].float().mean()) if mask.any() else 0.0,
                 "kl": float(kl[mask].mean()) if mask.any() else 0.0,
                 "ratio_mean": float(ratio[mask].mean()) if mask.any() else 1.0}
    return loss, stats


def joint_surrogate(planner_logp: torch.Tensor, planner_old: torch.Tensor, planner_adv: torch.Tensor,
                    reasoner_logp: torch.Tensor, reasoner_old: torch.Tensor, reasoner_adv: torch.Tensor, *,
                    lam: float, clip_eps: float = 0.2) -> tuple[torch.Tensor, dict[str, float]]:
    """The paper's joint objective, token-averaged over the interleaved sequence:
    λ·(planner PPO-clip terms) + (1 − λ)·(reasoner PPO-clip terms), one term per planner decision and
    per generated reasoner token (injected tokens are never reasoner actions: the caller passes
    generated tokens only)."""
    logp = torch.cat([planner_logp, reasoner_logp])
    old = torch.cat([planner_old, reasoner_old])
    adv = torch.cat([planner_adv, reasoner_adv])
    weights = torch.cat([torch.full_like(planner_logp, lam), torch.full_like(reasoner_logp, 1 - lam)])
    loss, stats = clipped_surrogate(logp, old, adv, clip_eps=clip_eps, weights=weights)
    # clipped_surrogate averages over the non-zero weights; the objective averages over every action
    loss = loss * (weights != 0).sum().clamp(min=1) / max(1, len(logp))
    return loss, {**stats, "planner_actions": float(len(planner_logp)), "reasoner_tokens": float(len(reasoner_logp))}


class UpdateNorms:
    """The L2 norm of what an update changed in each parameter group of the optimiser, one agent per group
    (`update_norm/<agent>`), over all its epochs: the learning-rate weighting of the λ schedule shows here,
    not in the gradients (Adam normalises their scale away)."""

    def __init__(self, optimizer: torch.optim.Optimizer, agents: Sequence[str]) -> None:
        self.optimizer, self.agents = optimizer, list(agents)
        self.before = [[p.detach().clone() for p in g["params"]] for g in optimizer.param_groups]

    @torch.no_grad()
    def measure(self) -> dict[str, float]:
        return {f"update_norm/{agent}": math.sqrt(sum(float(((p.detach() - b) ** 2).sum())
                                                      for p, b in zip(g["params"], old, strict=True)))
                for agent, g, old in zip(self.agents, self.optimizer.param_groups, self.before, strict=True)}

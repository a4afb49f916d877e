"""The local policy planner of rollouts: the serving planner's prompt and scoring head, sampling at
a temperature and recording every decision (prompt, action, log-probability, distribution) so the
GRPO loss can recompute it with gradients. It implements the service's `Planner` protocol, so the
rollouts run `service.Orchestrator` unchanged."""

from __future__ import annotations

import asyncio
import math
import random
import threading
import time
from collections import defaultdict
from dataclasses import dataclass

import torch

from planner_server.backends.hf import label_logits
from planner_server.batcher import MicroBatcher
from planner_server.decision import decide
from planner_server.prompt import encode_planner_prompt, label_token_ids
from planner_server.protocol import PlanRequest, PlanResponse
from service.catalog import Catalog


@dataclass
class Recorded:
    prompt_ids: list[int]
    action: int
    forbidden: list[int]
    logp: float  # log π_old(action) at the sampling temperature
    probabilities: list[float]


def action_logp(logits: torch.Tensor, actions: torch.Tensor, forbidden: list[list[int]],
                temperature: float) -> torch.Tensor:
    """log softmax(logits / T) at each action, forbidden labels masked out. logits: [B, L]."""
    scaled = logits / max(temperature, 1e-6)
    for row, forb in enumerate(forbidden):
        if forb:
            scaled[row, forb] = -math.inf
    return torch.log_softmax(scaled.float(), dim=-1).gather(1, actions[:, None]).squeeze(1)


class PolicyPlanner:
    def __init__(self, model, tokenizer, catalog: Catalog, *, temperature: float = 1.0,
                 context_tokens: int = 1024, max_batch: int = 16, seed: int = 0, version: str = "policy"):
        self.model, self.tokenizer, self.catalog = model, tokenizer, catalog
        self.temperature, self.context_tokens, self.version = temperature, context_tokens, version
        self.label_ids = label_token_ids(tokenizer, catalog)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (tokenizer.eos_token_id or 0)
        self.rng = random.Random(seed)
        self.reference = None  # a frozen initial model, for the KL term of full fine-tuning
        self.records: dict[str, list[Recorded]] = defaultdict(list)
        self._lock = threading.Lock()
        self.batcher: MicroBatcher[list[int], list[float]] = MicroBatcher(
            self._score, max_batch=max_batch, max_wait_ms=2, queue_size=4096, timeout_s=600)

    def encode(self, question: str, steps) -> list[int]:
        return encode_planner_prompt(self.tokenizer, question, steps, self.catalog,
                                     cot_budget_tokens=self.context_tokens, bos_token_id=self.tokenizer.bos_token_id)

    def _forward(self, batch: list[list[int]]) -> list[list[float]]:
        with self._lock, torch.inference_mode():
            return label_logits(self.model, batch, self.label_ids, self.pad_id).float().cpu().tolist()

    async def _score(self, batch: list[list[int]]) -> list[list[float]]:
        return await asyncio.to_thread(self._forward, batch)

    async def plan(self, req: PlanRequest, *, request_id: str | None = None) -> PlanResponse:
        t0 = time.perf_counter()
        ids = self.encode(req.question, req.steps)
        logits = await self.batcher.submit(ids)
        forbidden = sorted({self.catalog.index(s) for s in req.forbid})
        d = decide(logits, temperature=self.temperature, forbidden=forbidden, rng=self.rng)
        logp = float(action_logp(torch.tensor([logits]), torch.tensor([d.index]), [forbidden], self.temperature))
        self.records[request_id or ""].append(Recorded(ids, d.index, forbidden, logp, d.probabilities))
        return PlanResponse.of(d, self.catalog.ids, planner_version=self.version, tokens=len(ids),
                               catalog_version=self.catalog.version, latency_ms=(time.perf_counter() - t0) * 1000)

    def take(self, request_id: str) -> list[Recorded]:
        return self.records.pop(request_id, [])

    def logp(self, records: list[Recorded], model=None) -> torch.Tensor:
        """log π_θ(action) for recorded decisions, with gradients (the caller picks train/eval mode)."""
        logits = label_logits(model or self.model, [r.prompt_ids for r in records], self.label_ids, self.pad_id)
        actions = torch.tensor([r.action for r in records], device=logits.device)
        return action_logp(logits, actions, [r.forbidden for r in records], self.temperature)



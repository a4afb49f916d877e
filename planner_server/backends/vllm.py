"""In-process vLLM backend: label distribution from one-token generation restricted to the label
tokens, with processed logprobs (after the restriction) and automatic prefix caching, so a decision
re-prefills only the tokens added since the request's last decision (L1)."""

from __future__ import annotations

import asyncio
import logging
import math
import threading

from planner_server.backends import PlanItem
from planner_server.checkpoint import check_prompt, resolve_planner, serving_context_tokens
from planner_server.prompt import encode_planner_prompt, label_token_ids
from planner_server.settings import PlannerSettings
from service.catalog import Catalog

log = logging.getLogger("rsim.planner.vllm")


class VLLMBackend:
    def __init__(self, llm, catalog: Catalog, *, version: str, context_tokens: int):
        from vllm import SamplingParams

        self.llm, self.catalog, self.version, self.context_tokens = llm, catalog, version, context_tokens
        self.tokenizer = llm.get_tokenizer()
        self.label_ids = label_token_ids(self.tokenizer, catalog)
        self.params = SamplingParams(max_tokens=1, temperature=1.0, logprobs=len(catalog),
                                     allowed_token_ids=self.label_ids)
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: PlannerSettings, catalog: Catalog) -> VLLMBackend:
        from vllm import LLM

        resolved = resolve_planner(settings.model, settings.checkpoint, catalog)
        check_prompt(resolved, catalog)
        if resolved.adapter:
            raise ValueError("the vllm backend serves merged checkpoints; merge the LoRA adapter first")
        from transformers import AutoConfig

        model_limit = getattr(AutoConfig.from_pretrained(resolved.model), "max_position_embeddings", None)
        max_len = min(x for x in (8192, settings.context_tokens + 2048, model_limit) if x)
        log.info("starting in-process vLLM for planner %s (%s)", resolved.model, resolved.version)
        llm = LLM(model=resolved.model, enable_prefix_caching=settings.prefix_caching, logprobs_mode="processed_logprobs",
                  max_logprobs=max(20, len(catalog)), gpu_memory_utilization=settings.gpu_memory_utilization,
                  dtype="auto" if settings.dtype == "auto" else settings.dtype, enforce_eager=True,
                  max_model_len=max_len)
        return cls(llm, catalog, version=resolved.version,
                   context_tokens=serving_context_tokens(resolved, settings.context_tokens,
                                                         "context_tokens" in settings.model_fields_set))

    def encode(self, item: PlanItem) -> list[int]:
        return encode_planner_prompt(self.tokenizer, item.question, item.steps, self.catalog,
                                     cot_budget_tokens=self.context_tokens, bos_token_id=self.tokenizer.bos_token_id)

    def forward(self, batch: list[list[int]]) -> list[list[float]]:
        from vllm.inputs import TokensPrompt

        with self._lock:
            outs = self.llm.generate([TokensPrompt(prompt_token_ids=ids) for ids in batch], self.params,
                                     use_tqdm=False)
        result = []
        for out in outs:
            top = out.outputs[0].logprobs[0]  # {token_id: Logprob} over the allowed labels
            result.append([top[t].logprob if t in top else -math.inf for t in self.label_ids])
        return result

    async def label_logits(self, items: list[PlanItem]) -> list[list[float]]:
        batch = [self.encode(item) for item in items]
        for item, ids in zip(items, batch, strict=True):
            item.tokens["prompt"] = len(ids)  # one forward pass: no token is generated
        return await asyncio.to_thread(self.forward, batch)

    async def close(self) -> None:
        if self.llm is not None:  # stop the engine-core process now, not at interpreter exit
            self.llm.llm_engine.engine_core.shutdown()
            self.llm = None

"""In-process vLLM backend on the async engine: each decision is one request of one generated token
restricted to the label tokens, with processed logprobs (after the restriction). Decisions run
concurrently (no lock: the engine batches whatever is in flight at each step) and automatic prefix
caching re-prefills only the tokens added since an episode's last decision (L1). A LoRA checkpoint
(what training writes by default) is merged into its base model once, at load."""

from __future__ import annotations

import asyncio
import logging
import math
import shutil
import tempfile
import uuid
from pathlib import Path

from planner_server.backends import PlanItem
from planner_server.checkpoint import check_prompt, resolve_planner, serving_context_tokens, serving_gate
from planner_server.prompt import encode_planner_prompt, label_token_ids
from planner_server.settings import PlannerSettings
from service.catalog import Catalog

log = logging.getLogger("rsim.planner.vllm")


class VLLMBackend:
    max_in_flight = 64  # batches handed to the engine at once: it schedules their requests together

    value_scale: float | None = None  # a checkpoint trained on step values: its τ and calibrated gate margin
    gate_margin: float | None = None

    def __init__(self, engine, catalog: Catalog, *, version: str, context_tokens: int,
                 merged_dir: Path | None = None):
        from vllm import SamplingParams

        self.engine, self.catalog, self.version, self.context_tokens = engine, catalog, version, context_tokens
        self.merged_dir = merged_dir  # a LoRA checkpoint merged at load: removed at close
        self.tokenizer = engine.get_tokenizer()
        self.label_ids = label_token_ids(self.tokenizer, catalog)
        self.params = SamplingParams(max_tokens=1, temperature=1.0, logprobs=len(catalog),
                                     allowed_token_ids=self.label_ids)

    @classmethod
    def from_settings(cls, settings: PlannerSettings, catalog: Catalog) -> VLLMBackend:
        from transformers import AutoConfig
        from vllm import AsyncEngineArgs, AsyncLLMEngine

        resolved = resolve_planner(settings.model, settings.checkpoint, catalog)
        check_prompt(resolved, catalog)
        model, merged_dir = resolved.model, None
        try:
            if resolved.adapter:
                from planner_server.merge import merge_checkpoint

                merged_dir = Path(tempfile.mkdtemp(prefix="rsim-planner-merged-"))
                log.info("merging LoRA checkpoint %s into its base %s for vLLM (%s)", resolved.adapter,
                         resolved.model, merged_dir)
                model = str(merge_checkpoint(resolved.adapter, merged_dir / "model", catalog,
                                             base_model=resolved.model))
            model_limit = getattr(AutoConfig.from_pretrained(model), "max_position_embeddings", None)
            max_len = min(x for x in (8192, settings.context_tokens + 2048, model_limit) if x)
            log.info("starting in-process vLLM (async engine) for planner %s (%s)", model, resolved.version)
            engine = AsyncLLMEngine.from_engine_args(AsyncEngineArgs(
                model=model, enable_prefix_caching=settings.prefix_caching, logprobs_mode="processed_logprobs",
                max_logprobs=max(20, len(catalog)), gpu_memory_utilization=settings.gpu_memory_utilization,
                dtype="auto" if settings.dtype == "auto" else settings.dtype, enforce_eager=True,
                max_model_len=max_len, disable_log_stats=True))
        except BaseException:
            if merged_dir is not None:
                shutil.rmtree(merged_dir, ignore_errors=True)
            raise
        backend = cls(engine, catalog, version=resolved.version,
                      context_tokens=serving_context_tokens(resolved, settings.context_tokens,
                                                            "context_tokens" in settings.model_fields_set),
                      merged_dir=merged_dir)
        backend.value_scale, backend.gate_margin = serving_gate(resolved)
        return backend

    def encode(self, item: PlanItem) -> list[int]:
        return encode_planner_prompt(self.tokenizer, item.question, item.steps, self.catalog,
                                     cot_budget_tokens=self.context_tokens, bos_token_id=self.tokenizer.bos_token_id)

    async def _decide(self, ids: list[int]) -> list[float]:
        from vllm.inputs import TokensPrompt

        final = None  # a cancelled wait closes the generator, and the engine aborts the request
        async for out in self.engine.generate(TokensPrompt(prompt_token_ids=ids), self.params,
                                              request_id=f"plan-{uuid.uuid4().hex}"):
            final = out
        if final is None or not final.outputs or not final.outputs[0].logprobs:
            raise RuntimeError("the planner engine returned no logprobs")
        top = final.outputs[0].logprobs[0]  # {token_id: Logprob} over the allowed labels
        return [top[t].logprob if t in top else -math.inf for t in self.label_ids]

    async def label_logits(self, items: list[PlanItem]) -> list[list[float]]:
        batch = [self.encode(item) for item in items]
        for item, ids in zip(items, batch, strict=True):
            item.tokens["prompt"] = len(ids)  # one forward pass: no token is generated
        return list(await asyncio.gather(*(self._decide(ids) for ids in batch)))

    async def warm_up(self) -> None:
        """The engine's first request costs seconds (tens under load) that no decision should pay: the
        server sends one before it reports ready, on the event loop that serves the decisions."""
        await self.label_logits([PlanItem("Warm-up: what is 2 + 2?", [])])

    async def close(self) -> None:
        if self.engine is not None:  # stop the engine-core process now, not at interpreter exit
            self.engine.shutdown()
            self.engine = None
        if self.merged_dir is not None:
            shutil.rmtree(self.merged_dir, ignore_errors=True)
            self.merged_dir = None

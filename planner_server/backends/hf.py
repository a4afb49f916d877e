"""transformers backend: any causal LM by path or id, CPU or CUDA; one forward pass per batch,
reading only the last position's logits over the label tokens (L1)."""

from __future__ import annotations

import asyncio
import logging
import threading

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from planner_server.backends import PlanItem
from planner_server.checkpoint import check_prompt, resolve_planner, serving_context_tokens
from planner_server.prompt import encode_planner_prompt, label_token_ids
from planner_server.settings import PlannerSettings
from service.catalog import Catalog

log = logging.getLogger("rsim.planner.hf")

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def label_logits(model, batch: list[list[int]], label_ids: list[int], pad_id: int) -> torch.Tensor:
    """[B, n_labels] logits at each sequence's last position, computed from the final hidden state
    and only the label rows of the output embedding: never the full vocabulary. Left-padded batch.
    Serving and training share this function (training calls it with gradients on)."""
    device = next(model.parameters()).device
    width = max(len(ids) for ids in batch)
    input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for i, ids in enumerate(batch):
        input_ids[i, width - len(ids):] = torch.tensor(ids)
        mask[i, width - len(ids):] = 1
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    causal_lm = model.get_base_model() if hasattr(model, "get_base_model") else model
    backbone = getattr(causal_lm, causal_lm.base_model_prefix)
    hidden = backbone(input_ids=input_ids.to(device), attention_mask=mask.to(device),
                      position_ids=positions.to(device), use_cache=False).last_hidden_state[:, -1]
    head = causal_lm.get_output_embeddings()
    logits = hidden @ head.weight[label_ids].T
    if getattr(head, "bias", None) is not None:
        logits = logits + head.bias[label_ids]
    cap = getattr(causal_lm.config, "final_logit_softcapping", None)
    if cap:
        logits = torch.tanh(logits / cap) * cap
    return logits


def pick_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


class HFBackend:
    def __init__(self, model, tokenizer, catalog: Catalog, *, version: str, context_tokens: int):
        self.model, self.tokenizer, self.catalog = model.eval(), tokenizer, catalog
        self.version, self.context_tokens = version, context_tokens
        self.label_ids = label_token_ids(tokenizer, catalog)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (tokenizer.eos_token_id or 0)
        self._lock = threading.Lock()  # one forward at a time; the batcher already serialises

    @classmethod
    def from_settings(cls, settings: PlannerSettings, catalog: Catalog) -> HFBackend:
        if settings.threads:
            torch.set_num_threads(settings.threads)
        resolved = resolve_planner(settings.model, settings.checkpoint, catalog)
        check_prompt(resolved, catalog)
        device = pick_device(settings.device)
        dtype = _DTYPES.get(settings.dtype) or (torch.bfloat16 if device == "cuda" else torch.float32)
        log.info("loading planner %s (%s, %s, %s)", resolved.model, device, dtype, resolved.version)
        tok_src = str(resolved.adapter) if resolved.adapter and (resolved.adapter / "tokenizer.json").exists() \
            else resolved.model
        tokenizer = AutoTokenizer.from_pretrained(tok_src)
        model = AutoModelForCausalLM.from_pretrained(resolved.model, dtype=dtype).to(device)
        if resolved.adapter:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, str(resolved.adapter)).merge_and_unload()
        return cls(model, tokenizer, catalog, version=resolved.version,
                   context_tokens=serving_context_tokens(resolved, settings.context_tokens,
                                                         "context_tokens" in settings.model_fields_set))

    def encode(self, item: PlanItem) -> list[int]:
        return encode_planner_prompt(self.tokenizer, item.question, item.steps, self.catalog,
                                     cot_budget_tokens=self.context_tokens, bos_token_id=self.tokenizer.bos_token_id)

    def forward(self, batch: list[list[int]]) -> list[list[float]]:
        with self._lock, torch.inference_mode():
            return label_logits(self.model, batch, self.label_ids, self.pad_id).float().cpu().tolist()

    async def label_logits(self, items: list[PlanItem]) -> list[list[float]]:
        batch = [self.encode(item) for item in items]
        for item, ids in zip(items, batch, strict=True):
            item.tokens["prompt"] = len(ids)  # one forward pass: no token is generated
        return await asyncio.to_thread(self.forward, batch)

    async def close(self) -> None:
        self.model = None

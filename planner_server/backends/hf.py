"""transformers backend: any causal LM by path or id, CPU or CUDA; one forward pass per batch,
reading only the last position's logits over the label tokens; a decision reuses the key/value states of the
prefix it shares with an earlier prompt (`planner_server.prefix_cache`) (L1)."""

from __future__ import annotations

import asyncio
import logging
import threading

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from planner_server.backends import PlanItem
from planner_server.checkpoint import check_prompt, resolve_planner, serving_context_tokens, serving_gate
from planner_server.prefix_cache import PrefixCache
from planner_server.prompt import PROMPT_TAIL, encode_planner_prompt, label_token_ids, prompt_head
from planner_server.settings import PlannerSettings
from service.catalog import Catalog

log = logging.getLogger("rsim.planner.hf")

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def _causal_lm(model):
    """The causal LM under a PEFT wrapper, and its backbone (the model without the output head)."""
    causal_lm = model.get_base_model() if hasattr(model, "get_base_model") else model
    return causal_lm, getattr(causal_lm, causal_lm.base_model_prefix)


def label_head(causal_lm, hidden: torch.Tensor, label_ids: list[int]) -> torch.Tensor:
    """[B, n_labels] logits from final hidden states [B, hidden], through the label rows of the output embedding."""
    head = causal_lm.get_output_embeddings()
    logits = hidden @ head.weight[label_ids].T
    if getattr(head, "bias", None) is not None:
        logits = logits + head.bias[label_ids]
    cap = getattr(causal_lm.config, "final_logit_softcapping", None)
    if cap:
        logits = torch.tanh(logits / cap) * cap
    return logits


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
    causal_lm, backbone = _causal_lm(model)
    hidden = backbone(input_ids=input_ids.to(device), attention_mask=mask.to(device),
                      position_ids=positions.to(device), use_cache=False).last_hidden_state[:, -1]
    return label_head(causal_lm, hidden, label_ids)


def cached_label_logits(model, batch: list[list[int]], label_ids: list[int], pad_id: int, cache: PrefixCache,
                        keep: list[int]) -> torch.Tensor:
    """`label_logits` (the same values, to rounding) prefilling only what follows each prompt's longest prefix
    found in `cache`; then the states of prompt i's first keep[i] tokens are cached. Inference only.

    Row i is laid out [pad | cached | new | pad]: its real tokens are contiguous, so causal and sliding-window
    masks count the same tokens as in the uncached (left-padded) batch, and positions are the tokens' own."""
    from transformers import DynamicCache

    device = next(model.parameters()).device
    causal_lm, backbone = _causal_lm(model)
    hits = [cache.lookup(ids) for ids in batch]
    past_len = max(n for _, n in hits)
    new = [ids[n:] for ids, (_, n) in zip(batch, hits, strict=True)]
    width = max(len(t) for t in new)
    input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    positions = torch.zeros((len(batch), width), dtype=torch.long)
    mask = torch.zeros((len(batch), past_len + width), dtype=torch.long)
    for i, (tokens, (_, n)) in enumerate(zip(new, hits, strict=True)):
        input_ids[i, :len(tokens)] = torch.tensor(tokens)
        positions[i] = torch.arange(n, n + width)
        mask[i, past_len - n:past_len + len(tokens)] = 1
    past = DynamicCache()
    if past_len:
        layers = []
        for layer, (k0, v0) in enumerate(next(e for e, n in hits if n).kv):
            k = k0.new_zeros((len(batch), k0.shape[0], past_len, k0.shape[2]))
            v = v0.new_zeros((len(batch), v0.shape[0], past_len, v0.shape[2]))
            for i, (e, n) in enumerate(hits):
                if n:
                    k[i, :, past_len - n:] = e.kv[layer][0][:, :n]
                    v[i, :, past_len - n:] = e.kv[layer][1][:, :n]
            layers.append((k, v))
        past = DynamicCache(layers)
    out = backbone(input_ids=input_ids.to(device), attention_mask=mask.to(device),
                   position_ids=positions.to(device), past_key_values=past, use_cache=True)
    last = torch.tensor([len(t) - 1 for t in new], device=device)
    logits = label_head(causal_lm, out.last_hidden_state[torch.arange(len(batch), device=device), last], label_ids)
    for i, (ids, (_, n)) in enumerate(zip(batch, hits, strict=True)):
        start = past_len - n  # where row i's first real token sits
        span = slice(start, start + keep[i])
        cache.insert(ids[:keep[i]], [(layer.keys[i, :, span].clone(memory_format=torch.contiguous_format),
                                      layer.values[i, :, span].clone(memory_format=torch.contiguous_format))
                                     for layer in out.past_key_values.layers])
    return logits


def pick_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


class HFBackend:
    value_scale: float | None = None  # a checkpoint trained on step values: its τ and calibrated gate margin
    gate_margin: float | None = None

    def __init__(self, model, tokenizer, catalog: Catalog, *, version: str, context_tokens: int,
                 prefix_cache: PrefixCache | None = None):
        self.model, self.tokenizer, self.catalog = model.eval(), tokenizer, catalog
        self.version, self.context_tokens = version, context_tokens
        self.prefix_cache = prefix_cache  # None: every decision reads its whole prompt
        self._tail_len = len(tokenizer.encode(PROMPT_TAIL, add_special_tokens=False))
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
        cache = None
        if settings.prefix_cache_entries > 0 and settings.prefix_cache_mb > 0:
            cache = PrefixCache(max_entries=settings.prefix_cache_entries, ttl_s=settings.prefix_cache_ttl_s,
                                max_bytes=int(settings.prefix_cache_mb * 2**20))
        backend = cls(model, tokenizer, catalog, version=resolved.version, prefix_cache=cache,
                      context_tokens=serving_context_tokens(resolved, settings.context_tokens,
                                                            "context_tokens" in settings.model_fields_set))
        backend.value_scale, backend.gate_margin = serving_gate(resolved)
        return backend

    def encode(self, item: PlanItem) -> list[int]:
        return encode_planner_prompt(self.tokenizer, item.question, item.steps, self.catalog,
                                     cot_budget_tokens=self.context_tokens, bos_token_id=self.tokenizer.bos_token_id)

    def keep_length(self, item: PlanItem, ids: list[int]) -> int:
        """How many of a prompt's first tokens the episode's next decision can reuse: all but the tail (the next
        prompt puts a new step before it) and the chain of thought's last token (the next step's first characters
        may merge with it); only the question part while the chain of thought is a placeholder (no step yet) or
        at its budget (the next prompt cuts it at another token)."""
        head = len(self.tokenizer.encode(prompt_head(item.question, self.catalog), add_special_tokens=False))
        head += self.tokenizer.bos_token_id is not None
        if not item.steps or len(ids) - head - self._tail_len >= self.context_tokens:
            return head
        return len(ids) - self._tail_len - 1

    def forward(self, batch: list[list[int]], keep: list[int] | None = None) -> list[list[float]]:
        """Logits of a batch of prompts; with `keep` (and a prefix cache), through the cache."""
        with self._lock, torch.inference_mode():
            if self.prefix_cache is None or keep is None:
                logits = label_logits(self.model, batch, self.label_ids, self.pad_id)
            else:
                logits = cached_label_logits(self.model, batch, self.label_ids, self.pad_id, self.prefix_cache, keep)
            return logits.float().cpu().tolist()

    async def label_logits(self, items: list[PlanItem]) -> list[list[float]]:
        batch = [self.encode(item) for item in items]
        for item, ids in zip(items, batch, strict=True):
            item.tokens["prompt"] = len(ids)  # one forward pass: no token is generated
        keep = [self.keep_length(it, ids) for it, ids in zip(items, batch, strict=True)] if self.prefix_cache else None
        return await asyncio.to_thread(self.forward, batch, keep)

    async def close(self) -> None:
        self.model, self.prefix_cache = None, None  # a forward in flight keeps its own references

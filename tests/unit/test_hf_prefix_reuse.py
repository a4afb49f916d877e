"""Prefix reuse in the hf planner backend: an episode's next prompt extends the part of its previous one that
is cached, and batched decisions through the cache, with different cached lengths, give the distributions of
the uncached path and of one decision at a time (tiny Qwen2, tiny Gemma 3 with a short sliding window, and the
real Gemma 3 270M when it is on this machine)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from planner_server.backends import PlanItem
from planner_server.backends.hf import HFBackend, label_logits
from planner_server.prefix_cache import PrefixCache
from planner_server.protocol import PlanStep
from planner_server.settings import PlannerSettings
from service.catalog import load_catalog

GEMMA = next((p for p in (Path.home() / ".cache/rsim/gemma-3-270m", Path(__file__).parents[2] / ".cache/gemma-3-270m")
              if (p / "config.json").is_file()), None)
STEP = "We add the two numbers, carry the one, and check the sum against an estimate before going on."


def probabilities(logits: list[float]) -> list[float]:
    top = max(logits)
    exp = [math.exp(x - top) for x in logits]
    return [e / sum(exp) for e in exp]


def backend(model, tokenizer, *, cached: bool, context_tokens: int = 1024) -> HFBackend:
    cache = PrefixCache(max_entries=64, max_bytes=1 << 30, ttl_s=600.0) if cached else None
    return HFBackend(model, tokenizer, load_catalog(), version="test", context_tokens=context_tokens,
                     prefix_cache=cache)


def tiny_gemma(tiny_model: Path):
    """A random Gemma 3 text model with a 16-token sliding window (prompts are hundreds of tokens long) and a
    logit soft-cap, on the tiny tokenizer given a BOS token."""
    from transformers import AutoTokenizer, Gemma3ForCausalLM, Gemma3TextConfig

    tok = AutoTokenizer.from_pretrained(tiny_model)
    tok.bos_token = tok.eos_token
    config = Gemma3TextConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=3,
                              num_attention_heads=2, num_key_value_heads=1, head_dim=32, sliding_window=16,
                              layer_types=["sliding_attention", "sliding_attention", "full_attention"],
                              max_position_embeddings=4096, final_logit_softcapping=30.0,
                              bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                              pad_token_id=tok.pad_token_id)
    torch.manual_seed(0)
    return Gemma3ForCausalLM(config).eval(), tok


def model_of(name: str, tiny_model: Path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if name == "tiny-qwen2":
        return AutoModelForCausalLM.from_pretrained(tiny_model).eval(), AutoTokenizer.from_pretrained(tiny_model)
    if name == "tiny-gemma3":
        return tiny_gemma(tiny_model)
    if GEMMA is None:
        pytest.skip("the real Gemma 3 270M is not on this machine (~/.cache/rsim/gemma-3-270m)")
    torch.set_num_threads(min(2, torch.get_num_threads()))
    return AutoModelForCausalLM.from_pretrained(GEMMA, dtype=torch.float32).eval(), AutoTokenizer.from_pretrained(GEMMA)


def grow(steps: list[PlanStep], k: int) -> None:
    steps.append(PlanStep(strategy="unguided" if not steps else "decomposition", text=f"({k}) {STEP}"))


@pytest.mark.parametrize("budget", [1024, 40])
def test_the_kept_prefix_of_a_prompt_starts_the_next_one(tiny_model, budget):
    """The tail ("Next strategy: ") follows the chain of thought, so a prompt is never a prefix of the next one;
    what the backend keeps (the question part and the chain of thought) is, also once the budget cuts the chain
    of thought (then only the question part is kept)."""
    model, tok = model_of("tiny-qwen2", tiny_model)
    b = backend(model, tok, cached=True, context_tokens=budget)
    steps: list[PlanStep] = []
    previous = None
    for k in range(6):
        item = PlanItem("What is 17 + 25?", list(steps))
        ids = b.encode(item)
        if previous is not None:
            prev_ids, prev_keep = previous
            assert ids[:len(prev_ids)] != prev_ids or budget < 1024  # (cut chains of the same steps may be equal)
            assert ids[:prev_keep] == prev_ids[:prev_keep]
        previous = ids, b.keep_length(item, ids)
        grow(steps, k)
    head = previous[1]
    assert (head < len(previous[0]) - 40) if budget == 40 else (head == len(previous[0]) - b._tail_len - 1)


@pytest.mark.parametrize("name", ["tiny-qwen2", "tiny-gemma3", "gemma-3-270m"])
@pytest.mark.parametrize("budget", [1024, 48])
async def test_cached_batches_decide_like_uncached_ones_and_one_at_a_time(tiny_model, name, budget):
    if name == "gemma-3-270m" and budget != 1024:
        pytest.skip("one budget is enough for the real model")
    model, tok = model_of(name, tiny_model)
    batched = backend(model, tok, cached=True, context_tokens=budget)
    alone = backend(model, tok, cached=True, context_tokens=budget)
    plain = backend(model, tok, cached=False, context_tokens=budget)
    decisions = 3 if name == "gemma-3-270m" else 5
    episodes: list[tuple[str, list[PlanStep]]] = [("What is 17 + 25?", []), ("A train leaves at 3 pm; " * 3, [])]
    for k in range(decisions):
        if k == 2:  # a new episode joins: cached lengths in one batch now range from the menu alone to long chains
            episodes.append(("How many legs do 7 spiders have?", []))
        items = [PlanItem(q, list(s)) for q, s in episodes]
        before = batched.prefix_cache.stats.reused_tokens
        got = [probabilities(x) for x in await batched.label_logits(items)]
        want = [probabilities(x) for x in await plain.label_logits(items)]
        one = [probabilities((await alone.label_logits([it]))[0]) for it in items]
        for g, w, o in zip(got, want, one, strict=True):
            assert g == pytest.approx(w, abs=1e-4) and o == pytest.approx(w, abs=1e-4)
        if k:
            assert batched.prefix_cache.stats.reused_tokens > before
        for i, (_, s) in enumerate(episodes):
            grow(s, k + i)
    stats = batched.prefix_cache.stats
    assert stats.reused_tokens > stats.prefilled_tokens  # most of the prompts came from the cache
    assert len(batched.prefix_cache.entries) == len(episodes)  # each episode's entry replaced its previous one


async def test_from_settings_bounds_the_cache_and_zero_turns_it_off(tiny_model):
    on = HFBackend.from_settings(PlannerSettings(model=str(tiny_model), threads=1, prefix_cache_entries=3,
                                                 prefix_cache_mb=2, prefix_cache_ttl_s=5), load_catalog())
    assert (on.prefix_cache.max_entries, on.prefix_cache.max_bytes, on.prefix_cache.ttl_s) == (3, 2 << 20, 5.0)
    for q in ("a?", "b?", "c?", "d?"):
        await on.label_logits([PlanItem(q, [PlanStep(strategy="decomposition", text=STEP)])])
    assert len(on.prefix_cache.entries) == 3
    off = HFBackend.from_settings(PlannerSettings(model=str(tiny_model), threads=1, prefix_cache_entries=0),
                                  load_catalog())
    assert off.prefix_cache is None
    await on.close()
    assert on.prefix_cache is None


def test_training_path_keeps_its_gradients_and_values(tiny_model):
    """label_logits (what training calls with gradients on) still equals the full model's logits at the label
    tokens and still carries gradients."""
    model, tok = model_of("tiny-gemma3", tiny_model)
    b = backend(model, tok, cached=False)
    ids = [b.encode(PlanItem("What is 2 + 3?", [PlanStep(strategy="decomposition", text=STEP)])),
           b.encode(PlanItem("Why?", []))]
    logits = label_logits(model, ids, b.label_ids, b.pad_id)
    assert logits.requires_grad
    for row, seq in zip(logits, ids, strict=True):
        full = model(input_ids=torch.tensor([seq])).logits[0, -1, b.label_ids]
        assert row.tolist() == pytest.approx(full.tolist(), abs=1e-4)

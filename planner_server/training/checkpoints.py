"""Training checkpoints: an HF folder (full weights or a PEFT adapter) + tokenizer + manifest.json
+ trainer_state.pt (optimizer, RNG, data position), written to a temp folder then renamed, and a
`latest` pointer replaced atomically. The serving side reads them with `planner_server.checkpoint`."""

from __future__ import annotations

import json
import os
import pickle
import random
import shutil
import time
from pathlib import Path
from typing import Any

import torch

LATEST = "latest"


def checkpoints_dir(run_dir: Path) -> Path:
    return run_dir / "checkpoints"


def save_checkpoint(run_dir: Path, *, step: int, model, tokenizer, optimizer, data_position: int,
                    base_model: str, catalog_version: str, config: dict[str, Any], metrics: dict[str, Any],
                    keep: int = 3, extra: dict[str, Any] | None = None, serving: dict[str, Any] | None = None) -> Path:
    """`extra`: more models saved in sub-folders (joint mode's reasoner under `reasoner/`). `serving`: what a
    server must match to decide as the planner was trained (context tokens, prompt digest, temperature)."""
    root = checkpoints_dir(run_dir)
    root.mkdir(parents=True, exist_ok=True)
    name = f"step-{step:06d}"
    tmp = root / f".tmp-{name}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    for sub, other in (extra or {}).items():
        other.save_pretrained(tmp / sub)
    manifest = {"step": step, "base_model": base_model, "catalog_version": catalog_version, "config": config,
                "metrics": metrics, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                **({"serving": serving} if serving else {})}
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, default=str))
    torch.save({"optimizer": optimizer.state_dict(), "python_rng": random.getstate(),
                "torch_rng": torch.get_rng_state(), "data_position": data_position, "step": step},
               tmp / "trainer_state.pt")
    final = root / name
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)  # a checkpoint is either whole or absent
    pointer = root / f".{LATEST}.tmp"
    pointer.write_text(name)
    os.replace(pointer, root / LATEST)
    for old in sorted(p for p in root.glob("step-*") if p.is_dir())[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def latest_checkpoint(run_dir: Path) -> Path | None:
    pointer = checkpoints_dir(run_dir) / LATEST
    if not pointer.is_file():
        return None
    path = checkpoints_dir(run_dir) / pointer.read_text().strip()
    return path if path.is_dir() else None


class UnsafeTrainerState(ValueError):
    """A trainer_state.pt that holds more than tensors and plain values (a pickle that could run code)."""


def load_trainer_state(ckpt: Path, optimizer) -> dict[str, Any]:
    """Optimizer, RNG and data position back from a checkpoint. Read with torch's weights-only unpickler:
    tensors, numbers, strings and containers load, anything else (an object whose unpickling runs code) is
    refused rather than executed — a checkpoint folder may come from anywhere."""
    path = ckpt / "trainer_state.pt"
    try:
        state = torch.load(path, weights_only=True)
    except pickle.UnpicklingError as e:
        raise UnsafeTrainerState(f"{path} holds more than tensors and plain values; refusing to unpickle it "
                                 f"(torch.load weights_only): {str(e).splitlines()[0]}") from e
    optimizer.load_state_dict(state["optimizer"])
    random.setstate(state["python_rng"])
    torch.set_rng_state(state["torch_rng"])
    return state

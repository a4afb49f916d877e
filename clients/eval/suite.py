"""`rsim eval suite FILE`: a YAML suite of reasoners × planners × datasets × methods.

    name: cpu-smoke
    out: runs/eval/cpu-smoke
    episode: {max_steps: 3, max_tokens_per_step: 24, final_max_tokens: 12}
    reasoners: [{name: gemma-3-270m, url: "${RSIM_REASONER_URL:-http://127.0.0.1:8002/v1}", model: gemma-3-270m}]
    planners: [{name: untrained, service_url: "http://127.0.0.1:8000"}]   # or planner_url / checkpoint / model
    datasets: [{name: synthetic, limit: 8, steps: [3, 5], scale: 3}, {name: gsm8k, path: data/gsm8k-test.jsonl}]
    methods: [zerocot, ps+, rsim, fixed:verification]

Baselines (zerocot, ps+, prompting) do not depend on the planner and run once per reasoner; `rsim`
and `fixed:*` run for each planner. Results: OUT/<reasoner>/ with one report per reasoner, the
planned methods named `<method>@<planner>` when there are several planners. `${VAR:-default}` is
expanded from the environment."""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path
from typing import Any

import yaml

from clients.eval.datasets import load_dataset
from clients.eval.report import build_report, record_skipped
from clients.eval.runner import EvalConfig, PlannerSpec, Runner

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def expand(text: str) -> str:
    def sub(m: re.Match[str]) -> str:
        value = os.environ.get(m.group(1))
        if value is None:
            if m.group(2) is None:
                raise ValueError(f"suite needs the environment variable {m.group(1)}")
            return m.group(2)
        return value
    return _VAR.sub(sub, text)


def load_suite(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"suite file not found: {p}")
    suite = yaml.safe_load(expand(p.read_text()))
    for key in ("reasoners", "datasets", "methods"):
        if not suite.get(key):
            raise ValueError(f"{p}: the suite needs a non-empty '{key}' list")
    return suite


async def run_suite(path: str | Path, *, out: Path | None = None, limit: int | None = None) -> list[Path]:
    suite = load_suite(path)
    root = Path(out or suite.get("out") or f"runs/eval/{suite.get('name', 'suite')}")
    episode = suite.get("episode", {})
    planners = suite.get("planners") or [{"name": "none"}]
    reports = []
    for reasoner in suite["reasoners"]:
        run_dir = root / reasoner["name"]
        skipped: list[dict[str, str]] = []
        datasets = [(d["name"], load_dataset(d["name"], d.get("path"), limit=limit or d.get("limit"),
                                             seed=d.get("seed", 0), steps=d.get("steps", (2, 4)),
                                             scale=d.get("scale", 1), skipped=skipped)) for d in suite["datasets"]]
        record_skipped(run_dir, skipped)
        for i, planner in enumerate(planners):
            methods = [m for m in suite["methods"]
                       if i == 0 or m == "rsim" or m.startswith("fixed:")]  # baselines once per reasoner
            cfg = EvalConfig(reasoner_url=reasoner["url"], reasoner_model=reasoner["model"], out=run_dir,
                             reasoner_mode=reasoner.get("mode", "continue"),
                             planner=PlannerSpec(**{k: v for k, v in planner.items() if k in PlannerSpec.__annotations__}),
                             prompting_url=reasoner.get("prompting_url"), prompting_model=reasoner.get("prompting_model"),
                             prompting_constrain=reasoner.get("prompting_constrain", False),
                             concurrency=suite.get("concurrency", 4), **episode)
            async with Runner(cfg) as runner:
                for name, problems in datasets:
                    for method in methods:
                        label = method if len(planners) == 1 or not (method == "rsim" or method.startswith("fixed:")) \
                            else f"{method}@{planner['name']}"
                        await runner.run(name, problems, method, label=label)
        build_report(run_dir)
        reports.append(run_dir / "report.md")
    return reports


def run_suite_sync(path: str | Path, **kw: Any) -> list[Path]:
    return asyncio.run(run_suite(path, **kw))

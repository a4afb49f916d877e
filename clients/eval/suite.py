"""`rsim eval suite FILE`: a YAML suite of reasoners × planners × datasets × methods.

    name: cpu-smoke
    out: runs/eval/cpu-smoke
    episode: {max_steps: 3, max_tokens_per_step: 24, final_max_tokens: 12}
    reasoners: [{name: gemma-3-270m, url: "${RSIM_REASONER_URL:-http://127.0.0.1:8002/v1}", model: gemma-3-270m}]
    planners: [{name: untrained, service_url: "http://127.0.0.1:8000"}]   # or planner_url / checkpoint / model
    datasets: [{name: synthetic, limit: 8, steps: [3, 5], scale: 3}, {name: gsm8k, path: data/gsm8k-test.jsonl}]
    methods: [zerocot, ps+, rsim, fixed:verification]

Baselines (plain, zerocot, ps+, prompting) do not depend on the planner and run once per reasoner; `rsim`
and `fixed:*` run for each planner. A reasoner may narrow both: `methods: [...]` and `planners: [names]`
(e.g. a jointly trained reasoner with only its own planner, a GRPO-trained one with only zerocot). Results: OUT/<reasoner>/ with one report per reasoner, the
planned methods named `<method>@<planner>` when there are several planners. `${VAR:-default}` is
expanded from the environment."""

from __future__ import annotations

import asyncio
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from clients.eval.datasets import load_dataset
from clients.eval.report import build_report, record_skipped
from clients.eval.runner import EvalConfig, PlannerSpec, Runner
from service.baselines import BASELINES
from service.gate import GATES

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


PLANNED = ("rsim",)  # and every `rsim:<gate>` and `fixed:<strategy>`: they run once per planner


def _planned(method: str) -> bool:
    return method in PLANNED or method.startswith(("fixed:", "rsim:"))


@dataclass
class Job:
    """One Runner: a reasoner with one planner (or one prompted planner) and the methods it runs."""

    reasoner: str
    run_dir: Path
    cfg: EvalConfig
    methods: list[tuple[str, str]]  # (method, label in the report)


def _prompting_entries(reasoner: dict[str, Any]) -> list[dict[str, Any]]:
    """The prompted planners of a reasoner: `prompting: [{name, url, model, constrain}]`, or the single
    `prompting_url`/`prompting_model` (default: the reasoner prompting itself)."""
    if reasoner.get("prompting"):
        return list(reasoner["prompting"])
    return [{"name": "prompting", "url": reasoner.get("prompting_url"), "model": reasoner.get("prompting_model"),
             "constrain": reasoner.get("prompting_constrain", False)}]


def plan_suite(suite: dict[str, Any], root: Path) -> list[Job]:
    """The run matrix: baselines once per reasoner, `rsim`/`fixed:*` once per planner, `prompting` once per
    prompted planner (labelled `<method>@<name>` where there are several)."""
    episode = {k: v for k, v in suite.get("episode", {}).items()
               if k in EvalConfig.__dataclass_fields__}  # an unknown key is check_suite's to report
    all_planners = suite.get("planners") or [{"name": "none"}]
    jobs = []
    for reasoner in suite["reasoners"]:
        methods = list(reasoner.get("methods") or suite["methods"])
        planners = [p for p in all_planners if p.get("name") in reasoner["planners"]] \
            if reasoner.get("planners") else all_planners
        run_dir = root / reasoner["name"]
        prompting = _prompting_entries(reasoner)

        def cfg(planner: dict[str, Any], prompt: dict[str, Any]) -> EvalConfig:
            return EvalConfig(reasoner_url=reasoner["url"], reasoner_model=reasoner["model"], out=run_dir,
                              reasoner_mode=reasoner.get("mode", "continue"),
                              planner=PlannerSpec(**{k: v for k, v in planner.items() if k in PlannerSpec.__annotations__}),
                              prompting_url=prompt.get("url"), prompting_model=prompt.get("model"),
                              prompting_constrain=prompt.get("constrain", False),
                              optillm_url=reasoner.get("optillm_url"), concurrency=suite.get("concurrency", 4),
                              **episode)
        for i, planner in enumerate(planners):
            mine = [(m, f"{m}@{planner['name']}" if len(all_planners) > 1 else m) for m in methods if _planned(m)]
            if i == 0:
                mine = [(m, m) for m in methods if not _planned(m) and m != "prompting"] + mine
            if mine:
                jobs.append(Job(reasoner["name"], run_dir, cfg(planner, prompting[0]), mine))
        if "prompting" in methods:
            for prompt in prompting:
                label = "prompting" if len(prompting) == 1 else f"prompting@{prompt['name']}"
                jobs.append(Job(reasoner["name"], run_dir, cfg(planners[0], prompt), [("prompting", label)]))
    return jobs


def check_suite(suite: dict[str, Any], jobs: list[Job]) -> list[str]:
    """Everything wrong with a suite that can be known without running it: unknown methods or strategies, a
    planned method without a planner, a planner or prompted planner named twice or with no source, a checkpoint
    or model folder that is not there, `optillm:` without an OptiLLM URL, episode keys the runner does not take."""
    from service.catalog import load_catalog

    problems = []
    catalog = load_catalog(suite.get("catalog"))
    known_episode = set(EvalConfig.__dataclass_fields__) - {"reasoner_url", "reasoner_model", "out", "planner",
                                                            "prompting_url", "prompting_model", "prompting_constrain",
                                                            "optillm_url", "concurrency"}
    for key in suite.get("episode", {}):
        if key not in known_episode:
            problems.append(f"episode: unknown key '{key}' (known: {', '.join(sorted(known_episode))})")
    every_method = list(dict.fromkeys([*suite["methods"], *(m for r in suite["reasoners"]
                                                              for m in r.get("methods") or [])]))
    for m in every_method:
        if m.startswith("fixed:") and m.split(":", 1)[1] not in catalog.ids:
            problems.append(f"method {m}: no strategy '{m.split(':', 1)[1]}' in the catalog ({', '.join(catalog.ids)})")
        elif m.startswith("rsim:") and m.split(":", 1)[1] not in GATES:
            problems.append(f"method {m}: no gate '{m.split(':', 1)[1]}' (known: {', '.join(GATES)})")
        elif not (m in (*BASELINES, "prompting", "rsim") or m.startswith(("fixed:", "optillm:", "rsim:"))):
            problems.append(f"unknown method '{m}' (known: plain, zerocot, ps+, prompting, rsim, rsim:<gate>, "
                            "fixed:<strategy>, optillm:<approach>)")
    planners = suite.get("planners") or []
    if any(_planned(m) for m in every_method) and not planners:
        problems.append("rsim and fixed:* methods need a planners list (service_url, planner_url, checkpoint or model)")
    names = [p.get("name") for p in planners]
    if len(set(names)) != len(names):
        problems.append(f"planner names must be unique: {names}")
    for p in planners:
        sources = [k for k in ("service_url", "planner_url", "checkpoint", "model") if p.get(k)]
        if not sources:
            problems.append(f"planner {p.get('name')}: give one of service_url, planner_url, checkpoint, model")
        if p.get("checkpoint") and not Path(p["checkpoint"]).expanduser().exists():
            problems.append(f"planner {p.get('name')}: checkpoint {p['checkpoint']} not found")
        model = p.get("model")
        if model and model.startswith(("/", "./", "~")) and not Path(model).expanduser().is_dir():
            problems.append(f"planner {p.get('name')}: model folder {model} not found")
    for r in suite["reasoners"]:
        for key in ("name", "url", "model"):
            if not r.get(key):
                problems.append(f"reasoner {r.get('name', '?')}: '{key}' is required")
        if any(m.startswith("optillm:") for m in r.get("methods") or suite["methods"]) and not r.get("optillm_url"):
            problems.append(f"reasoner {r.get('name')}: optillm:* methods need its optillm_url")
        for name in r.get("planners") or []:
            if name not in names:
                problems.append(f"reasoner {r.get('name')}: no planner named '{name}' (planners: {names})")
        pnames = [p.get("name") for p in _prompting_entries(r)]
        if len(set(pnames)) != len(pnames):
            problems.append(f"reasoner {r.get('name')}: prompted planner names must be unique: {pnames}")
    return problems


def load_datasets(suite: dict[str, Any], limit: int | None, skipped: list[dict[str, str]]) -> list[tuple[str, list]]:
    return [(d["name"], load_dataset(d["name"], d.get("path"), limit=limit or d.get("limit"), seed=d.get("seed", 0),
                                     steps=d.get("steps", (2, 4)), scale=d.get("scale", 1), skipped=skipped))
            for d in suite["datasets"]]


def dry_run(path: str | Path, *, out: Path | None = None, limit: int | None = None) -> tuple[list[str], list[str]]:
    """Validate a suite and print nothing: (the run matrix as text lines, the problems found). Datasets are
    loaded (files checked, rows counted); no server is contacted."""
    suite = load_suite(path)
    root = Path(out or suite.get("out") or f"runs/eval/{suite.get('name', 'suite')}")
    jobs = plan_suite(suite, root)
    problems = check_suite(suite, jobs)
    sizes: dict[str, int | None] = {}
    skipped: list[dict[str, str]] = []
    for d in suite["datasets"]:
        try:
            sizes[d["name"]] = len(load_datasets({"datasets": [d]}, limit, skipped)[0][1])
        except (OSError, ValueError, KeyError) as e:
            sizes[d.get("name", "?")] = None
            problems.append(f"dataset {d.get('name')}: {e}")
    lines = [f"suite {suite.get('name', Path(path).stem)} → {root}",
             "reasoner | planner | method (label) | dataset | problems"]
    episodes = 0
    for job in jobs:
        for method, label in job.methods:
            source = (job.cfg.planner.name if _planned(method) else
                      f"prompted {job.cfg.prompting_model or job.cfg.reasoner_model}" if method == "prompting" else "–")
            for name, n in sizes.items():
                lines.append(f"{job.reasoner} | {source} | {label} | {name} | {'missing' if n is None else n}")
                episodes += n or 0
    max_steps = suite.get("episode", {}).get("max_steps", EvalConfig.__dataclass_fields__["max_steps"].default)
    lines.append(f"{len(lines) - 2} runs, {episodes} episodes (each at most {max_steps} steps + the answer)"
                 + (f"; {len(skipped)} dataset rows would be skipped" if skipped else ""))
    return lines, problems


async def run_suite(path: str | Path, *, out: Path | None = None, limit: int | None = None) -> list[Path]:
    suite = load_suite(path)
    root = Path(out or suite.get("out") or f"runs/eval/{suite.get('name', 'suite')}")
    jobs = plan_suite(suite, root)
    if problems := check_suite(suite, jobs):
        raise ValueError(f"{path}: " + "; ".join(problems))
    reports = []
    for reasoner in suite["reasoners"]:
        run_dir = root / reasoner["name"]
        skipped: list[dict[str, str]] = []
        datasets = load_datasets(suite, limit, skipped)
        record_skipped(run_dir, skipped)
        for job in (j for j in jobs if j.reasoner == reasoner["name"]):
            async with Runner(job.cfg) as runner:
                for name, problems in datasets:
                    for method, label in job.methods:
                        await runner.run(name, problems, method, label=label)
        build_report(run_dir)
        reports.append(run_dir / "report.md")
    return reports


def run_suite_sync(path: str | Path, **kw: Any) -> list[Path]:
    return asyncio.run(run_suite(path, **kw))

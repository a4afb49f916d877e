"""Reports of an evaluation run, rebuilt from its per-item records alone (`rsim eval report RUN_DIR`):
metrics per method × dataset with a 95% confidence interval on each score, an *oracle* row (per
question, right if any fixed strategy got it right: what a perfect planner could reach), Markdown and
CSV tables in the paper's shape (rows = methods, columns = datasets with Score and #Strategy), JSON,
and PNG plots."""

from __future__ import annotations

import csv
import json
import math
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from statistics import fmean, pstdev
from typing import Any

from clients.eval.paired import paired_markdown, paired_table
from service.catalog import TERMINATION, UNGUIDED


def read_records(run_dir: Path) -> list[dict[str, Any]]:
    root = run_dir / "records"
    if not root.is_dir():
        raise FileNotFoundError(f"no records/ in {run_dir}; is it an evaluation run folder?")
    latest: dict[tuple[str, str, str], dict[str, Any]] = {}
    for path in sorted(root.glob("*/*.jsonl")):
        for line in path.read_text().splitlines():
            if line.strip():
                rec = json.loads(line)
                latest[(rec["dataset"], rec["method"], rec["id"])] = rec  # a re-run item replaces its error
    return list(latest.values())


def run_order(run_dir: Path) -> list[tuple[str, str]]:
    path = run_dir / "order.jsonl"
    if not path.is_file():
        return []
    return [(e["method"], e["dataset"]) for e in map(json.loads, path.read_text().splitlines()) if e]


ORACLE = "oracle(fixed)"


def wilson(correct: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a proportion, in percent (sound at small n and at 0% or 100%)."""
    if n == 0:
        return 0.0, 0.0
    p = correct / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return 100 * max(0.0, centre - half), 100 * min(1.0, centre + half)


def oracle_records(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per dataset, over the questions every fixed strategy answered: right if any of them was right."""
    out = []
    for dataset in dict.fromkeys(r["dataset"] for r in records):
        fixed: dict[str, dict[str, dict[str, Any]]] = {}
        for r in records:
            if r["dataset"] == dataset and r["method"].startswith("fixed:"):
                fixed.setdefault(r["method"], {})[r["id"]] = r
        if len(fixed) < 2:
            continue
        common = set.intersection(*(set(by_id) for by_id in fixed.values()))
        for qid in sorted(common):
            rows = [by_id[qid] for by_id in fixed.values()]
            best = next((r for r in rows if r["correct"]), rows[0])
            out.append({**best, "method": ORACLE, "correct": any(r["correct"] for r in rows),
                        "oracle_of": sorted(m for m, by_id in fixed.items() if by_id[qid]["correct"])})
    return out


def metrics(records: list[dict[str, Any]], order: list[tuple[str, str]] = ()) -> list[dict[str, Any]]:
    """One row per (method, dataset) cell, in run order (then alphabetical for cells not in `order`)."""
    cells: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in records:
        cells.setdefault((r["method"], r["dataset"]), []).append(r)
    rank = {key: i for i, key in enumerate(order)}
    out = []
    for (method, dataset), rs in sorted(cells.items(), key=lambda kv: (rank.get(kv[0], len(rank)), kv[0])):
        ok = [r for r in rs if r["error"] is None]
        tokens = [r["tokens"] for r in ok]
        planned = any(r["strategies"] for r in ok)
        lo, hi = wilson(sum(bool(r["correct"]) for r in rs), len(rs))
        out.append({
            "method": method, "dataset": dataset, "n": len(rs), "errors": len(rs) - len(ok),
            "score": 100 * sum(r["correct"] for r in rs) / len(rs), "ci95": [lo, hi],
            "n_strategies": fmean(r["n_strategies"] for r in ok) if ok and planned else None,
            "tokens_mean": fmean(tokens) if tokens else 0.0, "tokens_std": pstdev(tokens) if len(tokens) > 1 else 0.0,
            "latency_ms_mean": fmean(r["latency_ms"] for r in ok) if ok else 0.0,
            "planner_calls_mean": fmean(r["planner_calls"] for r in ok) if ok else 0.0,
            # the token split; None where a record could not say (older records, a reasoner without /tokenize)
            "injected_tokens_mean": mean_of(ok, "injected_tokens"),
            "planner_tokens_mean": mean_of(ok, "planner_tokens"),
            "strategy_applications": fmean(sum(s not in (TERMINATION, UNGUIDED) for s in r["strategies"]) for r in ok)
            if ok and planned else None,
            "strategy_usage": dict(Counter(s for r in ok for s in r["strategies"])),
        })
    return out


def mean_of(records: list[dict[str, Any]], key: str) -> float | None:
    values = [r.get(key) for r in records]
    return fmean(values) if values and all(isinstance(v, (int, float)) for v in values) else None


def fmt(v: float | None, digits: int = 1) -> str:
    return "–" if v is None else f"{v:.{digits}f}"


def tables(rows: list[dict[str, Any]]) -> tuple[str, list[list[str]]]:
    methods = list(dict.fromkeys(r["method"] for r in rows))
    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    cell = {(r["method"], r["dataset"]): r for r in rows}
    header = ["Method"] + [f"{d} {k}" for d in datasets for k in ("Score", "95% CI", "n", "#Strategy", "tokens",
                                                                   "wall s")]
    body = []
    for m in methods:
        line = [m]
        for d in datasets:
            r = cell.get((m, d))
            n = f"{r['n']} ({r['errors']} failed, scored wrong)" if r["errors"] else str(r["n"])
            line += [fmt(r["score"]), f"{r['ci95'][0]:.0f}–{r['ci95'][1]:.0f}", n,
                     fmt(r["n_strategies"], 2), f"{r['tokens_mean']:.0f}", f"{r['latency_ms_mean'] / 1000:.0f}"] \
                if r else [""] * 6
        body.append(line)
    md = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    md += ["| " + " | ".join(line) + " |" for line in body]
    md += ["", "#Strategy: distinct strategies a question's planned steps applied (termination and the reasoner's "
           "own unguided steps not counted), averaged over questions; applications: planned steps that applied "
           "one (a strategy used twice counts twice).", "",
           "Tokens per question (mean): generated by the reasoner (± std), injected into its chain of thought by "
           "the method (instructions, counted by the reasoner's tokenizer; – where it cannot count), and read and "
           "written by the planner model (0 for methods without one):", "",
           "| Method | " + " | ".join(f"{d} {k}" for d in datasets for k in ("generated", "injected", "planner",
                                                                            "applications")) + " |",
           "|" + "---|" * (4 * len(datasets) + 1)]
    for m in methods:
        row = []
        for d in datasets:
            r = cell.get((m, d))
            row += [f"{r['tokens_mean']:.0f} ± {r['tokens_std']:.0f}", fmt(r.get("injected_tokens_mean"), 0),
                    fmt(r.get("planner_tokens_mean"), 0), fmt(r.get("strategy_applications"), 2)] if r else [""] * 4
        md.append("| " + m + " | " + " | ".join(row) + " |")
    return "\n".join(md) + "\n", [header, *body]


def save_scatter(plt: Any, fig: Any, ax: Any, path: Path, xlabel: str, ylabel: str, title: str) -> Path:
    """Label, grid, write and close one of the report's score scatter plots."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plots(rows: list[dict[str, Any]], records: list[dict[str, Any]], out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for r in rows:
        if r["n_strategies"] is not None:
            ax.scatter(r["n_strategies"], r["score"], s=40)
            ax.annotate(f"{r['method']} · {r['dataset']}", (r["n_strategies"], r["score"]), fontsize=7,
                        xytext=(4, 3), textcoords="offset points")
    written.append(save_scatter(plt, fig, ax, out / "accuracy_vs_strategies.png", "#Strategy (distinct strategies per "
                                "question)", "Score (%)", "accuracy vs number of strategies"))

    planned = [r for r in rows if r["strategy_usage"]]
    if planned:
        names = sorted({s for r in planned for s in r["strategy_usage"]})
        fig, ax = plt.subplots(figsize=(max(7, 1.2 * len(planned)), 4.5))
        labels = [f"{r['method']}\n{r['dataset']}" for r in planned]
        bottom = [0.0] * len(planned)
        for name in names:
            share = [r["strategy_usage"].get(name, 0) / sum(r["strategy_usage"].values()) for r in planned]
            ax.bar(labels, share, bottom=bottom, label=name)
            bottom = [b + s for b, s in zip(bottom, share, strict=True)]
        ax.set_ylabel("share of steps")
        ax.set_title("strategy usage per method and dataset")
        ax.legend(fontsize=7, ncol=3)
        fig.tight_layout()
        written.append(out / "strategy_usage.png")
        fig.savefig(written[-1], dpi=110)
        plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for r in rows:
        if r["tokens_mean"]:
            lo, hi = r["ci95"]
            ax.errorbar(r["tokens_mean"], r["score"], yerr=[[r["score"] - lo], [hi - r["score"]]], fmt="o",
                        capsize=3, alpha=0.8)
            ax.annotate(f"{r['method']} · {r['dataset']}", (r["tokens_mean"], r["score"]), fontsize=7,
                        xytext=(4, 3), textcoords="offset points")
    written.append(save_scatter(plt, fig, ax, out / "accuracy_vs_tokens.png", "generated tokens per question (mean)",
                                "Score (%), 95% CI", "accuracy vs tokens"))

    fig, ax = plt.subplots(figsize=(max(7, 1.2 * len(rows)), 4.5))
    groups = [[x["tokens"] for x in records if x["method"] == r["method"] and x["dataset"] == r["dataset"]
               and x["error"] is None] or [0] for r in rows]
    ax.boxplot(groups)
    ax.set_xticks(range(1, len(rows) + 1), [f"{r['method']}\n{r['dataset']}" for r in rows], fontsize=7)
    ax.set_ylabel("generated tokens per question")
    ax.set_title("token cost")
    fig.tight_layout()
    written.append(out / "tokens.png")
    fig.savefig(written[-1], dpi=110)
    plt.close(fig)
    return written


def record_skipped(run_dir: Path, skipped: list[dict[str, str]]) -> None:
    """Rows the loaders skipped (malformed, or needing a picture), kept beside the records for the report."""
    if not skipped:
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / "skipped.jsonl"
    seen = set(path.read_text().splitlines()) if path.is_file() else set()
    with path.open("a") as f:
        for row in skipped:
            line = json.dumps(row, sort_keys=True)
            if line not in seen:
                f.write(line + "\n")
                seen.add(line)


def skipped_section(run: Path) -> str:
    path = run / "skipped.jsonl"
    if not path.is_file():
        return ""
    counts: dict[tuple[str, str], int] = {}
    for line in path.read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            key = (row.get("dataset", "?"), row.get("kind", "malformed"))
            counts[key] = counts.get(key, 0) + 1
    lines = [f"- {dataset}: {n} {kind.replace('_', ' ')} row{'s' if n != 1 else ''}"
             for (dataset, kind), n in sorted(counts.items())]
    return ("\n\n## Rows skipped when loading (not scored; each in `skipped.jsonl` with its reason)\n\n"
            + "\n".join(lines) + "\n")


QUIET_LOOP = "fixed:continuation"


def pick_reference(records: list[dict[str, Any]], reference: str | None) -> str | None:
    """The method others are paired against: the one named (it must have records), else the quiet loop
    when the run has it."""
    methods = {r["method"] for r in records}
    if reference is not None:
        if reference not in methods:
            raise ValueError(f"no records of the reference method '{reference}'; methods: {', '.join(sorted(methods))}")
        return reference
    return QUIET_LOOP if QUIET_LOOP in methods else None


def build_report(run_dir: str | Path, *, reference: str | None = None) -> dict[str, Path]:
    """The report files; `reference`: the method every other is paired against (default: the quiet loop)."""
    run = Path(run_dir)
    records = read_records(run)
    records += oracle_records(records)
    rows = metrics(records, run_order(run))
    md, csv_rows = tables(rows)
    ref = pick_reference(records, reference)
    pairs = paired_table(records, ref) if ref else []
    (run / "report.md").write_text(f"# Evaluation: {run.name}\n\n{md}{paired_markdown(pairs)}{skipped_section(run)}")
    (run / "paired.json").write_text(json.dumps([asdict(p) for p in pairs], indent=2))
    with (run / "report.csv").open("w", newline="") as f:
        csv.writer(f).writerows(csv_rows)
    (run / "report.json").write_text(json.dumps(rows, indent=2))
    files = {"markdown": run / "report.md", "csv": run / "report.csv", "json": run / "report.json",
             "paired": run / "paired.json"}
    for path in plots(rows, records, run):
        files[path.stem] = path
    return files

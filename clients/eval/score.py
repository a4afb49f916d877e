"""`rsim eval score FILE.jsonl`: the scorers by hand — the very `verdict` of training rewards and `rsim eval`
(docs/scoring.md). Each row `{task, answer, truth, answer_type?, prompt?, test?, entry_point?}` (a code
answer as the model wrote it, Markdown fences and all; for `runs`, `truth` is the reference solution and may
be left out) comes back as one JSON line on stdout, in input order, with `correct` (and `error` when the
scorer could not decide or the row is malformed: such a row is counted wrong, never dropped)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, get_args

from planner_server.training.data import Problem, Task
from planner_server.training.scoring import SandboxUnavailable, verdict

TASKS = get_args(Task)


def problem_of(row: dict[str, Any]) -> Problem:
    task = row.get("task")
    if task not in TASKS:
        raise ValueError(f"task must be one of {', '.join(TASKS)} (got {task!r})")
    if not isinstance(row.get("answer"), str):
        raise ValueError("answer must be a string")
    if task == "code":
        if not (row.get("prompt") and row.get("test") and row.get("entry_point")):
            raise ValueError("a code row needs prompt, test and entry_point (HumanEval's fields)")
        return Problem(row["prompt"], "", "code", f"{row['test']}\ncheck({row['entry_point']})\n", row["entry_point"])
    if task != "runs" and row.get("truth") is None:
        raise ValueError("truth is required")
    return Problem(str(row.get("prompt") or ""), str(row.get("truth") or ""), task,
                   answer_type=row.get("answer_type"))


def score_rows(rows: Iterable[dict[str, Any] | str]) -> Iterator[dict[str, Any]]:
    """Rows (objects, or lines that failed to parse, as strings) → the same rows with their verdict."""
    for row in rows:
        if not isinstance(row, dict):
            yield {"row": row, "correct": False, "error": "not a JSON object"}
            continue
        try:
            problem = problem_of(row)
        except ValueError as e:
            yield {**row, "correct": False, "error": str(e)}
            continue
        try:
            correct, error = verdict(row["answer"], problem)
        except SandboxUnavailable as e:  # code is never run unisolated: this row stays undecided
            correct, error = False, str(e)
        yield {**row, "correct": correct, **({"error": error} if error else {})}


def read_jsonl(lines: Iterable[str]) -> Iterator[dict[str, Any] | str]:
    for line in lines:
        if not line.strip():
            continue
        try:
            yield json.loads(line)
        except ValueError:
            yield line.rstrip("\n")


# the task of records written before records carried it, by dataset name
DATASET_TASKS = {"synthetic": "synthetic", "math": "math", "aime2024": "math", "gsm8k": "numeric",
                 "mmlu-pro": "choice", "theoremqa": "theoremqa", "humaneval": "code", "humaneval-bundled": "code",
                 "codealpaca": "runs"}


def record_problem(rec: dict[str, Any]) -> Problem:
    task = rec.get("task") or DATASET_TASKS.get(str(rec.get("dataset")))
    if task not in TASKS:
        raise ValueError(f"record {rec.get('id')!r} has no task and dataset {rec.get('dataset')!r} names none")
    if task == "code" and not rec.get("tests"):
        raise ValueError(f"record {rec.get('id')!r} has no tests (written before records kept them): run it again")
    return Problem(str(rec.get("question") or ""), str(rec.get("truth") or ""), task, rec.get("tests"),
                   rec.get("entry_point"), answer_type=rec.get("answer_type"))


def rescore_file(path: Path) -> dict[str, int]:
    """Score every record of one records file again with today's scorers, in place (each changed verdict
    keeps the one before as `correct_before`); a record that cannot be scored again (written before
    records carried what its scorer needs) keeps its verdict, marked `rescore_error`. Returns counts:
    records, changed, now right, undecided (scorer errors), kept (not rescored)."""
    counts = {"records": 0, "changed": 0, "right": 0, "errors": 0, "kept": 0}
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        rec = json.loads(line)
        counts["records"] += 1
        if rec.get("error") is None and rec.get("answer") is not None:  # a failed episode stays wrong
            try:
                correct, error = verdict(rec["answer"], record_problem(rec))
            except (ValueError, SandboxUnavailable) as e:
                rec["rescore_error"] = str(e)
                counts["kept"] += 1
                counts["right"] += bool(rec.get("correct"))
                out.append(json.dumps(rec))
                continue
            rec.pop("rescore_error", None)
            if correct != rec.get("correct"):
                counts["changed"] += 1
                rec["correct_before"] = rec.get("correct")
            rec["correct"], rec["scoring_error"] = correct, error
            counts["errors"] += error is not None
        counts["right"] += bool(rec.get("correct"))
        out.append(json.dumps(rec))
    tmp = path.with_suffix(".rescore.tmp")
    tmp.write_text("".join(line + "\n" for line in out), encoding="utf-8")
    tmp.replace(path)  # all at once: an interrupted rescore leaves the old file
    return counts


def rescore_run(run_dir: Path) -> dict[str, dict[str, int]]:
    files = sorted((run_dir / "records").glob("*/*.jsonl"))
    if not files:
        raise FileNotFoundError(f"no records under {run_dir / 'records'}")
    return {f"{f.parent.name}/{f.stem}": rescore_file(f) for f in files}

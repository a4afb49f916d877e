"""`rsim eval score FILE.jsonl`: the scorers by hand. Each row `{task, answer, truth, prompt?, test?,
entry_point?}` comes back as one JSON line on stdout, in input order, with `correct` (and `error` when
the scorer could not decide or the row is malformed: such a row is counted wrong, never dropped)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
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
    return Problem(str(row.get("prompt") or ""), str(row.get("truth") or ""), task)


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

"""Training and evaluation problems from local files, in the layouts they are published in.

Rows {question, answer, task} in JSONL or Parquet, or the published layouts of GSM8K (`question`,
`answer` ending in `#### 42`), MATH (`problem`, `solution` with \\boxed{}) and HumanEval (`prompt`,
`test`, `entry_point`). The layout is detected per file from its keys."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from service.answer import last_boxed

Task = Literal["math", "numeric", "code", "choice", "synthetic", "runs", "theoremqa"]
# math: math-verify · numeric: numbers within a relative tolerance (GSM8K) · choice: option letter ·
# code: unit tests in the sandbox · runs: the code block runs cleanly in the sandbox (no tests published) ·
# synthetic: the exact integer


@dataclass(frozen=True)
class Problem:
    question: str
    answer: str
    task: Task
    tests: str | None = None  # code: test source to run after the solution
    entry_point: str | None = None
    source: str = "file"
    id: str | None = None
    answer_type: str | None = None  # TheoremQA's Answer_type: integer, float, bool, option, list of integer/float


class DataError(ValueError):
    pass


def read_rows(path: Path, bad: list[str] | None = None) -> list[dict[str, Any]]:
    """The rows of a JSONL or Parquet file. A JSONL line that is not a JSON object is an error, or, when
    `bad` is given, appended there (as a message naming the line) and skipped."""
    if not path.is_file():
        raise DataError(f"data file not found: {path}")
    if path.suffix == ".parquet":
        try:
            import pyarrow.parquet as pq
        except ImportError as e:  # pragma: no cover
            raise DataError("reading Parquet needs pyarrow: pip install 'rsim[train]'") from e
        return pq.read_table(path).to_pylist()
    rows = []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as e:
            row = DataError(f"{path}:{i}: not a JSON object per line (JSONL expected): {e}")
        if not isinstance(row, (dict, DataError)):
            row = DataError(f"{path}:{i}: each line must be a JSON object")
        if isinstance(row, DataError):
            if bad is None:
                raise row
            bad.append(str(row))
            continue
        rows.append(row)
    return rows


def to_problem(row: dict[str, Any], where: str) -> Problem:
    keys = set(row)
    if {"question", "answer", "task"} <= keys:
        return Problem(str(row["question"]), str(row["answer"]), row["task"], row.get("tests"),
                       row.get("entry_point"))
    if {"prompt", "test", "entry_point"} <= keys:  # HumanEval
        return Problem(row["prompt"], row.get("canonical_solution", ""), "code",
                       f"{row['test']}\ncheck({row['entry_point']})\n", row["entry_point"], "humaneval")
    if {"problem", "solution"} <= keys:  # MATH
        boxed = last_boxed(row["solution"])
        if boxed is None:
            raise DataError(f"{where}: MATH solution has no \\boxed{{}} answer")
        return Problem(row["problem"], boxed, "math", source="math")
    if {"question", "answer"} <= keys and "####" in str(row["answer"]):  # GSM8K
        return Problem(row["question"], str(row["answer"]).split("####")[-1].strip().replace(",", ""), "math",
                       source="gsm8k")
    raise DataError(f"{where}: unknown layout with keys {sorted(keys)}; expected {{question, answer, task}}, "
                    "GSM8K {question, answer '... #### N'}, MATH {problem, solution} or HumanEval "
                    "{prompt, test, entry_point}")


def load_problems(path: str | Path) -> list[Problem]:
    p = Path(path)
    return [to_problem(row, f"{p}:{i}") for i, row in enumerate(read_rows(p), 1)]


def cycle(problems: Iterable[Problem], *, start: int = 0) -> Iterator[tuple[int, Problem]]:
    """(position, problem) forever; `start` resumes at a data position."""
    items = list(problems)
    if not items:
        raise DataError("no problems to train on")
    i = start
    while True:
        yield i, items[i % len(items)]
        i += 1

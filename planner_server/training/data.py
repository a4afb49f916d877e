"""Training and evaluation problems from local files, in the layouts they are published in: one loader
per layout (LOADERS), used by training and by `rsim eval` alike, so a dataset gets the same task (and
scorer) in both. Rows {question, answer, task} in JSONL or Parquet, or the published layouts of GSM8K,
MATH, AIME 2024, MMLU-Pro, TheoremQA, HumanEval and CodeAlpaca; training detects the layout from a
row's keys unless told (`NAME:PATH`)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
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


LETTERS = "ABCDEFGHIJ"


def need(row: dict[str, Any], keys: list[str], where: str, layout: str) -> None:
    missing = [k for k in keys if k not in row]
    if missing:
        raise DataError(f"{where}: missing {missing}; the {layout} layout has fields {keys}")


def from_math(row, where):
    need(row, ["problem", "solution"], where, "MATH")
    solution = str(row["solution"])
    answer = row.get("answer") or last_boxed(solution) or last_boxed(solution.replace("\\fbox{", "\\boxed{"))
    if answer is None:
        raise DataError(f"{where}: MATH solution has no \\boxed{{}} (or \\fbox{{}}) answer")
    return Problem(row["problem"], str(answer), "math", source="math", id=row.get("unique_id"))


def from_gsm8k(row, where):
    need(row, ["question", "answer"], where, "GSM8K")
    if "####" not in row["answer"]:
        raise DataError(f"{where}: GSM8K answers end with '#### <number>'")
    return Problem(row["question"], row["answer"].split("####")[-1].strip().replace(",", ""), "numeric",
                   source="gsm8k")


def from_aime(row, where):
    q = row.get("Problem", row.get("problem"))
    a = row.get("Answer", row.get("answer"))
    if q is None or a is None:
        raise DataError(f"{where}: the AIME 2024 layout has fields Problem/problem and Answer/answer")
    return Problem(str(q), str(a), "math", source="aime2024", id=str(row.get("ID", row.get("id", ""))) or None)


def from_mmlu_pro(row, where):
    need(row, ["question", "options", "answer"], where, "MMLU-Pro")
    options = "\n".join(f"{LETTERS[i]}) {opt}" for i, opt in enumerate(row["options"]))
    question = f"{row['question']}\n\nOptions:\n{options}\n\nAnswer with the letter of the correct option."
    return Problem(question, str(row["answer"]), "choice", source="mmlu-pro",
                   id=str(row.get("question_id")) if row.get("question_id") is not None else None)


class NeedsImage(DataError):
    """A question that refers to a picture the text model cannot see (TheoremQA's `Picture` rows)."""


def from_theoremqa(row, where):
    q = row.get("Question", row.get("question"))
    a = row.get("Answer", row.get("answer"))
    if q is None or a is None:
        raise DataError(f"{where}: the TheoremQA layout has fields Question and Answer (and Answer_type)")
    if row.get("Picture") or row.get("picture") or row.get("Image") or row.get("image"):
        raise NeedsImage(f"{where}: the question refers to a picture (skipped: the reasoner reads text only)")
    kind = row.get("Answer_type", row.get("answer_type"))
    return Problem(str(q), str(a), "theoremqa", source="theoremqa", id=row.get("id"),
                   answer_type=str(kind) if kind is not None else None)


def from_humaneval(row, where):
    need(row, ["prompt", "test", "entry_point"], where, "HumanEval")
    return Problem(row["prompt"], row.get("canonical_solution", ""), "code",
                   f"{row['test']}\ncheck({row['entry_point']})\n", row["entry_point"], "humaneval", row.get("task_id"))


def from_codealpaca(row, where):
    if "prompt" in row and "completion" in row:  # HuggingFaceH4/CodeAlpaca_20K (the version with a test split)
        question, output = str(row["prompt"]), str(row["completion"])
    else:
        need(row, ["instruction", "output"], where, "CodeAlpaca-20k (instruction/input/output, or H4's prompt/completion)")
        question = row["instruction"] + (f"\n\nInput:\n{row['input']}" if row.get("input") else "")
        output = row["output"]
    return Problem(question + "\n\nWrite the code in one ```python code block.", output, "runs", source="codealpaca")


def from_rows(row, where):
    need(row, ["question", "answer", "task"], where, "rsim rows")
    return Problem(str(row["question"]), str(row["answer"]), row["task"], row.get("tests"), row.get("entry_point"),
                   id=row.get("id"))


LOADERS: dict[str, Callable[[dict[str, Any], str], Problem]] = {
    "math": from_math, "gsm8k": from_gsm8k, "aime2024": from_aime, "mmlu-pro": from_mmlu_pro,
    "theoremqa": from_theoremqa, "humaneval": from_humaneval, "codealpaca": from_codealpaca, "rows": from_rows,
}


def detect_layout(row: dict[str, Any]) -> str | None:
    """The published layout a row is in, from its keys (a file of training data need not say)."""
    keys = set(row)
    if {"question", "answer", "task"} <= keys:
        return "rows"
    if {"prompt", "test", "entry_point"} <= keys:
        return "humaneval"
    if {"problem", "solution"} <= keys:
        return "math"
    if {"question", "options", "answer"} <= keys:
        return "mmlu-pro"
    if {"question", "answer"} <= keys and "####" in str(row["answer"]):
        return "gsm8k"
    if {"Question", "Answer"} <= keys:
        return "theoremqa"
    if ({"Problem", "Answer"} <= keys) or ({"problem", "answer"} <= keys):
        return "aime2024"
    if {"prompt", "completion"} <= keys or {"instruction", "output"} <= keys:
        return "codealpaca"
    return None


def to_problem(row: dict[str, Any], where: str, layout: str | None = None) -> Problem:
    """A row as a Problem, by the loader of its layout (`layout`, or detected from its keys): the same
    loaders, tasks and scorers as `rsim eval`."""
    name = layout or detect_layout(row)
    if name is None:
        raise DataError(f"{where}: unknown layout with keys {sorted(row)}; expected one of {', '.join(LOADERS)} "
                        "(rows: {question, answer, task}; GSM8K {question, answer '... #### N'}; MATH "
                        "{problem, solution}; HumanEval {prompt, test, entry_point}; …)")
    return LOADERS[name](row, where)


def load_problems(path: str | Path) -> list[Problem]:
    """Training problems from `PATH` (layout detected per row) or `NAME:PATH` (one of LOADERS, as in
    `rsim eval --dataset`)."""
    name, sep, rest = str(path).partition(":")
    layout, p = (name, Path(rest)) if sep and name in LOADERS else (None, Path(path))
    return [to_problem(row, f"{p}:{i}", layout) for i, row in enumerate(read_rows(p), 1)]


def cycle(problems: Iterable[Problem], *, start: int = 0) -> Iterator[tuple[int, Problem]]:
    """(position, problem) forever; `start` resumes at a data position."""
    items = list(problems)
    if not items:
        raise DataError("no problems to train on")
    i = start
    while True:
        yield i, items[i % len(items)]
        i += 1

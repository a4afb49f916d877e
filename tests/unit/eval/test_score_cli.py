"""`rsim eval score` against a table of 62 hand-checked rows with negatives for every task
(`score_table.jsonl`: each row's `expected` verdict and why). On the scorers before issue 13's fixes, 8
rows came out wrong: five different math values called equal by the "last numbers match" fallback, the
first letter taken for the chosen option, and whole-function code answers run without the prompt's
imports. Before issue 27's, 10 more: 43 taken for the integer 42 and an unsorted list refused (TheoremQA),
fenced code run with its fences, wrong code that exits 0 before or after its tests passed, and `runs`
taking fences into the program, `pass` for a function and an exit before the end."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

TABLE = Path(__file__).with_name("score_table.jsonl")
RSIM = [sys.executable, "-m", "clients.cli"]


def score(path_or_dash: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*RSIM, "eval", "score", path_or_dash], input=stdin, capture_output=True, text=True,
                          timeout=300, cwd=Path(__file__).resolve().parents[3])


def test_the_table_scores_as_hand_checked():
    rows = [json.loads(line) for line in TABLE.read_text().splitlines()]
    assert len(rows) >= 40
    tasks = {r["task"] for r in rows}
    assert {r["task"] for r in rows if r["expected"] is False} == tasks  # negatives for every task
    done = score(str(TABLE))
    assert done.returncode == 0, done.stderr
    out = [json.loads(line) for line in done.stdout.splitlines()]  # nothing but JSON lines on stdout
    assert [{k: v for k, v in r.items() if k not in ("correct", "error")} for r in out] == rows  # input order
    if shutil.which("bwrap") is None:  # no sandbox: every code row refused with the reason, never run
        code = [r for r in out if r["task"] == "code"]
        assert code and all(r["correct"] is False and "bubblewrap" in r["error"] for r in code)
        out = [r for r in out if r["task"] != "code"]
    wrong = [(r["task"], r["answer"], r.get("truth"), r["note"]) for r in out if r["correct"] != r["expected"]]
    assert wrong == []


def test_malformed_rows_are_reported_not_fatal():
    stdin = "\n".join([json.dumps({"task": "synthetic", "answer": "7", "truth": "7"}), "{not json",
                       json.dumps({"task": "poetry", "answer": "x", "truth": "x"}),
                       json.dumps({"task": "code", "answer": "    return 1\n"}),
                       json.dumps({"task": "math", "answer": "1"})]) + "\n"
    done = score("-", stdin)
    assert done.returncode == 0, done.stderr
    out = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["correct"] for r in out] == [True, False, False, False, False]
    assert "error" not in out[0]
    assert out[1]["error"] == "not a JSON object" and "task must be one of" in out[2]["error"]
    assert "prompt, test and entry_point" in out[3]["error"] and "truth is required" in out[4]["error"]


def test_a_missing_file_is_a_clear_error():
    done = score("/nonexistent/rows.jsonl")
    assert done.returncode == 2 and "no such file" in done.stderr and done.stdout == ""

"""`rsim eval rescore RUN_DIR` scores existing records again with today's scorers (issue 13 §2): records
written by the old math scorer, which called `\\frac{3}{2}` = `\\frac{1}{2}` right, and a TheoremQA
option scored as math, which called "c" ≠ "(c)", come out right after it, the old verdict kept beside."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).parents[3]


def record(i: int, dataset: str, answer: str, truth: str, correct: bool, **extra) -> dict:
    return {"id": f"q{i}", "dataset": dataset, "method": "zerocot", "question": "q", "truth": truth, "answer": answer,
            "correct": correct, "error": None, "latency_ms": 1.0, "strategies": [], "n_strategies": 0, "tokens": 10,
            "planner_calls": 0, "trace": [], **extra}


def test_rescore_fixes_old_verdicts_in_place(tmp_path):
    run = tmp_path / "run"
    (run / "records" / "math").mkdir(parents=True)
    (run / "records" / "theoremqa").mkdir(parents=True)
    math = [record(0, "math", "\\frac{3}{2}", "\\frac{1}{2}", True),  # the old fallback's mistake
            record(1, "math", "\\frac{1}{2}", "0.5", True),
            record(2, "math", "x", "1", False, error="502 upstream")]  # a failed episode stays as it was
    tqa = [record(0, "theoremqa", "c", "(c)", False, task="theoremqa", answer_type="option"),
           record(1, "theoremqa", "3.7", "3.464", False)]  # an old record: task from the dataset, no answer type
    (run / "records" / "math" / "zerocot.jsonl").write_text("".join(json.dumps(r) + "\n" for r in math))
    (run / "records" / "theoremqa" / "zerocot.jsonl").write_text("".join(json.dumps(r) + "\n" for r in tqa))
    done = subprocess.run([sys.executable, "-m", "clients.cli", "eval", "rescore", str(run)], capture_output=True,
                          text=True, cwd=REPO, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "math/zerocot: 3 records, 1 verdicts changed, 1 right" in done.stdout
    assert "theoremqa/zerocot: 2 records, 1 verdicts changed, 1 right" in done.stdout
    after = [json.loads(x) for x in (run / "records" / "math" / "zerocot.jsonl").read_text().splitlines()]
    assert [r["correct"] for r in after] == [False, True, False]
    assert after[0]["correct_before"] is True and "correct_before" not in after[1]
    assert after[2]["error"] == "502 upstream" and after[2]["correct"] is False
    tqa_after = [json.loads(x) for x in (run / "records" / "theoremqa" / "zerocot.jsonl").read_text().splitlines()]
    assert [r["correct"] for r in tqa_after] == [True, False]
    assert (run / "report.md").is_file()


def test_rescore_refuses_what_it_cannot_score(tmp_path):
    empty = subprocess.run([sys.executable, "-m", "clients.cli", "eval", "rescore", str(tmp_path)],
                           capture_output=True, text=True, cwd=REPO, timeout=120)
    assert empty.returncode == 2 and "no records" in empty.stderr
    from clients.eval.score import rescore_file

    path = tmp_path / "code.jsonl"
    path.write_text(json.dumps(record(0, "humaneval", "def f(): pass", "", True)) + "\n")
    counts = rescore_file(path)  # an old code record without its tests: kept as it was, and said why
    rec = json.loads(path.read_text())
    assert counts["kept"] == 1 and rec["correct"] is True and "no tests" in rec["rescore_error"]


def test_score_and_rescore_take_help():
    """`--help` prints the usage and exits 0 (it was read as a file name: "no such file: --help", exit 2)."""
    for what in ("score", "rescore"):
        done = subprocess.run([sys.executable, "-m", "clients.cli", "eval", what, "--help"], capture_output=True,
                              text=True, cwd=REPO, timeout=120)
        assert done.returncode == 0 and f"usage: rsim eval {what}" in done.stderr, done.stderr
    bare = subprocess.run([sys.executable, "-m", "clients.cli", "eval", "score"], capture_output=True, text=True,
                          cwd=REPO, timeout=120)
    assert bare.returncode == 2 and "usage: rsim eval score" in bare.stderr

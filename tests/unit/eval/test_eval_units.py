"""Dataset layouts, scorers on hand cases, and reports rebuilt from records."""

from __future__ import annotations

import json

import pytest

from clients.eval.datasets import load_dataset
from clients.eval.report import ORACLE, build_report, metrics, oracle_records, tables, wilson
from clients.eval.runner import finished_ids
from planner_server.training.data import DataError, Problem
from planner_server.training.scoring import is_correct


def jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_each_published_layout_loads(tmp_path):
    cases = {
        "math": ({"problem": "1+1?", "solution": "It is \\boxed{2}."}, "2", "math"),
        "gsm8k": ({"question": "q", "answer": "so\n#### 1,200"}, "1200", "numeric"),
        "aime2024": ({"ID": "2024-I-1", "Problem": "p", "Solution": "s", "Answer": 204}, "204", "math"),
        "mmlu-pro": ({"question_id": 7, "question": "q", "options": ["x", "y", "z"], "answer": "B", "answer_index": 1},
                     "B", "choice"),
        "theoremqa": ({"Question": "q", "Answer": "True", "Answer_type": "bool"}, "True", "theoremqa"),
        "humaneval": ({"task_id": "HE/0", "prompt": "def f():\n", "test": "def check(c):\n    assert c() == 1\n",
                       "entry_point": "f"}, "", "code"),
        "codealpaca": ({"instruction": "print hi", "input": "", "output": "print('hi')"}, "print('hi')", "runs"),
    }
    for name, (row, answer, task) in cases.items():
        [p] = load_dataset(name, jsonl(tmp_path / f"{name}.jsonl", [row]))
        assert (p.answer, p.task) == (answer, task), name
        assert p.id
    mmlu = load_dataset("mmlu-pro", tmp_path / "mmlu-pro.jsonl")[0]
    assert "B) y" in mmlu.question and mmlu.id == "7"


def test_dataset_errors_name_the_file_and_layout(tmp_path):
    with pytest.raises(DataError, match="needs a file"):
        load_dataset("gsm8k")
    with pytest.raises(DataError, match="not found"):
        load_dataset("gsm8k", tmp_path / "missing.jsonl")
    with pytest.raises(DataError, match=r"no row of .*bad.jsonl fits the math layout; the first: .*bad.jsonl:1: "
                                        r"missing \['solution'\]; the MATH layout"):
        load_dataset("math", jsonl(tmp_path / "bad.jsonl", [{"problem": "p"}]))
    with pytest.raises(DataError, match="unknown dataset 'nope'"):
        load_dataset("nope")


def test_bundled_humaneval_and_synthetic():
    he = load_dataset("humaneval-bundled")
    assert len(he) == 164 and he[0].id == "HumanEval/0"
    solution = he[0].question + he[0].answer
    assert is_correct(solution, he[0])
    assert not is_correct(he[0].question + "    return None\n", he[0])
    assert [p.id for p in load_dataset("synthetic", limit=3)] == ["synthetic-0", "synthetic-1", "synthetic-2"]


@pytest.mark.parametrize(("answer", "problem", "ok"), [
    ("\\frac{3}{4}", Problem("q", "0.75", "math"), True),
    ("x = 2", Problem("q", "2", "math"), True),
    ("true", Problem("q", "True", "math"), True),
    ("1,199.99", Problem("q", "1200", "numeric"), True),
    ("1190", Problem("q", "1200", "numeric"), False),
    ("(B)", Problem("q", "B", "choice"), True),
    ("C", Problem("q", "B", "choice"), False),
    ("print('hi')", Problem("q", "", "runs"), True),
    ("raise SystemExit(1)", Problem("q", "", "runs"), False),
])
def test_scorers(answer, problem, ok):
    assert is_correct(answer, problem) == ok


def rec(method, dataset, i, correct, tokens, strategies, error=None):
    return {"id": f"{dataset}-{i}", "dataset": dataset, "method": method, "question": "q", "truth": "1",
            "answer": "1", "correct": correct, "strategies": strategies,
            "n_strategies": len({s for s in strategies if s != "termination"}), "tokens": tokens,
            "planner_calls": len(strategies) - 1 if strategies else 0, "latency_ms": 10.0, "error": error}


def test_metrics_and_tables_by_hand():
    records = [rec("rsim", "d", 0, True, 10, ["decomposition", "verification", "termination"]),
               rec("rsim", "d", 1, False, 20, ["verification", "termination"]),
               rec("zerocot", "d", 0, True, 30, []), rec("zerocot", "d", 1, True, 50, [])]
    rows = metrics(records, [("zerocot", "d"), ("rsim", "d")])
    assert [r["method"] for r in rows] == ["zerocot", "rsim"]
    z, r = rows
    assert (z["score"], z["n_strategies"], z["tokens_mean"], z["tokens_std"]) == (100.0, None, 40.0, 10.0)
    assert (r["score"], r["n_strategies"], r["planner_calls_mean"]) == (50.0, 1.5, 1.5)
    assert r["strategy_usage"] == {"decomposition": 1, "verification": 2, "termination": 2}
    md, csv_rows = tables(rows)
    assert csv_rows[0] == ["Method", "d Score", "d 95% CI", "d n", "d #Strategy", "d tokens", "d wall s"]
    assert csv_rows[1] == ["zerocot", "100.0", "34–100", "2", "–", "40", "0"]
    assert csv_rows[2] == ["rsim", "50.0", "9–91", "2", "1.50", "15", "0"]
    assert "| rsim | 15 ± 5 |" in md


def test_wilson_interval_by_hand():
    # p = 0.5, n = 30: centre 0.5, half-width 1.96*sqrt(0.25/30 + 3.8416/3600)/(1 + 3.8416/30) = 0.1685
    lo, hi = wilson(15, 30)
    assert (lo, hi) == (pytest.approx(33.15, abs=0.01), pytest.approx(66.85, abs=0.01))
    assert wilson(0, 10)[0] == 0.0 and wilson(0, 10)[1] == pytest.approx(27.8, abs=0.1)
    assert wilson(10, 10)[1] == 100.0 and wilson(0, 0) == (0.0, 0.0)


def test_oracle_is_right_only_where_some_fixed_strategy_was_right():
    records = [rec("fixed:verification", "d", 0, True, 10, ["verification"]),
               rec("fixed:verification", "d", 1, False, 10, ["verification"]),
               rec("fixed:verification", "d", 2, False, 10, ["verification"]),
               rec("fixed:decomposition", "d", 0, False, 10, ["decomposition"]),
               rec("fixed:decomposition", "d", 1, True, 10, ["decomposition"]),
               rec("fixed:decomposition", "d", 2, False, 10, ["decomposition"]),
               rec("fixed:decomposition", "d", 3, True, 10, ["decomposition"]),  # no verification record: left out
               rec("zerocot", "d", 2, True, 10, [])]  # not a fixed strategy: never counts
    oracle = oracle_records(records)
    assert [(r["id"], r["correct"]) for r in oracle] == [("d-0", True), ("d-1", True), ("d-2", False)]
    assert oracle[1]["oracle_of"] == ["fixed:decomposition"]
    row = next(r for r in metrics(records + oracle) if r["method"] == ORACLE)
    assert row["n"] == 3 and row["score"] == pytest.approx(200 / 3)


def test_report_from_records_and_resume_skips_finished(tmp_path):
    path = tmp_path / "records" / "d" / "rsim.jsonl"
    path.parent.mkdir(parents=True)
    rows = [rec("rsim", "d", 0, True, 10, ["verification", "termination"]),
            rec("rsim", "d", 1, False, 0, [], error="502 reasoner down")]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert finished_ids(path) == {"d-0"}  # the failed item runs again on resume
    files = build_report(tmp_path)
    data = json.loads(files["json"].read_text())
    assert data[0]["score"] == 50.0 and data[0]["errors"] == 1
    assert all(files[k].stat().st_size > 0 for k in ("markdown", "csv", "accuracy_vs_strategies", "tokens"))


async def test_a_planner_is_built_once_however_many_items_ask_at_once(tmp_path):
    """The in-process planner used to be loaded by every concurrent item at once (a race that broke
    transformers' loading: 'Cannot copy out of meta tensor')."""
    import asyncio

    from clients.eval.runner import EvalConfig, Runner

    runner = Runner(EvalConfig(reasoner_url="http://unused/v1", reasoner_model="m", out=tmp_path))
    builds = []

    async def build(method):
        builds.append(method)
        await asyncio.sleep(0.05)
        return object()

    runner.build = build
    got = await asyncio.gather(*(runner.orchestrator("rsim") for _ in range(8)))
    assert builds == ["rsim"] and all(g is got[0] for g in got)


def test_synthetic_options_from_the_command_line_and_their_refusals():
    from clients.eval.datasets import synthetic_options

    assert synthetic_options("steps=3-5,scale=3,seed=7") == {"steps": (3, 5), "scale": 3, "seed": 7}
    assert synthetic_options("steps=4") == {"steps": (4, 4)} and synthetic_options("") == {}
    hard = load_dataset("synthetic", "steps=3-5,scale=3,seed=7", limit=5)
    assert hard == load_dataset("synthetic", None, limit=5, seed=7, steps=(3, 5), scale=3)
    for bad in ("steps=a-b", "scale=big", "difficulty=9", "seed"):
        with pytest.raises(DataError, match="synthetic options are"):
            synthetic_options(bad)


def test_a_malformed_row_is_skipped_and_reported_not_fatal(tmp_path):
    """One `\\fbox{}` row aborted a whole MATH file, and so did one broken line (issue 13 §5): now the
    fbox answer is read, a row that fits no layout or a line that is not JSON is skipped and reported,
    TheoremQA rows that need a picture are skipped as such, and H4's CodeAlpaca layout loads."""
    path = tmp_path / "math.jsonl"
    path.write_text(json.dumps({"problem": "a", "solution": "so \\fbox{7}"}) + "\n{broken\n"
                    + json.dumps({"problem": "b"}) + "\n" + json.dumps({"problem": "c", "solution": "\\boxed{3}"}) + "\n")
    skipped = []
    problems = load_dataset("math", path, skipped=skipped)
    assert [p.answer for p in problems] == ["7", "3"]
    assert [s["kind"] for s in skipped] == ["malformed", "malformed"]
    assert "math.jsonl:2: not a JSON object" in skipped[0]["reason"] and "missing ['solution']" in skipped[1]["reason"]
    tqa = jsonl(tmp_path / "tqa.jsonl", [{"Question": "See the figure.", "Answer": "3", "Answer_type": "integer",
                                          "Picture": "images/1.png"},
                                         {"Question": "1+2?", "Answer": "3", "Answer_type": "integer", "Picture": None}])
    skipped = []
    [only] = load_dataset("theoremqa", tqa, skipped=skipped)
    assert only.question == "1+2?" and only.answer_type == "integer" and skipped[0]["kind"] == "needs_image"
    h4 = jsonl(tmp_path / "h4.jsonl", [{"prompt": "Write a function that adds two numbers.",
                                        "completion": "def add(a, b):\n    return a + b"}])
    [code] = load_dataset("codealpaca", h4)
    assert code.task == "runs" and code.answer.startswith("def add") and code.question.startswith("Write a function")


def test_skipped_rows_are_counted_in_the_report(tmp_path):
    from clients.eval.report import build_report, record_skipped

    run = tmp_path / "run"
    (run / "records" / "math").mkdir(parents=True)
    rec = {"id": "q0", "dataset": "math", "method": "zerocot", "question": "q", "truth": "2", "answer": "2",
           "correct": True, "error": None, "latency_ms": 1.0, "strategies": [], "n_strategies": 0, "tokens": 5,
           "planner_calls": 0, "trace": []}
    (run / "records" / "math" / "zerocot.jsonl").write_text(json.dumps(rec) + "\n")
    bad = [{"dataset": "math", "where": "m.jsonl:2", "reason": "x", "kind": "malformed"},
           {"dataset": "theoremqa", "where": "t.jsonl:1", "reason": "y", "kind": "needs_image"}]
    record_skipped(run, bad)
    record_skipped(run, bad)  # a resumed run loads the files again: each row once
    assert len((run / "skipped.jsonl").read_text().splitlines()) == 2
    md = build_report(run)["markdown"].read_text()
    assert "- math: 1 malformed row" in md and "- theoremqa: 1 needs image row" in md

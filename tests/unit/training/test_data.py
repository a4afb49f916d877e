import json
import shutil

import pytest

from planner_server.training.data import DataError, cycle, load_problems
from planner_server.training.scoring import (Bounds, SandboxUnavailable, choice_equal, is_correct, math_equal,
                                             numeric_equal, run_code_tests)
from planner_server.training.synthetic import synthetic_problems


def write_jsonl(path, rows):
    path.write_text("\n".join(json.dumps(r) for r in rows))
    return path


def test_published_layouts_are_detected(tmp_path):
    gsm = load_problems(write_jsonl(tmp_path / "gsm.jsonl", [{"question": "q", "answer": "work\n#### 1,234"}]))
    assert gsm[0].answer == "1234" and gsm[0].task == "numeric" and gsm[0].source == "gsm8k"  # as rsim eval scores it
    math = load_problems(write_jsonl(tmp_path / "math.jsonl", [{"problem": "p", "solution": "so \\boxed{\\frac12}"}]))
    assert math[0].answer == "\\frac12"
    he = load_problems(write_jsonl(tmp_path / "he.jsonl", [{"task_id": "x", "prompt": "def f():\n",
                                                            "test": "def check(c):\n    assert c() == 1\n",
                                                            "entry_point": "f", "canonical_solution": "  return 1\n"}]))
    assert he[0].task == "code" and he[0].tests.endswith("check(f)\n")
    rows = load_problems(write_jsonl(tmp_path / "rows.jsonl", [{"question": "q", "answer": "B", "task": "choice"}]))
    assert rows[0].task == "choice"


def test_training_and_evaluation_load_every_layout_alike(tmp_path):
    """Issue 13 §6: one loader set. Training read GSM8K as `math` while `rsim eval` read it as `numeric`, and
    knew only four of the seven published layouts; each row now becomes the same Problem in both."""
    from clients.eval.datasets import load_dataset

    rows = {
        "gsm8k": {"question": "q", "answer": "work\n#### 1,234"},
        "math": {"problem": "p", "solution": "so \\boxed{\\frac12}"},
        "aime2024": {"Problem": "p", "Answer": "204", "ID": "2024-I-1"},
        "mmlu-pro": {"question": "q", "options": ["a", "b", "c"], "answer": "C", "question_id": 7},
        "theoremqa": {"Question": "q", "Answer": "0.5", "Answer_type": "float"},
        "humaneval": {"task_id": "x", "prompt": "def f():\n", "test": "def check(c):\n    assert c() == 1\n",
                      "entry_point": "f", "canonical_solution": "  return 1\n"},
        "codealpaca": {"prompt": "Write f.", "completion": "def f(): pass"},
        "rows": {"question": "q", "answer": "B", "task": "choice"},
    }
    for name, row in rows.items():
        path = write_jsonl(tmp_path / f"{name}.jsonl", [row])
        trained = load_problems(path)[0]
        assert trained == load_problems(f"{name}:{path}")[0]  # detected = named
        evaluated = load_dataset(name, path)[0]
        assert (trained.question, trained.answer, trained.task, trained.tests, trained.answer_type) == \
            (evaluated.question, evaluated.answer, evaluated.task, evaluated.tests, evaluated.answer_type), name


def test_bad_files_name_the_file_and_layout(tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_problems(tmp_path / "nope.jsonl")
    (tmp_path / "bad.jsonl").write_text("{oops")
    with pytest.raises(DataError, match="bad.jsonl:1"):
        load_problems(tmp_path / "bad.jsonl")
    with pytest.raises(DataError, match="unknown layout"):
        load_problems(write_jsonl(tmp_path / "odd.jsonl", [{"x": 1}]))


def test_parquet(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist([{"question": "q", "answer": "3", "task": "math"}]), tmp_path / "d.parquet")
    assert load_problems(tmp_path / "d.parquet")[0].answer == "3"


def test_synthetic_problems_are_deterministic_and_exact():
    a, b = synthetic_problems(20, seed=3), synthetic_problems(20, seed=3)
    assert a == b and a != synthetic_problems(20, seed=4)
    p = synthetic_problems(1, seed=0, steps=(1, 1))[0]
    assert p.task == "synthetic" and int(p.answer) >= 0 and p.question.endswith("now?")
    assert is_correct(f"so \\boxed{{{p.answer}}}", p) or is_correct(p.answer, p)


def test_cycle_resumes_at_a_position():
    items = synthetic_problems(3)
    it = cycle(items, start=4)
    assert next(it) == (4, items[1])


def test_scorers_on_hand_cases():
    assert math_equal("\\frac{1}{2}", "0.5") and math_equal("\\dfrac{1}{2}", "\\frac12")
    assert numeric_equal("the answer is 1,000", "1000") and not numeric_equal("999", "1000")
    assert numeric_equal("3.1416", "3.14159", rel_tol=1e-4)
    assert choice_equal("(C)", "C") and choice_equal("The answer is B", "B") and not choice_equal("A", "B")


needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap not installed "
                                 "(test_code_refuses_without_a_sandbox covers that case)")
ADD_TESTS = "assert add(2, 3) == 5\n"


@needs_bwrap
def test_code_sandbox():
    assert run_code_tests("def add(a, b):\n    return a + b", ADD_TESTS)
    assert not run_code_tests("def add(a, b):\n    return a - b", ADD_TESTS)
    assert not run_code_tests("def add(a, b):\n    while True: pass", ADD_TESTS, bounds=Bounds(wall_s=2))


ESCAPES = {  # each passes the tests only if the sandbox let it out; the old one let all but the first out
    "socket module": "import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2)",
    "raw _socket": "import _socket\ns = _socket.socket()\ns.settimeout(2)\ns.connect(('127.0.0.1', {port}))",
    "write outside its dir": "open({outside!r}, 'w').write('escaped')",
    "environment secret": "import os\nassert os.environ.get('RSIM_TEST_SECRET') == 'hunter2-secret'",
    "host file": "open({host_file!r}).read()",
}


@needs_bwrap
@pytest.mark.parametrize("name", list(ESCAPES))
def test_the_sandbox_refuses_escapes(name, tmp_path, monkeypatch):
    import socket
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    host_file = tmp_path / "host-secret.txt"
    host_file.write_text("secret")
    outside = tmp_path / "escaped.txt"
    monkeypatch.setenv("RSIM_TEST_SECRET", "hunter2-secret")
    attempt = ESCAPES[name].format(port=listener.getsockname()[1], outside=str(outside), host_file=str(host_file))
    try:
        assert not run_code_tests("def add(a, b):\n    " + attempt.replace("\n", "\n    ") + "\n    return a + b",
                                  ADD_TESTS, bounds=Bounds(wall_s=5))
    finally:
        listener.close()
    assert not outside.exists()


def test_code_refuses_without_a_sandbox(monkeypatch):
    """No bubblewrap: code is never run unisolated; scoring stops with a message instead."""
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(SandboxUnavailable, match="bubblewrap"):
        run_code_tests("def add(a, b):\n    return a + b", ADD_TESTS)


WRONG_MATH = [  # seen scored correct by the old "last numbers match" fallback (issue 13)
    ("\\frac{3}{2}", "\\frac{1}{2}"), ("5\\sqrt{3}", "2\\sqrt{3}"), ("(3, 2)", "(1, 2)"), ("2^{5}", "10^{5}"),
    ("3\\pi", "2\\pi"), ("x^2 + 1", "x^2 + 2"), ("\\sqrt{2}", "2"), ("-4", "4"), ("1,001", "1000"),
]
RIGHT_MATH = [("0.5", "\\frac{1}{2}"), ("42", "42.0"), ("1,000", "1000"), ("x=3", "3"), ("\\dfrac{1}{2}", "\\frac12"),
              ("2\\sqrt{3}", "\\sqrt{12}"), ("(1, 2)", "(1,2)"), ("10^{5}", "100000")]


@pytest.mark.parametrize("answer,truth", WRONG_MATH)
def test_math_equal_rejects_wrong_answers(answer, truth):
    assert not math_equal(answer, truth)


@pytest.mark.parametrize("answer,truth", RIGHT_MATH)
def test_math_equal_accepts_equal_forms(answer, truth):
    assert math_equal(answer, truth)


def test_math_equal_off_the_main_thread():
    """Rollouts are scored in worker threads, where math-verify's signal timeout cannot work: the verdicts
    must be the same there, not a silent False."""
    import threading
    seen = {}
    worker = threading.Thread(target=lambda: seen.update(
        (pair, math_equal(*pair)) for pair in WRONG_MATH + RIGHT_MATH))
    worker.start()
    worker.join()
    assert [seen[p] for p in WRONG_MATH] == [False] * len(WRONG_MATH)
    assert [seen[p] for p in RIGHT_MATH] == [True] * len(RIGHT_MATH)


def test_shipped_training_configs_parse():
    """The configs in configs/ load as TrainConfig (a key the model does not know fails here, not an hour in)."""
    from pathlib import Path

    from planner_server.training.config import load_config

    root = Path(__file__).parents[3] / "configs"
    for path in sorted(root.glob("train-*.yaml")):
        cfg = load_config(path)
        assert cfg.max_steps >= 1, path
    # the paper's planners (joint) and its GRPO baseline, named by suites/paper-llama.yaml
    paper = {path.stem: load_config(path) for path in sorted((root / "paper").glob("*.yaml"))}
    assert {k for k, c in paper.items() if c.mode == "joint"} == {
        "joint-llama-3.2-1b", "joint-llama-3.2-3b", "joint-qwen2.5-1.5b"}
    assert paper["grpo-llama-3.2-1b"].mode == "grpo" and not paper["grpo-llama-3.2-1b"].planner_model
    assert all((c.joint_lambda_stage1, c.joint_lambda_stage2) == (0.7, 0.3) for c in paper.values())
    instruct = load_config(root / "train-gemma-instruct.yaml")
    assert (instruct.first_step, instruct.unguided_tail, instruct.continue_cut) == ("reasoner", True, True)

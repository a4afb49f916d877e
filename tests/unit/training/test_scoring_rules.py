"""The scorer's comparison and extraction rules, by hand (issue 27): TheoremQA by its reference scorer's
rules, code answers taken out of Markdown the way the benchmarks' harnesses take them."""

from __future__ import annotations

import pytest

from planner_server.training.data import Problem
from planner_server.training.scoring import is_correct, theoremqa_equal

THEOREMQA = [  # (answer, truth, answer type, verdict, why)
    ("43", "42", "integer", False, "an integer is exact: 43 is within 4% of 42 but is not 42"),
    ("41", "42", "integer", False, "nor is 41"),
    ("42", "42", "integer", True, "the integer itself"),
    ("42.0", "42", "integer", True, "the same integer written as a float"),
    ("42.4", "42", "integer", True, "rounded to the nearest integer first, as the reference does"),
    ("1,000", "1000", "integer", True, "thousands comma"),
    ("3.47", "3.464", "float", True, "a float within 4%"),
    ("3.7", "3.464", "float", False, "a float 6.8% off"),
    ("0", "0.0", "float", True, "zero is only zero"),
    ("0.001", "0", "float", False, "zero is only zero"),
    ("[41, 3]", "[42, 3]", "list of integer", False, "integers in a list are exact too"),
    ("[3, 42]", "[42, 3]", "list of integer", True, "the reference sorts both lists"),
    ("[0.5, 2.01]", "[0.5, 2.0]", "list of float", True, "floats in a list: each within 4%"),
    ("[1, 2]", "[1, 2, 3]", "list of integer", False, "an element short"),
    ("(b)", "(b)", "option", True, "the letter"),
    ("b", "(b)", "option", True, "the letter without parentheses"),
    ("(a)", "(b)", "option", False, "another letter"),
    ("yes", "True", "bool", True, "yes is true"),
    ("no", "True", "bool", False, "no is false"),
]


@pytest.mark.parametrize(("answer", "truth", "kind", "ok", "why"), THEOREMQA)
def test_theoremqa_by_answer_type(answer, truth, kind, ok, why):
    assert theoremqa_equal(answer, truth, kind) is ok, why


def test_training_and_evaluation_share_the_theoremqa_rule():
    """Rollout rewards and `rsim eval` both call `verdict` → `is_correct` → `theoremqa_equal`: 43 for 42 is
    wrong in a training reward as in an evaluation."""
    from planner_server.training import reasoner_grpo, rollout
    from planner_server.training.scoring import verdict

    assert rollout.verdict is verdict and reasoner_grpo.verdict is verdict
    problem = Problem("q", "42", "theoremqa", answer_type="integer")
    assert verdict("43", problem) == (False, None) and verdict("42", problem) == (True, None)
    assert not is_correct("43", problem)


PROMPT = 'from typing import List\n\n\ndef total(xs: List[int]) -> int:\n    """Sum of xs."""\n'


@pytest.mark.parametrize(("answer", "code"), [
    ("```python\ndef f():\n    return 1\n```", "def f():\n    return 1\n"),
    ("text\n```py\nx = 1\n```\nmore", "x = 1\n"),
    ("```python\ndef total(xs):\n    return sum(xs)\n```\nUsage:\n```python\nprint(total([1]))\n```",
     "def total(xs):\n    return sum(xs)\n"),  # the block that defines something, not the last
    ("```python\ndef total(xs):\n    return sum(xs)\n", "def total(xs):\n    return sum(xs)\n"),  # unclosed
    ("    return sum(xs)\n```", "    return sum(xs)\n"),  # a stray closing fence
    ("```bash\npip install x\n```\n```python\nx = 2\n```", "x = 2\n"),  # Python blocks only
    ("def f():\n    return 1\n", "def f():\n    return 1\n"),  # no fence: the text
])
def test_extract_code(answer, code):
    from planner_server.training.scoring import extract_code

    assert extract_code(answer) == code


def test_extract_code_prefers_the_entry_point():
    from planner_server.training.scoring import extract_code

    answer = "```python\ndef total(xs):\n    return sum(xs)\n```\n```python\ndef helper():\n    pass\n```"
    assert extract_code(answer, "total").startswith("def total") and extract_code(answer).startswith("def helper")


def test_code_solution_keeps_the_prompt_and_drops_examples():
    from planner_server.training.scoring import code_solution

    body = code_solution(PROMPT, "    return sum(xs)\n", "total")
    assert body == PROMPT + "    return sum(xs)\n"  # HumanEval's prompt + completion
    whole = code_solution(PROMPT, "```python\ndef total(xs):\n    return sum(xs)\n\nassert total([1]) == 2\n"
                                  "print(total([2]))\nif __name__ == '__main__':\n    total(None)\n```", "total")
    assert whole.startswith(PROMPT.rstrip() + "\n\n\n") and "from typing import List" in whole
    assert "assert" not in whole and "print" not in whole and "__main__" not in whole
    assert code_solution("Write a function f.", "def f():\n    return 1\n") == "def f():\n    return 1\n"  # prose left out
    assert code_solution("def f():\n", "  return 1\n", "f") == "def f():\n  return 1\n"  # a bare signature


@pytest.mark.parametrize(("code", "ok"), [
    ("def add(a, b):\n    return a + b\n", True),
    ("pass\n", False),
    ("import os\n'''docs'''\n", False),
    ("def add(a, b):\n    pass\n", False),
    ("def add(a, b):\n    ...\n", False),
    ("print(5)\n", False),  # the reference defines a function
    ("def plus(a, b):\n    return a + b\n", False),  # the question names add
    ("add = lambda a, b: a + b\n", True),
    ("def add(a, b:\n", False),
])
def test_runs_shape(code, ok):
    from planner_server.training.scoring import runs_shape

    assert runs_shape(code, "def add(a, b):\n    return a + b", "Write a function add(a, b).") is ok


def test_runs_shape_without_a_named_function():
    from planner_server.training.scoring import runs_shape

    assert runs_shape("def plus(a, b):\n    return a + b\n", "def add(a, b):\n    return a + b", "Sum two numbers.")
    assert runs_shape("print('hi')\n", "SELECT * FROM t;", "Write a query.")  # a reference that is not Python


def test_plain_data_round_trips_and_nothing_else_crosses():
    import json

    from planner_server.training.scoring import _decode, _encode

    value = [None, True, 3, -0.5, float("inf"), 1 + 2j, "s", b"\x00", (1, [2]), {(1, 2): {"a": frozenset({1})}}, {3}]
    assert _decode(json.loads(json.dumps(_encode(value)))) == value
    assert type(_decode(_encode((1,)))) is tuple and type(_decode(_encode([1]))) is list

    class Anything(int):
        def __eq__(self, other):
            return True

    for not_plain in (Anything(1), object(), iter([1]), [lambda: 1]):
        with pytest.raises(TypeError):
            _encode(not_plain)
    for forged in ({"a": 1}, ["eval", ["1"]], ["list", 1], ["dict", [[1]]], ["complex", "1", 2]):
        with pytest.raises(ValueError):
            _decode(forged)

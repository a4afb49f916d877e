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

from service.answer import extract_answer, last_boxed


def test_last_boxed_with_nested_braces():
    assert last_boxed(r"first \boxed{1} then \boxed{\frac{1}{2}}") == r"\frac{1}{2}"


def test_unclosed_box_runs_to_end_of_line():
    assert last_boxed("The final answer is \\boxed{42\nmore") == "42"


def test_code_block_when_no_box():
    text = "try\n```python\nx = 1\n```\nbetter\n```python\ndef f():\n    return 2\n```\n"
    assert extract_answer(text) == "def f():\n    return 2"


def test_fallback_is_the_final_step_text():
    assert extract_answer("all the text", "  final step  ") == "final step"
    assert extract_answer("  only text ") == "only text"


def test_first_boxed_takes_only_a_closed_box():
    from service.answer import first_boxed
    assert first_boxed("so \\boxed{20} shells. Human: \\boxed{45}") == "20"
    assert first_boxed("\\boxed{\\frac{1}{2}} then \\boxed{3}") == "\\frac{1}{2}"
    assert first_boxed("The final answer is \\boxed{") is None  # the termination instruction's open box
    assert first_boxed("\\boxed{12") is None and first_boxed("no box") is None

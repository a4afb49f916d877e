"""R_acc: is an answer correct? math-verify for math, exact numeric for the synthetic task, letter
match for multiple choice, unit tests in a bubblewrap sandbox for code (refused without one)."""

from __future__ import annotations

import logging
import math
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
from fractions import Fraction

from planner_server.training.data import Problem

logging.getLogger("math_verify").setLevel(logging.ERROR)  # one warning per call when run without a timeout

_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:/\d+)?")


def last_number(text: str) -> Fraction | None:
    found = _NUMBER.findall(text.replace("\\!", ""))
    if not found:
        return None
    try:
        return Fraction(found[-1].replace(",", ""))
    except (ValueError, ZeroDivisionError):
        return None


def numeric_equal(answer: str, truth: str, *, rel_tol: float = 0.0) -> bool:
    a, t = last_number(answer), last_number(truth)
    if a is None or t is None:
        return False
    if rel_tol == 0:
        return a == t
    return abs(a - t) <= rel_tol * max(abs(t), Fraction(1))


class ScoringError(Exception):
    """The scorer could not decide (e.g. math-verify failed on the input): recorded, never read as a verdict."""


_PLAIN_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


def plain_number(text: str) -> bool:
    """Only a number (a sign, digits, thousands commas, decimals), `$`, spaces and a final period aside."""
    return bool(_PLAIN_NUMBER.fullmatch(text.strip().strip("$").strip().rstrip(".")))


def math_equal(answer: str, truth: str) -> bool:
    """math-verify decides; numbers compare as numbers only when both sides are nothing but a number.
    Its timeout is a signal, which works only in the main thread: elsewhere (training scores rollouts in
    worker threads) it runs without one rather than silently answering False (`ScoringError` on failure)."""
    if answer.strip().strip("$").lower() == truth.strip().strip("$").lower():  # True/False, words, exact forms
        return True
    if plain_number(answer) and plain_number(truth):
        return numeric_equal(answer, truth)
    from math_verify import parse, verify  # the train and eval extras bring it

    timeout = 5 if threading.current_thread() is threading.main_thread() else None
    try:
        gold = parse(f"${truth}$", parsing_timeout=timeout, raise_on_error=True)
        pred = parse(f"${answer}$", parsing_timeout=timeout, raise_on_error=True)
        return bool(gold and pred) and verify(gold, pred, timeout_seconds=timeout, raise_on_error=True)
    except Exception as e:  # math-verify raises on odd LaTeX and on its timeout
        raise ScoringError(f"math-verify could not compare {answer[:80]!r} with {truth[:80]!r}: "
                           f"{e.__class__.__name__}: {str(e)[:200]}") from e


THEOREMQA_REL_TOL = 0.04  # the reference scorer's: a float within 4% of the truth counts


def _tqa_number(text: str) -> float | None:
    """A number as TheoremQA's answers write them: plain, a fraction, scientific notation, a percentage
    stripped, `\\frac{a}{b}`; None if the text is not one number."""
    t = text.strip().strip("$").strip().rstrip(".").replace(",", "").replace("\\%", "").rstrip("%").strip()
    t = re.sub(r"\\d?frac\{([^{}]+)\}\{([^{}]+)\}", r"(\1)/(\2)", t)
    t = re.sub(r"\s*(?:\\times|\*|x)\s*10\^\{?(-?\d+)\}?", r"e\1", t)
    m = re.fullmatch(r"\(?(-?\d+(?:\.\d+)?(?:e-?\d+)?)\)?(?:\s*/\s*\(?(-?\d+(?:\.\d+)?)\)?)?", t)
    if not m:
        return None
    value = float(m.group(1))
    if m.group(2) is not None:
        if float(m.group(2)) == 0:
            return None
        value /= float(m.group(2))
    return value


def _tqa_close(pred: float, truth: float, *, integer: bool) -> bool:
    """The reference's `compare_two_numbers`: an integer truth wants the answer rounded to that very integer
    (43 is not 42, whatever the tolerance); a float truth, an answer within 4% of it."""
    if not math.isfinite(pred):
        return False
    if integer:
        if truth != int(truth):
            raise ScoringError(f"TheoremQA truth {truth!r} is not an integer")
        return round(pred) == int(truth)
    return abs(pred - truth) <= abs(truth) * THEOREMQA_REL_TOL if truth != 0 else pred == 0


def _tqa_list(text: str) -> list[float] | None:
    inner = text.strip().strip("$").strip()
    if not (inner[:1] in "[(" and inner[-1:] in "])"):
        return None
    parts = [p for p in inner[1:-1].split(",") if p.strip()]
    values = [_tqa_number(p) for p in parts]
    return None if not values or any(v is None for v in values) else values  # type: ignore[return-value]


_TRUE, _FALSE = {"true", "yes", "correct"}, {"false", "no", "incorrect"}


def theoremqa_equal(answer: str, truth: str, answer_type: str | None) -> bool:
    """TheoremQA by its `Answer_type`, as its reference scorer compares: an integer exactly (the answer
    rounded to the nearest integer), a float within 4% of the truth, lists of either sorted and then element
    by element by the same rules, bool as true/false (yes/no), an option as its letter with or without
    parentheses. Without an answer type: math-verify (`math_equal`)."""
    kind = (answer_type or "").strip().lower()
    a = answer.strip().strip("$").strip().rstrip(".")
    if kind == "bool":
        word = a.lower().removeprefix("\\text{").rstrip("}")
        truth_word = truth.strip().lower()
        return (word in _TRUE and truth_word in _TRUE) or (word in _FALSE and truth_word in _FALSE)
    if kind == "option":
        letter = re.fullmatch(r"\(?([a-jA-J])\)?", a.removeprefix("\\text{").rstrip("}").strip())
        want = re.fullmatch(r"\(?([a-jA-J])\)?", truth.strip())
        return bool(letter and want) and letter.group(1).lower() == want.group(1).lower()
    if kind in ("integer", "float"):
        pred, gold = _tqa_number(a), _tqa_number(truth)
        if gold is None:
            raise ScoringError(f"TheoremQA truth {truth!r} is not a number ({kind})")
        return pred is not None and _tqa_close(pred, gold, integer=kind == "integer")
    if kind.startswith("list"):
        pred_list, gold_list = _tqa_list(a), _tqa_list(truth)
        if gold_list is None:
            raise ScoringError(f"TheoremQA truth {truth!r} is not a list of numbers ({kind})")
        integer = "integer" in kind
        return pred_list is not None and len(pred_list) == len(gold_list) and all(
            _tqa_close(p, g, integer=integer) for p, g in zip(sorted(pred_list), sorted(gold_list), strict=True))
    return math_equal(answer, truth)


_LETTER = re.compile(r"(?<![A-Za-z])\(?([A-J])\)?(?![A-Za-z])")


_NAMED = re.compile(r"answer\s*(?:is|:)?\s*(?:option\s*)?\(?([A-J])\)?(?![A-Za-z])", re.IGNORECASE)


def choice_equal(answer: str, truth: str) -> bool:
    """The final answer letter: a boxed one, else the last one named as the answer ("the answer is C"),
    else the last standalone capital letter A–J (options ruled out come before the one picked)."""
    from service.answer import last_boxed

    boxed = last_boxed(answer)
    named = _NAMED.findall(answer)
    found = _LETTER.findall(boxed) if boxed else [named[-1].upper()] if named else _LETTER.findall(answer)
    return bool(found) and found[-1] == truth.strip().upper().strip("()")


class SandboxUnavailable(RuntimeError):
    """The isolation code scoring promises is not available here: scoring refuses to run code at all."""


def _limit(memory_mb: int, cpu_s: int) -> None:  # runs in the child before exec (bwrap and all it starts)
    resource.setrlimit(resource.RLIMIT_AS, (memory_mb * 2**20, memory_mb * 2**20))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s))
    resource.setrlimit(resource.RLIMIT_FSIZE, (16 * 2**20, 16 * 2**20))  # no file over 16 MB, even in its dir
    resource.setrlimit(resource.RLIMIT_NPROC, (512, 512))  # a fork bomb stops here (not for root)


def sandbox_argv(workdir: str, python: str | None = None) -> list[str]:
    """bubblewrap: every namespace unshared (no network, raw `_socket` included; no other process), an
    empty environment, a new session, and a file system of the interpreter and /usr read-only, a private
    /tmp and the working dir: nothing of the host is writable, or readable beyond those."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        raise SandboxUnavailable("code answers run only under bubblewrap, which is not installed: "
                                 "`apt-get install bubblewrap` (Debian/Ubuntu) or your system's package")
    python = os.path.realpath(python or sys.executable)
    prefix = os.path.dirname(os.path.dirname(python))  # e.g. /usr, or a pyenv/conda prefix
    argv = [bwrap, "--unshare-all", "--die-with-parent", "--new-session", "--clearenv",
            "--setenv", "PATH", "/usr/bin:/bin", "--ro-bind", "/usr", "/usr"]
    for top in ("/bin", "/lib", "/lib32", "/lib64", "/sbin"):
        if os.path.islink(top):
            argv += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            argv += ["--ro-bind", top, top]
    if not prefix.startswith("/usr"):
        argv += ["--ro-bind", prefix, prefix]
    return argv + ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--bind", workdir, "/sandbox",
                   "--chdir", "/sandbox", "--", python, "-I", "-S", "run.py"]


def check_sandbox() -> None:
    """Raise `SandboxUnavailable` now, before a run that will need to score code, rather than mid-run."""
    if not run_code_tests("x = 1", "assert x == 1", timeout_s=30):
        raise SandboxUnavailable("the code-scoring sandbox starts but cannot run a trivial program")


def run_code_tests(solution: str, tests: str, *, timeout_s: float = 10.0, memory_mb: int = 512) -> bool:
    """Run solution + tests in the sandbox (`sandbox_argv`) with time, CPU and memory limits: True when
    they exit cleanly. Raises `SandboxUnavailable` rather than run code without the isolation."""
    with tempfile.TemporaryDirectory(prefix="rsim-sandbox-") as tmp:
        with open(os.path.join(tmp, "run.py"), "w") as f:
            f.write(solution + "\n\n" + tests + "\n")
        argv = sandbox_argv(tmp)
        try:
            r = subprocess.run(argv, cwd=tmp, capture_output=True, timeout=timeout_s, env={},
                               preexec_fn=lambda: _limit(memory_mb, int(timeout_s) + 1), stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            return False
        if r.returncode != 0 and r.stderr.startswith(b"bwrap:"):  # the sandbox itself failed to start
            raise SandboxUnavailable(f"bubblewrap could not start the sandbox: {r.stderr[:300].decode(errors='replace')}")
        return r.returncode == 0


def code_solution(prompt: str, answer: str) -> str:
    """HumanEval's way: prompt + completion. An answer that is a whole program (a `def`, imports…) comes
    after the prompt rather than instead of it, so the prompt's imports (`from typing import List`)
    still hold and the answer's own definition wins."""
    if not answer.lstrip("\r\n").startswith(("def ", "import ", "from ", "class ", "@")):  # at column 0
        return prompt + answer
    head = prompt.rstrip()
    if head.endswith(":"):  # a signature with no docstring: give it a body before the answer's own
        head += "\n    pass"
    return head + "\n\n\n" + answer


def is_correct(answer: str, problem: Problem) -> bool:
    if problem.task == "synthetic":
        return numeric_equal(answer, problem.answer)
    if problem.task == "choice":
        return choice_equal(answer, problem.answer)
    if problem.task == "numeric":
        return numeric_equal(answer, problem.answer, rel_tol=1e-4)
    if problem.task == "theoremqa":
        return theoremqa_equal(answer, problem.answer, problem.answer_type)
    if problem.task == "runs":
        return bool(answer.strip()) and run_code_tests(answer, "")
    if problem.task == "code":
        if not problem.tests:
            return False
        return run_code_tests(code_solution(problem.question, answer), problem.tests)
    return math_equal(answer, problem.answer)


def verdict(answer: str, problem: Problem) -> tuple[bool, str | None]:
    """`is_correct`, with a scoring error counted wrong and returned, not raised."""
    try:
        return is_correct(answer, problem), None
    except ScoringError as e:
        return False, str(e)

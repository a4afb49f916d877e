"""R_acc: is an answer correct? math-verify for math, exact numeric for the synthetic task, letter
match for multiple choice, unit tests in a sandboxed subprocess for code."""

from __future__ import annotations

import ctypes
import os
import re
import resource
import subprocess
import sys
import tempfile
from fractions import Fraction

from planner_server.training.data import Problem

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


def math_equal(answer: str, truth: str) -> bool:
    if answer.strip().strip("$").lower() == truth.strip().strip("$").lower():  # True/False, words, exact forms
        return True
    try:
        from math_verify import parse, verify
    except ImportError:  # pragma: no cover - the train extra brings it
        return numeric_equal(answer, truth) or answer.strip() == truth.strip()
    try:
        gold = parse(f"${truth}$")
        pred = parse(f"${answer}$")
        if gold and pred and verify(gold, pred):
            return True
    except Exception:  # math-verify raises on odd LaTeX; fall back to numbers
        pass
    return numeric_equal(answer, truth)


def choice_equal(answer: str, truth: str) -> bool:
    m = re.search(r"\b([A-J])\b", answer.strip().upper().replace("(", " ").replace(")", " "))
    return bool(m) and m.group(1) == truth.strip().upper().strip("()")


SANDBOX_PRELUDE = """
import socket as _s
def _no_net(*a, **k):
    raise OSError("network access is disabled in the sandbox")
_s.socket = _no_net
_s.create_connection = _no_net
"""


def _limit(memory_mb: int, cpu_s: int) -> None:  # runs in the child before exec
    resource.setrlimit(resource.RLIMIT_AS, (memory_mb * 2**20, memory_mb * 2**20))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s))
    resource.setrlimit(resource.RLIMIT_NPROC, (64, 64))
    os.setsid()
    try:  # a private network namespace when allowed (root); the prelude blocks sockets regardless
        ctypes.CDLL(None, use_errno=True).unshare(0x40000000)  # CLONE_NEWNET
    except Exception:
        pass


def run_code_tests(solution: str, tests: str, *, timeout_s: float = 10.0, memory_mb: int = 512) -> bool:
    """Run solution + tests in `python -I` in a temp dir with time, memory and no network."""
    with tempfile.TemporaryDirectory(prefix="rsim-sandbox-") as tmp:
        path = os.path.join(tmp, "run.py")
        with open(path, "w") as f:
            f.write(SANDBOX_PRELUDE + "\n" + solution + "\n\n" + tests + "\n")
        try:
            r = subprocess.run([sys.executable, "-I", path], cwd=tmp, capture_output=True, timeout=timeout_s,
                               preexec_fn=lambda: _limit(memory_mb, int(timeout_s) + 1), env={"PATH": "/usr/bin"},
                               stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            return False
        return r.returncode == 0


def is_correct(answer: str, problem: Problem) -> bool:
    if problem.task == "synthetic":
        return numeric_equal(answer, problem.answer)
    if problem.task == "choice":
        return choice_equal(answer, problem.answer)
    if problem.task == "numeric":
        return numeric_equal(answer, problem.answer, rel_tol=1e-4)
    if problem.task == "runs":
        return bool(answer.strip()) and run_code_tests(answer, "")
    if problem.task == "code":
        if not problem.tests:
            return False
        solution = answer if answer.lstrip().startswith(("def ", "import ", "from ", "class ")) \
            else problem.question + answer
        return run_code_tests(solution, problem.tests)
    return math_equal(answer, problem.answer)

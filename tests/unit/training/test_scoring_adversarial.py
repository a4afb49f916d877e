"""Answers that try to game the code scorer (issue 27), each with the verdict it must get, scored through
`is_correct` as training rewards and `rsim eval` score them. After each row the scorer and the machine must
be healthy: a correct answer still scores right, no sandbox process or cgroup is left, the host listener got
no connection, nothing was written outside, and the scorer's own memory did not grow with the answer's output."""

from __future__ import annotations

import glob
import os
import resource
import shutil
import socket
import time

import pytest

from planner_server.training import scoring
from planner_server.training.data import Problem

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap not installed "
                                "(test_code_refuses_without_a_sandbox covers that case)")

PROMPT = 'from typing import List\n\n\ndef total(xs: List[int]) -> int:\n    """Sum of xs."""\n'
CHECK = "def check(candidate):\n    assert candidate([1, 2]) == 3\n    assert candidate([]) == 0\n"
TOTAL = Problem(PROMPT, "", "code", CHECK + "check(total)\n", "total")
MEAN_PROMPT = 'def mean(xs: list) -> float:\n    """Arithmetic mean of xs."""\n'
MEAN_CHECK = ("def check(candidate):\n    import math\n    assert abs(candidate([1, 2, 3]) - 2.0) < 1e-9\n"
              "    assert math.isclose(candidate([2, 4]), 3.0)\n")
MEAN = Problem(MEAN_PROMPT, "", "code", MEAN_CHECK + "check(mean)\n", "mean")
ADD = Problem("Write a function add(a, b) that returns the sum of a and b.", "def add(a, b):\n    return a + b\n", "runs")
WRONG = "def total(xs: List[int]) -> int:\n    return len(xs)\n"
RIGHT = "    return sum(xs)\n"

FORGE = """\
    import json, os
    for pid in os.listdir('/proc'):
        try:
            job = json.loads(os.pread(os.open(f'/proc/{pid}/fd/0', os.O_RDONLY | os.O_NONBLOCK), 1 << 20, 0))
        except Exception:
            continue
        for other in os.listdir('/proc'):
            try:
                with open(f'/proc/{other}/fd/1', 'w') as out:
                    out.write(job['nonce'] + ' pass\\n')
            except Exception:
                pass
        os._exit(0)
    return -1
"""  # the job (nonce, tests) from a process's stdin, then a forged verdict line on every stdout it can open

# name: (problem, answer, verdict). {port}, {outside}: a listener on 127.0.0.1 and a host path, per test.
ROWS = {
    "sys.exit(0) after a wrong function": (TOTAL, WRONG + "import sys\nsys.exit(0)\n", False),
    "sys.exit(0) inside the call": (TOTAL, "    import sys\n    sys.exit(0)\n", False),
    "os._exit(0) after a wrong function": (TOTAL, WRONG + "import os\nos._exit(0)\n", False),
    "os._exit(0) inside the call": (TOTAL, "    import os\n    os._exit(0)\n", False),
    "raise SystemExit": (TOTAL, WRONG + "raise SystemExit\n", False),
    "kill the parent, then exit 0": (TOTAL, "    import os, signal\n    os.kill(os.getppid(), signal.SIGKILL)\n"
                                            "    os._exit(0)\n", False),
    "atexit turns the failure into exit 0": (TOTAL, WRONG + "import atexit, os\natexit.register(os._exit, 0)\n", False),
    "fake success on stdout": (TOTAL, "    import os\n    line = b'ready\\n' + b'0' * 32 + b' pass\\nOK\\n'\n"
                                      "    os.write(1, line)\n    print('all tests passed')\n    os._exit(0)\n", False),
    "forge the verdict with the job read from any process": (TOTAL, FORGE, False),
    "an answer equal to everything": (TOTAL, "class Anything(int):\n    def __eq__(self, other):\n        return True\n"
                                             "    __hash__ = int.__hash__\n\n\ndef total(xs):\n    return Anything()\n", False),
    "builtins.abs patched": (MEAN, "import builtins\nbuiltins.abs = lambda x: 0\n\n\ndef mean(xs):\n"
                                   "    return 3.0 if len(xs) == 2 else 0\n", False),
    "a builtin the tests use, shadowed": (MEAN, "def abs(x):\n    return 0\n\n\ndef mean(xs):\n"
                                                "    return 3.0 if len(xs) == 2 else 0\n", False),
    "math.isclose patched": (MEAN, "import math\nmath.isclose = lambda *a, **k: True\n\n\ndef mean(xs):\n"
                                   "    return sum(xs) / len(xs) if len(xs) == 3 else 0\n", False),
    "stderr that looks like bwrap's": (TOTAL, "    import sys\n    print('bwrap: Creating new namespace failed', "
                                              "file=sys.stderr, flush=True)\n    sys.exit(1)\n", False),
    "write outside the sandbox": (TOTAL, "    open({outside!r}, 'w').write('escaped')\n    return sum(xs)\n", False),
    "connect to a host listener": (TOTAL, "    import socket\n    socket.create_connection(('127.0.0.1', {port}), "
                                          "timeout=2).sendall(b'hi')\n    return sum(xs)\n", False),
    "200 processes at once": (TOTAL, "    import os, time\n    for _ in range(200):\n        try:\n"
                                     "            pid = os.fork()\n        except OSError:\n            return -1\n"
                                     "        if pid == 0:\n            time.sleep(30)\n            os._exit(0)\n"
                                     "    return sum(xs)\n", False),
    "fork bomb": (TOTAL, "    import os\n    while True:\n        try:\n            os.fork()\n        except OSError:\n"
                         "            pass\n", False),
    "memory balloon over processes": (
        TOTAL, "    import os\n    r, w = os.pipe()\n    for _ in range(3):\n        if os.fork() == 0:\n"
               "            held = b'x' * (200 << 20)\n            os.write(w, b'1')\n            import time\n"
               "            time.sleep(30)\n            os._exit(0)\n    os.close(w)\n    got = b''\n"
               "    while len(got) < 3:\n        chunk = os.read(r, 3)\n        if not chunk:\n            return -1\n"
               "        got += chunk\n    return sum(xs)\n", False),
    "memory balloon in one process": (TOTAL, "    held = b'x' * (4 << 30)\n    return sum(xs)\n", False),
    "output flood": (TOTAL, "    import os\n    chunk = b'x' * (1 << 20)\n    for _ in range(200):\n"
                            "        os.write(1, chunk)\n        os.write(2, chunk)\n    return len(xs)\n", False),
    "infinite loop": (TOTAL, "    while True:\n        pass\n", False),
    "a correct answer in a Markdown fence": (
        TOTAL, "Here it is:\n\n```python\ndef total(xs: List[int]) -> int:\n    return sum(xs)\n```\n", True),
    "a correct answer, fenced, with a wrong example after it": (
        TOTAL, "```python\ndef total(xs: List[int]) -> int:\n    return sum(xs)\n\n\nassert total([1]) == 2\n"
               "print(total([1, 2]))\n```\n\nUsage:\n```python\nprint(total([3]))\n```\n", True),
    "runs: pass where the reference defines a function": (ADD, "pass\n", False),
    "runs: a function that does nothing": (ADD, "```python\ndef add(a, b):\n    pass\n```", False),
    "runs: exit 0 before the end": (ADD, "def add(a, b):\n    return a - b\n\nraise SystemExit(0)\n", False),
    "runs: a real program": (ADD, "```python\ndef add(a, b):\n    return a + b\n\nprint(add(2, 3))\n```", True),
}
NEEDS_CGROUP = {"memory balloon over processes"}  # without a cgroup, memory is bounded per process only
SLOW = {"fork bomb", "infinite loop"}


@pytest.fixture(autouse=True)
def short_bounds(monkeypatch):
    monkeypatch.setattr(scoring, "DEFAULT_BOUNDS", scoring.Bounds(wall_s=3, total_mb=256))


def sandbox_leftovers() -> list[str]:
    low, span = scoring._SANDBOX_UIDS
    found = glob.glob("/sys/fs/cgroup/**/rsim-sandbox-*", recursive=True)
    for status in glob.glob("/proc/[0-9]*/status"):
        try:
            uid = next(int(line.split()[1]) for line in open(status) if line.startswith("Uid:"))
        except (OSError, StopIteration):
            continue
        if low <= uid < low + span:
            found.append(status)
    return found


def wait_healthy(deadline_s: float = 5.0) -> list[str]:
    end = time.monotonic() + deadline_s
    while (left := sandbox_leftovers()) and time.monotonic() < end:
        time.sleep(0.1)
    return left


@pytest.mark.parametrize("name", list(ROWS))
def test_adversarial_answer(name, tmp_path):
    if name in NEEDS_CGROUP and "cgroup" not in scoring.check_sandbox():
        pytest.skip("no cgroup here: memory is bounded per process (docs/scoring.md)")
    problem, answer, expected = ROWS[name]
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(0.2)
    outside = tmp_path / "escaped.txt"
    answer = answer.replace("{port}", str(listener.getsockname()[1])).replace("{outside!r}", repr(str(outside)))
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB
    started = time.monotonic()
    try:
        assert scoring.is_correct(answer, problem) is expected
        elapsed = time.monotonic() - started
        with pytest.raises(OSError):  # socket.timeout: nothing connected
            listener.accept()
    finally:
        listener.close()
    assert elapsed < (15 if name in SLOW else 10)
    assert not outside.exists()
    assert (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before) < 100 * 1024  # the flood stayed out
    assert wait_healthy() == []
    assert scoring.is_correct(RIGHT, TOTAL)  # and the scorer still works


def test_a_sandbox_failure_is_told_apart_from_the_programs_stderr(monkeypatch):
    """Only a sandbox that never let the answer start is `SandboxUnavailable`: bwrap refusing its arguments."""
    real = scoring.sandbox_argv
    monkeypatch.setattr(scoring, "sandbox_argv", lambda *a, **k: [real(*a, **k)[0], "--no-such-option"])
    with pytest.raises(scoring.SandboxUnavailable):
        scoring.is_correct(RIGHT, TOTAL)


def test_bounds_without_a_cgroup():
    """The fallback where no cgroup can be made: the process count still holds (RLIMIT_NPROC under the run's
    own uid and user namespace), and so does the time."""
    bounds = scoring.Bounds(wall_s=3, cgroup=False)
    for row in ("200 processes at once", "fork bomb"):
        program = PROMPT + ROWS[row][1]
        assert not scoring.run_code_tests(program, TOTAL.tests, prompt=PROMPT, entry_point="total", bounds=bounds)
    assert wait_healthy() == []
    assert scoring.run_code_tests(PROMPT + RIGHT, TOTAL.tests, prompt=PROMPT, entry_point="total", bounds=bounds)


def test_no_preexec_fn(monkeypatch):
    """Scoring runs in worker threads, where `preexec_fn` is unsafe: the sandbox is started without one."""
    import subprocess

    seen = []
    real = subprocess.Popen

    def spy(*args, **kwargs):
        seen.append(kwargs.get("preexec_fn"))
        return real(*args, **kwargs)

    monkeypatch.setattr(subprocess, "Popen", spy)
    assert scoring.is_correct(RIGHT, TOTAL)
    assert seen and seen == [None] * len(seen)


def test_tests_are_not_visible_to_the_answer():
    """The tests reach the harness only: an answer that looks for them (to copy the expected values) finds
    nothing on its file system, in its environment or on the harness's descriptors."""
    probe = ("    import os\n    seen = ''\n    for root, _, files in [*os.walk('/tmp'), *os.walk(os.getcwd())]:\n"
             "        for f in files:\n"
             "            try:\n                seen += open(os.path.join(root, f), errors='replace').read()\n"
             "            except OSError:\n                pass\n    for pid in os.listdir('/proc'):\n"
             "        for part in ('environ', 'cmdline', 'fd/0'):\n            try:\n"
             "                seen += open(f'/proc/{pid}/{part}', errors='replace').read()\n"
             "            except OSError:\n                pass\n"
             "    needle = ''.join(['assert cand', 'idate(['])\n"  # not in its own source or bytecode
             "    return sum(xs) if needle not in seen else -1\n")
    assert scoring.is_correct(probe, TOTAL)


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None or not os.path.exists("/usr/bin/python3"),
                    reason="drives the unprivileged path by running the scorer as another user (needs root here)")
def test_the_unprivileged_path(tmp_path):
    """Run by a user other than root, the sandbox is a user namespace of its own: the process count still holds
    there (RLIMIT_NPROC counts per namespace) and the job stays out of reach (the harness is pid 1, so no bwrap
    process inside holds it). The scorer runs here as uid 65534 under the system's Python."""
    import json
    import subprocess
    import tempfile

    where = tempfile.mkdtemp(prefix="rsim-unprivileged-")
    os.chmod(where, 0o755)
    rows = {name: ROWS[name] for name in ("forge the verdict with the job read from any process", "200 processes at once",
                                          "os._exit(0) after a wrong function", "infinite loop")}
    script = os.path.join(where, "score.py")
    with open(script, "w") as f:
        f.write(f"""import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("scoring", {scoring.__file__!r})
scoring = importlib.util.module_from_spec(spec)
sys.modules["scoring"] = scoring
spec.loader.exec_module(scoring)
prompt, tests = {PROMPT!r}, {TOTAL.tests!r}
answers = {json.dumps([a for _, a, _ in rows.values()] + [RIGHT])}
bounds = scoring.Bounds(wall_s=3)
print(json.dumps([scoring.run_code_tests(scoring.code_solution(prompt, a, "total"), tests, prompt=prompt,
                                         entry_point="total", bounds=bounds).passed for a in answers]))
""")
    os.chmod(script, 0o644)
    try:
        done = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3", script],
                              capture_output=True, text=True, timeout=120, cwd=where)
    finally:
        shutil.rmtree(where)
    if "SandboxUnavailable" in done.stderr:
        pytest.skip(f"no unprivileged user namespaces here: {done.stderr[-200:]}")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [False, False, False, False, True]

    def harness_as_nobody() -> list[str]:
        found = []
        for status in glob.glob("/proc/[0-9]*/status"):
            try:
                uid = next(int(line.split()[1]) for line in open(status) if line.startswith("Uid:"))
                cmdline = open(status.replace("status", "cmdline"), "rb").read()
            except (OSError, StopIteration):
                continue
            if uid == 65534 and b"/tmp/harness.py" in cmdline:
                found.append(status)
        return found

    end = time.monotonic() + 5
    while harness_as_nobody() and time.monotonic() < end:
        time.sleep(0.1)
    assert harness_as_nobody() == []  # the timed-out loop ended with its sandbox

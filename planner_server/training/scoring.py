"""R_acc: is an answer correct? math-verify for math, exact numbers for the synthetic task, letters for
multiple choice, TheoremQA by its answer type, code by its tests in a bounded bubblewrap sandbox (refused
without one) — one scorer for training rewards and evaluation. Run as a script, this file is the harness
inside that sandbox. The rules and the bounds: docs/scoring.md."""

from __future__ import annotations

import ast
import json
import logging
import math
import os
import re
import resource
import secrets
import selectors
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the harness runs this file alone, with the standard library only
    from planner_server.training.data import Problem

log = logging.getLogger("rsim.scoring")
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


# --- code answers: what program the tests run against -------------------------------------------------

_FENCED = re.compile(r"```([^\n`]*)\n(.*?)(?:```|\Z)", re.S)  # an unclosed last fence runs to the end
_PYTHON_FENCES = {"", "python", "py", "python3"}


def extract_code(text: str, entry_point: str | None = None) -> str:
    """An answer's code as the benchmarks' harnesses take it: from its Markdown fences when it has any (the
    last Python block that defines `entry_point`, else the last that defines a function or class, else the
    last), otherwise the text itself less any stray fence line."""
    blocks = [body for lang, body in _FENCED.findall(text) if (lang.split() or [""])[0].lower() in _PYTHON_FENCES]
    if not blocks:
        return re.sub(r"(?m)^[ \t]*```[^\n]*(?:\n|\Z)", "", text)
    wanted = [r"(?m)^(?:async\s+)?(?:def|class)\s"]
    if entry_point:
        wanted.insert(0, rf"(?m)^(?:async\s+)?def\s+{re.escape(entry_point)}\s*\(")
    for pattern in wanted:
        if chosen := [b for b in blocks if re.search(pattern, b)]:
            return chosen[-1]
    return blocks[-1]


def prompt_code(prompt: str) -> str | None:
    """The prompt as a program — HumanEval's imports, helpers and signature, a bare signature given a body —
    or None when it is not Python (a question in words)."""
    head = prompt.rstrip()
    for candidate in (head, head + "\n    pass"):
        try:
            tree = ast.parse(candidate)
        except SyntaxError:
            continue
        defines = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Import, ast.ImportFrom)
        return candidate if any(isinstance(node, defines) for node in tree.body) else None
    return None


def _examples_dropped(code: str) -> str:
    """A whole-program answer less what only demonstrates it — `if __name__ == "__main__":` blocks, top-level
    asserts, loops, prints, input() and bare strings — as EvalPlus sanitizes; code that does not parse as is."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return code

    def example(node: ast.stmt) -> bool:
        if isinstance(node, (ast.Assert, ast.For, ast.While)):
            return True
        if isinstance(node, ast.If):
            return "__name__" in ast.unparse(node.test)
        if isinstance(node, ast.Expr):
            call = node.value
            return isinstance(call, ast.Constant) or (isinstance(call, ast.Call) and isinstance(call.func, ast.Name)
                                                       and call.func.id in ("print", "input", "pprint"))
        return False

    kept = [node for node in tree.body if not example(node)]
    return code if len(kept) == len(tree.body) else ast.unparse(ast.Module(body=kept, type_ignores=[]))


def code_solution(prompt: str, answer: str, entry_point: str | None = None) -> str:
    """The program the tests run against, HumanEval's way: the answer's code (`extract_code`) completing the
    prompt's body goes after the prompt; a whole program (a `def`, imports…) comes after the prompt rather
    than instead of it, so the prompt's imports and helpers still hold and the answer's definitions win, and
    with an `entry_point` it loses its examples (`_examples_dropped`). A prompt that is not Python is left out."""
    code = extract_code(answer, entry_point)
    head = prompt_code(prompt)
    if not code.lstrip("\r\n").startswith(("def ", "async def ", "import ", "from ", "class ", "@")):  # column 0
        return prompt + code if head is not None else code
    program = _examples_dropped(code) if entry_point else code
    return program if head is None else head + "\n\n\n" + program


_EMPTY = (ast.Pass, ast.Import, ast.ImportFrom)


def _does_something(body: list[ast.stmt]) -> bool:
    return any(not isinstance(n, _EMPTY) and not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant))
               for n in body)


def runs_shape(code: str, reference: str, question: str) -> bool:
    """What `runs` (no published tests) asks of a program before running it: it parses and does something (a
    statement beyond imports, `pass`, `...` and strings, in every function too), defines a function or class
    when the reference solution does (or binds one of its names), and each of the reference's that the
    question names."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return False
    functions = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    if not _does_something(tree.body) or not all(_does_something(f.body) for f in functions):
        return False
    defines = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    bound = {n.name for n in tree.body if isinstance(n, defines)} | {
        t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)}
    try:
        reference_defs = {n.name for n in ast.parse(extract_code(reference)).body if isinstance(n, defines)}
    except SyntaxError:  # a reference in words, SQL…: nothing to ask
        return True
    if reference_defs and not (reference_defs & bound or any(isinstance(n, defines) for n in tree.body)):
        return False
    return all(name in bound for name in reference_defs if re.search(rf"\b{re.escape(name)}\b", question))


# --- the sandbox, from outside -------------------------------------------------------------------------

class SandboxUnavailable(RuntimeError):
    """The isolation code scoring promises is not available here: scoring refuses to run code at all."""


@dataclass(frozen=True)
class Bounds:
    """What one sandboxed run may use. `tasks` (processes and threads) and `total_mb` hold for the whole
    sandbox through a cgroup where this process can make one (root, a writable cgroup file system); without
    one, `tasks` still holds (RLIMIT_NPROC under a uid and user namespace of the sandbox's own) and memory is
    `process_mb` per process plus `disk_mb` of tmpfs. `wall_s` starts once the harness is up (`start_s`)."""
    wall_s: float = 10.0
    tasks: int = 32
    process_mb: int = 512
    total_mb: int = 1024
    disk_mb: int = 64
    file_mb: int = 16
    start_s: float = 30.0
    cgroup: bool = True


DEFAULT_BOUNDS = Bounds()
_OUTPUT_KEPT = 64 * 1024  # of the harness's stdout and bwrap's stderr each; the answer's own output goes nowhere
_SANDBOX_UIDS = (0x7A000000, 0x01000000)  # as root: a uid of its own for each run, in this range


@dataclass(frozen=True)
class CodeRun:
    """One sandboxed run: `passed` only on the harness's own word (its line with the run's nonce)."""
    passed: bool
    reason: str

    def __bool__(self) -> bool:
        return self.passed


class _Cgroup:
    """One run's cgroup: the sandbox's processes and threads counted against `tasks`, its memory (tmpfs
    included) against `total_mb` — v2, or v1's pids and memory hierarchies, whichever this process may write."""

    def __init__(self, dirs: list[str]) -> None:
        self.dirs = dirs

    @classmethod
    def make(cls, bounds: Bounds) -> _Cgroup | None:
        name = f"rsim-sandbox-{secrets.token_hex(6)}"
        made = cls([])
        try:
            for base, limits in _cgroup_bases(bounds):
                os.mkdir(path := os.path.join(base, name))
                made.dirs.append(path)
                for file, value in limits:
                    if os.path.exists(os.path.join(path, file)):
                        with open(os.path.join(path, file), "w") as f:
                            f.write(str(value))
        except OSError as e:
            log.debug("no cgroup for the sandbox: %s", e)
            made.remove()
            return None
        return made if made.dirs else None

    def enter(self, argv: list[str]) -> list[str]:
        """`argv` started by a shell that first moves itself into the cgroup: nothing runs outside it."""
        procs = [os.path.join(d, "cgroup.procs") for d in self.dirs]
        script = 'while [ "$1" != -- ]; do echo $$ >"$1" || exit 125; shift; done; shift; exec "$@"'
        return ["/bin/sh", "-c", script, "sh", *procs, "--", *argv]

    def remove(self) -> None:
        for d in reversed(self.dirs):
            for _ in range(100):
                try:
                    with open(os.path.join(d, "cgroup.procs")) as f:
                        for pid in f.read().split():
                            os.kill(int(pid), signal.SIGKILL)
                    os.rmdir(d)
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.02)
            else:
                log.warning("could not remove the sandbox cgroup %s", d)
        self.dirs = []


def _cgroup_bases(bounds: Bounds) -> list[tuple[str, list[tuple[str, int]]]]:
    """Where this process's cgroups are (v2 if it can enable pids and memory below its own, else v1's), with
    the limits to write in a child of each."""
    with open("/proc/self/cgroup") as f:
        own = [line.rstrip("\n").split(":", 2) for line in f]
    with open("/proc/self/mountinfo") as f:
        mounts = [(line.split()[3], line.split()[4], line.split(" - ")[1].split()) for line in f]
    total, tasks = bounds.total_mb * 2**20, bounds.tasks + 4  # + bwrap's processes and the shell
    v2 = {"pids": [("pids.max", tasks)], "memory": [("memory.max", total), ("memory.swap.max", 0)]}
    v1 = {"pids": [("pids.max", tasks)],
          "memory": [("memory.limit_in_bytes", total), ("memory.memsw.limit_in_bytes", total)]}

    def where(fstype: str, controller: str | None, path: str) -> str | None:
        for root, point, (kind, _source, options) in mounts:
            if kind == fstype and (controller is None or controller in options.split(",")) and path.startswith(root):
                return point + path[len(root.rstrip("/")):]
        return None

    unified = next((path for _id, names, path in own if names == ""), None)
    if unified is not None and (base := where("cgroup2", None, unified)):
        try:
            with open(os.path.join(base, "cgroup.subtree_control"), "w") as f:
                f.write("+pids +memory")
            return [(base, v2["pids"] + v2["memory"])]
        except OSError:
            pass  # controllers not ours to hand down (or v2 without them): try v1
    bases = []
    for controller in ("pids", "memory"):
        path = next((p for _id, names, p in own if controller in names.split(",")), None)
        if path is not None and (base := where("cgroup", controller, path)):
            bases.append((base, v1[controller]))
    return bases


def sandbox_argv(files: dict[str, int], *, as_root: bool, disk_mb: int = DEFAULT_BOUNDS.disk_mb,
                 python: str | None = None) -> list[str]:
    """bubblewrap: new pid, network, ipc and uts namespaces (a user namespace too unless run by root, which
    instead drops to a uid of the run's own inside) whose pid 1 the answer can neither read nor signal and
    which ends every process inside when bwrap goes, an empty environment, a new session, a file system of
    /usr and the interpreter read-only and one size-capped tmpfs at /tmp holding `files` (name → fd)
    read-only: nothing of the host is writable, or readable beyond those."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        raise SandboxUnavailable("code answers run only under bubblewrap, which is not installed: "
                                 "`apt-get install bubblewrap` (Debian/Ubuntu) or your system's package")
    python = os.path.realpath(python or sys.executable)
    prefix = os.path.dirname(os.path.dirname(python))  # e.g. /usr, or a pyenv/conda prefix
    argv = [bwrap, "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
            # as root, bwrap's own pid 1 (root: out of the answer's reach) dies with bwrap and ends the rest; as
            # another user it would share the answer's uid, so the harness is pid 1 instead (non-dumpable)
            *(["--cap-add", "CAP_SETUID,CAP_SETGID"] if as_root else ["--unshare-user", "--as-pid-1"]),
            "--die-with-parent", "--new-session", "--clearenv", "--setenv", "PATH", "/usr/bin:/bin",
            "--ro-bind", "/usr", "/usr"]
    for top in ("/bin", "/lib", "/lib32", "/lib64", "/sbin"):
        if os.path.islink(top):
            argv += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            argv += ["--ro-bind", top, top]
    if not prefix.startswith("/usr"):
        parts = prefix.strip("/").split("/")
        for i in range(1, len(parts)):  # its parents traversable by the sandbox's uid (bwrap copies /root's 0700)
            argv += ["--perms", "0755", "--dir", "/" + "/".join(parts[:i])]
        argv += ["--ro-bind", prefix, prefix]
    argv += ["--proc", "/proc", "--dev", "/dev", "--perms", "1777", "--size", str(disk_mb * 2**20),
             "--tmpfs", "/tmp"]
    for name, fd in files.items():
        argv += ["--perms", "0444", "--ro-bind-data", str(fd), f"/tmp/{name}"]
    return argv + ["--chdir", "/tmp", "--", python, "-I", "-S", "-B", "/tmp/harness.py", "harness"]


@lru_cache(maxsize=1)
def _harness_source() -> bytes:
    with open(__file__, "rb") as f:
        return f.read()


def _memfd(name: str, data: bytes) -> int:
    fd = os.memfd_create(name)
    os.write(fd, data)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def _sandboxed(mode: str, program: str, *, tests: str = "", prompt: str = "", entry_point: str | None = None,
               bounds: Bounds | None = None) -> CodeRun:
    """Run `program` under the harness in the sandbox (`mode` "tests": import it and run `tests` against it;
    "run": run it as a program) within `bounds`. The job — nonce and tests — reaches the harness on its stdin,
    which the answer never gets; the verdict counts only on the harness's stdout line that carries the nonce."""
    bounds = bounds or DEFAULT_BOUNDS
    as_root = os.geteuid() == 0
    nonce = secrets.token_hex(16)
    job = {"nonce": nonce, "mode": mode, "tests": tests, "prompt": prompt, "entry_point": entry_point,
           "uid": _SANDBOX_UIDS[0] + secrets.randbelow(_SANDBOX_UIDS[1]) if as_root else None,
           "tasks": bounds.tasks, "process_mb": bounds.process_mb, "cpu_s": math.ceil(bounds.wall_s) + 1,
           "file_mb": bounds.file_mb}
    files = {"harness.py": _memfd("harness", _harness_source()), "solution.py": _memfd("solution", program.encode())}
    stdin = _memfd("job", json.dumps(job).encode())
    try:
        argv = sandbox_argv(files, as_root=as_root, disk_mb=bounds.disk_mb)
        cgroup = _Cgroup.make(bounds) if as_root and bounds.cgroup else None
        try:
            proc = subprocess.Popen(cgroup.enter(argv) if cgroup else argv, stdin=stdin, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, pass_fds=list(files.values()), env={},
                                    start_new_session=True)
        except BaseException:
            if cgroup:
                cgroup.remove()
            raise
    finally:
        for fd in (stdin, *files.values()):
            os.close(fd)
    try:
        out, err, ready, timed_out = _collect(proc, bounds)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # bwrap, and with it (--die-with-parent) its pid namespace
        proc.wait()
        proc.stdout.close()
        proc.stderr.close()
        if cgroup:
            cgroup.remove()
    if not ready:  # nothing of the answer ran yet: the sandbox itself failed
        raise SandboxUnavailable(f"the code sandbox did not start (exit status {proc.returncode}"
                                 f"{', timed out' if timed_out else ''}): {err[-400:].decode(errors='replace')}")
    said = [line[len(nonce) + 1:] for line in out.decode(errors="replace").splitlines() if line.startswith(nonce + " ")]
    if said == ["pass"]:
        return CodeRun(True, "passed")
    if said:
        return CodeRun(False, said[0].removeprefix("fail "))
    return CodeRun(False, f"out of time ({bounds.wall_s:g} s)" if timed_out else
                   f"the harness ended without a verdict (exit status {proc.returncode}): the answer stopped it, "
                   "or a bound did")


def _collect(proc: subprocess.Popen, bounds: Bounds) -> tuple[bytes, bytes, bool, bool]:
    """The harness's stdout and bwrap's stderr, read as they come and kept to `_OUTPUT_KEPT` bytes each, until
    both close or time runs out (`start_s` for the harness to say it is ready, then `wall_s`): (out, err,
    ready, timed out)."""
    kept = {proc.stdout.fileno(): bytearray(), proc.stderr.fileno(): bytearray()}
    deadline, ready = time.monotonic() + bounds.start_s, False
    with selectors.DefaultSelector() as pipes:
        for fd in kept:
            pipes.register(fd, selectors.EVENT_READ)
        while pipes.get_map():
            left = deadline - time.monotonic()
            if left <= 0:
                return bytes(kept[proc.stdout.fileno()]), bytes(kept[proc.stderr.fileno()]), ready, True
            for key, _ in pipes.select(left):
                chunk = os.read(key.fd, 65536)
                if not chunk:
                    pipes.unregister(key.fd)
                    continue
                buf = kept[key.fd]
                buf += chunk[:max(0, _OUTPUT_KEPT - len(buf))]
                if not ready and key.fd == proc.stdout.fileno() and buf.startswith(b"ready\n"):
                    ready, deadline = True, time.monotonic() + bounds.wall_s
    try:
        proc.wait(timeout=max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        return bytes(kept[proc.stdout.fileno()]), bytes(kept[proc.stderr.fileno()]), ready, True
    return bytes(kept[proc.stdout.fileno()]), bytes(kept[proc.stderr.fileno()]), ready, False


def run_code_tests(program: str, tests: str, *, prompt: str = "", entry_point: str | None = None,
                   bounds: Bounds | None = None) -> CodeRun:
    """`tests` against `program` in the sandbox: the program imported as a module in a process of its own, the
    tests run by the harness in another, calling the program's functions across a pipe with plain data only
    (None, bool, int, float, complex, str, bytes, and lists, tuples, dicts, sets, frozensets of them). The
    prompt's own definitions (HumanEval's helpers) and the builtins are the tests' own; `entry_point`, and every
    other function or plain value the program defines, is the program's. Raises `SandboxUnavailable` rather than
    run code without the isolation."""
    return _sandboxed("tests", program, tests=tests, prompt=prompt_code(prompt) or "", entry_point=entry_point,
                      bounds=bounds)


def run_program(program: str, *, bounds: Bounds | None = None) -> CodeRun:
    """`program` run as `__main__` in the sandbox: passed when it ran to its end without an exception or an
    exit (even `sys.exit(0)`)."""
    return _sandboxed("run", program, bounds=bounds)


def check_sandbox() -> str:
    """Raise `SandboxUnavailable` now, before a run that will need to score code, rather than mid-run; else
    say which bounds hold here."""
    if not run_code_tests("def one():\n    return 1", "assert one() == 1"):
        raise SandboxUnavailable("the code-scoring sandbox starts but cannot run a trivial program")
    cgroup = _Cgroup.make(DEFAULT_BOUNDS) if os.geteuid() == 0 else None
    whole = "a cgroup" if cgroup else "RLIMIT_NPROC in the sandbox's own uid and user namespace; memory per process"
    if cgroup:
        cgroup.remove()
    return f"code sandbox: bubblewrap; processes and memory bounded by {whole}"


# --- inside the sandbox: the harness and the answer's process ----------------------------------------
# Two processes. The harness holds the nonce and the tests, runs the checks and writes the verdict on its
# stdout; it is not dumpable, so the answer cannot read its memory or open its descriptors. The answer's
# process imports the program and serves calls over two pipes. Only plain data crosses, so whatever the
# program does to its own process (exit, patch builtins, print, return an object equal to everything), the
# checks and the verdict are out of its reach.

_REPLY_BYTES = 8 * 2**20
_NESTING = 64


class AnswerGone(BaseException):
    """The answer's process ended or broke the protocol. A BaseException, so that no test's `except Exception`
    turns it into a pass; the harness also remembers it."""


def _encode(value: object, depth: int = 0) -> object:
    """Plain data (exact types only) as JSON: scalars as themselves, the rest tagged."""
    kind = type(value)
    if depth > _NESTING:
        raise TypeError(f"nested deeper than {_NESTING}")
    if value is None or kind in (bool, int, float, str):
        return value
    if kind is complex:
        return ["complex", value.real, value.imag]
    if kind is bytes:
        return ["bytes", value.hex()]
    if kind in (list, tuple, set, frozenset):
        return [kind.__name__, [_encode(v, depth + 1) for v in value]]
    if kind is dict:
        return ["dict", [[_encode(k, depth + 1), _encode(v, depth + 1)] for k, v in value.items()]]
    raise TypeError(f"{kind.__name__} is not plain data")


def _decode(data: object, depth: int = 0) -> object:
    """`_encode`'s inverse, strict: anything else is an error (the other side may be hostile)."""
    if depth > _NESTING:
        raise ValueError("nested too deep")
    if data is None or type(data) in (bool, int, float, str):
        return data
    if type(data) is not list or not data or type(data[0]) is not str:
        raise ValueError("not the harness's encoding")
    tag, rest = data[0], data[1:]
    if tag == "complex" and len(rest) == 2 and all(type(x) in (int, float) for x in rest):
        return complex(rest[0], rest[1])
    if tag == "bytes" and len(rest) == 1 and type(rest[0]) is str:
        return bytes.fromhex(rest[0])
    if len(rest) != 1 or type(rest[0]) is not list:
        raise ValueError("not the harness's encoding")
    if tag == "dict":
        if not all(type(p) is list and len(p) == 2 for p in rest[0]):
            raise ValueError("not the harness's encoding")
        return {_decode(k, depth + 1): _decode(v, depth + 1) for k, v in rest[0]}
    containers = {"list": list, "tuple": tuple, "set": set, "frozenset": frozenset}
    if tag not in containers:
        raise ValueError("not the harness's encoding")
    return containers[tag](_decode(v, depth + 1) for v in rest[0])


class _Peer:
    """The harness's end of the pipes to the answer's process."""

    def __init__(self, requests, replies) -> None:
        self.requests, self.replies, self.gone = requests, replies, None

    def receive(self) -> list:
        line = self.replies.readline(_REPLY_BYTES)
        try:
            if not line.endswith(b"\n"):
                raise ValueError("the answer's process ended" if not line else "a reply over the size cap")
            reply = json.loads(line)
            if type(reply) is not list or not reply or type(reply[0]) is not str:
                raise ValueError("not the harness's protocol")
            return reply
        except (ValueError, RecursionError) as e:
            self.gone = str(e)
            raise AnswerGone(self.gone) from None

    def call(self, name: str, args: tuple, kwargs: dict) -> object:
        if self.gone:
            raise AnswerGone(self.gone)
        try:
            self.requests.write(json.dumps([name, _encode(list(args)), _encode(kwargs)]).encode() + b"\n")
            self.requests.flush()
        except OSError:
            self.gone = "the answer's process ended"
            raise AnswerGone(self.gone) from None
        reply = self.receive()
        if reply[0] == "ok" and len(reply) == 2:
            try:
                return _decode(reply[1])
            except (ValueError, RecursionError) as e:
                self.gone = str(e)
                raise AnswerGone(self.gone) from None
        if reply[0] == "raise" and len(reply) == 3 and all(type(x) is str for x in reply[1:]):
            raise _exception(reply[1], reply[2])
        self.gone = "not the harness's protocol"
        raise AnswerGone(self.gone)


def _exception(name: str, message: str) -> Exception:
    """The builtin exception the answer raised, by name (a test may expect a ValueError), else RuntimeError."""
    import builtins

    kind = getattr(builtins, name, None)
    if isinstance(kind, type) and issubclass(kind, Exception):
        try:
            return kind(message)
        except Exception:  # noqa: BLE001 — an exception class with other arguments
            pass
    return RuntimeError(f"{name}: {message}")


class _Remote:
    """A function of the answer's program, called across the pipes."""

    def __init__(self, peer: _Peer, name: str) -> None:
        self.peer, self.__name__ = peer, name

    def __call__(self, *args, **kwargs):
        return self.peer.call(self.__name__, args, kwargs)


def _harness() -> None:
    job = json.loads(sys.stdin.buffer.read())
    verdict_out = os.fdopen(os.dup(1), "w")
    quiet = os.open(os.devnull, os.O_RDWR)
    os.dup2(quiet, 0)  # the job (nonce, tests) is gone from stdin,
    os.dup2(quiet, 1)  # and what the checks print goes nowhere
    if job["uid"] is not None:  # run by root: a uid of its own, so that RLIMIT_NPROC holds
        uid = job["uid"]
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
    for limit, value in ((resource.RLIMIT_NPROC, job["tasks"]), (resource.RLIMIT_AS, job["process_mb"] * 2**20),
                         (resource.RLIMIT_CPU, job["cpu_s"]), (resource.RLIMIT_FSIZE, job["file_mb"] * 2**20),
                         (resource.RLIMIT_CORE, 0)):
        resource.setrlimit(limit, (value, value))
    import ctypes

    if ctypes.CDLL(None, use_errno=True).prctl(4, 0, 0, 0, 0) != 0:  # PR_SET_DUMPABLE 0: the answer (same uid)
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_DUMPABLE) failed")  # reads neither memory nor descriptors
    verdict_out.write("ready\n")
    verdict_out.flush()
    try:
        outcome = _check(job)
    except BaseException as e:  # noqa: BLE001 — a failed check, the answer gone, anything: not a pass
        outcome = f"fail {type(e).__name__}: {e}"
    verdict_out.write(f"{job['nonce']} {' '.join(outcome.split())[:300]}\n")
    verdict_out.flush()


def _check(job: dict) -> str:
    requests_r, requests_w = os.pipe()
    replies_r, replies_w = os.pipe()
    answer = subprocess.Popen([sys.executable, "-I", "-S", "-B", __file__, "answer", str(requests_r), str(replies_w),
                               job["mode"]], pass_fds=(requests_r, replies_w), stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(requests_r)
    os.close(replies_w)
    peer = _Peer(os.fdopen(requests_w, "wb"), os.fdopen(replies_r, "rb"))
    try:
        if job["mode"] == "run":
            try:
                said = peer.receive()
            except AnswerGone:
                said = None
            status = answer.wait()
            return "pass" if said == ["done"] and status == 0 else f"fail the program did not end cleanly ({status})"
        ready = peer.receive()
        if not (ready[0] == "ready" and len(ready) == 3 and type(ready[1]) is list and type(ready[2]) is list):
            raise AnswerGone("not the harness's protocol")
        namespace: dict = {"__name__": "__checks__"}
        if job["prompt"]:
            try:
                exec(compile(job["prompt"], "<prompt>", "exec"), namespace)  # noqa: S102 — the dataset's own code
            except Exception:  # noqa: BLE001 — a prompt that does not run gives no helpers
                pass
        import builtins

        def offered(name: object) -> bool:  # never over the prompt's names, nor a builtin the tests use (abs…)
            return type(name) is str and name not in namespace and not hasattr(builtins, name)

        for pair in ready[2]:
            if type(pair) is list and len(pair) == 2 and offered(pair[0]):
                namespace[pair[0]] = _decode(pair[1])
        for name in ready[1]:
            if offered(name):
                namespace[name] = _Remote(peer, name)
        if job["entry_point"]:
            namespace[job["entry_point"]] = _Remote(peer, job["entry_point"])
        exec(compile(job["tests"], "<tests>", "exec"), namespace)  # noqa: S102 — the dataset's tests
        if peer.gone:  # a test that swallowed even AnswerGone
            raise AnswerGone(peer.gone)
        return "pass"
    finally:
        answer.kill()
        answer.wait()


def _answer(requests_fd: int, replies_fd: int, mode: str) -> None:
    """The answer's process: the program, then (mode "tests") calls served until the harness closes the pipe."""
    import importlib.util
    import runpy

    replies = os.fdopen(replies_fd, "wb")

    def send(message: list) -> None:
        replies.write(json.dumps(message).encode() + b"\n")
        replies.flush()

    sys.argv = ["/tmp/solution.py"]
    if mode == "run":
        runpy.run_path("/tmp/solution.py", run_name="__main__")
        send(["done"])
        return
    spec = importlib.util.spec_from_file_location("solution", "/tmp/solution.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["solution"] = module
    spec.loader.exec_module(module)
    functions, values = [], []
    for name, value in list(vars(module).items()):
        if name.startswith("__"):
            continue
        if callable(value) and getattr(value, "__module__", None) == "solution":
            functions.append(name)
        else:
            try:
                values.append([name, _encode(value)])
            except TypeError:  # a module, an imported function…: not the program's to offer
                pass
    send(["ready", functions, values])
    for line in os.fdopen(requests_fd, "rb"):
        name, args, kwargs = json.loads(line)
        try:
            send(["ok", _encode(getattr(module, name)(*_decode(args), **_decode(kwargs)))])
        except BaseException as e:  # noqa: BLE001 — whatever the answer raised (an exit too) is its answer
            send(["raise", type(e).__name__, str(e)[:500]])


# --- the verdict ---------------------------------------------------------------------------------------

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
        code = extract_code(answer)
        return runs_shape(code, problem.answer, problem.question) and run_program(code).passed
    if problem.task == "code":
        if not problem.tests:
            return False
        program = code_solution(problem.question, answer, problem.entry_point)
        return run_code_tests(program, problem.tests, prompt=problem.question, entry_point=problem.entry_point).passed
    return math_equal(answer, problem.answer)


def verdict(answer: str, problem: Problem) -> tuple[bool, str | None]:
    """`is_correct`, with a scoring error counted wrong and returned, not raised."""
    try:
        return is_correct(answer, problem), None
    except ScoringError as e:
        return False, str(e)


if __name__ == "__main__":  # inside the sandbox: `harness`, or `answer REQUESTS REPLIES MODE`
    if sys.argv[1] == "harness":
        _harness()
    else:
        _answer(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])

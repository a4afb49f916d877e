"""`rsim eval suite FILE --dry-run`: the run matrix and everything wrong with a suite, without running it
(issue 13 §8), and the paper's suites: every prompting row of the Llama table, the token-cost table."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import yaml

from clients.eval.suite import check_suite, dry_run, load_suite, plan_suite
from tests.support.procs import REPO

RSIM = [sys.executable, "-m", "clients.cli"]


def test_cpu_smoke_matrix_baselines_once_planned_per_planner():
    lines, problems = dry_run(REPO / "suites" / "cpu-smoke.yaml")
    assert problems == []
    rows = [line.split(" | ") for line in lines[2:-1]]
    assert Counter(r[2] for r in rows) == {"zerocot": 2, "ps+": 2, "rsim": 2, "fixed:verification": 2}
    assert {r[1] for r in rows if r[2] in ("zerocot", "ps+")} == {"–"}  # no planner in a baseline
    assert {r[1] for r in rows if r[2] in ("rsim", "fixed:verification")} == {"untrained-gemma"}
    assert lines[-1].startswith("8 runs, 32 episodes")  # (6 synthetic + 2 HumanEval) × 4 methods


def test_paper_llama_has_the_six_prompting_rows_and_every_planner(tmp_path, monkeypatch):
    for name in ("llama-3.2-1b", "llama-3.2-3b", "qwen2.5-1.5b"):
        (tmp_path / name / "checkpoints").mkdir(parents=True)
    monkeypatch.setenv("RSIM_PLANNERS", str(tmp_path))
    suite = load_suite(REPO / "suites" / "paper-llama.yaml")
    jobs = plan_suite(suite, tmp_path / "out")
    assert check_suite(suite, jobs) == []
    prompting = {(j.reasoner, j.cfg.prompting_model) for j in jobs if j.methods == [("prompting", j.methods[0][1])]}
    assert prompting == {(r, m) for r in ("llama-3.2-1b", "llama-3.2-3b", "llama-3.3-70b")
                         for m in ("meta-llama/Llama-3.2-3B-Instruct", "meta-llama/Llama-3.3-70B-Instruct")}
    labels = Counter(label for j in jobs for _, label in j.methods)
    assert labels["prompting@3b"] == labels["prompting@70b"] == labels["ps+"] == 3
    assert {lab for lab in labels if lab.startswith("rsim@")} == {
        "rsim@rsim-llama-1b", "rsim@rsim-llama-3b", "rsim@rsim-qwen2.5-1.5b"}
    # the trained reasoners' rows (issue 14): 1B w/ rSIM with its own planner only, 1B w/ GRPO under zerocot only
    trained = {j.reasoner: j.methods for j in jobs if j.reasoner.endswith(("-rsim", "-grpo"))}
    assert trained == {"llama-3.2-1b-rsim": [("rsim", "rsim@rsim-llama-1b")],
                       "llama-3.2-1b-grpo": [("zerocot", "zerocot")]}
    assert labels["zerocot"] == 4


def test_token_cost_suite(tmp_path, monkeypatch):
    (tmp_path / "qwen2.5-7b" / "checkpoints").mkdir(parents=True)
    monkeypatch.setenv("RSIM_PLANNERS", str(tmp_path))
    suite = load_suite(REPO / "suites" / "paper-token-cost.yaml")
    jobs = plan_suite(suite, tmp_path / "out")
    assert check_suite(suite, jobs) == []
    assert [r["model"] for r in suite["reasoners"]] == [
        "Qwen/Qwen2.5-0.5B-Instruct", "Qwen/Qwen2.5-7B-Instruct", "Qwen/Qwen2.5-14B-Instruct"]
    assert {j.cfg.prompting_model for j in jobs if j.methods[0][0] == "prompting"} == {"Qwen/Qwen2.5-14B-Instruct"}
    assert [d["name"] for d in suite["datasets"]] == ["math", "theoremqa"]


def test_a_wrong_suite_is_refused_with_every_problem_named(tmp_path):
    bad = {"name": "bad", "episode": {"max_steps": 2, "max_step": 3},
           "reasoners": [{"name": "r", "url": "http://127.0.0.1:9/v1", "model": "m"},
                         {"name": "trained", "url": "http://127.0.0.1:9/v1", "model": "t", "methods": ["plan-b"],
                          "planners": ["ghost"]}],
           "datasets": [{"name": "synthetic", "limit": 2}, {"name": "gsm8k", "path": str(tmp_path / "nope.jsonl")}],
           "methods": ["zerocot", "cot", "fixed:nope", "rsim", "optillm:re2"]}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad))
    r = subprocess.run([*RSIM, "eval", "suite", str(path), "--dry-run"], capture_output=True, text=True, cwd=REPO,
                       timeout=120)
    assert r.returncode == 2
    for needle in ("unknown key 'max_step'", "unknown method 'cot'", "no strategy 'nope'",
                   "rsim and fixed:* methods need a planners list", "optillm:* methods need its optillm_url",
                   "nope.jsonl", "unknown method 'plan-b'", "reasoner trained: no planner named 'ghost'"):
        assert needle in r.stderr, (needle, r.stderr)
    assert "zerocot | synthetic | 2" in r.stdout and "gsm8k | missing" in r.stdout
    assert not (REPO / "runs" / "eval" / "bad").exists()  # nothing ran


def test_a_label_names_one_method_only(tmp_path):
    r = subprocess.run([*RSIM, "eval", "--dataset", "synthetic", "--methods", "zerocot,rsim", "--label", "x",
                        "--reasoner-url", "http://127.0.0.1:9/v1", "--reasoner-model", "m", "--out", str(tmp_path)],
                       capture_output=True, text=True, cwd=REPO, timeout=120)
    assert r.returncode == 2 and "--label names the records of one method" in r.stderr
    assert not any(tmp_path.iterdir())  # refused before anything ran

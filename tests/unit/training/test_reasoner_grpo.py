"""`mode: grpo` (issue 14 §4): GRPO on the reasoner alone — no planner, nothing injected, reward R_acc +
R_format — with the planner modes' data, logs, checkpoints and resume."""

from __future__ import annotations

import json

import pytest
import torch

from planner_server.training.config import TrainConfig
from planner_server.training.data import Problem
from planner_server.training.local_reasoner import LocalReasoner, ReasonerEpisode
from planner_server.training.reasoner_grpo import update
from planner_server.training.train import build_policy, train


def config(tiny_model, tmp_path, **kw) -> TrainConfig:
    return TrainConfig(run_dir=tmp_path / "run", mode="grpo", reasoner={"local_model": str(tiny_model),
                                                                        "temperature": 1.0},
                       lora={"target_modules": ["q_proj", "v_proj"]}, batch_size=2, group_size=3,
                       episode_max_steps=3, max_tokens_per_step=4, final_max_tokens=4, min_step_tokens=0,
                       save_every=1, threads=1, seed=0, **kw)


def test_the_update_moves_the_reasoner_toward_the_better_episode(tiny_model, tmp_path):
    torch.manual_seed(0)  # the LoRA initialisation: not whatever the tests before left in the global generator
    cfg = config(tiny_model, tmp_path, lr=1e-3, ppo_epochs=2, kl_coef=0.1)
    model, tok = build_policy(cfg, str(tiny_model))
    local = LocalReasoner(model, tok)
    prompt = local.prompt_ids("What is 6 * 7?", [])
    good, bad = (ReasonerEpisode() for _ in range(2))
    for ep, text in ((good, " yes"), (bad, " no")):  # no token in common
        ep.add_context(prompt)
        ids = tok.encode(text, add_special_tokens=False)
        ep.ids += ids
        ep.mask += [1] * len(ids)
    with torch.no_grad():
        for ep in (good, bad):
            ep.logp = local.token_logp([ep])[0].tolist()
    before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.lr)
    stats = update(local, optimizer, [(good, 1.0), (bad, -1.0)], cfg)
    with torch.no_grad():
        after_good, after_bad = (float(local.token_logp([ep])[0].sum()) for ep in (good, bad))
    assert after_good > sum(good.logp) and after_bad < sum(bad.logp)
    assert stats["kl"] > 0 and stats["grad_norm"] > 0  # the KL to the base model (adapter off) is measured
    assert any(not torch.equal(before[n], p) for n, p in model.named_parameters() if p.requires_grad)


async def test_grpo_mode_runs_the_plain_episode_logs_checkpoints_and_resumes(tiny_model, tmp_path):
    problems = [Problem(question=f"What is {i} + 1?", answer=str(i + 1), task="synthetic") for i in range(4)]
    cfg = config(tiny_model, tmp_path, max_steps=1)
    first = await train(cfg, problems_list=problems)
    assert first is not None and first.name == "step-000001"
    manifest = json.loads((first / "manifest.json").read_text())
    assert manifest["base_model"] == str(tiny_model) and manifest["serving"]["role"] == "reasoner"
    assert (first / "adapter_model.safetensors").is_file()  # the reasoner's adapter: no planner was loaded
    last = await train(config(tiny_model, tmp_path, max_steps=2), problems_list=problems)  # resumes at step 1
    assert last.name == "step-000002"
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2] and all(r["mode"] == "grpo" for r in rows)
    assert {"reward/reasoner_acc_mean", "reward/reasoner_format_mean", "loss", "kl"} <= set(rows[0])
    assert not any(k.startswith("reward/planner") or k.endswith("follow_mean") for k in rows[0])
    episodes = [json.loads(x) for x in (tmp_path / "run" / "rollouts.jsonl").read_text().splitlines()]
    assert len(episodes) == 2 * 2 * 3
    for e in episodes:  # nothing injected into the reasoning: the question alone, then (maybe) the answer step
        assert e["steps"][0]["strategy"] == "plain" and e["steps"][0]["injected"] == ""
        assert [s["strategy"] for s in e["steps"][1:]] in ([], ["termination"])
        assert e["reasoner_reward"]["total"] == e["reasoner_reward"]["acc"] + e["reasoner_reward"]["format"]


def test_configs_refuse_what_a_mode_cannot_do(tiny_model, tmp_path):
    with pytest.raises(ValueError, match="local_model"):
        TrainConfig(mode="grpo")
    with pytest.raises(ValueError, match="kl_coef to 0 and ppo_epochs to 1"):
        TrainConfig(planner_model=str(tiny_model), mode="joint", reasoner={"local_model": str(tiny_model)},
                    ppo_epochs=2)
    with pytest.raises(ValueError, match="planner_model"):
        TrainConfig(reasoner={"url": "http://x"})

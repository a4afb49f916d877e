"""Joint mode: the λ-weighted token-averaged objective by hand, the reasoner's action mask (injected
tokens are never reasoner actions), and a joint step in which λ decides which model moves."""

from __future__ import annotations

import asyncio
import json
import math

import pytest
import torch
from safetensors.torch import load_file

from planner_server.training.config import TrainConfig
from planner_server.training.data import Problem
from planner_server.training.grpo import joint_surrogate
from planner_server.training.local_reasoner import LocalReasoner
from planner_server.training.policy import PolicyPlanner
from planner_server.training.train import build_policy, train
from service.catalog import load_catalog
from service.orchestrator import EpisodeConfig, Orchestrator


def test_joint_surrogate_by_hand():
    half = math.log(0.5)
    loss, stats = joint_surrogate(torch.tensor([half]), torch.tensor([half]), torch.tensor([1.0]),
                                  torch.tensor([half, half]), torch.tensor([half, half]), torch.tensor([-1.0, -1.0]),
                                  lam=0.7)
    # ratios are 1: planner term −A = −1, reasoner terms −A = +1; (0.7·(−1) + 0.3·1 + 0.3·1) / 3 actions
    assert float(loss) == pytest.approx((-0.7 + 0.3 + 0.3) / 3)
    assert stats["planner_actions"] == 1 and stats["reasoner_tokens"] == 2
    only_planner, _ = joint_surrogate(torch.tensor([half]), torch.tensor([half]), torch.tensor([1.0]),
                                      torch.tensor([half]), torch.tensor([half]), torch.tensor([-1.0]), lam=1.0)
    assert float(only_planner) == pytest.approx(-1 / 2)


async def test_injected_tokens_are_masked_out(tiny_model, tmp_path):
    cfg = TrainConfig(run_dir=tmp_path, planner_model=str(tiny_model), mode="joint",
                      reasoner={"local_model": str(tiny_model)}, lora={"enabled": False})
    p_model, p_tok = build_policy(cfg)
    r_model, r_tok = build_policy(cfg, str(tiny_model))
    catalog = load_catalog()
    policy = PolicyPlanner(p_model, p_tok, catalog)
    # a chat template unlike the raw Question/Answer prompt, to tell which one the reasoner got
    r_tok.chat_template = ("{% for m in messages %}<{{ m.role }}>{{ m.content }}</{{ m.role }}>{% endfor %}"
                           "{% if add_generation_prompt %}<assistant>{% endif %}")
    local = LocalReasoner(r_model, r_tok, temperature=1.0)
    policy.batcher.start()
    try:
        result = await Orchestrator(policy, local, catalog).solve(
            "What is 2 + 3?", EpisodeConfig(model="local", max_steps=3, max_tokens_per_step=5, final_max_tokens=5),
            request_id="r1")
    finally:
        await policy.batcher.stop()
    ep = local.take("r1")
    generated = r_tok.decode([t for t, m in zip(ep.ids, ep.mask, strict=True) if m])
    context = r_tok.decode([t for t, m in zip(ep.ids, ep.mask, strict=True) if not m])
    assert len(ep.logp) == sum(ep.mask) == result.usage.completion_tokens > 0
    for step in result.steps:
        assert step.injected in context and step.injected not in generated
        assert step.text in generated
    # the chat format it is served with (continue mode): the user turn, then the opened assistant turn
    served = r_tok.apply_chat_template([{"role": "user", "content": "What is 2 + 3?"}], tokenize=False,
                                       add_generation_prompt=True)
    assert served == "<user>What is 2 + 3?</user><assistant>" and r_tok.decode(ep.ids).startswith(served)
    with torch.no_grad():
        again = local.token_logp([ep])[0]
    assert again.tolist() == pytest.approx(ep.logp, abs=1e-4)  # teacher forcing reproduces the sampling


class NoReasoner:  # joint mode never calls an HTTP reasoner
    pass


async def one_joint_step(tiny_model, tmp_path, lam: float, *, lr: float):
    """One joint-mode optimizer step at stage weight λ on two tiny problems; the checkpoint folder."""
    cfg = TrainConfig(run_dir=tmp_path / "run", planner_model=str(tiny_model), mode="joint",
                      reasoner={"local_model": str(tiny_model), "temperature": 1.0},
                      lora={"target_modules": ["q_proj", "v_proj"]}, max_steps=1, batch_size=2, group_size=6,
                      episode_max_steps=3, max_tokens_per_step=4, final_max_tokens=4, lr=lr,
                      joint_lambda_stage1=lam, joint_switch_step=10, save_every=1, threads=1, seed=1)
    problems = [Problem(question=f"What is {i} + 1?", answer=str(i + 1), task="synthetic") for i in range(2)]
    return await train(cfg, reasoner=NoReasoner(), problems_list=problems)


@pytest.mark.parametrize(("lam", "moves"), [(1.0, "planner"), (0.0, "reasoner")])
async def test_lambda_decides_which_model_learns(tiny_model, tmp_path, lam, moves):
    last = await one_joint_step(tiny_model, tmp_path, lam, lr=1e-2)
    planner = load_file(last / "adapter_model.safetensors")
    reasoner = load_file(last / "reasoner" / "adapter_model.safetensors")

    def moved(weights):
        return any(float(v.abs().sum()) > 0 for k, v in weights.items() if "lora_B" in k)

    assert moved(planner) == (moves == "planner")
    assert moved(reasoner) == (moves == "reasoner")


@pytest.mark.parametrize("lam", [0.7, 0.3])
async def test_the_stage_weight_survives_adam(tiny_model, tmp_path, lam):
    """λ scaled only the two losses, and Adam's per-parameter normalisation cancelled it: stage 1 (0.7) and
    stage 2 (0.3) moved both models alike. With each agent's learning rate scaled by its weight, one step
    moves the planner's LoRA weights λ/(1 − λ) times as far as the reasoner's (same model, same adapter)."""
    last = await one_joint_step(tiny_model, tmp_path, lam, lr=1e-3)

    def step_size(weights):  # lora_B starts at zero: its norm is the step taken
        return sum(float(v.float().norm()) ** 2 for k, v in weights.items() if "lora_B" in k) ** 0.5

    ratio = step_size(load_file(last / "adapter_model.safetensors")) / \
        step_size(load_file(last / "reasoner" / "adapter_model.safetensors"))
    assert ratio == pytest.approx(lam / (1 - lam), rel=0.15)
    row = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[-1])  # what the curves plot
    assert row["update_norm/planner"] / row["update_norm/reasoner"] == pytest.approx(lam / (1 - lam), rel=0.15)


class ScriptedLM(torch.nn.Module):
    """Emits a scripted token sequence (a fault injector for the reasoner's sequence bookkeeping)."""

    def __init__(self, vocab: int, script: list[int]):
        super().__init__()
        self.vocab, self.script = vocab, list(script)
        self.anchor = torch.nn.Parameter(torch.zeros(1))

    def forward(self, input_ids, past_key_values=None, use_cache=True, **_):
        from types import SimpleNamespace

        logits = torch.full((1, input_ids.shape[1], self.vocab), -1e9)
        logits[0, -1, self.script.pop(0)] = 0.0
        return SimpleNamespace(logits=logits, past_key_values=None)


async def test_the_trained_ids_are_the_text_the_served_loop_keeps(tiny_model):
    """Issue 14 §3: an end-of-sequence mid-episode stayed an action and the next instruction followed it with
    no delimiter; a last token running past the stop stayed in the ids but not in the text. Now the ids after
    the prompt decode to exactly what the served loop sends: step text, delimiter, instruction, … and the
    episode's last EOS (its own end) stays an action."""
    from service.injection import WrittenStep, chain_of_thought
    from service.reasoner import StepDone, StepRequest

    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model)
    eos = tok.eos_token_id
    word = next(t for t, i in sorted(tok.get_vocab().items(), key=lambda kv: kv[1]) if t.isalpha() and len(t) >= 4)
    word_id, delim = tok.convert_tokens_to_ids(word), word[:2]  # a last token that runs past the step's stop
    a, b = tok.encode("abc", add_special_tokens=False), tok.encode("42}", add_special_tokens=False)
    script = [*a, eos, *b, word_id, *b, eos]  # step 1 ends on EOS; step 2 runs past its stop; the answer ends
    local = LocalReasoner(ScriptedLM(len(tok), script), tok, temperature=1.0)
    written, texts = [], []
    for pending, stop in (("First, reason.", [delim]), ("Then check.", [delim]), ("So the answer is \\boxed{", None)):
        parts = []
        async for chunk in local.step(StepRequest(model="local", question="What is 6 * 7?", steps=list(written),
                                                  pending=pending, max_tokens=8, stop=stop, request_id="e", temperature=1.0,
                                                  delimiter=delim)):
            if not isinstance(chunk, StepDone):
                parts.append(chunk)
        texts.append("".join(parts))
        written.append(WrittenStep(pending, texts[-1]))
    assert texts == ["abc", "42}", "42}"]
    ep = local.take("e")
    prompt = local.prompt_ids("What is 6 * 7?", [])
    assert ep.ids[:len(prompt)] == prompt
    served = chain_of_thought(written[:-1], delim, written[-1].injected) + texts[-1]  # what vLLM is sent, + answer
    assert tok.decode(ep.ids[len(prompt):-1]) == served
    assert ep.ids[-1] == eos and ep.mask[-1] == 1  # the episode's own end stays an action
    assert eos not in ep.ids[:-1]  # the mid-episode EOS is gone, as it is from the served text
    assert word_id not in ep.ids  # the token that ran past the stop is no action
    assert sum(ep.mask) == len(ep.logp) == len(a) + len(b) + len(b) + 1


async def test_concurrent_steps_are_generated_in_one_batch_with_each_rows_own_numbers(tiny_model, tmp_path):
    """The local reasoner generated one step at a time under a lock (on two cores, 1.7 tokens/s for a 1.5B model
    in a joint run). Steps asked for at the same time now share forward passes: prompts of different lengths
    left-padded into one batch, each row at its own positions, budget and end — and teacher forcing on the
    unpadded sequence reproduces every recorded log-probability, so the padding changes nothing trained."""
    from service.reasoner import StepDone, StepRequest

    cfg = TrainConfig(run_dir=tmp_path, planner_model=str(tiny_model), mode="joint",
                      reasoner={"local_model": str(tiny_model)}, lora={"enabled": False})
    model, tok = build_policy(cfg, str(tiny_model))
    local = LocalReasoner(model, tok, temperature=1.0, max_batch=4)
    rows: list[int] = []
    hook = model.register_forward_hook(lambda m, args, kwargs, out: rows.append(kwargs["input_ids"].shape[0]),
                                       with_kwargs=True)
    budgets = {"a": 6, "b": 9, "c": 12}
    questions = {"a": "What is 2 + 3?", "b": "What is 17 * 23 - 4 + 1000?", "c": "Seven?"}

    async def one(rid: str, question: str) -> int:
        async for chunk in local.step(StepRequest(model="local", question=question, steps=[], pending="",
                                                  max_tokens=budgets[rid], min_tokens=budgets[rid], stop=None,
                                                  request_id=rid, temperature=1.0, delimiter="\n\n")):
            if isinstance(chunk, StepDone):
                return chunk.completion_tokens
        return -1

    try:
        done = await asyncio.gather(*(one(rid, q) for rid, q in questions.items()))
    finally:
        hook.remove()
    assert done == [6, 9, 12]  # each row stopped at its own budget
    assert rows[0] == 3 and len(rows) == 12  # one batch: the prefill, then a pass per token of the longest row
    for rid in budgets:
        ep = local.take(rid)
        prompt = local.prompt_ids(questions[rid], [])
        assert ep.ids[:len(prompt)] == prompt and len(ep.ids) == len(prompt) + budgets[rid]  # no padding kept
        with torch.no_grad():
            again = local.token_logp([ep])[0]
        assert again.tolist() == pytest.approx(ep.logp, abs=1e-4)


async def test_a_failing_batch_fails_every_step_in_it_and_nothing_waits_forever(tiny_model):
    """A fault in the shared forward pass reaches every episode whose step was in the batch (none hangs on a
    result nobody will set), and a later step runs normally."""
    from service.reasoner import StepDone, StepRequest
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model)

    class Broken(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.anchor = torch.nn.Parameter(torch.zeros(1))
            self.fail = True

        def forward(self, input_ids, **_):
            from types import SimpleNamespace

            if self.fail:
                raise RuntimeError("out of memory (injected)")
            logits = torch.zeros((input_ids.shape[0], input_ids.shape[1], len(tok)))
            return SimpleNamespace(logits=logits, past_key_values=None)

    model = Broken()
    local = LocalReasoner(model, tok, temperature=1.0, max_batch=4)

    async def one(rid: str) -> int:
        async for chunk in local.step(StepRequest(model="local", question="What is 2 + 3?", steps=[], pending="",
                                                  max_tokens=2, stop=None, request_id=rid, temperature=1.0,
                                                  delimiter="\n\n")):
            if isinstance(chunk, StepDone):
                return chunk.completion_tokens
        return -1

    results = await asyncio.wait_for(asyncio.gather(*(one(f"r{i}") for i in range(3)), return_exceptions=True), 10)
    assert [str(r) for r in results] == ["out of memory (injected)"] * 3
    assert local._pending == []
    model.fail = False
    assert await asyncio.wait_for(one("again"), 10) == 2

"""Rewards, advantages and the clipped loss against hand-computed values."""

import math

import pytest
import torch

from planner_server.training.grpo import UpdateNorms, clipped_surrogate, group_advantages, kl_k3
from planner_server.training.rewards import PlannerWeights, answer_in_format, follows, planner_reward, reasoner_reward


def test_planner_reward_components():
    r = planner_reward(["decomposition", "decomposition", "termination"], correct=True, chose_termination=True)
    assert (r.acc, r.penalty, r.terminal) == (1.0, pytest.approx(-2 / 3), 1.0)
    assert r.total == pytest.approx(1 + 1 - 2 / 3)
    forced = planner_reward(["verification", "summarization", "termination"], correct=False, chose_termination=False)
    assert (forced.acc, forced.penalty, forced.terminal) == (0.0, pytest.approx(-1 / 3), -1.0)
    assert planner_reward(["termination"], correct=False, chose_termination=True).total == pytest.approx(0.0)


def test_reasoner_reward_components():
    steps = [("verification", " Let me check: 2 + 3 = 5, which is correct."), ("decomposition", " nothing relevant"),
             ("termination", "5}.")]
    r = reasoner_reward(steps, "math", correct=True)
    assert (r.acc, r.format, r.follow) == (1.0, 1.0, pytest.approx(2 / 3))
    assert reasoner_reward(steps[:2] + [("termination", " five")], "math", correct=False).format == 0.0
    own = reasoner_reward([("continuation", " 2 + 3 = 5, so the answer is \\boxed{5}.")], "math", correct=True)
    assert own.format == 1.0  # its own boxed answer in a reasoning step


NINE = ["self_reflection", "decomposition", "deep_thinking", "verification", "summarization", "prioritization",
        "sub_planning", "continuation", "termination"]


def test_nonsense_scores_nothing_and_injected_text_never_counts():
    """Issue 14: nine steps of " ok" scored follow 0.89 and format 1.0 because the injected instruction
    (cue words, the `\\boxed{` opener) was scored with them. The reasoner's own text alone: ~0."""
    nonsense = reasoner_reward([(s, " ok") for s in NINE], "math", correct=False)
    assert nonsense.follow == 0.0 and nonsense.format == 0.0
    genuine = [("self_reflection", " Wait, I should reconsider: 12 bags of 15 is 180, not 170."),
               ("decomposition", " First, the purchase: 12 * 15 = 180. Then the doubling: 256 * 2 = 512."),
               ("deep_thinking", " The hardest part is the order: " + "the doubling applies to the total after buying, "
                                 "so 76 + 180 = 256 comes first and only then 256 * 2 = 512, and again 1024. " * 2),
               ("verification", " Check: 1024 - 918 = 106, and 106 + 918 = 1024, so it is correct."),
               ("summarization", " So far we have 1024 pencils before giving any away."),
               ("prioritization", " The key number is the total after both doublings."),
               ("sub_planning", " Plan: next, I will subtract the 918 pencils given away."),
               ("continuation", " 1024 - 918 = 106 pencils remain."),
               ("termination", "106}.")]
    good = reasoner_reward(genuine, "math", correct=True)
    assert good.follow == 1.0 and good.format == 1.0
    assert follows("termination", "B}", task="choice") and not follows("termination", "12}", task="choice")
    assert follows("termination", "def f():\n    return 1\n```", task="code")
    assert not follows("termination", "def f():\n    return 1", task="code")  # never closed its block


def test_format_and_follow_rules():
    assert answer_in_format("```python\nx=1\n```", "code") and not answer_in_format("x=1", "code")
    assert answer_in_format("\\boxed{B}", "choice") and not answer_in_format("\\boxed{12}", "choice")
    assert follows("summarization", "short", previous="a much longer previous step")
    assert follows("deep_thinking", "word " * 41) and not follows("deep_thinking", "one two", previous="a b c d")
    assert follows("self_reflection", "Wait, that was a mistake.") and not follows("self_reflection", "2+2=4")


def test_group_advantages_by_hand():
    adv, zero = group_advantages([[1.0, 0.0, 0.0, 1.0], [0.5, 0.5]], eps=1e-4)
    # mean 0.5, population std 0.5 → ±0.5 / 0.5001
    assert adv[0] == pytest.approx([0.5 / 0.5001, -0.5 / 0.5001, -0.5 / 0.5001, 0.5 / 0.5001])
    assert adv[1] == [0.0, 0.0] and zero == 1


def test_clipped_surrogate_by_hand():
    logp = torch.tensor([math.log(0.5), math.log(0.5)])
    old = torch.tensor([math.log(0.25), math.log(0.25)])  # ratio 2 for both
    loss, stats = clipped_surrogate(logp, old, torch.tensor([1.0, -1.0]), clip_eps=0.2)
    # A=+1: −min(2, 1.2) = −1.2 (clipped); A=−1: −min(−2, −1.2) = 2 (not clipped)
    assert float(loss) == pytest.approx((-1.2 + 2.0) / 2)
    assert stats["clip_fraction"] == pytest.approx(0.5) and stats["ratio_mean"] == pytest.approx(2.0)


def test_weights_mask_and_kl_by_hand():
    logp = torch.tensor([math.log(0.5), 0.0, math.log(0.5)])
    old = logp.clone()
    adv = torch.tensor([1.0, 5.0, -1.0])
    loss, _ = clipped_surrogate(logp, old, adv, weights=torch.tensor([0.7, 0.0, 0.3]))
    assert float(loss) == pytest.approx((-0.7 * 1 + 0.3 * 1) / 2)  # masked action ignored, mean over 2
    k = kl_k3(torch.tensor([math.log(0.5)]), torch.tensor([math.log(0.25)]))
    assert float(k) == pytest.approx(0.5 + math.log(2) - 1)
    with_kl, stats = clipped_surrogate(logp[:1], old[:1], adv[:1], ref_logp=torch.tensor([math.log(0.25)]),
                                       kl_coef=0.1)
    assert float(with_kl) == pytest.approx(-1 + 0.1 * (0.5 + math.log(2) - 1))
    assert stats["kl"] == pytest.approx(0.5 + math.log(2) - 1)


def test_loss_gradient_pushes_toward_positive_advantage():
    logits = torch.zeros(3, requires_grad=True)
    logp = torch.log_softmax(logits, -1)
    loss, _ = clipped_surrogate(logp[[0]], logp[[0]].detach(), torch.tensor([1.0]))
    loss.backward()
    assert logits.grad[0] < 0 and logits.grad[1] > 0  # descent raises the advantaged action


def test_terminal_reward_when_the_reasoner_ended_first():
    """The episode ended on its own terms when the reasoner wrote its answer or closed its message (the
    planner had no turn left to choose termination): +1, as if it had; a copied step is not: −1."""
    from service.protocol import SolveResponse, StepTrace, Timings, Usage
    from planner_server.training.rewards import termination_of

    def result(*steps):
        return SolveResponse(id="x", model="m", answer="1", text="", finish_reason="termination", usage=Usage(),
                             timings=Timings(), planner_version=None, catalog_version="c",
                             steps=[StepTrace(index=i, strategy=s, forced=f, injected="", text="", ends_reasoning=e)
                                    for i, (s, f, e) in enumerate(steps)])

    chose = termination_of(result(("verification", False, None), ("termination", False, None)))
    eos = termination_of(result(("verification", False, "eos"), ("termination", True, None)))
    repeat = termination_of(result(("verification", False, None), ("verification", False, "repeat"),
                                   ("termination", True, None)))
    assert chose == {"chose_termination": True, "reasoner_ended": False}
    assert planner_reward(["verification", "termination"], correct=True, **eos).terminal == 1.0
    answered = termination_of(result(("verification", False, None), ("continuation", False, "answer")))
    assert answered == {"chose_termination": False, "reasoner_ended": True}
    assert planner_reward(["verification", "termination"], correct=True, **chose).terminal == 1.0
    assert planner_reward(["verification", "verification", "termination"], correct=True, **repeat).terminal == -1.0


def test_an_unguided_step_is_neither_a_choice_nor_an_instruction_followed():
    """The reasoner's own opening step (`first_step="reasoner"`) was no planner decision and had no
    instruction: it counts in neither R_penalty nor R_follow. An episode the reasoner answered in that step
    alone has no planned step and is still rewarded."""
    from planner_server.training.rollout import score
    from planner_server.training.data import Problem
    from service.protocol import SolveResponse, StepTrace, Timings, Usage

    steps = [("unguided", " 30 - 3 = 27 shells."), ("verification", " Let me check: 27 + 3 = 30, correct."),
             ("termination", "27}.")]
    assert reasoner_reward(steps, "math", correct=True).follow == 1.0  # the one guided step followed
    assert reasoner_reward([("unguided", " 30 - 3 = 27, so \\boxed{27}.")], "math", correct=True).follow == 0.0
    only = planner_reward([], correct=True, chose_termination=False, reasoner_ended=True)
    assert (only.penalty, only.terminal) == (0.0, 1.0)
    with pytest.raises(ValueError):
        planner_reward([], correct=True, chose_termination=False)
    trace = [StepTrace(index=0, strategy="unguided", forced=True, injected="", text=" \\boxed{27}",
                       ends_reasoning="answer"),
             ]
    res = SolveResponse(id="x", model="m", answer="27", text="", finish_reason="termination", usage=Usage(),
                        timings=Timings(), planner_version=None, catalog_version="c", steps=trace)
    r = score(Problem(id="p", question="q", answer="27", task="math"), res, [])
    assert r.correct and r.planner.penalty == 0.0 and r.planner.terminal == 1.0
    two = res.model_copy(update={"steps": [trace[0].model_copy(update={"ends_reasoning": None}),
                                           StepTrace(index=1, strategy="verification", injected="x", text="y"),
                                           StepTrace(index=2, strategy="verification", injected="x", text="z")]})
    assert score(Problem(id="p", question="q", answer="27", task="math"), two, []).planner.penalty == -1.0


def test_per_position_weighting_by_the_tokens_a_decision_governs():
    """`planner_weighting: tokens` (the paper's token-averaged objective): a decision weighs as many reasoner
    tokens as it governs — its step and the steps that only continued it — normalised to mean 1; the
    default keeps one term per decision. Forced steps (the reasoner's own, the forced answer) are no
    decision."""
    from planner_server.training.rollout import Group, Rollout
    from planner_server.training.rewards import PlannerReward, ReasonerReward
    from planner_server.training.train import governed_tokens, weighted_decisions
    from planner_server.training.data import Problem
    from service.protocol import SolveResponse, StepTrace, Timings, Usage

    steps = [StepTrace(index=0, strategy="unguided", forced=True, injected="", text="a", tokens=40),
             StepTrace(index=1, strategy="verification", injected="v", text="b", tokens=100),
             StepTrace(index=2, strategy="unguided", forced=True, injected="", text="c", tokens=20, continued=True),
             StepTrace(index=3, strategy="continuation", injected="", text="d", tokens=30),
             StepTrace(index=4, strategy="termination", forced=True, injected="t", text="5}", tokens=2)]
    result = SolveResponse(id="x", model="m", answer="5", text="", finish_reason="max_steps", usage=Usage(),
                           timings=Timings(), planner_version=None, catalog_version="c", steps=steps)
    assert governed_tokens(result) == [120, 30]

    def rollout(decisions):
        return Rollout(Problem("q", "5", "math"), result, decisions, True, PlannerReward(1, 0, 1),
                       ReasonerReward(1, 1, 1))

    g = Group(Problem("q", "5", "math"), [rollout(["d1", "d2"]), rollout(["d3", "d4"]), rollout(["d5"])])
    by_tokens = weighted_decisions([g], [[1.0, -1.0, 0.0]], "tokens")
    assert [(d, a) for d, a, _ in by_tokens] == [("d1", 1.0), ("d2", 1.0), ("d3", -1.0), ("d4", -1.0)]
    assert [w for *_, w in by_tokens] == pytest.approx([1.6, 0.4, 1.6, 0.4])  # 120 and 30, mean 75
    mismatch = weighted_decisions([Group(g.problem, [rollout(["only one"])])], [[1.0]], "tokens")
    assert [w for *_, w in mismatch] == [1.0]  # steps and decisions do not line up: no guess
    assert [w for *_, w in weighted_decisions([g], [[1.0, -1.0, 0.0]], "decision")] == [1.0] * 4


def test_unit_weights_change_nothing():
    torch.manual_seed(0)
    logp, old, adv = torch.randn(5), torch.randn(5), torch.randn(5)
    plain, _ = clipped_surrogate(logp, old, adv)
    ones, _ = clipped_surrogate(logp, old, adv, weights=torch.ones(5))
    assert float(plain) == pytest.approx(float(ones))
    heavy, _ = clipped_surrogate(logp, old, adv, weights=torch.tensor([5.0, 0, 0, 0, 0]))
    first, _ = clipped_surrogate(logp[:1], old[:1], adv[:1])
    assert float(heavy) == pytest.approx(5 * float(first))


def test_planner_reward_weights():
    """`planner_reward_weights.penalty: 0`: a right episode that stayed quiet throughout is not ranked below a
    wrong one that varied its strategies (with the paper's weights it is, within a group of equals)."""
    quiet = ["continuation", "continuation", "continuation"]
    varied = ["self_reflection", "verification", "decomposition"]
    paper = planner_reward(quiet, correct=True, chose_termination=False, reasoner_ended=True)
    assert paper.total == pytest.approx(1 - 1 + 1)
    assert planner_reward(varied, correct=False, chose_termination=False, reasoner_ended=True).total == \
        pytest.approx(0 - 1 / 3 + 1)
    no_penalty = PlannerWeights(penalty=0.0)
    right = planner_reward(quiet, correct=True, chose_termination=False, reasoner_ended=True, weights=no_penalty)
    wrong = planner_reward(varied, correct=False, chose_termination=False, reasoner_ended=True, weights=no_penalty)
    assert (right.total, wrong.total) == (pytest.approx(2.0), pytest.approx(1.0))
    assert right.penalty == -1.0  # the term is still measured (and logged), only weighed at 0
    assert planner_reward(quiet, correct=True, chose_termination=False, reasoner_ended=True,
                          weights=PlannerWeights(acc=2.0, terminal=0.0)).total == pytest.approx(2.0 - 1.0)


def test_update_norms_measure_each_agents_step_by_hand():
    """What an update changed, per parameter group: SGD with lr 0.5 on gradients (3, 4) and (1,) moves the
    first agent by 0.5·5 and the second by 0.5; a group the update leaves alone reads 0."""
    a, b, idle = torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.ones(1)), torch.nn.Parameter(torch.ones(3))
    opt = torch.optim.SGD([{"params": [a]}, {"params": [b]}, {"params": [idle]}], lr=0.5)
    norms = UpdateNorms(opt, ["planner", "reasoner", "idle"])
    a.grad, b.grad, idle.grad = torch.tensor([3.0, 4.0]), torch.tensor([1.0]), torch.zeros(3)
    opt.step()
    assert norms.measure() == pytest.approx({"update_norm/planner": 2.5, "update_norm/reasoner": 0.5,
                                             "update_norm/idle": 0.0})

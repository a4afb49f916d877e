"""Rewards of DESIGN.md §5, as pure functions of a finished trajectory.

Planner:  R_P = R_acc + R_penalty + R_terminal
  R_terminal = +1 if the episode ended before max_steps on its own terms — the planner chose termination,
               or the reasoner wrote its boxed answer or closed its message first — and −1 if termination
               was forced (at max_steps, or after the reasoner copied an earlier step)
  R_penalty  = −(share of the most frequently chosen strategy in the trajectory)
Reasoner: R = R_acc + R_format + R_follow
  R_format = 1 if the answer is in the task's required form (\\boxed{} for math, a code block for code,
             a lone option letter for choice)
  R_follow = share of guided steps (a strategy injected) that follow it (`follows`, rules below; 0 when none)
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from service.protocol import SolveResponse

from service.answer import last_boxed, last_code_block
from service.catalog import TERMINATION, UNGUIDED


@dataclass(frozen=True)
class PlannerWeights:
    """How much each term counts in R_P (the paper: 1, 1, 1). On an instruction-tuned reasoner the best
    episodes often apply one strategy, or none, throughout (docs/training.md): R_penalty then argues against
    them, and `penalty: 0` leaves accuracy to decide."""
    acc: float = 1.0
    penalty: float = 1.0
    terminal: float = 1.0


@dataclass(frozen=True)
class PlannerReward:
    acc: float
    penalty: float
    terminal: float
    weights: PlannerWeights = PlannerWeights()

    @property
    def total(self) -> float:
        w = self.weights
        return w.acc * self.acc + w.penalty * self.penalty + w.terminal * self.terminal


@dataclass(frozen=True)
class ReasonerReward:
    acc: float
    format: float
    follow: float

    @property
    def total(self) -> float:
        return self.acc + self.format + self.follow


def planner_reward(strategies: Sequence[str], *, correct: bool, chose_termination: bool,
                   reasoner_ended: bool = False, weights: PlannerWeights = PlannerWeights()) -> PlannerReward:
    """`chose_termination`: the last step is termination *and* the planner picked it (not forced);
    `reasoner_ended`: the reasoner wrote its answer or closed its message, so the loop ended on its own."""
    if not strategies and not reasoner_ended:
        raise ValueError("a trajectory has at least one planned step, or the reasoner ended it on its own")
    most = Counter(strategies).most_common(1)[0][1] if strategies else 0  # an unguided answer: no choice to count
    terminal = 1.0 if (chose_termination and strategies[-1] == TERMINATION) or reasoner_ended else -1.0
    return PlannerReward(acc=float(correct), penalty=-most / len(strategies) if strategies else 0.0,
                         terminal=terminal, weights=weights)


def termination_of(result: SolveResponse) -> dict[str, bool]:
    """`planner_reward`'s termination arguments for a finished episode of the serving loop."""
    last = result.steps[-1]
    return {"chose_termination": last.strategy == TERMINATION and not last.forced,
            "reasoner_ended": any(s.ends_reasoning in ("answer", "eos") for s in result.steps)}


_CLOSES_BOX = re.compile(r"\s*((?:[^{}\n]|\{[^{}\n]*\})+)\}")  # "76}" after the injected "\boxed{"
_CLOSES_BLOCK = re.compile(r"\s*\S.*?\n\s*```", re.S)  # code, then the closing fence


def answer_in_format(text: str, task: str) -> bool:
    """A complete answer in the task's form, written out in `text` (\\boxed{…}, a code block, a boxed letter)."""
    if task in ("math", "synthetic", "numeric", "theoremqa"):
        return last_boxed_closed(text) is not None
    if task == "code":
        return last_code_block(text) is not None
    if task == "choice":
        boxed = last_boxed_closed(text)
        return bool(boxed and re.fullmatch(r"\(?[A-J]\)?", boxed.strip()))
    return bool(text.strip())


def last_boxed_closed(text: str) -> str | None:
    """Content of the last *closed* \\boxed{…} (an unclosed one after it does not hide it)."""
    from service.answer import first_boxed

    start = text.rfind("\\boxed{")
    while start >= 0:
        if (box := first_boxed(text[start:])) is not None:
            return box
        start = text.rfind("\\boxed{", 0, start)
    return None


def completes_answer(text: str, task: str) -> bool:
    """The answer step's own text completes the form its instruction opened: a non-empty answer and the
    closing `}` of the injected `\\boxed{` (a letter for choice), or code and the closing fence of the
    injected ```` ```python ```` block."""
    if task == "code" or task == "runs":
        return bool(_CLOSES_BLOCK.match(text))
    m = _CLOSES_BOX.match(text)
    if not m:
        return False
    return bool(re.fullmatch(r"\(?[A-J]\)?", m.group(1).strip())) if task == "choice" else True


_RULES: dict[str, re.Pattern[str]] = {
    "self_reflection": re.compile(r"\b(wait|however|mistake|wrong|reconsider|actually|re-?check|reflect)", re.I),
    "decomposition": re.compile(r"(\bfirst\b|\bsecond\b|\bthen\b|sub-?problem|\bpart\b|^\s*(\d+[.)]|-|\*)\s)",
                                re.I | re.M),
    "verification": re.compile(r"\b(check|verif|confirm|substitut|indeed|correct)", re.I),
    "summarization": re.compile(r"\b(so far|in summary|to summari[sz]e|we (have|know)|overall|thus)\b", re.I),
    "prioritization": re.compile(r"\b(most important|key|focus|first need|priority|main)\b", re.I),
    "sub_planning": re.compile(r"\b(plan|next,? (i|we) will|steps?:|will then|approach)\b", re.I),
}


def follows(strategy: str, text: str, *, previous: str | None = None, task: str = "math") -> bool:
    """Documented per-strategy rules for "this step follows its injected strategy":

    - termination: the step completes the answer its instruction opened (`completes_answer`);
    - continuation: the step adds at least 3 words;
    - deep_thinking: the step is longer than 40 words, or longer than the previous step;
    - summarization: a summary cue, or shorter than the previous step while non-empty;
    - the others: a cue word of the strategy (see `_RULES`) appears in the step.
    """
    body = text.strip()
    if strategy == TERMINATION:
        return completes_answer(text, task)
    if strategy == "continuation":
        return len(body.split()) >= 3
    if strategy == "deep_thinking":
        words = len(body.split())
        return words > 40 or (previous is not None and words > len(previous.split()))
    rule = _RULES.get(strategy)
    if strategy == "summarization" and previous is not None and 0 < len(body) < len(previous.strip()):
        return True
    return bool(rule and rule.search(body))


def reasoner_reward(steps: Sequence[tuple[str, str]], task: str, *, correct: bool) -> ReasonerReward:
    """`steps`: (strategy, the reasoner's own text) pairs — never the injected instructions, which already
    hold the cue words and the `\\boxed{` opener. R_format: the reasoner wrote its answer in the task's
    form, in a reasoning step (its own `\\boxed{}`) or by completing the answer step."""
    if not steps:
        raise ValueError("a trajectory has at least one step")
    guided = [i for i, (s, _) in enumerate(steps) if s != UNGUIDED]  # an unguided step had nothing to follow
    followed = sum(follows(steps[i][0], steps[i][1], previous=steps[i - 1][1] if i else None, task=task)
                   for i in guided)
    strategy, last = steps[-1]
    written = completes_answer(last, task) if strategy == TERMINATION else answer_in_format(last, task)
    return ReasonerReward(acc=float(correct), format=float(written), follow=followed / len(guided) if guided else 0.0)

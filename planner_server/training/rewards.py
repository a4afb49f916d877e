"""Rewards of DESIGN.md §5, as pure functions of a finished trajectory.

Planner:  R_P = R_acc + R_penalty + R_terminal
  R_terminal = +1 if the episode ended before max_steps on its own terms — the planner chose termination,
               or the reasoner wrote its boxed answer or closed its message first — and −1 if termination
               was forced (at max_steps, or after the reasoner copied an earlier step)
  R_penalty  = −(share of the most frequently chosen strategy in the trajectory)
Reasoner: R = R_acc + R_format + R_follow
  R_format = 1 if the answer is in the task's required form (\\boxed{} for math, a code block for code,
             a lone option letter for choice)
  R_follow = share of steps that follow their injected strategy (`follows`, rules below)
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from service.protocol import SolveResponse

from service.answer import last_boxed, last_code_block
from service.catalog import TERMINATION


@dataclass(frozen=True)
class PlannerReward:
    acc: float
    penalty: float
    terminal: float

    @property
    def total(self) -> float:
        return self.acc + self.penalty + self.terminal


@dataclass(frozen=True)
class ReasonerReward:
    acc: float
    format: float
    follow: float

    @property
    def total(self) -> float:
        return self.acc + self.format + self.follow


def planner_reward(strategies: Sequence[str], *, correct: bool, chose_termination: bool,
                   reasoner_ended: bool = False) -> PlannerReward:
    """`chose_termination`: the last step is termination *and* the planner picked it (not forced);
    `reasoner_ended`: the reasoner wrote its answer or closed its message, so the loop ended on its own."""
    if not strategies:
        raise ValueError("a trajectory has at least one step")
    most = Counter(strategies).most_common(1)[0][1]
    terminal = 1.0 if (chose_termination and strategies[-1] == TERMINATION) or reasoner_ended else -1.0
    return PlannerReward(acc=float(correct), penalty=-most / len(strategies), terminal=terminal)


def termination_of(result: SolveResponse) -> dict[str, bool]:
    """`planner_reward`'s termination arguments for a finished episode of the serving loop."""
    last = result.steps[-1]
    return {"chose_termination": last.strategy == TERMINATION and not last.forced,
            "reasoner_ended": any(s.ends_reasoning in ("answer", "eos") for s in result.steps)}


def answer_in_format(text: str, task: str) -> bool:
    if task in ("math", "synthetic"):
        return last_boxed(text) is not None
    if task == "code":
        return last_code_block(text) is not None
    if task == "choice":
        boxed = last_boxed(text)
        return bool(boxed and re.fullmatch(r"\(?[A-J]\)?", boxed.strip()))
    return bool(text.strip())


_RULES: dict[str, re.Pattern[str]] = {
    "self_reflection": re.compile(r"\b(wait|however|mistake|wrong|reconsider|actually|re-?check|reflect)", re.I),
    "decomposition": re.compile(r"(\bfirst\b|\bsecond\b|\bthen\b|sub-?problem|\bpart\b|^\s*(\d+[.)]|-|\*)\s)",
                                re.I | re.M),
    "verification": re.compile(r"\b(check|verif|confirm|substitut|indeed|correct)", re.I),
    "summarization": re.compile(r"\b(so far|in summary|to summari[sz]e|we (have|know)|overall|thus)\b", re.I),
    "prioritization": re.compile(r"\b(most important|key|focus|first need|priority|main)\b", re.I),
    "sub_planning": re.compile(r"\b(plan|next,? (i|we) will|steps?:|will then|approach)\b", re.I),
}


def follows(strategy: str, text: str, *, previous: str | None = None) -> bool:
    """Documented per-strategy rules for "this step follows its injected strategy":

    - termination: the step states an answer (a \\boxed{}, a code block, or any text after the box opener);
    - continuation: the step adds non-empty text;
    - deep_thinking: the step is longer than 40 words, or longer than the previous step;
    - summarization: a summary cue, or shorter than the previous step while non-empty;
    - the others: a cue word of the strategy (see `_RULES`) appears in the step.
    """
    body = text.strip()
    if strategy == TERMINATION:
        return bool(body)
    if strategy == "continuation":
        return bool(body)
    if strategy == "deep_thinking":
        words = len(body.split())
        return words > 40 or (previous is not None and words > len(previous.split()))
    rule = _RULES.get(strategy)
    if strategy == "summarization" and previous is not None and 0 < len(body) < len(previous.strip()):
        return True
    return bool(rule and rule.search(body))


def reasoner_reward(steps: Sequence[tuple[str, str]], answer_text: str, task: str, *, correct: bool) -> ReasonerReward:
    """`steps`: (strategy, text) pairs; `answer_text`: the full chain of thought the answer comes from."""
    if not steps:
        raise ValueError("a trajectory has at least one step")
    followed = sum(follows(s, t, previous=steps[i - 1][1] if i else None) for i, (s, t) in enumerate(steps))
    return ReasonerReward(acc=float(correct), format=float(answer_in_format(answer_text, task)),
                          follow=followed / len(steps))

"""How an injected strategy and the reasoner's steps form the chain of thought (pure).

The chain of thought only grows: step k's prompt is step k-1's prompt plus the delimiter, the new
instruction and nothing else, so the reasoner's prefix cache covers everything already written.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from service.catalog import Strategy


@dataclass(frozen=True)
class WrittenStep:
    injected: str
    text: str
    glued: bool = False  # goes on from the previous step's last word (its budget cut it mid-paragraph): no delimiter


def injection_text(strategy: Strategy, index: int) -> str:
    """The instruction alone, in the reasoner's own voice: a "Step k (Name):" header made instruct
    models number and title their own steps, out of step with the loop's."""
    return strategy.instruction


def chain_of_thought(steps: Sequence[WrittenStep], delimiter: str, pending: str | None = None,
                     glue_pending: bool = False) -> str:
    """The chain of thought so far, optionally ending with the instruction of the step being written. Steps
    are joined by the delimiter, except a glued one, which goes on from the previous step's last word."""
    out = ""
    for i, s in enumerate(steps):
        out += ("" if i == 0 or s.glued else delimiter) + s.injected + s.text
    if pending is not None:
        out += ("" if not steps or glue_pending else delimiter) + pending
    return out


TURN_LABELS = {"system": "System", "user": "User", "assistant": "Assistant"}


def transcript(context: Sequence[dict[str, str]], question: str) -> str:
    """The question with the conversation before it, every turn labelled (what a planner reads): the
    question alone when there is no conversation."""
    if not context:
        return question
    turns = [f"{TURN_LABELS.get(m['role'], m['role'].title())}: {m['content']}" for m in context]
    return "\n\n".join([*turns, f"User: {question}"])


def completion_prompt(question: str, cot: str) -> str:
    """Raw prompt of the `completions` mode (same layout as the plain chat template)."""
    return f"Question: {question.strip()}\n\nAnswer: {cot}"


def turn_messages(question: str, steps: Sequence[WrittenStep], pending: str,
                  resume: str = "") -> list[dict[str, str]]:
    """Messages of the `turns` mode: each instruction a user turn, each step an assistant turn (a
    resumed step: what it holds so far as an assistant turn, then a user turn asking to go on)."""
    msgs = [{"role": "user", "content": question}]
    for s in steps:
        if s.injected:
            msgs.append({"role": "user", "content": s.injected})
        msgs.append({"role": "assistant", "content": s.text})
    msgs.append({"role": "user", "content": pending or "Continue."})
    if resume:
        msgs += [{"role": "assistant", "content": resume}, {"role": "user", "content": "Continue."}]
    return msgs

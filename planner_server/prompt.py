"""The one planner prompt format, shared by serving backends and training.

The prompt ends exactly where a strategy label is due, so one forward pass scores the next strategy.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from service.catalog import UNGUIDED, Catalog

PROMPT_TAIL = "\nNext strategy: "  # the label token comes right after this


class StepLike(Protocol):
    strategy: str
    text: str


class Tokenizer(Protocol):
    def encode(self, text: str, add_special_tokens: bool = ...) -> list[int]: ...


def prompt_head(question: str, catalog: Catalog) -> str:
    menu = "\n".join(f"{s.label}. {s.name}: {s.description}" for s in catalog.strategies)
    return (
        "You guide a reasoner that solves a problem step by step. Before each step, choose the "
        "strategy for the next step.\n"
        f"Strategies:\n{menu}\n\n"
        f"Question: {question.strip()}\n\n"
        "Reasoning so far:\n"
    )


def prompt_cot(steps: Sequence[StepLike], catalog: Catalog) -> str:
    if not steps:
        return "(nothing yet)\n"
    lines = []
    for s in steps:
        if s.strategy == UNGUIDED:  # the reasoner's own opening step: no strategy was injected
            lines.append(f"[No strategy] {s.text.strip()}\n")
            continue
        strat = catalog.get(s.strategy)
        lines.append(f"[{strat.label}. {strat.name}] {s.text.strip()}\n")
    return "".join(lines)


def planner_prompt(question: str, steps: Sequence[StepLike], catalog: Catalog) -> str:
    """The full prompt as text (untruncated): what a prompted planner reads."""
    return prompt_head(question, catalog) + prompt_cot(steps, catalog) + PROMPT_TAIL


def encode_planner_prompt(tokenizer: Tokenizer, question: str, steps: Sequence[StepLike], catalog: Catalog,
                          *, cot_budget_tokens: int, bos_token_id: int | None = None) -> list[int]:
    """Token ids of the prompt; the chain of thought is left-truncated to its budget, the question kept."""
    head = tokenizer.encode(prompt_head(question, catalog), add_special_tokens=False)
    cot = tokenizer.encode(prompt_cot(steps, catalog), add_special_tokens=False)
    tail = tokenizer.encode(PROMPT_TAIL, add_special_tokens=False)
    if len(cot) > cot_budget_tokens:
        cot = cot[len(cot) - cot_budget_tokens:]
    ids = head + cot + tail
    return ([bos_token_id] + ids) if bos_token_id is not None else ids


def label_token_ids(tokenizer: Tokenizer, catalog: Catalog) -> list[int]:
    """The one token each label adds after the prompt tail; raises if a label is not one token."""
    tail = tokenizer.encode(PROMPT_TAIL, add_special_tokens=False)
    ids = []
    for s in catalog.strategies:
        full = tokenizer.encode(PROMPT_TAIL + s.label, add_special_tokens=False)
        if full[: len(tail)] != tail or len(full) != len(tail) + 1:
            raise ValueError(f"label {s.label!r} of strategy '{s.id}' is not one token after the prompt tail "
                             "for this tokenizer; use a catalog with single-token labels (digits work)")
        ids.append(full[-1])
    if len(set(ids)) != len(ids):
        raise ValueError("two strategy labels map to the same token")
    return ids


def prompt_digest(catalog: Catalog) -> str:
    """A fingerprint of the prompt template over `catalog`: the prompt of a fixed question and steps. A
    checkpoint records the one it was trained with; a server whose template differs warns at load."""
    import hashlib

    from service.plan_protocol import PlanStep

    steps = [PlanStep(strategy=UNGUIDED, text="a"), PlanStep(strategy=catalog.ids[0], text="b")]
    return hashlib.sha256(planner_prompt("What is 1 + 1?", steps, catalog).encode()).hexdigest()[:16]

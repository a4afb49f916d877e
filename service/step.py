"""How one reasoning step is bounded (DESIGN.md §4.2), shared by the strategy loop and the prompt
baselines: a step ends at the delimiter only once it carries reasoning and no code fence is open.

Instruction-tuned reasoners often answer an injected instruction with a blank line or a one-line
announcement; with a plain `\\n\\n` stop that ends the step empty. Two guards, both append-only (the
prefix cache still covers everything written): the reasoner is asked for `min_tokens` before a stop
may count (vLLM's extension; off for servers without it), and a step that still comes back too short,
or stopped inside an open ```` ``` ```` block, is resumed: the held-back delimiter is written into the
step and the reasoner continues from there, within the step's token budget (L1).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import Protocol

from service.reasoner import StepDone, StepRequest

MAX_RESUMES = 8  # bound on continuations of one step (its token budget bounds it too)


class Reasoner(Protocol):
    def step(self, req: StepRequest) -> AsyncIterator[str | StepDone]: ...


@dataclass(frozen=True)
class StepBounds:
    min_tokens: int = 0  # sent to the reasoner as `min_tokens` (0: not sent)
    min_chars: int = 0  # a step with fewer non-space characters is resumed past its delimiter


def open_fence(text: str) -> bool:
    """True when the text opened a ``` code block it has not closed."""
    return text.count("```") % 2 == 1


def needs_more(text: str, bounds: StepBounds) -> bool:
    return len(text.strip()) < bounds.min_chars or open_fence(text)


async def write_step(reasoner: Reasoner, req: StepRequest, bounds: StepBounds) -> AsyncIterator[str | StepDone]:
    """Stream one bounded step: text deltas (a resumed delimiter included), then one `StepDone` whose
    tokens are summed over every call and whose `extra["calls"]` counts them."""
    delimiter = req.stop[0] if req.stop else None
    text, total = "", StepDone(finish_reason=None)
    calls = 0
    budget = req.max_tokens
    while True:
        call = replace(req, max_tokens=budget, resume=text,
                       min_tokens=min(bounds.min_tokens, budget) if bounds.min_tokens else 0)
        calls += 1
        done = StepDone(finish_reason=None)
        async for chunk in reasoner.step(call):
            if isinstance(chunk, StepDone):
                done = chunk
            else:
                text += chunk
                yield chunk
        total.finish_reason = done.finish_reason
        total.prompt_tokens += done.prompt_tokens
        total.completion_tokens += done.completion_tokens
        budget -= done.completion_tokens
        if (delimiter is None or done.finish_reason != "stop" or budget <= 0 or calls > MAX_RESUMES
                or not needs_more(text, bounds)):
            break
        text += delimiter  # the stop the reasoner held back becomes part of the step; it goes on from there
        yield delimiter
    total.extra["calls"] = calls
    yield total

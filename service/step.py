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

from collections.abc import AsyncIterator, Iterable
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


COPY_CHARS = 48  # a step whose first 48 characters (whitespace collapsed) are an earlier step's is a copy


def squeeze(text: str) -> str:
    return " ".join(text.split())


def restates(text: str, earlier: Iterable[str], *, chars: int = COPY_CHARS) -> bool:
    """True when a step starts as an earlier one did: their first `chars` characters, whitespace
    collapsed, are the same. An instruct reasoner at temperature 0 copies what it wrote under the same
    instruction, and every later step would copy it again."""
    head = squeeze(text)[:chars]
    return len(head) == chars and any(squeeze(old)[:chars] == head for old in earlier)


class CopyGuard:
    """Holds a streaming step back only while it may still be a copy (`restates`): its text is released
    as soon as its start departs from every earlier step's, or at its end if it is too short to call a
    copy; a copy is never released (`copied`)."""

    def __init__(self, earlier: Iterable[str], *, chars: int = COPY_CHARS):
        self.chars = chars
        self.heads = {h for h in (squeeze(old)[:chars] for old in earlier) if len(h) == chars}
        self.held: list[str] = []
        self.decided, self.copied = not self.heads, False

    def feed(self, chunk: str) -> list[str]:
        """What of the step may go out now."""
        if self.decided:
            return [] if self.copied else [chunk]
        self.held.append(chunk)
        head = squeeze("".join(self.held))[:self.chars]
        if any(h.startswith(head) for h in self.heads):
            if len(head) < self.chars:
                return []  # still on an earlier step's track
            self.decided = self.copied = True
            return []
        self.decided = True
        out, self.held = self.held, []
        return out

    def flush(self) -> list[str]:
        """At the step's end: what was held back, unless it is a copy."""
        self.decided = True
        out, self.held = ([] if self.copied else self.held), []
        return out


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
        total.finish_reason, total.eos = done.finish_reason, done.eos
        total.prompt_tokens += done.prompt_tokens
        total.completion_tokens += done.completion_tokens
        if done.cached_tokens is not None:
            total.cached_tokens = (total.cached_tokens or 0) + done.cached_tokens
        budget -= done.completion_tokens
        if (delimiter is None or done.finish_reason != "stop" or budget <= 0 or calls > MAX_RESUMES
                or not needs_more(text, bounds)):
            break
        text += delimiter  # the stop the reasoner held back becomes part of the step; it goes on from there
        yield delimiter
    total.extra["calls"] = calls
    yield total

"""The step loop (DESIGN.md §4): decision → injection → reasoner step, until termination or
`max_steps`. A step that starts by copying an earlier one is written again without its instruction. A
reasoning step that writes a boxed answer ends the episode with it; one after which the reasoner has
nothing to add — it ended its message, or copied an earlier step even so — goes to the answer step (§4.2).
No web framework here: the service, the training worker and the eval harness all run exactly this loop,
as a stream of events (L1)."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Literal

from service.plan_protocol import PlanRequest, PlanStep
from service.answer import AnswerFormat, answer_instruction, answer_stop, final_answer, first_boxed
from service.baselines import BASELINES
from service.catalog import TERMINATION, UNGUIDED, Catalog
from service.errors import InvalidRequest, PlannerUnavailable
from service.injection import WrittenStep, chain_of_thought, injection_text, transcript
from service.planner_client import Planner
from service.protocol import SolveResponse, StepTrace, Timings, Usage
from service.reasoner import OpenAIReasoner, StepDone, StepRequest
from service.step import CopyGuard, StepBounds, restates, write_step


@dataclass
class EpisodeConfig:
    model: str
    max_steps: int = 8
    max_tokens_per_step: int = 256
    final_max_tokens: int = 512
    planner_temperature: float = 0.0
    reasoner_temperature: float = 0.0
    force: str | None = None
    forbid: list[str] = field(default_factory=list)
    seed: int | None = None
    delimiter: str = "\n\n"
    min_step_tokens: int = 24  # vLLM `min_tokens` of a reasoning step (0 for servers without it)
    min_step_chars: int = 16  # a shorter reasoning step is resumed past its delimiter
    answer_format: AnswerFormat = "boxed"  # "code": the answer step opens a Python block instead of \boxed{
    max_total_tokens: int | None = None  # completion tokens of the whole episode, every step (a client's max_tokens)
    answer_stop: list[str] = field(default_factory=list)  # the client's `stop`, on the answer step
    sampling: dict = field(default_factory=dict)  # reasoner sampling fields from the client (top_p, penalties)
    # "reasoner": the first step is the reasoner's own, from the plain question as a chat begins (no planner
    # call, nothing injected: `unguided`); "planner": the planner picks the first step's strategy too (the paper)
    first_step: Literal["planner", "reasoner"] = "planner"
    # after the last planned step, a reasoner that has not ended its reasoning goes on unguided (nothing
    # injected, no delimiter) until it ends its message or uses up the reasoning budget, then answers
    unguided_tail: bool = False
    # a reasoning step its token budget cut mid-paragraph is continued from its last word by the next step,
    # unguided (an instruction mid-sentence derails, a delimiter there splits a line); the planner decides
    # only where the reasoner ended a paragraph
    continue_cut: bool = False
    # the conversation before the question, as chat messages ({"role", "content"}: system, user, assistant):
    # the reasoner gets them as they are, ahead of the question's user turn; the planner reads them labelled
    context: list[dict[str, str]] = field(default_factory=list)
    # a prompt baseline (`plain`, `zerocot`, `ps+`): no planner; one reasoning step under the baseline's instruction
    # with the whole reasoning budget (`reasoning_budget()`), then the answer step
    baseline: str | None = None

    def reasoning_budget(self) -> int:
        """Reasoning tokens of an episode: what the prompt baselines get in their one step."""
        return self.max_tokens_per_step * max(1, self.max_steps - 1)

    def answer_reserve(self) -> int:
        """Tokens of a total budget kept for the answer step."""
        assert self.max_total_tokens is not None
        return min(self.final_max_tokens, max(1, self.max_total_tokens // 4))

    def bounds(self, strategy_id: str) -> StepBounds:
        """The answer step may be short; every other step must carry reasoning."""
        if strategy_id == TERMINATION:
            return StepBounds()
        return StepBounds(min_tokens=self.min_step_tokens, min_chars=self.min_step_chars)


@dataclass
class StrategyChosen:
    step: StepTrace  # text still empty


@dataclass
class TextDelta:
    index: int
    text: str


@dataclass
class StepEnded:
    step: StepTrace


@dataclass
class Finished:
    result: SolveResponse


Event = StrategyChosen | TextDelta | StepEnded | Finished


def plain_budget_ok(cfg: EpisodeConfig, used: int) -> bool:
    """Whether a client's total budget still holds a reasoning step of useful size and the answer."""
    assert cfg.max_total_tokens is not None
    return cfg.max_total_tokens - used - cfg.answer_reserve() >= max(1, cfg.min_step_tokens)


class Orchestrator:
    def __init__(self, planner: Planner, reasoner: OpenAIReasoner, catalog: Catalog, *,
                 on_planner_down: str = "error"):
        self.planner, self.reasoner, self.catalog = planner, reasoner, catalog
        self.on_planner_down = on_planner_down

    def check(self, cfg: EpisodeConfig) -> None:
        """Reject unknown strategy ids before any upstream call."""
        known = set(self.catalog.ids)
        if cfg.force is not None and cfg.force not in known:
            raise InvalidRequest(f"unknown strategy '{cfg.force}'", param="force")
        for i, sid in enumerate(cfg.forbid):
            if sid not in known:
                raise InvalidRequest(f"unknown strategy '{sid}'", param=f"forbid.{i}")
        if TERMINATION in cfg.forbid:
            raise InvalidRequest("termination cannot be forbidden: it ends the episode", param="forbid")
        if cfg.baseline is not None and cfg.baseline not in BASELINES:
            raise InvalidRequest(f"unknown baseline '{cfg.baseline}'; known: {', '.join(BASELINES)}",
                                 param="baseline")

    async def solve(self, question: str, cfg: EpisodeConfig, *, request_id: str | None = None) -> SolveResponse:
        async for event in self.run(question, cfg, request_id=request_id):
            if isinstance(event, Finished):
                return event.result
        raise AssertionError("episode ended without a result")

    async def run(self, question: str, cfg: EpisodeConfig, *, request_id: str | None = None) -> AsyncIterator[Event]:
        self.check(cfg)
        request_id = request_id or uuid.uuid4().hex
        planner_question = transcript(cfg.context, question)
        t_start = time.perf_counter()
        written: list[WrittenStep] = []
        traces: list[StepTrace] = []
        usage, timings = Usage(), Timings()
        planner_version: str | None = None
        degraded, finish_reason = False, "max_steps"
        reasoned = False  # the last step ended the reasoning: the reasoner closed its message or repeated itself
        answer: str | None = None  # the reasoner's own boxed answer, when a reasoning step wrote one

        index, tailed, cut = -1, False, False
        while True:
            index += 1
            last = index >= cfg.max_steps - 1
            strategy_id, probabilities, probability, forced, planner_ms = TERMINATION, None, None, True, 0.0
            drawn: tuple[str, float] | None = None  # the planner's (mode, μ(strategy)) when it chose
            plain = False  # the planner just went away: write plain chain of thought, then the answer
            if cfg.max_total_tokens is not None and not plain_budget_ok(cfg, usage.completion_tokens):
                reasoned = True  # no room for another reasoning step in the client's budget: answer now
            tail = (last and cfg.unguided_tail and not (tailed or degraded or reasoned)
                    and cfg.reasoning_budget() - usage.reasoning_tokens >= max(1, cfg.min_step_tokens))
            glued = cut and cfg.continue_cut and not (degraded or reasoned) and (tail or not last)
            if cfg.baseline is not None:  # its one reasoning step, then the answer
                tail = glued = False
                strategy_id = cfg.baseline if index == 0 else TERMINATION
            elif tail:
                strategy_id, tailed = UNGUIDED, True
            elif not (degraded or last or reasoned):
                if (index == 0 and cfg.first_step == "reasoner") or glued:
                    strategy_id = UNGUIDED
                elif cfg.force is not None:
                    strategy_id = cfg.force
                else:
                    t0 = time.perf_counter()
                    try:
                        plan = await self.planner.plan(PlanRequest(
                            question=planner_question, steps=[PlanStep(strategy=t.strategy, text=t.text) for t in traces],
                            temperature=cfg.planner_temperature, forbid=cfg.forbid,
                            seed=None if cfg.seed is None else cfg.seed + index), request_id=request_id)
                    except PlannerUnavailable:
                        if self.on_planner_down != "degrade":
                            raise
                        degraded = plain = True
                    else:
                        strategy_id, probabilities, forced = plan.strategy, plan.probabilities, False
                        probability, planner_version = plan.probabilities[plan.strategy], plan.planner_version
                        drawn = (plan.mode, plan.behaviour_probability)
                        usage.planner_calls += 1
                        usage.planner_tokens += plan.tokens or 0
                    planner_ms = (time.perf_counter() - t0) * 1000
                    timings.planner_ms += planner_ms

            if strategy_id == cfg.baseline:
                injected, max_tokens, stop = BASELINES[cfg.baseline], cfg.reasoning_budget(), None
            elif plain:
                strategy_id = "continuation" if "continuation" in self.catalog.ids else self.catalog.ids[0]
                injected, stop = "", None
                max_tokens = (cfg.max_steps - index - 1) * cfg.max_tokens_per_step
            elif tail:  # the reasoner finishes its reasoning on its own, in the budget left
                injected, max_tokens, stop = "", cfg.reasoning_budget() - usage.reasoning_tokens, None
            elif strategy_id == UNGUIDED:
                injected, max_tokens, stop = "", cfg.max_tokens_per_step, [cfg.delimiter]
            elif strategy_id == TERMINATION:
                injected = answer_instruction(cfg.answer_format, injection_text(self.catalog.get(TERMINATION), index))
                max_tokens, stop = cfg.final_max_tokens, answer_stop(cfg.answer_format, cfg.delimiter)
                if cfg.answer_stop:
                    stop = (stop or []) + cfg.answer_stop
            else:
                injected = injection_text(self.catalog.get(strategy_id), index)
                max_tokens, stop = cfg.max_tokens_per_step, [cfg.delimiter]

            trace = StepTrace(index=index, strategy=strategy_id, probability=probability, probabilities=probabilities,
                              decision=drawn[0] if drawn else None, behaviour_probability=drawn[1] if drawn else None,
                              forced=forced, injected=injected, text="", planner_ms=planner_ms, continued=glued)
            yield StrategyChosen(trace)

            t0 = time.perf_counter()
            text_parts: list[str] = []
            eos: bool | None = None
            reasoning = strategy_id != TERMINATION and not plain
            # A step that starts by copying an earlier one is dropped and written again without its
            # instruction (the reasoner, left alone, goes on); a reasoner whose every token is kept
            # (joint training) cannot drop text, so there the copy only ends the reasoning.
            guard = CopyGuard(t.text for t in traces) if reasoning and not getattr(
                self.reasoner, "append_only", False) else None
            while True:
                cap = max_tokens
                if cfg.max_total_tokens is not None:  # never past the client's total budget
                    left = cfg.max_total_tokens - usage.completion_tokens
                    cap = min(max_tokens, left if strategy_id == TERMINATION or plain else left - cfg.answer_reserve())
                    if cap < 1:
                        break
                async for chunk in write_step(self.reasoner, StepRequest(
                        model=cfg.model, question=question, context=cfg.context, steps=written, pending=injected,
                        max_tokens=cap,
                        stop=stop, temperature=cfg.reasoner_temperature, seed=cfg.seed, request_id=request_id,
                        glued=glued, delimiter=cfg.delimiter,
                        sampling=cfg.sampling), cfg.bounds(strategy_id)):
                    if isinstance(chunk, StepDone):
                        trace.finish_reason = chunk.finish_reason
                        trace.tokens += chunk.completion_tokens
                        usage.add(chunk, reasoning=strategy_id != TERMINATION)
                        eos = chunk.eos
                        continue
                    for out in (guard.feed(chunk) if guard else (chunk,)):
                        text_parts.append(out)
                        yield TextDelta(index, out)
                for out in (guard.flush() if guard else ()):
                    text_parts.append(out)
                    yield TextDelta(index, out)
                if not (guard and guard.copied):
                    break
                guard, injected = None, ""
                trace.injected, trace.rewritten = "", True
            trace.reasoner_ms = (time.perf_counter() - t0) * 1000
            timings.reasoner_ms += trace.reasoner_ms
            trace.text = "".join(text_parts)
            if reasoning:
                if cfg.answer_format == "boxed" and first_boxed(trace.text) is not None:
                    trace.ends_reasoning = "answer"
                elif eos:
                    trace.ends_reasoning = "eos"
                elif restates(trace.text, (t.text for t in traces)):
                    trace.ends_reasoning = "repeat"
                reasoned = trace.ends_reasoning is not None
            written.append(WrittenStep(injected=injected, text=trace.text, glued=glued))
            cut = reasoning and trace.finish_reason == "length"
            traces.append(trace)
            yield StepEnded(trace)

            if strategy_id == TERMINATION:
                finish_reason = ("degraded" if degraded else "termination" if cfg.baseline is not None else
                                 "max_steps" if last and forced and not reasoned else "termination")
                break
            if trace.ends_reasoning == "answer":  # the reasoner wrote its final answer: nothing left to ask
                finish_reason, answer = "termination", first_boxed(trace.text)
                break

        full_text = chain_of_thought(written, cfg.delimiter)
        final = written[-1]
        usage.total_tokens = usage.prompt_tokens + usage.completion_tokens
        timings.total_ms = (time.perf_counter() - t_start) * 1000
        timings.overhead_ms = max(0.0, timings.total_ms - timings.planner_ms - timings.reasoner_ms)
        if answer is None:
            answer = final_answer(cfg.answer_format, full_text, final.text)
        yield Finished(SolveResponse(
            id=request_id, model=cfg.model, answer=answer,
            text=full_text, steps=traces, finish_reason=finish_reason, degraded=degraded, usage=usage,
            timings=timings, planner_version=planner_version, catalog_version=self.catalog.version))

"""The step loop (DESIGN.md §4): decision → injection → reasoner step, until termination or
`max_steps`. A step that starts by copying an earlier one is written again without its instruction. A
reasoning step that writes a boxed answer ends the episode with it; one after which the reasoner has
nothing to add — it ended its message, or copied an earlier step even so — goes to the answer step (§4.2).
Each step is three named decisions on the episode's state (`EpisodeState`): who decides it (`whose_turn`),
what it does (`Orchestrator.decide`: the planner's choice through the gate, a quiet step when the gate is
closed or the decision is late) and what is injected (`Orchestrator.prompt`); a branch rollout is the same
loop from a copy of the state with another action (`run(state=…, action=…)`).
No web framework here: the service, the training worker and the eval harness all run exactly this loop,
as a stream of events (L1)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from typing import Literal

from service.plan_protocol import PlanRequest, PlanStep
from service.answer import AnswerFormat, answer_instruction, answer_stop, final_answer, first_boxed
from service.baselines import BASELINES
from service.catalog import QUIET, TERMINATION, UNGUIDED, Catalog
from service.errors import InvalidRequest, Overloaded, PlannerLate, PlannerUnavailable
from service.gate import GateMode, gate
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
    # the gate (service.gate): `open` injects every planner choice (the paper, and what training samples),
    # `gated` only a choice whose predicted gain over quiet reaches `gate_margin` (None: the checkpoint's),
    # `shadow` records the planner's choice and injects nothing
    gate: GateMode = "open"
    gate_margin: float | None = None
    # a planner decision not back in this many seconds is a quiet step (flagged `late`), never a failed
    # request; None: wait as long as the planner client does
    decision_timeout_s: float | None = None

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
class Deciding:
    """Before a decision point (a step the planner decides), with a copy of the episode's state: a branch
    rollout goes on from it with another action (`Orchestrator.run(state=…, action=…)`). Only emitted by
    `run(snapshots=True)`."""

    state: EpisodeState


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


Event = Deciding | StrategyChosen | TextDelta | StepEnded | Finished


def plain_budget_ok(cfg: EpisodeConfig, used: int) -> bool:
    """Whether a client's total budget still holds a reasoning step of useful size and the answer."""
    assert cfg.max_total_tokens is not None
    return cfg.max_total_tokens - used - cfg.answer_reserve() >= max(1, cfg.min_step_tokens)


@dataclass
class EpisodeState:
    """What the loop knows between two steps. Everything the next step depends on is here, so an episode
    can go on from a copy of it (a branch)."""

    index: int = -1  # the step last written
    written: list[WrittenStep] = field(default_factory=list)
    traces: list[StepTrace] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    timings: Timings = field(default_factory=Timings)
    planner_version: str | None = None
    degraded: bool = False  # the planner went away: plain chain of thought, then the answer
    reasoned: bool = False  # the reasoning has ended: the reasoner closed its message, repeated itself, or no budget
    tailed: bool = False  # the unguided tail has been written
    cut: bool = False  # the last reasoning step was cut by its token budget

    def copy(self) -> EpisodeState:
        return replace(self, written=list(self.written), traces=[t.model_copy(deep=True) for t in self.traces],
                       usage=self.usage.model_copy(), timings=self.timings.model_copy())


Who = Literal["baseline", "tail", "reasoner", "forced", "planner", "answer"]


@dataclass(frozen=True)
class Turn:
    """Who decides the step about to be written: a prompt baseline's one step, the unguided tail, the reasoner
    alone (the opening step, or a cut step continued), a forced strategy, the planner, or the answer."""

    who: Who
    last: bool
    glued: bool = False  # goes on from the previous step's last word (no delimiter, nothing injected)


def whose_turn(state: EpisodeState, cfg: EpisodeConfig) -> Turn:
    index = state.index + 1
    last = index >= cfg.max_steps - 1
    if cfg.baseline is not None:
        return Turn("baseline" if index == 0 else "answer", last)
    tail = (last and cfg.unguided_tail and not (state.tailed or state.degraded or state.reasoned)
            and cfg.reasoning_budget() - state.usage.reasoning_tokens >= max(1, cfg.min_step_tokens))
    glued = state.cut and cfg.continue_cut and not (state.degraded or state.reasoned) and (tail or not last)
    if tail:
        return Turn("tail", last, glued)
    if state.degraded or last or state.reasoned:
        return Turn("answer", last)
    if (index == 0 and cfg.first_step == "reasoner") or glued:
        return Turn("reasoner", last, glued)
    return Turn("forced" if cfg.force is not None else "planner", last)


@dataclass
class Decision:
    """What the step does: a catalog strategy, UNGUIDED or a baseline, with what the planner said."""

    strategy: str
    forced: bool = True
    plain: bool = False  # the planner just went away: plain chain of thought for the budget left
    quiet: bool = False  # the planner's step kept quiet (gate closed, shadow, late): nothing injected
    probability: float | None = None
    probabilities: dict[str, float] | None = None
    drawn: tuple[str, float] | None = None  # the planner's (mode, μ(choice)) when its choice is the step
    planned: str | None = None
    gain: float | None = None
    gate: str | None = None
    planner_ms: float = 0.0


def episode_token_budget(cfg: EpisodeConfig) -> int:
    """The most reasoner tokens one episode may generate: every step at its budget (the unguided tail and continued
    cuts stay inside (max_steps − 1) steps' worth), plus the answer; a client's `max_tokens` caps it."""
    worst = cfg.max_steps * cfg.max_tokens_per_step + cfg.final_max_tokens
    return min(worst, cfg.max_total_tokens) if cfg.max_total_tokens else worst


class Orchestrator:
    def __init__(self, planner: Planner, reasoner: OpenAIReasoner, catalog: Catalog, *,
                 on_planner_down: str = "error"):
        self.planner, self.reasoner, self.catalog = planner, reasoner, catalog
        self.on_planner_down = on_planner_down
        self.quiet_id = QUIET if QUIET in catalog.ids else UNGUIDED

    def check(self, cfg: EpisodeConfig, *, episodes: int = 1, max_request_tokens: int | None = None) -> None:
        """Reject unknown strategy ids, and a request whose `episodes` could spend more than `max_request_tokens`
        reasoner tokens together (`episode_token_budget`), before any upstream call."""
        if max_request_tokens is not None and episodes * episode_token_budget(cfg) > max_request_tokens:
            each = episode_token_budget(cfg)
            raise InvalidRequest(f"this request may spend up to {episodes} × {each} = {episodes * each} reasoner "
                                 f"tokens ({episodes} episode(s) of {cfg.max_steps} steps × {cfg.max_tokens_per_step} "
                                 f"tokens + a {cfg.final_max_tokens}-token answer); this service allows "
                                 f"{max_request_tokens} per request (RSIM_MAX_REQUEST_TOKENS): ask for fewer steps, "
                                 "tokens or choices", param="max_steps", code="request_budget_exceeded")
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

    async def solve(self, question: str, cfg: EpisodeConfig, *, request_id: str | None = None,
                    state: EpisodeState | None = None, action: str | None = None) -> SolveResponse:
        async for event in self.run(question, cfg, request_id=request_id, state=state, action=action):
            if isinstance(event, Finished):
                return event.result
        raise AssertionError("episode ended without a result")

    async def decide(self, turn: Turn, state: EpisodeState, cfg: EpisodeConfig, planner_question: str,
                     request_id: str, action: str | None) -> Decision:
        """The step's strategy: fixed by the turn, set from outside (`action`: a branch), or the planner's
        choice through the gate. A late decision is a quiet step; a planner gone away is plain reasoning."""
        if turn.who == "baseline":
            return Decision(str(cfg.baseline))
        if turn.who == "answer":
            return Decision(TERMINATION)
        if turn.who in ("tail", "reasoner"):
            return Decision(UNGUIDED)
        if action is not None:
            return Decision(action, gate="branch")
        if turn.who == "forced":
            return Decision(str(cfg.force))
        return await self.consult(self.plan_request(state, cfg, planner_question), state, cfg, request_id)

    def plan_request(self, state: EpisodeState, cfg: EpisodeConfig, planner_question: str) -> PlanRequest:
        """What the planner is asked at the next decision point: the question and the steps so far."""
        index = state.index + 1
        return PlanRequest(question=planner_question,
                           steps=[PlanStep(strategy=t.strategy, text=t.text) for t in state.traces],
                           temperature=cfg.planner_temperature, forbid=cfg.forbid,
                           seed=None if cfg.seed is None else cfg.seed + index)

    async def consult(self, request: PlanRequest, state: EpisodeState, cfg: EpisodeConfig,
                      request_id: str) -> Decision:
        """The planner's answer to `request`, through the gate, within the decision deadline."""
        t0 = time.perf_counter()

        def waited_ms() -> float:
            return (time.perf_counter() - t0) * 1000

        try:
            if cfg.decision_timeout_s is None:
                plan = await self.planner.plan(request, request_id=request_id)
            else:
                plan = await asyncio.wait_for(self.planner.plan(request, request_id=request_id),
                                              cfg.decision_timeout_s)
        except (asyncio.TimeoutError, PlannerLate, Overloaded):
            return Decision(self.quiet_id, quiet=True, gate="late", planner_ms=waited_ms())
        except PlannerUnavailable:
            if cfg.gate != "open":  # a gated or shadow loop needs no planner to answer: the step is quiet
                return Decision(self.quiet_id, quiet=True, gate="down", planner_ms=waited_ms())
            if self.on_planner_down != "degrade":
                raise
            state.degraded = True
            return Decision(self.quiet_id, plain=True, planner_ms=waited_ms())
        planner_ms = waited_ms()
        state.usage.planner_calls += 1
        state.usage.planner_tokens += plan.tokens or 0
        state.planner_version = plan.planner_version
        verdict = gate(plan, cfg.gate, cfg.gate_margin)
        said = dict(probability=plan.probabilities[plan.strategy], probabilities=plan.probabilities,
                    planned=plan.strategy, gain=verdict.gain, gate=verdict.state, planner_ms=planner_ms)
        if not verdict.speak:
            return Decision(self.quiet_id, quiet=True, **said)
        return Decision(plan.strategy, forced=False, drawn=(plan.mode, plan.behaviour_probability), **said)

    def prompt(self, decision: Decision, turn: Turn, state: EpisodeState,
               cfg: EpisodeConfig) -> tuple[str, int, list[str] | None]:
        """What is injected before the step, its token budget and its stops."""
        index, strategy_id = state.index + 1, decision.strategy
        if turn.who == "baseline":
            return BASELINES[strategy_id], cfg.reasoning_budget(), None
        if decision.plain:
            return "", (cfg.max_steps - index - 1) * cfg.max_tokens_per_step, None
        if turn.who == "tail":  # the reasoner finishes its reasoning on its own, in the budget left
            return "", cfg.reasoning_budget() - state.usage.reasoning_tokens, None
        if strategy_id == UNGUIDED or decision.quiet:
            return "", cfg.max_tokens_per_step, [cfg.delimiter]
        if strategy_id == TERMINATION:
            injected = answer_instruction(cfg.answer_format, injection_text(self.catalog.get(TERMINATION), index))
            stop = answer_stop(cfg.answer_format, cfg.delimiter)
            if cfg.answer_stop:
                stop = (stop or []) + cfg.answer_stop
            return injected, cfg.final_max_tokens, stop
        return injection_text(self.catalog.get(strategy_id), index), cfg.max_tokens_per_step, [cfg.delimiter]

    async def write(self, trace: StepTrace, decision: Decision, turn: Turn, state: EpisodeState, cfg: EpisodeConfig,
                    question: str, max_tokens: int, stop: list[str] | None,
                    request_id: str) -> AsyncIterator[TextDelta]:
        """The reasoner writes the step under its instruction, streaming; its text, tokens and end go on
        `trace`. A step that starts by copying an earlier one is dropped and written again without its
        instruction (the reasoner, left alone, goes on); a reasoner whose every token is kept (joint
        training) cannot drop text, so there the copy only ends the reasoning."""
        strategy_id, injected = decision.strategy, trace.injected
        answering = strategy_id == TERMINATION or decision.plain
        reasoning = strategy_id != TERMINATION and not decision.plain
        guard = CopyGuard(t.text for t in state.traces) if reasoning and not getattr(
            self.reasoner, "append_only", False) else None
        usage, parts = state.usage, []
        t0 = time.perf_counter()
        eos: bool | None = None
        while True:
            cap = max_tokens
            if cfg.max_total_tokens is not None:  # never past the client's total budget
                left = cfg.max_total_tokens - usage.completion_tokens
                cap = min(max_tokens, left if answering else left - cfg.answer_reserve())
                if cap < 1:
                    break
            async for chunk in write_step(self.reasoner, StepRequest(
                    model=cfg.model, question=question, context=cfg.context, steps=state.written, pending=injected,
                    max_tokens=cap, stop=stop, temperature=cfg.reasoner_temperature, seed=cfg.seed,
                    request_id=request_id, glued=turn.glued, delimiter=cfg.delimiter,
                    sampling=cfg.sampling), cfg.bounds(strategy_id)):
                if isinstance(chunk, StepDone):
                    trace.finish_reason = chunk.finish_reason
                    trace.tokens += chunk.completion_tokens
                    usage.add(chunk, reasoning=strategy_id != TERMINATION)
                    eos = chunk.eos
                    continue
                for out in (guard.feed(chunk) if guard else (chunk,)):
                    parts.append(out)
                    yield TextDelta(trace.index, out)
            for out in (guard.flush() if guard else ()):
                parts.append(out)
                yield TextDelta(trace.index, out)
            if not (guard and guard.copied):
                break
            guard, injected = None, ""
            trace.injected, trace.rewritten = "", True
        trace.reasoner_ms = (time.perf_counter() - t0) * 1000
        state.timings.reasoner_ms += trace.reasoner_ms
        trace.text = "".join(parts)
        if reasoning:
            if cfg.answer_format == "boxed" and first_boxed(trace.text) is not None:
                trace.ends_reasoning = "answer"
            elif eos:
                trace.ends_reasoning = "eos"
            elif restates(trace.text, (t.text for t in state.traces)):
                trace.ends_reasoning = "repeat"
            state.reasoned = trace.ends_reasoning is not None
        state.cut = reasoning and trace.finish_reason == "length"

    async def run(self, question: str, cfg: EpisodeConfig, *, request_id: str | None = None,
                  state: EpisodeState | None = None, action: str | None = None,
                  snapshots: bool = False) -> AsyncIterator[Event]:
        """The episode as events. `state`: go on from a copy of an earlier episode's state (a branch), with
        `action` taken at the first decision point instead of asking the planner; `snapshots`: emit
        `Deciding` before each decision point."""
        self.check(cfg)
        if action is not None and action not in self.catalog.ids:
            raise InvalidRequest(f"unknown strategy '{action}'", param="action")
        request_id = request_id or uuid.uuid4().hex
        planner_question = transcript(cfg.context, question)
        t_start = time.perf_counter()
        state = state.copy() if state is not None else EpisodeState()
        finish_reason = "max_steps"
        answer: str | None = None  # the reasoner's own boxed answer, when a reasoning step wrote one

        while True:
            if cfg.max_total_tokens is not None and not plain_budget_ok(cfg, state.usage.completion_tokens):
                state.reasoned = True  # no room for another reasoning step in the client's budget: answer now
            turn = whose_turn(state, cfg)
            if turn.who in ("planner", "forced") and snapshots:
                yield Deciding(state.copy())
            beside = None  # shadow: the step is quiet whatever the planner says, so it is asked beside the step
            if turn.who == "planner" and cfg.gate == "shadow" and action is None:
                beside = asyncio.create_task(self.consult(self.plan_request(state, cfg, planner_question), state,
                                                          cfg, request_id))
                decision = Decision(self.quiet_id, quiet=True, gate="shadow")
            else:
                decision = await self.decide(turn, state, cfg, planner_question, request_id, action)
            if decision.gate == "branch":
                action = None  # the branch's action is taken once; the loop goes on as it would
            injected, max_tokens, stop = self.prompt(decision, turn, state, cfg)
            state.index += 1
            state.tailed = state.tailed or turn.who == "tail"
            state.timings.planner_ms += decision.planner_ms
            trace = StepTrace(index=state.index, strategy=decision.strategy, probability=decision.probability,
                              probabilities=decision.probabilities,
                              decision=decision.drawn[0] if decision.drawn else None,
                              behaviour_probability=decision.drawn[1] if decision.drawn else None,
                              forced=decision.forced, injected=injected, text="", planner_ms=decision.planner_ms,
                              continued=turn.glued, planned=decision.planned, gain=decision.gain, gate=decision.gate)
            yield StrategyChosen(trace)
            try:
                async for delta in self.write(trace, decision, turn, state, cfg, question, max_tokens, stop,
                                              request_id):
                    yield delta
                if beside is not None:  # the decision, for the record; only a wait past the step counts
                    t_wait = time.perf_counter()
                    said = await beside
                    waited = (time.perf_counter() - t_wait) * 1000
                    state.timings.planner_ms += waited
                    trace.planned, trace.gain, trace.gate = said.planned, said.gain, said.gate
                    trace.probability, trace.probabilities = said.probability, said.probabilities
                    trace.planner_ms = said.planner_ms
            finally:
                if beside is not None and not beside.done():
                    beside.cancel()
            state.written.append(WrittenStep(injected=trace.injected, text=trace.text, glued=turn.glued))
            state.traces.append(trace)
            yield StepEnded(trace)

            if decision.strategy == TERMINATION:
                finish_reason = ("degraded" if state.degraded else "termination" if cfg.baseline is not None else
                                 "max_steps" if turn.last and decision.forced and not state.reasoned
                                 else "termination")
                break
            if trace.ends_reasoning == "answer":  # the reasoner wrote its final answer: nothing left to ask
                finish_reason, answer = "termination", first_boxed(trace.text)
                break

        full_text = chain_of_thought(state.written, cfg.delimiter)
        usage, timings = state.usage, state.timings
        usage.total_tokens = usage.prompt_tokens + usage.completion_tokens
        timings.total_ms = (time.perf_counter() - t_start) * 1000
        timings.overhead_ms = max(0.0, timings.total_ms - timings.planner_ms - timings.reasoner_ms)
        if answer is None:
            answer = final_answer(cfg.answer_format, full_text, state.written[-1].text)
        yield Finished(SolveResponse(
            id=request_id, model=cfg.model, answer=answer,
            text=full_text, steps=state.traces, finish_reason=finish_reason, degraded=state.degraded, usage=usage,
            timings=timings, planner_version=state.planner_version, catalog_version=self.catalog.version))

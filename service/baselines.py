"""Prompt-only baselines on the same reasoner client and answer format as the strategy loop:
zero-shot chain of thought and Plan-and-Solve (PS+). One reasoning step under the baseline's
instruction with the whole step budget, then the catalog's termination instruction, so every method
ends with the same final-answer prompt and is scored the same way (L1)."""

from __future__ import annotations

import time
import uuid

from service.answer import answer_instruction, answer_stop, final_answer
from service.catalog import TERMINATION, Catalog
from service.injection import WrittenStep, chain_of_thought, injection_text
from service.orchestrator import EpisodeConfig
from service.protocol import SolveResponse, StepTrace, Timings, Usage
from service.reasoner import OpenAIReasoner, StepDone, StepRequest
from service.step import write_step

BASELINES = {
    "zerocot": "Let's think step by step.",
    "ps+": ("Let's first understand the problem, extract relevant variables and their corresponding numerals, "
            "and devise a plan. Then, let's carry out the plan, calculate intermediate variables (pay attention to "
            "correct numerical calculation and commonsense), solve the problem step by step, and show the answer."),
}


async def prompt_baseline(reasoner: OpenAIReasoner, question: str, cfg: EpisodeConfig, catalog: Catalog,
                          method: str, *, request_id: str | None = None) -> SolveResponse:
    t_start = time.perf_counter()
    rid = request_id or uuid.uuid4().hex
    written: list[WrittenStep] = []
    traces: list[StepTrace] = []
    usage, timings = Usage(), Timings()
    plan = [(method, BASELINES[method], cfg.max_tokens_per_step * max(1, cfg.max_steps - 1), None),
            (TERMINATION, answer_instruction(cfg.answer_format, injection_text(catalog.get(TERMINATION), 1)),
             cfg.final_max_tokens, answer_stop(cfg.answer_format, cfg.delimiter))]
    for index, (label, instruction, budget, stop) in enumerate(plan):
        t0 = time.perf_counter()
        parts: list[str] = []
        trace = StepTrace(index=index, strategy=label, forced=True, injected=instruction, text="")
        async for chunk in write_step(reasoner, StepRequest(model=cfg.model, question=question, steps=written,
                                                            pending=instruction, max_tokens=budget, stop=stop,
                                                            temperature=cfg.reasoner_temperature, seed=cfg.seed,
                                                            request_id=rid, delimiter=cfg.delimiter),
                                  cfg.bounds(label)):
            if isinstance(chunk, StepDone):
                trace.tokens, trace.finish_reason = chunk.completion_tokens, chunk.finish_reason
                usage.add(chunk, reasoning=label != TERMINATION)
            else:
                parts.append(chunk)
        trace.text = "".join(parts)
        trace.reasoner_ms = (time.perf_counter() - t0) * 1000
        timings.reasoner_ms += trace.reasoner_ms
        written.append(WrittenStep(instruction, trace.text))
        traces.append(trace)
    text = chain_of_thought(written, cfg.delimiter)
    usage.total_tokens = usage.prompt_tokens + usage.completion_tokens
    timings.total_ms = (time.perf_counter() - t_start) * 1000
    timings.overhead_ms = max(0.0, timings.total_ms - timings.reasoner_ms)
    return SolveResponse(id=rid, model=cfg.model, answer=final_answer(cfg.answer_format, text, written[-1].text), text=text,
                         steps=traces, finish_reason="termination", usage=usage, timings=timings,
                         planner_version=None, catalog_version=catalog.version)

"""`POST /solve`: strategy-injected reasoning as JSON, or as SSE events while it happens."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from service.errors import RsimError, error_envelope
from service.orchestrator import EpisodeConfig, Finished, StepEnded, StrategyChosen, TextDelta
from service.protocol import SolveRequest, SolveResponse
from service.sse import sse, with_keepalive
from service.state import State, ServiceState, caller, cancel_on_disconnect, json_body
from service.web import request_id

router = APIRouter()
log = logging.getLogger("rsim.solve")

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
SolveBody = Annotated[SolveRequest, json_body(SolveRequest)]


async def solve_events(state: ServiceState, question: str, cfg: EpisodeConfig, rid: str,
                       outcome: dict, owner: str | None = None) -> AsyncIterator[bytes]:
    """`outcome`: the request's scope state, where a failure after the 200 went out leaves its status;
    `owner`: the caller's key (`caller`), whose trace this is."""
    try:
        async for event in state.orchestrator_for(cfg.model).run(question, cfg, request_id=rid):
            if isinstance(event, StrategyChosen):
                yield sse(event.step.model_dump(exclude={"text", "tokens", "reasoner_ms", "finish_reason"}),
                          "strategy")
            elif isinstance(event, TextDelta):
                yield sse({"index": event.index, "text": event.text}, "delta")
            elif isinstance(event, StepEnded):
                yield sse(event.step.model_dump(), "step_end")
            elif isinstance(event, Finished):
                result = event.result
                state.finished(question, result, owner=owner)
                yield sse({"answer": result.answer}, "answer")
                yield sse(result.usage.model_dump(), "usage")
                yield sse(result.model_dump(exclude={"steps", "text"}), "done")
    except RsimError as e:
        outcome["outcome_status"] = e.status_code
        yield sse(e.envelope(), "error")
    except Exception:
        log.exception("solve stream %s failed", rid)
        outcome["outcome_status"] = 500
        yield sse(error_envelope("internal server error"), "error")


@router.post("/solve", response_model=SolveResponse)
async def solve(req: SolveBody, request: Request, state: State):
    model = await state.resolve_model(req.model)
    rid = request_id(request)
    cfg = state.episode(model, max_steps=req.max_steps, max_tokens_per_step=req.max_tokens_per_step,
                        temperature=req.temperature, reasoner_temperature=req.reasoner_temperature,
                        force=req.force, forbid=req.forbid, seed=req.seed, first_step=req.first_step,
                        final_max_tokens=req.final_max_tokens, gate=req.gate, gate_margin=req.gate_margin)
    # bad ids, and a budget past RSIM_MAX_REQUEST_TOKENS, are a 400 before any stream starts
    state.orchestrator_for(model).check(cfg, max_request_tokens=state.settings.max_request_tokens)
    if req.stream:
        events = solve_events(state, req.question, cfg, rid, request.scope.setdefault("state", {}), caller(request))
        return StreamingResponse(with_keepalive(events, state.settings.keepalive_s),
                                 media_type="text/event-stream", headers=SSE_HEADERS)
    result = await cancel_on_disconnect(request, state.orchestrator_for(model).solve(req.question, cfg,
                                                                                     request_id=rid))
    state.finished(req.question, result, owner=caller(request))
    return result

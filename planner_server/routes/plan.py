"""`POST /v1/plan`, `POST /v1/plan/batch`, `GET /v1/strategies`."""

from __future__ import annotations

import asyncio
import time

from fastapi import APIRouter

from planner_server.backends import PlanItem
from planner_server.decision import decide
from planner_server.protocol import PlanBatchRequest, PlanBatchResponse, PlanRequest, PlanResponse
from planner_server.state import PlannerState, State
from service.catalog import UNGUIDED
from service.errors import InvalidRequest

router = APIRouter()


def check_ids(state: PlannerState, req: PlanRequest, prefix: str = "") -> list[int]:
    """Validate strategy ids against the served catalog; return the forbidden indices."""
    known = {*state.catalog.ids, UNGUIDED}  # an unguided step (the reasoner's own) is part of the reasoning too
    for i, step in enumerate(req.steps):
        if step.strategy not in known:
            raise InvalidRequest(f"unknown strategy '{step.strategy}'", param=f"{prefix}steps.{i}.strategy")
    for i, sid in enumerate(req.forbid):
        if sid not in state.catalog.ids:
            raise InvalidRequest(f"unknown strategy '{sid}'", param=f"{prefix}forbid.{i}")
    forbidden = sorted({state.catalog.index(s) for s in req.forbid})
    if len(forbidden) == len(state.catalog):
        raise InvalidRequest("every strategy is forbidden", param=f"{prefix}forbid")
    return forbidden


async def plan_one(state: PlannerState, req: PlanRequest, forbidden: list[int]) -> PlanResponse:
    batcher = state.ready_batcher()
    t0 = time.perf_counter()
    state.metrics.queue_depth.set(batcher.depth)
    item = PlanItem(req.question, req.steps)
    logits = await batcher.submit(item)
    d = decide(logits, temperature=req.temperature, forbidden=forbidden, seed=req.seed,
               exploration=state.settings.exploration)
    elapsed = time.perf_counter() - t0
    state.metrics.decisions.labels(state.catalog.ids[d.index]).inc()
    state.metrics.latency.observe(elapsed)
    return PlanResponse.of(d, state.catalog.ids, planner_version=state.backend.version if state.backend else "",
                           catalog_version=state.catalog.version, latency_ms=elapsed * 1000,
                           tokens=sum(item.tokens.values()) if item.tokens else None,
                           value_scale=getattr(state.backend, "value_scale", None),
                           margin=getattr(state.backend, "gate_margin", None))


@router.post("/v1/plan", response_model=PlanResponse)
async def plan(req: PlanRequest, state: State) -> PlanResponse:
    return await plan_one(state, req, check_ids(state, req))


@router.post("/v1/plan/batch", response_model=PlanBatchResponse)
async def plan_batch(req: PlanBatchRequest, state: State) -> PlanBatchResponse:
    forbidden = [check_ids(state, r, prefix=f"requests.{i}.") for i, r in enumerate(req.requests)]
    results = await asyncio.gather(*(plan_one(state, r, f) for r, f in zip(req.requests, forbidden, strict=True)))
    return PlanBatchResponse(responses=list(results))


@router.get("/v1/strategies")
async def strategies(state: State) -> dict:
    return state.catalog.describe()

"""`/ready` (reasoner lists models and planner is ready), `/metrics`, `/v1/strategies`."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from service.catalog import QUIET
from service.errors import NotReady, RsimError
from service.state import State

router = APIRouter()


@router.get("/ready")
async def ready(state: State) -> dict:
    """Ready when every upstream lists its models and the planner is ready (or may be missed: a gated or shadow
    gate, or RSIM_ON_PLANNER_DOWN=degrade)."""
    upstreams, down = {}, []
    for u in state.upstreams:
        try:
            upstreams[u.name] = {"status": "ready", "models": await u.refresh(max_age_s=0)}
            state.metrics.upstream_up.labels(u.name).set(1)
        except RsimError as e:
            upstreams[u.name] = {"status": "down", "error": e.message}
            state.metrics.upstream_up.labels(u.name).set(0)
            down.append(f"{u.name}: {e.message}")
    if down:
        raise NotReady(f"reasoner not ready: {'; '.join(down)}")
    models = await state.refresh_models(max_age_s=1.0)  # the model map from the lists just read (no second call)
    planner_ok = await state.planner.ready()
    # a gated or shadow loop answers without the planner (its steps are quiet): only an open one needs it
    if not planner_ok and state.settings.gate == "open" and state.settings.on_planner_down == "error":
        raise NotReady(f"planner not ready at {state.settings.planner_url}")
    return {"status": "ready", "reasoner_models": models, "upstreams": upstreams,
            "planner": "ready" if planner_ok else "degraded", "catalog_version": state.catalog.version}


@router.get("/metrics")
async def metrics(state: State) -> Response:
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)


@router.get("/v1/strategies")
async def strategies(state: State) -> dict:
    """The catalog, and what the gate does with it: which action is the quiet step and what it injects."""
    s = state.settings
    return {**state.catalog.describe(), "gate": {
        "mode": s.gate, "margin": s.gate_margin, "quiet": QUIET if QUIET in state.catalog.ids else None,
        "about": "a quiet step injects nothing: the reasoner goes on with its own line of reasoning. The gate "
                 "(shadow: the planner's choice is recorded, never injected; gated: injected only where its "
                 "predicted gain over a quiet step reaches the margin; open: always) decides which steps are quiet."}}

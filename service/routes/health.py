"""`/ready` (reasoner lists models and planner is ready), `/metrics`, `/v1/strategies`."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from service.errors import NotReady, RsimError
from service.state import State

router = APIRouter()


@router.get("/ready")
async def ready(state: State) -> dict:
    try:
        models = await state.refresh_models(max_age_s=0)
    except RsimError as e:
        raise NotReady(f"reasoner not ready: {e.message}") from None
    planner_ok = await state.planner.ready()
    if not planner_ok and state.settings.on_planner_down == "error":
        raise NotReady(f"planner not ready at {state.settings.planner_url}")
    return {"status": "ready", "reasoner_models": models, "planner": "ready" if planner_ok else "degraded",
            "catalog_version": state.catalog.version}


@router.get("/metrics")
async def metrics(state: State) -> Response:
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)


@router.get("/v1/strategies")
async def strategies(state: State) -> dict:
    return state.catalog.describe()

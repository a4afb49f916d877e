"""`/ready` (model loaded), `/metrics` (Prometheus)."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from planner_server.state import State
from service.errors import NotReady

router = APIRouter()


@router.get("/ready")
async def ready(state: State) -> dict:
    if state.backend is None:
        raise NotReady(state.load_error or "planner model is still loading")
    return {"status": "ready", "planner_version": state.backend.version, "catalog_version": state.catalog.version,
            "backend": state.settings.backend}


@router.get("/metrics")
async def metrics(state: State) -> Response:
    if state.batcher is not None:
        state.metrics.queue_depth.set(state.batcher.depth)
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)

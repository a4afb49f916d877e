"""`/ready` (reasoner lists models and planner is ready), `/metrics`, `/v1/strategies`."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from service.catalog import QUIET
from service.errors import NotFound, NotReady, RsimError
from service.state import ServiceState, State

log = logging.getLogger("rsim.service")
router = APIRouter()


@router.get("/ready")
async def ready(request: Request, state: State) -> dict:
    """Ready when every upstream lists its models and the planner is ready (or may be missed: a gated or shadow
    gate, or RSIM_ON_PLANNER_DOWN=degrade). One probe of the upstreams per RSIM_READY_CACHE_S, however often
    it is asked (concurrent callers share the probe in flight); the answer names upstreams, never their URLs
    (those go to the log)."""
    cache: ReadyCache | None = getattr(request.app.state, "ready_cache", None)
    if cache is None:  # the app's first /ready (no await since the lookup: no other caller in between)
        cache = request.app.state.ready_cache = ReadyCache()
    answer, error = await cache.get(state.settings.ready_cache_s, lambda: probe(state))
    if error is not None:
        raise error[0](error[1])  # a new exception each time: a kept one would grow its traceback per raise
    return answer


class ReadyCache:
    """The last /ready outcome (its answer, or its error's class and message) and when it was taken; one probe
    at a time."""

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.at: float = -math.inf
        self.outcome: tuple[dict | None, tuple[type[RsimError], str] | None] = (None, None)

    async def get(self, max_age_s: float, probe: Callable[[], Awaitable[dict]]
                  ) -> tuple[dict | None, tuple[type[RsimError], str] | None]:
        async with self.lock:
            if time.monotonic() - self.at >= max_age_s:
                try:
                    self.outcome = (await probe(), None)
                except RsimError as e:
                    self.outcome = (None, (type(e), e.message))
                self.at = time.monotonic()
            return self.outcome


async def probe(state: ServiceState) -> dict:
    upstreams, down = {}, []
    for u in state.upstreams:
        try:
            upstreams[u.name] = {"status": "ready", "models": await u.refresh(max_age_s=0)}
            state.metrics.upstream_up.labels(u.name).set(1)
        except RsimError as e:
            log.warning("ready: upstream %s down: %s", u.name, e.message)
            upstreams[u.name] = {"status": "down", "error": e.code}
            state.metrics.upstream_up.labels(u.name).set(0)
            down.append(f"{u.name} ({e.code})")
    if down:
        raise NotReady(f"reasoner not ready: {', '.join(down)}")
    models = await state.refresh_models(max_age_s=1.0)  # the model map from the lists just read (no second call)
    planner_ok = await state.planner.ready()
    # a gated or shadow loop answers without the planner (its steps are quiet): only an open one needs it
    if not planner_ok and state.settings.gate == "open" and state.settings.on_planner_down == "error":
        log.warning("ready: planner not ready at %s", state.settings.planner_url)
        raise NotReady("planner not ready")
    return {"status": "ready", "reasoner_models": models, "upstreams": upstreams,
            "planner": "ready" if planner_ok else "degraded", "catalog_version": state.catalog.version}


@router.get("/metrics")
async def metrics(state: State) -> Response:
    if state.settings.metrics_port is not None:  # served apart, on a port the API's clients do not reach
        raise NotFound("no route GET /metrics")
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

"""Planner server app factory: the lifespan loads the backend in the background and runs the batcher."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI
from starlette.types import Scope

from planner_server.backends import PlannerBackend, start_backend
from planner_server.batcher import MicroBatcher
from planner_server.metrics import PlannerMetrics
from planner_server.reload import watch_latest
from planner_server.routes import admin, health, plan
from planner_server.settings import PlannerSettings
from planner_server.state import PlannerState
from service.catalog import load_catalog
from service.web import (BodyLimitMiddleware, RequestIdMiddleware, RequestMetricsMiddleware, install_error_handlers,
                         install_health)

log = logging.getLogger("rsim.planner")


MAX_BODY_BYTES = 4 * 1024 * 1024  # a plan request is a question and its steps: bounded well below this


_ENDPOINTS = {"/v1/plan": "plan", "/v1/plan/batch": "plan_batch", "/v1/strategies": "strategies",
              "/admin/reload": "admin_reload", "/health": "health", "/ready": "ready", "/metrics": "metrics"}


def endpoint_label(scope: Scope) -> str:
    """`rsim_planner_requests_total`'s endpoint: the server's own paths by name, anything else `other`."""
    return _ENDPOINTS.get(scope["path"], "other")


def count_request(scope: Scope, endpoint: str, status: int) -> None:
    state = getattr(scope["app"].state, "planner", None)
    if state is not None:
        state.metrics.count(endpoint, status)


def create_app(settings: PlannerSettings | None = None, *, backend: PlannerBackend | None = None) -> FastAPI:
    settings = settings or PlannerSettings()
    catalog = load_catalog(settings.catalog_path)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        log.info("planner settings: %s", settings.model_dump(exclude={"prompted_api_key"}))
        state = PlannerState(settings=settings, catalog=catalog, metrics=PlannerMetrics())
        app.state.planner = state

        def on_batch(size: int, seconds: float) -> None:
            state.metrics.batch_size.observe(size)
            state.metrics.forward.observe(seconds)

        async def load() -> None:
            try:
                state.backend = backend or await start_backend(settings, catalog)
            except Exception as e:
                state.load_error = f"planner failed to load: {e}"
                log.exception("planner failed to load")
                return
            state.batcher = MicroBatcher(state.label_logits, max_batch=settings.max_batch,
                                         max_wait_ms=settings.max_wait_ms, queue_size=settings.queue_size,
                                         timeout_s=settings.request_timeout_s, on_batch=on_batch,
                                         max_in_flight=settings.max_in_flight
                                         or getattr(state.backend, "max_in_flight", 1),
                                         on_reject=state.metrics.rejected.inc)
            state.batcher.start()
            log.info("planner ready: %s (catalog %s)", state.backend.version, catalog.version)
            if settings.watch_s:
                state.watcher = asyncio.create_task(watch_latest(state, settings.watch_s))

        state.loading = asyncio.create_task(load())
        try:
            yield
        finally:
            for task in (state.loading, state.watcher):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task
            if state.batcher:
                await state.batcher.stop()
            if state.backend is not None and backend is None:  # an injected backend belongs to the caller
                await state.backend.close()

    app = FastAPI(title="rsim planner", version="0.1.0", lifespan=lifespan)
    app.add_middleware(BodyLimitMiddleware, max_bytes=MAX_BODY_BYTES)
    app.add_middleware(RequestIdMiddleware)
    app.add_middleware(RequestMetricsMiddleware, label=endpoint_label, count=count_request)
    install_error_handlers(app)
    install_health(app)
    app.include_router(plan.router)
    app.include_router(health.router)
    app.include_router(admin.router)
    return app

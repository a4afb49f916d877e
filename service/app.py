"""Service app factory: the lifespan opens the one pooled upstream session and builds the orchestrator."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import Depends, FastAPI
from fastapi.openapi.utils import get_openapi
from prometheus_client import start_http_server
from starlette.types import Scope

from service.catalog import load_catalog
from service.limits import Limiter, LimitsMiddleware, RedisLimiter
from service.metrics import ServiceMetrics
from service.orchestrator import Orchestrator
from service.planner_client import HttpPlanner
from service.protocol import FeedbackRequest, SolveRequest
from service.reasoner import OpenAIReasoner, make_session
from service.routes import chat, feedback, health, passthrough, solve
from service.routes.passthrough import CHAT_PATH, PassthroughFastPath, forwarded
from service.routing import Upstream, load_routes
from service.settings import ServiceSettings
from service.state import ServiceState, require_api_key
from service.traces import TraceStore
from service.web import (BodyLimitMiddleware, RequestIdMiddleware, RequestMetricsMiddleware, document_body,
                         install_error_handlers, install_health)

log = logging.getLogger("rsim.service")


_OWN_ENDPOINTS = {"/solve": "solve", CHAT_PATH: "chat", "/v1/models": "models", "/v1/feedback": "feedback",
                  "/v1/strategies": "strategies", "/health": "health", "/ready": "ready", "/metrics": "metrics"}


def endpoint_label(scope: Scope) -> str:
    """`rsim_requests_total`'s endpoint: rsim's own paths by name, forwarded paths as one, anything else as
    `other` (a client's made-up paths never become labels). Chat is refined by its route (`chat_rsim`,
    `chat_passthrough`) once the model is known; `chat` is a chat request refused before that."""
    path = scope["path"]
    return _OWN_ENDPOINTS.get(path) or ("passthrough" if forwarded(path) else
                                        "models" if path.startswith("/v1/models/") else "other")


def count_request(scope: Scope, endpoint: str, status: int) -> None:
    state = getattr(scope["app"].state, "rsim", None)
    if state is not None:  # None only before start-up finished
        state.metrics.count(endpoint, status)


def create_app(settings: ServiceSettings | None = None) -> FastAPI:
    settings = settings or ServiceSettings()
    catalog = load_catalog(settings.catalog_path)
    key_hashes = settings.api_key_hashes()  # a missing key file fails at start-up, not per request
    admin_hashes = settings.admin_key_hashes()  # and a blank admin key
    routes = load_routes(settings.routes_file) if settings.routes_file else None  # and a bad routing file
    route_keys = {r.name: r.key() for r in routes.reasoners} if routes else {}
    limiter: Limiter | RedisLimiter | None = None
    if settings.rate_limit_rpm or settings.max_concurrent_per_client:
        limiter = (RedisLimiter(settings.redis_url.get_secret_value(), settings.rate_limit_rpm,
                                settings.max_concurrent_per_client, ttl_s=settings.request_timeout_s + 60)
                   if settings.redis_url else Limiter(settings.rate_limit_rpm, settings.max_concurrent_per_client))

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        log.info("service settings: %s", settings.masked())
        session = make_session(connect_timeout_s=settings.connect_timeout_s, read_timeout_s=settings.read_timeout_s,
                               request_timeout_s=settings.request_timeout_s, max_connections=settings.max_connections)
        planner = HttpPlanner(session, settings.planner_url, timeout_s=settings.planner_timeout_s)

        def upstream(name: str, url: str, mode: str, key: str | None, **kw: object) -> Upstream:
            client = OpenAIReasoner(session, url, mode=mode, api_key=key, retries=settings.retries)  # type: ignore[arg-type]
            return Upstream(name, client, Orchestrator(planner, client, catalog,
                                                       on_planner_down=settings.on_planner_down), **kw)  # type: ignore[arg-type]

        if routes is not None:
            upstreams = [upstream(r.name, r.url, r.mode, route_keys[r.name], listed=r.models, episode=r.episode)
                         for r in routes.reasoners]
        else:
            key = settings.reasoner_api_key.get_secret_value() if settings.reasoner_api_key else None
            upstreams = [upstream("reasoner", settings.reasoner_url or "", settings.reasoner_mode, key)]
        metrics = ServiceMetrics()
        traces = None
        if settings.traces:
            traces = TraceStore(settings.trace_store.expanduser(), retention_days=settings.trace_retention_days,
                                max_rows=settings.trace_max_rows, on_failure=metrics.trace_write_failed)
            traces.start()
        app.state.rsim = ServiceState(
            settings=settings, catalog=catalog, metrics=metrics, session=session,
            reasoner=upstreams[0].reasoner, planner=planner, orchestrator=upstreams[0].orchestrator,
            traces=traces, api_key_hashes=key_hashes | admin_hashes, admin_key_hashes=admin_hashes,
            upstreams=upstreams)
        exporter = None
        if settings.metrics_port is not None:  # the registry on a port of its own (a thread of prometheus_client's)
            exporter, _ = start_http_server(settings.metrics_port, addr=settings.metrics_host,
                                            registry=metrics.registry)
        try:
            yield
        finally:
            if exporter is not None:
                exporter.shutdown()
                exporter.server_close()
            if traces is not None:
                await asyncio.to_thread(traces.close)  # every queued write applied before the process ends
            await session.close()
            if isinstance(limiter, RedisLimiter):
                await limiter.close()

    docs = {} if settings.docs else {"docs_url": None, "redoc_url": None, "openapi_url": None}
    app = FastAPI(title="rsim", version="0.1.0", lifespan=lifespan, **docs)
    app.add_middleware(PassthroughFastPath)  # innermost: after the request id, body limit and rate limits
    if limiter is not None:
        app.add_middleware(LimitsMiddleware, limiter=limiter)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestIdMiddleware)
    app.add_middleware(RequestMetricsMiddleware, label=endpoint_label, count=count_request)  # outermost: sees every status
    install_error_handlers(app)
    install_health(app)
    authed = [Depends(require_api_key)]
    app.include_router(solve.router, dependencies=authed)
    app.include_router(chat.router, dependencies=authed)
    app.include_router(feedback.router, dependencies=authed)
    app.include_router(health.router)
    app.include_router(passthrough.router, dependencies=authed)  # last: every other /v1/ path, forwarded

    def openapi() -> dict:
        if app.openapi_schema is None:
            doc = chat.document_chat_body(get_openapi(title=app.title, version=app.version, routes=app.routes))
            document_body(doc, "/solve", SolveRequest)  # read by `json_body`, after the key check
            app.openapi_schema = document_body(doc, "/v1/feedback", FeedbackRequest)
        return app.openapi_schema

    app.openapi = openapi
    return app

"""What the service's lifespan owns, and the `Annotated` dependency that hands it to routes (L2)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Annotated, Any, TypeVar

import aiohttp
from fastapi import Depends, Request
from pydantic import BaseModel, ValidationError

from service.body import parse_json
from service.catalog import Catalog
from service.errors import ClientClosed, InvalidRequest, ModelNotFound, NotReady, Unauthorized, validation_message
from service.metrics import ServiceMetrics
from service.orchestrator import EpisodeConfig, Orchestrator
from service.planner_client import HttpPlanner
from service.reasoner import OpenAIReasoner
from service.routing import Upstream
from service.protocol import SolveResponse
from service.settings import ServiceSettings
from service.traces import TraceStore

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)
RSIM_PREFIX = "rsim/"


ClientDisconnected = ClientClosed  # the name the routes and tests knew


@dataclass
class ServiceState:
    settings: ServiceSettings
    catalog: Catalog
    metrics: ServiceMetrics
    session: aiohttp.ClientSession
    reasoner: OpenAIReasoner
    planner: HttpPlanner
    orchestrator: Orchestrator
    traces: TraceStore | None = None
    api_key_hashes: frozenset[str] = frozenset()  # every key accepted: the client keys and the admin keys
    admin_key_hashes: frozenset[str] = frozenset()  # the keys that may label any trace
    upstreams: list[Upstream] = field(default_factory=list)  # empty: the one reasoner above
    models: list[str] = field(default_factory=list)
    models_at: float = 0.0
    routes: dict[str, Upstream] = field(default_factory=dict)  # model id → its upstream (from the last refresh)

    def __post_init__(self) -> None:
        if not self.upstreams:
            self.upstreams = [Upstream("reasoner", self.reasoner, self.orchestrator)]
        self._refreshing = asyncio.Lock()
        self._defaults = self.settings.model_dump()  # the episode defaults, read per request

    def upstream_for(self, model: str | None) -> Upstream:
        """The upstream serving `model` (the first one for a model no upstream lists)."""
        return self.routes.get(model or "", self.upstreams[0])

    def orchestrator_for(self, model: str) -> Orchestrator:
        return self.upstream_for(model).orchestrator

    @property
    def reasoning_fields(self) -> tuple[str, ...]:
        return tuple(self.settings.reasoning_fields.split(","))

    def caller_key(self, authorization: str) -> str | None:
        """The SHA-256 of the configured key an `Authorization` header value carries; None when it carries
        none of them, or none are configured. Only the keys' SHA-256 is kept, never a key itself, so every
        request's key is hashed."""
        given = authorization.removeprefix("Bearer ").strip()
        if not (given and self.api_key_hashes):
            return None
        digest = hashlib.sha256(given.encode()).hexdigest()
        return digest if any(hmac.compare_digest(digest, h) for h in self.api_key_hashes) else None

    def key_allowed(self, authorization: str) -> bool:
        """Whether an `Authorization` header value carries one of the configured keys (any, when none are)."""
        return not self.api_key_hashes or self.caller_key(authorization) is not None

    def labelled_by(self, key: str | None) -> str | None:
        """The owner whose traces a caller (its `caller_key`) may label: None, meaning any trace, for an admin
        key or when no keys are configured (anonymous mode: anyone may label any trace, as before issue 29);
        else its own key, so it labels only the traces of its own requests."""
        if not self.api_key_hashes or key in self.admin_key_hashes:
            return None
        if key is None:  # `require_api_key` refuses such a caller first; never read it as "any trace"
            raise Unauthorized("Incorrect or missing API key: send it as 'Authorization: Bearer <key>'")
        return key

    def parse_json(self, raw: bytes) -> Any:
        """A request body parsed under this service's bounds (RSIM_MAX_JSON_DEPTH, RSIM_MAX_BODY_BYTES)."""
        return parse_json(raw, max_depth=self.settings.max_json_depth, max_bytes=self.settings.max_body_bytes)

    def finished(self, question: str, result: SolveResponse, *, owner: str | None = None) -> None:
        """Bookkeeping of every finished episode: its metrics, and its trace, owned by `owner` (the SHA-256
        of the caller's key: `caller(request)`). The request itself is counted by `RequestMetricsMiddleware`,
        once, however many episodes it held."""
        self.metrics.observe(result)
        if self.traces is not None and not self.traces.record(question, result, owner=owner):
            self.metrics.traces_dropped.inc()

    async def refresh_models(self, *, max_age_s: float = 30.0) -> list[str]:
        """Every upstream's models, in routing-file order (the first upstream listing an id serves it). An
        upstream that does not answer keeps the models it listed last; only when none answers is it an
        error. One refresh at a time: concurrent callers wait for it and share its answer."""
        if self.models and time.monotonic() - self.models_at < max_age_s:
            return self.models
        async with self._refreshing:
            if self.models and time.monotonic() - self.models_at < max_age_s:
                return self.models  # another caller refreshed while this one waited
            listed = await asyncio.gather(*(u.refresh(max_age_s) for u in self.upstreams), return_exceptions=True)
            failures = [x for x in listed if isinstance(x, BaseException)]
            if len(failures) == len(listed):
                raise failures[0]
            routes: dict[str, Upstream] = {}
            for upstream, ids in zip(self.upstreams, listed, strict=True):
                for mid in (upstream.models if isinstance(ids, BaseException) else ids):
                    routes.setdefault(mid, upstream)
            self.routes, self.models, self.models_at = routes, list(routes), time.monotonic()
            return self.models

    async def default_model(self) -> str:
        if self.settings.reasoner_model:
            return self.settings.reasoner_model
        models = await self.refresh_models()
        if not models:
            raise NotReady("the reasoner lists no model; set RSIM_REASONER_MODEL")
        return models[0]

    async def resolve_model(self, requested: str | None, *, param: str = "model") -> str:
        """A reasoner model id for the loop; unknown ids are 404 `model_not_found`."""
        if requested is None:
            return await self.default_model()
        model = requested.removeprefix(RSIM_PREFIX)
        if model == self.settings.reasoner_model:
            return model
        if model not in await self.refresh_models() and model not in await self.refresh_models(max_age_s=0):
            raise ModelNotFound(f"The model '{requested}' does not exist", param=param)
        return model

    def episode(self, model: str, *, max_steps: int | None, max_tokens_per_step: int | None,
                temperature: float | None, reasoner_temperature: float | None, force: str | None,
                forbid: list[str], seed: int | None, first_step: str | None = None,
                final_max_tokens: int | None = None, gate: str | None = None,
                gate_margin: float | None = None) -> EpisodeConfig:
        # the service's settings, then the model's upstream's episode defaults, then the request's own
        s = {**self._defaults, **self.upstream_for(model).episode}
        return EpisodeConfig(model=model, max_steps=max_steps or s["max_steps"],
                             max_tokens_per_step=max_tokens_per_step or s["max_tokens_per_step"],
                             final_max_tokens=final_max_tokens or s["final_max_tokens"],
                             planner_temperature=s["planner_temperature"] if temperature is None else temperature,
                             reasoner_temperature=s["reasoner_temperature"] if reasoner_temperature is None
                             else reasoner_temperature,
                             force=force, forbid=list(forbid), seed=seed, delimiter=s["step_delimiter"],
                             min_step_tokens=s["min_step_tokens"], min_step_chars=s["min_step_chars"],
                             first_step=first_step or s["first_step"], unguided_tail=s["unguided_tail"],
                             continue_cut=s["continue_cut"], gate=gate or s["gate"],
                             gate_margin=s["gate_margin"] if gate_margin is None else gate_margin,
                             decision_timeout_s=s["decision_timeout_s"])


async def get_state(request: Request) -> ServiceState:
    return request.app.state.rsim


State = Annotated[ServiceState, Depends(get_state)]


async def require_api_key(request: Request) -> None:
    """Routes that spend reasoner time need a client key when keys are configured (401 otherwise)."""
    if not request.app.state.rsim.key_allowed(request.headers.get("authorization", "")):
        raise Unauthorized("Incorrect or missing API key: send it as 'Authorization: Bearer <key>'")


def caller(request: Request) -> str | None:
    """The SHA-256 of the configured key this request carries (None: no keys configured)."""
    return request.app.state.rsim.caller_key(request.headers.get("authorization", ""))


def validated(model: type[M], body: Any) -> M:
    """`body` as `model`; a validation error is a 400 with `param` at the first bad field."""
    try:
        return model.model_validate(body)
    except ValidationError as e:
        message, param = validation_message(e.errors())
        raise InvalidRequest(message, param=param) from None


def json_body(model: type[M]) -> Any:
    """A route's JSON body as `model`, parsed under the service's bounds. A dependency, so it runs after
    the router's API-key check (FastAPI parses a body parameter before any dependency runs)."""

    async def read(request: Request) -> M:
        return validated(model, request.app.state.rsim.parse_json(await request.body()))

    return Depends(read)


async def cancel_on_disconnect(request: Request, work: Awaitable[T]) -> T:
    """Run `work`, cancelling it (and its upstream calls) if the client goes away first."""
    task = asyncio.ensure_future(work)

    async def watch() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    watcher = asyncio.ensure_future(watch())
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
        with contextlib.suppress(BaseException):
            await watcher
        if not task.done():  # the client left first (or this request was cancelled): stop the work
            task.cancel()
            with contextlib.suppress(BaseException):
                await task  # until it has stopped: a cancelled task has no result yet right after cancel()
    if task.cancelled():
        raise ClientClosed("the client closed the connection before its answer")
    return task.result()

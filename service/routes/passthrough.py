"""Passthrough: a chat request for a plain reasoner model, and the requests under `/v1/` on the allowlist
(RSIM_PASSTHROUGH_ALLOW; by default `POST /v1/completions`, `/v1/embeddings`, `/v1/responses`), are forwarded
byte for byte (DESIGN.md §4.5), streamed back when the reasoner streams. Any other `/v1/` path is a 404: the
reasoner's key never reaches the account's files, batches or fine-tunes unless the operator says so.

`PassthroughFastPath` answers those requests in pure ASGI, ahead of FastAPI's routing, dependency
injection and request objects, which cost about as much CPU as forwarding itself
(docs/performance.md). Whatever it does not forward — `rsim/` models, chat bodies that are not a JSON
object with a model, a missing or wrong API key — falls through, untouched, to the routes, which answer
it and its errors as before. API keys and limits hold for every path alike (the limits middleware sits
outside this one); the key is checked before a body is parsed, and a body is parsed only under the
service's bounds (service/body.py)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.body import NestedTooDeep, looks_like_json
from service.errors import InvalidRequest, NotFound, RsimError, UpstreamError
from service.sse import DONE, sse
from service.routing import Upstream
from service.state import RSIM_PREFIX, ServiceState, State
from service.web import error_response, request_id, scope_request_id

CHAT_PATH = "/v1/chat/completions"
OWN_PATHS = frozenset({"/v1/models", "/v1/feedback", "/v1/strategies"})  # answered by rsim, never forwarded
FORWARDED_HEADERS = frozenset({b"content-type", b"accept", b"openai-beta"})  # what the reasoner needs of the client's


UNKNOWN_MODEL_REFRESH_S = 5.0  # an id no upstream lists refreshes the model map at most this often


def forwarded(path: str) -> bool:
    """Paths relayed to the reasoner as they are: all of `/v1/` but chat (decided by model) and rsim's own."""
    return (path.startswith("/v1/") and path != CHAT_PATH and path not in OWN_PATHS
            and not path.startswith("/v1/models/"))


def names_rsim_model(model: str | None) -> bool:
    """Whether a request asks for an `rsim/` model (those answer chat completions only)."""
    return model is not None and model.startswith(RSIM_PREFIX)
# per-hop headers, and ours: the body is relayed as it came, so its Content-Encoding goes with it
HOP_HEADERS = frozenset({b"content-length", b"transfer-encoding", b"connection", b"keep-alive", b"server", b"date",
                         b"x-request-id"})


class RelayedResponse(Response):
    """The reasoner's answer as it came: status, body and end-to-end headers, nothing re-encoded."""

    def __init__(self, status_code: int, raw_headers: list[tuple[bytes, bytes]], body: bytes):
        self.status_code, self.body, self.background = status_code, body, None
        self.raw_headers = [*raw_headers, (b"content-length", b"%d" % len(body))]


async def passthrough(state: ServiceState, raw: bytes, stream: bool, rid: str, model: str | None = None) -> Response:
    """Forward a plain model's chat request untouched to the upstream serving it; relay status, body and
    content type (streamed when asked)."""
    return await relay(state, "POST", "/chat/completions", raw, {"Content-Type": "application/json"}, rid,
                       stream=stream, upstream=await upstream_of(state, model))


async def upstream_of(state: ServiceState, model: str | None) -> Upstream:
    """The upstream a request's model lives on: the only one, or by the model map (refreshed when the model
    is new to it; an upstream that does not answer leaves the map as it was)."""
    if len(state.upstreams) == 1:
        return state.upstreams[0]
    if model and model not in state.routes:  # new to the map: look again, at most every few seconds
        with contextlib.suppress(RsimError):
            await state.refresh_models(max_age_s=UNKNOWN_MODEL_REFRESH_S)
    return state.upstream_for(model)


def model_of(raw: bytes, parse: Callable[[bytes], Any]) -> str | None:
    """The `model` of a JSON object body, read with `parse` (the service's bounded parse); None for anything
    else (a multipart upload, say, is never parsed). A JSON body nested past the bound is refused
    (NestedTooDeep, 400), not forwarded."""
    if not looks_like_json(raw):
        return None
    try:
        body = parse(raw)
    except NestedTooDeep:
        raise
    except InvalidRequest:  # not JSON after all: forwarded as it came, for the reasoner to judge
        return None
    model = body.get("model") if isinstance(body, dict) else None
    return model if isinstance(model, str) else None


async def relay(state: ServiceState, method: str, path: str, raw: bytes, headers: dict[str, str], rid: str,
                *, stream: bool = True, upstream: Upstream | None = None) -> Response:
    """Send `raw` to the upstream's `path` (relative to its `/v1`, query included); relay its answer as it
    comes: status, end-to-end headers, and the body — streamed when it is an event stream."""
    upstream = upstream or state.upstreams[0]
    resp = await upstream.reasoner.open(method, path, data=raw if raw or method != "GET" else None,
                                        headers={**headers, "X-Request-Id": rid})
    state.metrics.count_upstream(upstream.name, resp.status)
    headers = [(k, v) for k, v in resp.raw_headers if k.lower() not in HOP_HEADERS]
    if not stream or resp.status >= 400 or "text/event-stream" not in resp.headers.get("Content-Type", ""):
        try:
            body = await resp.read()
        finally:
            resp.release()
        return RelayedResponse(resp.status, headers, body)

    async def relay() -> AsyncIterator[bytes]:
        finished = False
        try:
            async for data in resp.content.iter_any():
                yield data
            finished = True
        except Exception as e:  # the reasoner broke mid-stream: one error event, then [DONE]
            yield sse(UpstreamError(f"reasoner stream failed: {e.__class__.__name__}").envelope())
            yield DONE
        finally:
            resp.release() if finished else resp.close()

    response = StreamingResponse(relay(), status_code=resp.status)
    response.raw_headers = headers
    return response


def plain_model_request(raw: bytes, parse: Callable[[bytes], Any]) -> dict | None:
    """The body, read with `parse`, when it asks for a plain reasoner model by name, else None (the route
    decides, and answers a body that is not JSON, or too deep, with its 400)."""
    try:
        body = parse(raw)
    except RsimError:
        return None
    if not isinstance(body, dict):
        return None
    model = body.get("model")
    return body if isinstance(model, str) and model and not model.startswith(RSIM_PREFIX) else None


class PassthroughFastPath:
    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"] == CHAT_PATH and scope["method"] == "POST":
            await self.chat(scope, receive, send)
        elif forwarded(scope["path"]):
            await self.other(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def other(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Any other `/v1/` path: forwarded as it came when the key is good and no `rsim/` model is named;
        else the catch-all route answers (401, or 400 for an `rsim/` model)."""
        raw = await read_body(receive)
        if raw is None:
            return
        state: ServiceState = scope["app"].state.rsim
        headers = dict(scope["headers"])
        if (not state.key_allowed(headers.get(b"authorization", b"").decode("latin-1")) or not clean_path(scope["path"])
                or not state.settings.forwards(scope["method"], scope["path"])):
            await self.app(scope, replay(raw, receive), send)  # the route's 401 (or 400, or 404), before any parsing
            return
        rid = scope_request_id(scope)
        try:
            model = model_of(raw, state.parse_json) if raw else None
        except RsimError as e:  # a body nested past the bound
            await error_response(e, rid)(scope, receive, send)
            return
        if names_rsim_model(model):
            await self.app(scope, replay(raw, receive), send)  # the route's 400
            return
        try:
            response = await relay(state, scope["method"], upstream_path(scope), raw, forward_headers(headers), rid,
                                   upstream=await upstream_of(state, model))
        except RsimError as e:
            response = error_response(e, rid)
        await response(scope, receive, send)

    async def chat(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw = await read_body(receive)
        if raw is None:
            return  # the client left before its body arrived: nobody to answer
        state: ServiceState = scope["app"].state.rsim
        authorization = next((v for k, v in scope["headers"] if k == b"authorization"), b"").decode("latin-1")
        body = plain_model_request(raw, state.parse_json) if state.key_allowed(authorization) else None  # key first
        if body is None:
            await self.app(scope, replay(raw, receive), send)
            return
        rid = scope_request_id(scope)
        scope.setdefault("state", {})["endpoint"] = "chat_passthrough"
        try:
            response = await passthrough(state, raw, bool(body.get("stream")), rid, body.get("model"))
        except RsimError as e:  # nothing sent yet: answered as the route's error handler would
            response = error_response(e, rid)
        await response(scope, receive, send)


async def read_body(receive: Receive) -> bytes | None:
    """The whole request body (bounded by BodyLimitMiddleware, outside); None if the client left first."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


def clean_path(path: str) -> bool:
    """No `.`/`..` segment, written plain or percent-encoded: a forwarded path stays under the upstream's /v1."""
    from urllib.parse import unquote

    return not any(seg in (".", "..") for seg in unquote(path).split("/"))


def upstream_path(scope: Scope) -> str:
    """The reasoner path for a `/v1/...` request: relative to the reasoner's `/v1`, with the query string."""
    path = scope["path"].removeprefix("/v1")
    query = scope.get("query_string", b"")
    return f"{path}?{query.decode('latin-1')}" if query else path


def forward_headers(headers: dict[bytes, bytes]) -> dict[str, str]:
    return {k.decode("latin-1"): v.decode("latin-1") for k, v in headers.items() if k.lower() in FORWARDED_HEADERS}


def replay(raw: bytes, receive: Receive) -> Receive:
    """A `receive` that hands the already-read body over once, then listens to the client again."""
    pending = True

    async def again() -> Message:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": raw, "more_body": False}
        return await receive()

    return again


router = APIRouter()


@router.api_route("/v1/{rest:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False)
async def other_v1(rest: str, request: Request, state: State) -> Response:
    """What the fast path left: an `rsim/` model on a path other than chat (400), else forwarded the same way
    (the API key was checked by the router's dependency)."""
    path = "/v1/" + rest
    if not forwarded(path):
        raise NotFound(f"no route {request.method} {path}")
    if not state.settings.forwards(request.method, request.scope["path"]):
        raise NotFound(f"{request.method} {path} is not forwarded to the reasoner: this service forwards "
                       f"{state.settings.passthrough_allow or 'nothing'} (RSIM_PASSTHROUGH_ALLOW widens it)",
                       code="not_forwarded")
    if not clean_path(request.scope["path"]):
        raise InvalidRequest("the path has '.' or '..' segments; forwarded paths must be plain", code="invalid_path")
    raw = await request.body()
    model = model_of(raw, state.parse_json) if raw else None
    if names_rsim_model(model):
        raise InvalidRequest(f"rsim/ models answer /v1/chat/completions only; send {path} requests with the plain "
                             "model id", param="model", code="unsupported_path")
    return await relay(state, request.method, upstream_path(request.scope), raw,
                       forward_headers(dict(request.scope["headers"])), request_id(request),
                       upstream=await upstream_of(state, model))

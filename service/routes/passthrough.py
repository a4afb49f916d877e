"""Passthrough: a chat request for a plain reasoner model is forwarded byte for byte (DESIGN.md §4.5).

`PassthroughFastPath` answers those requests in pure ASGI, ahead of FastAPI's routing, dependency
injection and request objects, which cost about as much CPU as forwarding itself
(docs/performance.md). Whatever it does not forward — `rsim/` models, bodies that are not a JSON object
with a model, a missing or wrong API key — falls through, untouched, to the `/v1/chat/completions`
route, which answers it and its errors as before."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

from fastapi.responses import Response, StreamingResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import RsimError, UpstreamError
from service.sse import DONE, sse
from service.state import RSIM_PREFIX, ServiceState
from service.web import error_response, scope_request_id

CHAT_PATH = "/v1/chat/completions"
# per-hop headers, and ours: the body is relayed as it came, so its Content-Encoding goes with it
HOP_HEADERS = frozenset({b"content-length", b"transfer-encoding", b"connection", b"keep-alive", b"server", b"date",
                         b"x-request-id"})


class RelayedResponse(Response):
    """The reasoner's answer as it came: status, body and end-to-end headers, nothing re-encoded."""

    def __init__(self, status_code: int, raw_headers: list[tuple[bytes, bytes]], body: bytes):
        self.status_code, self.body, self.background = status_code, body, None
        self.raw_headers = [*raw_headers, (b"content-length", b"%d" % len(body))]


async def passthrough(state: ServiceState, raw: bytes, stream: bool, rid: str) -> Response:
    """Forward the untouched body; relay status, body and content type (streamed when asked)."""
    resp = await state.reasoner.open("POST", "/chat/completions", data=raw,
                                     headers={"Content-Type": "application/json", "X-Request-Id": rid})
    state.metrics.count("chat_passthrough", resp.status)
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


def plain_model_request(raw: bytes) -> dict | None:
    """The parsed body when it asks for a plain reasoner model by name, else None (the route decides)."""
    try:
        body = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    model = body.get("model")
    return body if isinstance(model, str) and model and not model.startswith(RSIM_PREFIX) else None


class PassthroughFastPath:
    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != CHAT_PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        chunks = []
        while True:  # the body is bounded by BodyLimitMiddleware, outside this one
            message = await receive()
            if message["type"] != "http.request":
                return  # the client left before its body arrived: nobody to answer
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        raw = b"".join(chunks)
        state: ServiceState = scope["app"].state.rsim
        body = plain_model_request(raw)
        authorization = next((v for k, v in scope["headers"] if k == b"authorization"), b"").decode("latin-1")
        if body is None or not state.key_allowed(authorization):
            await self.app(scope, replay(raw, receive), send)
            return
        rid = scope_request_id(scope)
        try:
            response = await passthrough(state, raw, bool(body.get("stream")), rid)
        except RsimError as e:  # nothing sent yet: answered as the route's error handler would
            response = error_response(e, rid)
        await response(scope, receive, send)


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

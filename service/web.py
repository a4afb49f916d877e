"""HTTP plumbing shared by both apps: error handlers, the request-id and request-metrics middlewares (L2)."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import NotReady, PayloadTooLarge, RsimError, error_envelope, validation_message

log = logging.getLogger("rsim")

REQUEST_ID_HEADER = "x-request-id"


def scope_request_id(scope: Scope) -> str:
    """The id `RequestIdMiddleware` gave this request (a fresh one where it did not run)."""
    return scope.get("state", {}).get("request_id") or uuid.uuid4().hex


def request_id(request: Request) -> str:
    return scope_request_id(request.scope)


class RequestIdMiddleware:
    """Accept `X-Request-Id` (or make one), keep it in scope state, echo it on the response."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = None
        for k, v in scope.get("headers", ()):
            if k == b"x-request-id":
                rid = v.decode("latin-1")[:128]
                break
        rid = rid or uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = rid

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [h for h in message.get("headers", []) if h[0].lower() != b"x-request-id"]
                headers.append((b"x-request-id", rid.encode("latin-1")))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_id)


class RequestMetricsMiddleware:
    """Every HTTP request counted once, by endpoint and status, whatever answered it: a route, an error
    handler, a middleware refusing it (400, 401, 404, 413, 429), the passthrough fast path, or an exception
    (500). `label(scope)` names the endpoint from the path (a bounded set: unknown paths are one label);
    a route may name it more precisely (`scope["state"]["endpoint"]`), and a stream whose episode failed
    after its 200 went out records the error's status (`scope["state"]["outcome_status"]`). A request whose
    client left counts as 499. Counted when the response has ended, so a stream counts once it is done."""

    def __init__(self, app: ASGIApp, *, label: Callable[[Scope], str], count: Callable[[Scope, str, int], None]):
        self.app, self.label, self.count = app, label, count

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status: int | None = None
        # this request's own state: a server may hand every request the same lifespan-state dict (ASGI
        # servers copy it; some test transports do not), and one request's endpoint must not label the next
        scope["state"] = {k: v for k, v in (scope.get("state") or {}).items() if k not in ("endpoint", "outcome_status")}

        async def send_counted(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_counted)
        except asyncio.CancelledError:
            status = 499 if status is None else status  # the server cancelled it: the client is gone
            raise
        except Exception:
            status = 500 if status is None else status  # the server error middleware outside answers 500
            raise
        finally:
            state = scope.get("state", {})
            self.count(scope, state.get("endpoint") or self.label(scope), state.get("outcome_status") or status or 499)


class BodyLimitMiddleware:
    """Refuse request bodies over `max_bytes` with 413 in the error envelope, on every route: at once
    when `Content-Length` says so, else as the body streams in (chunked uploads are counted)."""

    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    def too_large(self) -> PayloadTooLarge:
        return PayloadTooLarge(f"request body over {self.max_bytes} bytes")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for k, v in scope.get("headers", ()):
            if k == b"content-length" and v.isdigit():
                if int(v) > self.max_bytes:
                    err = self.too_large()
                    await JSONResponse(err.envelope(), status_code=err.status_code)(scope, receive, send)
                else:  # the server holds the body to its declared length: nothing to count
                    await self.app(scope, receive, send)
                return
        seen, over, answered = 0, False, False

        async def counted() -> Message:
            nonlocal seen, over
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    over = True
                    raise self.too_large()
            return message

        async def send_or_413(message: Message) -> None:
            # once over the limit, whatever the app makes of the failed read becomes our 413
            nonlocal answered
            if not over:
                await send(message)
            elif message["type"] == "http.response.start" and not answered:
                answered = True
                err = self.too_large()
                await JSONResponse(err.envelope(), status_code=err.status_code)(scope, receive, send)

        try:
            await self.app(scope, counted, send_or_413)
        except PayloadTooLarge:
            if not answered:
                await send_or_413({"type": "http.response.start"})


def document_body(openapi: dict, path: str, model: type[BaseModel], description: str | None = None) -> dict:
    """Describe `model` as the JSON body of `path`'s POST in an OpenAPI document: for routes that read
    their body themselves (bounded, after the API-key check), which FastAPI cannot see."""
    body = model.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas = openapi.setdefault("components", {}).setdefault("schemas", {})
    schemas.update(body.pop("$defs", {}))
    schemas[model.__name__] = body
    openapi["paths"][path]["post"]["requestBody"] = {
        "required": True, "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}},
        **({"description": description} if description else {})}
    return openapi


def install_health(app: FastAPI) -> None:
    """`GET /health`: the process is up (both apps; readiness is each app's own `/ready`)."""

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok"}


def error_response(exc: RsimError, rid: str) -> JSONResponse:
    """A typed error as its response: status, envelope, headers; server-side failures are logged."""
    if exc.status_code == 499:
        log.info("request %s: %s", rid, exc.message)
    elif exc.status_code >= 500 and not isinstance(exc, NotReady):
        log.warning("request %s failed: %s %s", rid, exc.status_code, exc.message)
    return JSONResponse(exc.envelope(), status_code=exc.status_code, headers=exc.headers)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RsimError)
    async def _rsim(request: Request, exc: RsimError) -> JSONResponse:
        return error_response(exc, request_id(request))

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        message, param = validation_message(list(exc.errors()))
        return JSONResponse(error_envelope(message, type="invalid_request_error", param=param,
                                           code="invalid_request"), status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
        return JSONResponse(error_envelope(str(exc.detail), type="invalid_request_error", code=code),
                            status_code=exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unknown(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error in request %s", request_id(request))
        return JSONResponse(error_envelope("internal server error", type="server_error"), status_code=500)

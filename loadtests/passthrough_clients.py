"""Minimal passthroughs to measure rsim against. Two 30-line FastAPI ones that differ only in their
upstream client (one shared `httpx.AsyncClient` vs one shared `aiohttp.ClientSession`): the measurement
behind the service's choice of aiohttp for its hot path (`loadtests.bench_http_client`); and one with no
framework at all, plain ASGI on the same aiohttp session: the least CPU a Python proxy on uvicorn can
spend per request (`loadtests.bench_passthrough`)."""

from __future__ import annotations

import contextlib
import os

import aiohttp
import httpx
from fastapi import FastAPI, Request
from fastapi.responses import Response

UPSTREAM = "RSIM_BENCH_UPSTREAM"


async def health() -> dict:
    return {"status": "ok"}


def create_httpx_app() -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        limits = httpx.Limits(max_connections=1024, max_keepalive_connections=1024)
        app.state.client = httpx.AsyncClient(base_url=os.environ[UPSTREAM], limits=limits, timeout=30)
        yield
        await app.state.client.aclose()

    app = FastAPI(lifespan=lifespan)
    app.get("/health")(health)

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Response:
        r = await request.app.state.client.post("/chat/completions", content=await request.body(),
                                                headers={"content-type": "application/json"})
        return Response(r.content, status_code=r.status_code, media_type="application/json")

    return app


def create_aiohttp_app() -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        connector = aiohttp.TCPConnector(limit=1024)
        app.state.session = aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30))
        yield
        await app.state.session.close()

    app = FastAPI(lifespan=lifespan)
    app.get("/health")(health)

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Response:
        async with request.app.state.session.post(os.environ[UPSTREAM] + "/chat/completions",
                                                  data=await request.body(),
                                                  headers={"content-type": "application/json"}) as r:
            return Response(await r.read(), status_code=r.status, media_type="application/json")

    return app


def create_asgi_app():
    """A passthrough in plain ASGI: no routing, no validation, no error handling (`/health` aside)."""
    session: list[aiohttp.ClientSession] = []

    async def app(scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] == "lifespan.startup":
                session.append(aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1024),
                                                     timeout=aiohttp.ClientTimeout(total=30)))
                await send({"type": "lifespan.startup.complete"})
            await session[0].close()
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["path"] == "/health":
            status, body = 200, b'{"status": "ok"}'
        else:
            chunks, more = [], True
            while more:
                message = await receive()
                chunks.append(message.get("body", b""))
                more = message.get("more_body", False)
            async with session[0].post(os.environ[UPSTREAM] + scope["path"].removeprefix("/v1"), data=b"".join(chunks),
                                       headers={"content-type": "application/json"}) as r:
                status, body = r.status, await r.read()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]})
        await send({"type": "http.response.body", "body": body})

    return app

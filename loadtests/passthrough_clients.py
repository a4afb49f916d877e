"""Two 30-line FastAPI passthroughs that differ only in their upstream client (one shared
`httpx.AsyncClient` vs one shared `aiohttp.ClientSession`): the measurement behind the service's
choice of aiohttp for its hot path. Run by `loadtests.bench_http_client`."""

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

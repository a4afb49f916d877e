"""A small fault-injecting OpenAI-compatible reasoner (for fault tests only, never the happy path).

The requested model id picks the fault: `ok`, `fail-500`, `fail-400`, `fail-429`, `stall`, `drop`,
`malformed`, `slow` (one token per 0.2 s, for disconnect tests), `reasoning`/`reasoning_content` (a
reasoning-parser server: thinking deltas under that field, then content), `long` (the same 50 tokens at
once, every time: a reasoner that copies itself), `once-503` (503 on the first try of
each request id, then fine: retries before the first byte), `gzip` (a compressed answer, asked or not). Non-streamed answers set a cookie.
`GET /_log` returns what it saw:
each request's body, headers and whether its stream was cancelled by the client; a request to any other path
as `{"elsewhere": "METHOD /path"}` (answered 404); `GET /_models_calls` how often `/v1/models` was asked.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json

from aiohttp import web

LOG: list[dict] = []


def chunk(text: str | None, finish: str | None = None, field: str = "content") -> bytes:
    ev = {"id": "x", "object": "chat.completion.chunk", "model": "m",
          "choices": [{"index": 0, "delta": {field: text} if text else {}, "finish_reason": finish}]}
    return f"data: {json.dumps(ev)}\n\n".encode()


async def chat(request: web.Request) -> web.StreamResponse:
    raw = await request.read()
    body = json.loads(raw)
    entry = {"raw": raw.decode(), "headers": {k.lower(): v for k, v in request.headers.items()}, "cancelled": False, "finished": False}
    LOG.append(entry)
    model = body.get("model", "ok")
    rid = request.headers.get("X-Request-Id", "")
    if model == "once-503" and sum(1 for e in LOG if e["headers"].get("x-request-id") == rid) == 1:
        return web.json_response({"error": {"message": "warming up", "type": "x", "code": None}}, status=503)
    if model.startswith("fail-"):
        status = int(model.split("-")[1])
        return web.json_response({"error": {"message": f"injected {status}", "type": "x", "code": None}},
                                 status=status)
    if model == "gzip":  # an upstream that compresses whatever it was asked
        return web.Response(body=gzip.compress(json.dumps({"id": "x", "echo": body}).encode()),
                            headers={"Content-Type": "application/json", "Content-Encoding": "gzip"})
    if model == "malformed-json":
        return web.Response(text="{not json", content_type="application/json")
    if not body.get("stream"):
        resp = web.json_response({"id": "x", "object": "chat.completion", "model": model, "echo": body,
                                  "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"},
                                               "finish_reason": "stop"}],
                                  "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})
        resp.set_cookie("upstream-session", rid or "none")  # a proxy must never replay it for other clients
        return resp
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await resp.prepare(request)
    try:
        if model == "stall":
            await resp.write(chunk("a"))
            await asyncio.sleep(3600)
        if model == "malformed":
            await resp.write(b"data: {this is not json\n\n")
            return resp
        if model in ("reasoning", "reasoning_content"):  # a reasoning-parser server (vLLM's field names)
            for i in range(3):
                await resp.write(chunk(f"think{i} ", field=model))
        n = 50 if model in ("slow", "long") else 3
        for i in range(n):
            await resp.write(chunk(f"t{i} "))
            if model == "drop" and i == 1:
                request.transport.close()  # drop mid-stream
                return resp
            if model == "slow":
                await asyncio.sleep(0.2)
        await resp.write(chunk(None, "stop"))
        await resp.write(b'data: {"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 3}}\n\n')
        await resp.write(b"data: [DONE]\n\n")
        entry["finished"] = True
    except (asyncio.CancelledError, ConnectionResetError):
        entry["cancelled"] = True
        raise
    return resp


MODELS_CALLS = [0]


async def models_calls(request: web.Request) -> web.Response:
    return web.json_response(MODELS_CALLS[0])


async def models(request: web.Request) -> web.Response:
    MODELS_CALLS[0] += 1
    ids = ["ok", "fail-500", "fail-400", "fail-429", "stall", "drop", "malformed", "malformed-json", "slow", "once-503",
           "gzip", "reasoning", "reasoning_content", "long"]
    return web.json_response({"object": "list", "data": [{"id": i, "object": "model"} for i in ids]})


async def log(request: web.Request) -> web.Response:
    return web.json_response(LOG)


async def elsewhere(request: web.Request) -> web.Response:
    """Any other path: logged by method and path (`{"elsewhere": "DELETE /v1/files/f"}`), answered 404."""
    raw = await request.read()
    LOG.append({"elsewhere": f"{request.method} {request.path}", "raw": raw.decode(errors="replace"),
                "headers": {k.lower(): v for k, v in request.headers.items()}})
    return web.json_response({"error": {"message": "no such path", "type": "invalid_request_error"}}, status=404)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    a = p.parse_args()
    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_get("/v1/models", models)
    app.router.add_get("/_log", log)
    app.router.add_get("/_models_calls", models_calls)
    app.router.add_route("*", "/{rest:.*}", elsewhere)
    web.run_app(app, host="127.0.0.1", port=a.port, print=None, access_log=None)


if __name__ == "__main__":
    main()

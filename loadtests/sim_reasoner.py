"""A simulated OpenAI-compatible reasoner: answers after a fixed delay, streams at a fixed token
rate, so the service's own overhead can be measured without model noise.

    python -m loadtests.sim_reasoner --port 9000 --delay-ms 50 --tokens 8 --tokens-per-s 0 --fault-rate 0.05
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time

from aiohttp import web


def make_app(delay_ms: float, tokens: int, tokens_per_s: float, fault_rate: float = 0.0,
             seed: int = 0) -> web.Application:
    rng = random.Random(seed)

    async def chat(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        model = body.get("model", "sim")
        await asyncio.sleep(delay_ms / 1000)
        fault = rng.random() < fault_rate and rng.choice(["500", "drop"])
        if fault == "500":
            return web.json_response({"error": {"message": "injected fault", "type": "server_error"}}, status=500)
        n = min(tokens, int(body.get("max_tokens") or tokens))
        usage = {"prompt_tokens": 10, "completion_tokens": n, "total_tokens": 10 + n}
        if not body.get("stream"):
            return web.json_response({
                "id": "sim", "object": "chat.completion", "created": int(time.time()), "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "tok " * n},
                             "finish_reason": "stop"}], "usage": usage})
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for i in range(n):
            if fault == "drop" and i == n // 2:
                request.transport.close()  # injected fault: the connection drops mid-stream
                return resp
            ev = {"id": "sim", "object": "chat.completion.chunk", "model": model,
                  "choices": [{"index": 0, "delta": {"content": "tok "}, "finish_reason": None}]}
            await resp.write(f"data: {json.dumps(ev)}\n\n".encode())
            if tokens_per_s > 0:
                await asyncio.sleep(1 / tokens_per_s)
        end = {"id": "sim", "object": "chat.completion.chunk", "model": model,
               "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
        await resp.write(f"data: {json.dumps(end)}\n\n".encode())
        await resp.write(f"data: {json.dumps({'choices': [], 'usage': usage})}\n\ndata: [DONE]\n\n".encode())
        return resp

    async def models(request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "sim", "object": "model"}]})

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_get("/v1/models", models)
    return app


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--delay-ms", type=float, default=50.0, help="time before the answer starts")
    p.add_argument("--tokens", type=int, default=8)
    p.add_argument("--tokens-per-s", type=float, default=0.0, help="stream rate (0 = as fast as possible)")
    p.add_argument("--fault-rate", type=float, default=0.0, help="share of requests answered 500 or dropped")
    a = p.parse_args()
    web.run_app(make_app(a.delay_ms, a.tokens, a.tokens_per_s, a.fault_rate), host="127.0.0.1", port=a.port, print=None,
                access_log=None)


if __name__ == "__main__":
    main()

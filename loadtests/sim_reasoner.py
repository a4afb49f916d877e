"""A simulated OpenAI-compatible reasoner, so the service's own overhead can be measured without model
noise: every answer starts after `--ttft-ms` (time to first token), is `--tokens` tokens long (the step
length; a request's smaller `max_tokens` wins) and streams at `--tokens-per-s` (0 = at once); a share
`--fault-rate` of requests fails, half as a 500 and half as a connection dropped mid-stream.
Serves `/v1/chat/completions` and `/v1/completions`, streamed or not, and `/v1/models`.

    python -m loadtests.sim_reasoner --port 9000 --ttft-ms 50 --tokens 8 --tokens-per-s 0 --fault-rate 0.05
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import random
import time

from aiohttp import web

TOKEN = "tok "


def make_app(ttft_ms: float, tokens: int, tokens_per_s: float = 0.0, fault_rate: float = 0.0,
             seed: int = 0) -> web.Application:
    rng = random.Random(seed)
    answers = itertools.count()  # each answer starts with its own number: steps never copy each other

    async def answer(request: web.Request, chat: bool) -> web.StreamResponse:
        body = await request.json()
        model = body.get("model", "sim")
        await asyncio.sleep(ttft_ms / 1000)
        fault = rng.random() < fault_rate and rng.choice(["500", "drop"])
        if fault == "500":
            return web.json_response({"error": {"message": "injected fault", "type": "server_error"}}, status=500)
        n = min(tokens, int(body.get("max_tokens") or tokens))
        first = f"a{next(answers)} "
        usage = {"prompt_tokens": 10, "completion_tokens": n, "total_tokens": 10 + n}
        kind = "chat.completion" if chat else "text_completion"

        def choice(text: str | None, finish: str | None) -> dict:
            if not chat:
                return {"index": 0, "text": text or "", "finish_reason": finish}
            if body.get("stream"):
                return {"index": 0, "delta": {"content": text} if text else {}, "finish_reason": finish}
            return {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}

        if not body.get("stream"):
            if tokens_per_s > 0 and n > 1:
                await asyncio.sleep((n - 1) / tokens_per_s)
            return web.json_response({"id": "sim", "object": kind, "created": int(time.time()), "model": model,
                                      "choices": [choice(first + TOKEN * (n - 1), "stop")], "usage": usage})
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        chunk_kind = kind + ".chunk" if chat else kind
        for i in range(n):
            if fault == "drop" and i == n // 2:
                request.transport.close()  # injected fault: the connection drops mid-stream
                return resp
            if i and tokens_per_s > 0:
                await asyncio.sleep(1 / tokens_per_s)
            ev = {"id": "sim", "object": chunk_kind, "model": model, "choices": [choice(first if i == 0 else TOKEN, None)]}
            await resp.write(f"data: {json.dumps(ev)}\n\n".encode())
        end = {"id": "sim", "object": chunk_kind, "model": model, "choices": [choice(None, "stop")]}
        await resp.write(f"data: {json.dumps(end)}\n\n".encode())
        await resp.write(f"data: {json.dumps({'choices': [], 'usage': usage})}\n\ndata: [DONE]\n\n".encode())
        return resp

    async def chat(request: web.Request) -> web.StreamResponse:
        return await answer(request, chat=True)

    async def completions(request: web.Request) -> web.StreamResponse:
        return await answer(request, chat=False)

    async def models(request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "sim", "object": "model"}]})

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_post("/v1/completions", completions)
    app.router.add_get("/v1/models", models)
    return app


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--ttft-ms", "--delay-ms", type=float, default=50.0, dest="ttft_ms",
                   help="time to first token (the whole latency of a short non-streamed answer)")
    p.add_argument("--tokens", type=int, default=8, help="step length: tokens per answer")
    p.add_argument("--tokens-per-s", type=float, default=0.0, help="generation rate (0 = all at once)")
    p.add_argument("--fault-rate", type=float, default=0.0, help="share of requests answered 500 or dropped")
    a = p.parse_args()
    web.run_app(make_app(a.ttft_ms, a.tokens, a.tokens_per_s, a.fault_rate), host="127.0.0.1", port=a.port,
                print=None, access_log=None)


if __name__ == "__main__":
    main()

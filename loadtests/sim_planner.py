"""A simulated planner server: answers `POST /v1/plan` after `--delay-ms` with a strategy drawn at random
(never termination, never a forbidden one: the service forces termination at `max_steps`, so every
request takes exactly `max_steps` steps). For measuring the service's own work per step.

    python -m loadtests.sim_planner --port 9001 --delay-ms 0
"""

from __future__ import annotations

import argparse
import asyncio
import random

from aiohttp import web

from service.catalog import TERMINATION, load_catalog


def make_app(delay_ms: float = 0.0, seed: int = 0) -> web.Application:
    rng = random.Random(seed)
    catalog = load_catalog()
    ids = catalog.ids
    uniform = {i: 1 / len(ids) for i in ids}

    async def plan(request: web.Request) -> web.Response:
        body = await request.json()
        if delay_ms:
            await asyncio.sleep(delay_ms / 1000)
        allowed = [i for i in ids if i != TERMINATION and i not in body.get("forbid", ())] or [TERMINATION]
        return web.json_response({"strategy": rng.choice(allowed), "probabilities": uniform, "entropy": 2.197,
                                  "planner_version": "sim", "catalog_version": catalog.version,
                                  "latency_ms": delay_ms})

    async def ok(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_post("/v1/plan", plan)
    app.router.add_get("/ready", ok)
    app.router.add_get("/health", ok)
    return app


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--delay-ms", type=float, default=0.0, help="time per decision")
    a = p.parse_args()
    web.run_app(make_app(a.delay_ms), host="127.0.0.1", port=a.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
